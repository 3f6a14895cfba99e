"""Great Expectations 1.x suites run as Dagster asset checks (dagster-ge pins GX < 1.0)."""

import dagster as dg
import pandas as pd

from retail_assets.assets.stores import store_features
from retail_assets.core.quality import suites
from retail_assets.core import pipeline
from retail_assets.core.quality.gx import SuiteOutcome, validate_frame
from retail_assets.core.warehouse import connect_readonly
from retail_assets.partitions import stores_partitions
from retail_assets.resources import ForecastSettings, RetailDataRoot


def check_result(
    outcomes: list[SuiteOutcome], severity: dg.AssetCheckSeverity, check_name: str | None = None,
    asset_key: dg.AssetKey | None = None, extra: dict | None = None,
) -> dg.AssetCheckResult:
    """One AssetCheckResult for one or more suites: expectations run, the failed ones named, with counts and samples."""
    expectations = [o for s in outcomes for o in s.outcomes]
    failed = [o for s in outcomes for o in s.failed]
    rows = "\n".join(
        f"| {o.label} | {o.unexpected_count if o.unexpected_count is not None else o.observed_value} "
        f"| {str(o.unexpected_sample)[:120]} |"
        for o in failed
    )
    metadata = {
        "suites": ", ".join(s.suite for s in outcomes),
        "expectations_run": len(expectations),
        "expectations_failed": len(failed),
        "failed_expectations": dg.MetadataValue.md(
            "| expectation | unexpected / observed | sample |\n|---|---|---|\n" + rows if failed else "none"
        ),
        "details": dg.MetadataValue.json([
            {"expectation": o.label, "success": o.success, "kwargs": o.kwargs, "element_count": o.element_count,
             "unexpected_count": o.unexpected_count, "unexpected_sample": o.unexpected_sample,
             "observed_value": o.observed_value}
            for o in expectations
        ]),
        **(extra or {}),
    }
    kwargs = {"check_name": check_name} if check_name else {}
    if asset_key is not None:
        kwargs["asset_key"] = asset_key
    return dg.AssetCheckResult(passed=not failed, severity=severity, metadata=metadata, **kwargs)


OPEN_DAYS_SQL = """
select d.store_id, d.calendar_date as business_date
from dim_store_day d
cross join (select min(business_date) a, max(business_date) b from fct_daily_demand) bounds
where d.is_open_day and d.calendar_date between bounds.a and bounds.b
"""


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec("gx_demand_values", asset="fct_daily_demand",
                          description="Keys in the dims, unique keys, units >= 0 and under the item cap, dates after opening."),
        dg.AssetCheckSpec("gx_demand_completeness", asset="fct_daily_demand",
                          description="Every open store-day has its rows."),
        dg.AssetCheckSpec("gx_demand_volume", asset="fct_daily_demand",
                          description="Each store's last 7 days against its trailing 8 weeks."),
    ],
)
def gx_demand_checks(data_root: RetailDataRoot, settings: ForecastSettings):
    cfg = settings.validation_config()
    with connect_readonly(data_root.layout.warehouse) as con:
        demand = con.execute(
            "select store_id, item_id, business_date, units_total from fct_daily_demand").df()
        stores = con.execute("select store_id, opened_on from dim_store").df()
        items = [r[0] for r in con.execute("select item_id from dim_item").fetchall()]
        open_days = con.execute(OPEN_DAYS_SQL).df()
    for frame in (demand, stores, open_days):
        for col in ("business_date", "opened_on"):
            if col in frame:
                frame[col] = pd.to_datetime(frame[col])
    values = suites.add_unit_caps(suites.demand_values_frame(demand, stores), cfg)
    yield check_result(
        [validate_frame(values, suites.demand_values_suite(stores["store_id"].tolist(), items))],
        dg.AssetCheckSeverity.ERROR, "gx_demand_values", dg.AssetKey("fct_daily_demand"),
    )
    yield check_result(
        [validate_frame(suites.completeness_frame(demand, open_days), suites.completeness_suite())],
        dg.AssetCheckSeverity.ERROR, "gx_demand_completeness", dg.AssetKey("fct_daily_demand"),
    )
    volume = suites.volume_frame(demand)
    yield check_result(
        [validate_frame(volume, suites.volume_suite(cfg))], dg.AssetCheckSeverity.WARN, "gx_demand_volume",
        dg.AssetKey("fct_daily_demand"),
        extra={"volume_by_store": dg.MetadataValue.md(volume.round(3).to_markdown(index=False, disable_numparse=True))},
    )


@dg.asset_check(asset="ingest_reconciliation", name="gx_quarantine_rate",
                description="Every landing file reconciles and quarantines at most the configured share of its rows.")
def gx_quarantine_rate(data_root: RetailDataRoot, settings: ForecastSettings) -> dg.AssetCheckResult:
    with connect_readonly(data_root.layout.warehouse) as con:
        frame = con.execute(
            "select source, source_file, rows_read, rows_quarantined, quarantine_rate, reconciled, rejected_reason"
            " from ingest_reconciliation where source <> 'reference' or rejected_reason is not null"
        ).df()
    worst = frame.sort_values("quarantine_rate", ascending=False).head(5).drop(columns="rejected_reason")
    rejected = frame[frame["rejected_reason"].notna()]
    extra = {"worst_files": dg.MetadataValue.md(worst.to_markdown(index=False, disable_numparse=True)),
             "files_rejected": dg.MetadataValue.int(len(rejected))}
    if len(rejected):
        extra["rejected_files"] = dg.MetadataValue.md(rejected[["source", "source_file", "rejected_reason"]].head(50)
                                                      .to_markdown(index=False, disable_numparse=True))
    return check_result(
        [validate_frame(frame, suites.ingest_suite(settings.validation_config()))],
        dg.AssetCheckSeverity.ERROR,
        extra=extra,
    )


@dg.asset_check(
    asset=store_features,
    name="gx_store_features",
    partitions_def=stores_partitions,
    blocking=True,
    description="Blocking: enough history, no gaps, no never-sold item kept, known-future flags for the horizon.",
)
def gx_store_features(
    context: dg.AssetCheckExecutionContext, data_root: RetailDataRoot, settings: ForecastSettings
) -> dg.AssetCheckResult:
    return gate_check_result(pipeline.check_gate(data_root.layout, settings, context.partition_key))


def gate_check_result(gate: pipeline.GateResult) -> dg.AssetCheckResult:
    """The blocking gate's verdict as the UI shows it: every failed expectation named."""
    return check_result(
        gate.outcomes, dg.AssetCheckSeverity.ERROR,
        extra={"store_id": gate.store_id, "history_days": gate.history_days,
               "longest_zero_sales_streak_days": gate.longest_zero_sales_streak_days},
    )
