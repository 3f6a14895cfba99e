"""Harmonization: every dbt model is an asset, every dbt test an asset check. The dbt assets are built from
the manifest when the definitions load (`dbt_models`), never at import; other rooms name a model through
dagster-dbt's own `get_asset_key_for_model` (`dbt_model_key`)."""

import functools
from typing import Any, Mapping

import dagster as dg
from pydantic import Field
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    build_dbt_asset_selection,
    dbt_assets,
    get_asset_key_for_model,
)

from retail_assets.core.ingest.harmonize import INCREMENTAL_MODELS, plan_build, record_build
from retail_assets.dbt import dbt_project
from retail_assets.resources import ObjectStoreDataRoot, RetailDataRoot, WarehouseResource

WAREHOUSE_MARTS = dg.AssetKey("warehouse_marts")


class RetailDbtTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        folder = dbt_resource_props.get("fqn", ["", "marts"])[1]
        return "harmonize_staging" if folder in ("staging", "intermediate") else "warehouse"


def _model_metadata(con, table: str) -> dict:
    """What a person acts on, per model: row counts, and for the audit tables their breakdown."""
    meta: dict = {"dagster/row_count": dg.MetadataValue.int(con.execute(f'select count(*) from "{table}"').fetchone()[0])}
    if table == "quarantine":
        rows = con.execute("select source, reason, count(*) n from quarantine group by all order by n desc").fetchall()
        meta["reasons"] = dg.MetadataValue.md(
            "| source | reason | rows |\n|---|---|---|\n" + "\n".join(f"| {s} | {r} | {n:,} |" for s, r, n in rows)
        )
    elif table == "ingest_reconciliation":
        read, acc, dup, quar, bad, worst = con.execute(
            "select sum(rows_read), sum(rows_accepted), sum(rows_duplicate), sum(rows_quarantined),"
            " count(*) filter (where not reconciled), max(quarantine_rate) from ingest_reconciliation"
        ).fetchone()
        rejected = con.execute("select source, source_file, rejected_reason from ingest_reconciliation"
                               " where rejected_reason is not null order by 1, 2 limit 50").fetchall()
        meta["files_rejected"] = dg.MetadataValue.int(len(rejected))
        if rejected:
            meta["rejected_files"] = dg.MetadataValue.md(
                "| source | file | reason |\n|---|---|---|\n" + "\n".join(f"| {s} | `{f}` | {r} |" for s, f, r in rejected))
        meta.update(
            rows_read=int(read or 0), rows_accepted=int(acc or 0), rows_duplicate=int(dup or 0),
            rows_quarantined=int(quar or 0), files_not_reconciled=int(bad or 0),
            worst_file_quarantine_rate=float(worst or 0.0),
        )
    elif table == "fct_daily_demand":
        first, last, units, stores, items = con.execute(
            "select min(business_date), max(business_date), sum(units_total), count(distinct store_id),"
            " count(distinct item_id) from fct_daily_demand"
        ).fetchone()
        meta.update(first_date=str(first), last_date=str(last), units_total=int(units or 0), stores=stores, items=items)
    return meta


class HarmonizeConfig(dg.Config):
    full_refresh: bool = Field(
        default=False,
        description="Rebuild the incremental marts (int_sales_lines, fct_daily_demand) from all history, as "
        "`dbt build --full-refresh`. Not needed after a change of reference data, dbt code or a resent file: "
        "those are detected and rebuild in full by themselves.",
    )


@functools.cache
def dbt_models() -> dg.AssetsDefinition:
    """Every dbt model as an asset, read from the manifest once per process."""

    @dbt_assets(
        manifest=dbt_project().manifest_path,
        dagster_dbt_translator=RetailDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
        pool="duckdb",  # dbt writes the warehouse: the single-writer pool
    )
    def harmonized(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, data_root: RetailDataRoot, duckdb: WarehouseResource,
        config: HarmonizeConfig,
    ):
        """`dbt build`: staging maps regional schemas, marts build facts, dims, quarantine and reconciliation.
        The large marts are incremental; `plan_build` says when they must be rebuilt in full, and why."""
        data_root.export_env()
        with duckdb.writer():  # another run's writer finishes first; the counts are read under the same lock
            with duckdb.get_connection() as con:
                plan = plan_build(con, dbt_project().project_dir, requested_full=config.full_refresh)
            context.log.info(f"dbt build, {'full refresh' if plan.full_refresh else 'incremental'}: {plan.reason}")
            events = list(dbt.cli(["build", *plan.dbt_args()], context=context).stream())
            with duckdb.get_connection() as con:
                built = {context.asset_key_for_output(e.output_name).path[-1] for e in events
                         if isinstance(e, dg.Output)}
                if set(INCREMENTAL_MODELS) <= built:
                    record_build(con, plan)
                build_meta = {"build_mode": "full refresh" if plan.full_refresh else "incremental",
                              "build_mode_reason": plan.reason}
                yield from _with_counts(context, events, con, build_meta)

    return harmonized


def dbt_model_key(model: str) -> dg.AssetKey:
    return get_asset_key_for_model([dbt_models()], model)


def dbt_selection(select: str) -> dg.AssetSelection:
    """dbt's own selection syntax over the dbt assets (e.g. the telemetry marts a fleet refresh rebuilds)."""
    return build_dbt_asset_selection([dbt_models()], dbt_select=select)


def _with_counts(context, events, con, build_meta: dict):
    """dbt's events with the counts a person acts on added to each model's materialization, and for the
    incremental marts how they were built."""
    for event in events:
        if isinstance(event, dg.Output):
            table = context.asset_key_for_output(event.output_name).path[-1]
            extra = build_meta if table in INCREMENTAL_MODELS else {}
            event = event.with_metadata({**event.metadata, **_model_metadata(con, table), **extra})
        yield event


@functools.cache
def warehouse_marts() -> dg.AssetsDefinition:
    """The marts as Parquet on the object store (core/marts.py), after every build."""

    @dg.asset(
        key=WAREHOUSE_MARTS,
        deps=[dbt_models()],
        group_name="warehouse",
        kinds={"duckdb", "parquet"},
        description="With the data root on an object store: every dim_/fct_ mart written as Parquet to "
                    "`<root>/marts/<build>/` by DuckDB through the registered s3fs filesystem, then `current.json` "
                    "pointed at it, so a machine without the warehouse runs the per-store pipeline on them in "
                    "place. With a local root there is nothing to publish.",
    )
    def publish_marts(context: dg.AssetExecutionContext, data_root: RetailDataRoot) -> dg.MaterializeResult:
        from retail_assets.core import marts
        from retail_assets.core.warehouse import connect_readonly

        if not isinstance(data_root, ObjectStoreDataRoot):
            return dg.MaterializeResult(metadata={"published": False,
                                                  "reason": "the data root is local: every run reads the warehouse"})
        with connect_readonly(data_root.layout.warehouse) as con:
            pointer = marts.publish(con, data_root.data_dir)
        context.log.info(f"published {len(pointer['tables'])} marts as build {pointer['build']}")
        return dg.MaterializeResult(metadata={
            "published": True, "build": pointer["build"],
            "location": f"{data_root.data_dir.rstrip('/')}/{marts.MARTS_DIR}/{pointer['build']}/",
            "tables": dg.MetadataValue.md("| mart | rows |\n|---|---|\n" + "\n".join(
                f"| {t} | {n:,} |" for t, n in pointer["tables"].items())),
            "dagster/row_count": sum(pointer["tables"].values())})

    return publish_marts
