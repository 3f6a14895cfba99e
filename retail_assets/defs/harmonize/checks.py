"""Great Expectations 1.x suites on the warehouse marts, run as Dagster asset checks (dagster-ge pins GX < 1.0)."""

import functools

import dagster as dg
import pandas as pd

from retail_assets.core.quality import suites
from retail_assets.core.quality.gx import validate_frame
from retail_assets.core.warehouse import connect_readonly
from retail_assets.defs.harmonize.assets import dbt_model_key
from retail_assets.defs.results import check_result
from retail_assets.resources import ForecastSettings, RetailDataRoot


OPEN_DAYS_SQL = """
select d.store_id, d.calendar_date as business_date
from dim_store_day d
cross join (select min(business_date) a, max(business_date) b from fct_daily_demand) bounds
where d.is_open_day and d.calendar_date between bounds.a and bounds.b
"""


@functools.cache
def warehouse_checks() -> list[dg.AssetChecksDefinition]:
    """The GX checks on the marts, keyed through the dbt assets (built when the definitions load)."""
    demand_key = dbt_model_key("fct_daily_demand")

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec("gx_demand_values", asset=demand_key,
                              description="Keys in the dims, unique keys, units >= 0 and under the item cap, dates after opening."),
            dg.AssetCheckSpec("gx_demand_completeness", asset=demand_key,
                              description="Every open store-day has its rows."),
            dg.AssetCheckSpec("gx_demand_volume", asset=demand_key,
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
            dg.AssetCheckSeverity.ERROR, "gx_demand_values", demand_key,
        )
        yield check_result(
            [validate_frame(suites.completeness_frame(demand, open_days), suites.completeness_suite())],
            dg.AssetCheckSeverity.ERROR, "gx_demand_completeness", demand_key,
        )
        volume = suites.volume_frame(demand)
        yield check_result(
            [validate_frame(volume, suites.volume_suite(cfg))], dg.AssetCheckSeverity.WARN, "gx_demand_volume",
            demand_key,
            extra={"volume_by_store": dg.MetadataValue.md(volume.round(3).to_markdown(index=False, disable_numparse=True))},
        )


    @dg.asset_check(asset=dbt_model_key("ingest_reconciliation"), name="gx_quarantine_rate",
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

    return [gx_demand_checks, gx_quarantine_rate]
