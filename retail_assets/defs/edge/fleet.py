"""What is actually serving at the stores: registry vs device telemetry, with a check that pages on it."""

import functools

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from retail_assets.core import plots
from retail_assets.core.monitor import fleet
from retail_assets.defs.governance.assets import model_registry
from retail_assets.defs.harmonize.assets import dbt_model_key
from retail_assets.resources import FleetSettings, RetailDataRoot

FLEET_CHECK = "edge_fleet_healthy"
EDGE_FLEET_STATUS = dg.AssetKey("edge_fleet_status")


def compute_fleet_status(data_root: RetailDataRoot, fleet_settings: FleetSettings,
                         wait_seconds: float | None = None) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Fleet status as of the configured time (default now), from the registry files and the warehouse."""
    as_of = fleet.parse_as_of(fleet_settings.as_of)
    layout = data_root.layout
    return fleet.current_status(layout.models, layout.warehouse, as_of, fleet_settings.fleet_config(),
                                wait_seconds), as_of


@functools.cache
def fleet_assets() -> list[dg.AssetsDefinition]:
    """`edge_fleet_status`, keyed to the telemetry mart it reads (built when the definitions load)."""

    @dg.asset(
        key=EDGE_FLEET_STATUS,
        deps=[dbt_model_key("fct_edge_forecasts"), model_registry],
        group_name="edge",
        kinds={"duckdb"},
        pool="duckdb",
        automation_condition=dg.AutomationCondition.eager(),
        check_specs=[dg.AssetCheckSpec(
            FLEET_CHECK, asset=EDGE_FLEET_STATUS,
            description="ERROR when a store serves a bundle that is not its live one past the grace period; WARN "
                        "when a store's failure rate or p99 latency passes its threshold, or it went silent.")],
        description="One row per store: the bundle its device reports serving vs the live one in the registry, "
                    "last seen, forecasts, failure rate and p50/p99 latency over the window (table "
                    "`edge_fleet_status`).",
    )
    def edge_fleet_status(context: dg.AssetExecutionContext, data_root: RetailDataRoot, duckdb: DuckDBResource,
                          fleet_settings: FleetSettings) -> dg.MaterializeResult:
        status, as_of = compute_fleet_status(data_root, fleet_settings)
        with duckdb.get_connection() as con:
            table = status.reindex(columns=list(fleet.TABLE_COLUMNS)).astype(object)
            table = table.where(table.notna(), None)
            con.execute("create or replace table edge_fleet_status ("
                        + ", ".join(f"{c} {t}" for c, t in fleet.TABLE_COLUMNS.items()) + ")")
            con.register("_fleet", table)
            try:
                con.execute("insert into edge_fleet_status by name select * from _fleet")
            finally:
                con.unregister("_fleet")
        level, problems = fleet.verdict(status)
        for line in problems:
            context.log.warning(line)
        counts = status["status"].value_counts().to_dict() if len(status) else {}
        reporting = int(status["last_seen"].notna().sum()) if len(status) else 0
        cfg = fleet_settings.fleet_config()
        check = dg.AssetCheckResult(
            check_name=FLEET_CHECK,
            passed=level == "ok",
            severity=dg.AssetCheckSeverity.ERROR if level == "error" else dg.AssetCheckSeverity.WARN,
            metadata={
                "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
                "stale_overdue_stores": ", ".join(status.loc[status["status"] == "stale_overdue", "store_id"]) if len(status) else "",
                "stale_grace_hours": cfg.stale_grace_hours,
                "max_failure_rate": cfg.max_failure_rate,
                "max_p99_latency_ms": cfg.max_p99_latency_ms,
            },
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(status),
                "as_of_utc": as_of.isoformat(timespec="seconds"),
                "stores_reporting": reporting,
                "stores_serving_live": int((status["serving_bundle"] == status["live_bundle"]).sum()) if len(status) else 0,
                "status_counts": dg.MetadataValue.json(counts),
                "fleet": dg.MetadataValue.md(fleet.markdown(status)),
                **({"fleet_plot": dg.MetadataValue.md(plots.markdown_image(
                    plots.fleet_plot(status, cfg.max_p99_latency_ms, cfg.max_failure_rate), "p99 latency and failure rate per store"))}
                   if reporting else {}),
            },
            check_results=[check],
        )

    return [edge_fleet_status]
