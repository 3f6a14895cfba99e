"""A store's inventory cover: weeks of forecast demand its shelf stock would last, with the flags a planner acts on."""

import dagster as dg

from retail_assets.core import pipeline, plots
from retail_assets.defs.forecasting.assets import demand_forecast
from retail_assets.defs.partitions import stores_partitions
from retail_assets.defs.results import or_failure
from retail_assets.resources import ForecastSettings, RetailDataRoot

STORE_INVENTORY_COVER = dg.AssetKey("store_inventory_cover")
COVER_CHECK = "inventory_cover_flags"


@dg.asset(
    partitions_def=stores_partitions,
    deps=[demand_forecast],
    group_name="inventory",
    automation_condition=dg.AutomationCondition.eager(),  # follows every new forecast
    kinds={"pandas"},
    check_specs=[dg.AssetCheckSpec(COVER_CHECK, asset=STORE_INVENTORY_COVER,
                                   description="Warns with the over-stocked seasonal categories and the items at "
                                               "risk of a stock-out within the replenishment lead time.")],
    description="Per store x category (as of the newest shelf reading): on-hand units against the served forecast, "
                "weeks of cover, over-stock and stock-out-risk flags (core/inventory/cover.py).",
)
def store_inventory_cover(
    context: dg.AssetExecutionContext, data_root: RetailDataRoot, settings: ForecastSettings
) -> dg.MaterializeResult:
    r = or_failure(lambda: pipeline.publish_cover(data_root.layout, settings, context.partition_key))
    return dg.MaterializeResult(metadata=cover_metadata(r, settings), data_version=dg.DataVersion(r.version),
                                check_results=[cover_check_result(r)])


def cover_check_result(r: pipeline.CoverResult) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=STORE_INVENTORY_COVER, check_name=COVER_CHECK, passed=not r.flags,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"flags": len(r.flags), "overstocked_categories": int(r.categories["overstock"].sum()),
                  "stockout_risk_items": int(r.items["stockout_risk"].sum()),
                  "what_to_act_on": dg.MetadataValue.md("\n".join(f"- {f}" for f in r.flags) or "nothing")})


def cover_metadata(r: pipeline.CoverResult, settings: ForecastSettings) -> dict:
    c = r.categories
    table = c.assign(as_of=c["as_of"].astype(str)).round(2)
    meta = {
        "dagster/row_count": len(c),
        "path": dg.MetadataValue.path(str(r.path)),
        "items_with_stock_reading": len(r.items),
        "as_of": str(c["as_of"].max().date()) if len(c) else None,
        "overstock_weeks_threshold": settings.overstock_weeks,
        "replenishment_lead_days": settings.replenishment_lead_days,
        "overstocked_categories": dg.MetadataValue.json(c.loc[c["overstock"], "category"].tolist()),
        "stockout_risk_items": int(r.items["stockout_risk"].sum()),
        "cover": dg.MetadataValue.md(table.to_markdown(index=False, disable_numparse=True) if len(c)
                                     else "no shelf reading in the last days: no cover to state"),
    }
    if len(c):
        meta["cover_plot"] = dg.MetadataValue.md(plots.markdown_image(
            plots.cover_plot(r.store_id, c, settings.overstock_weeks), "weeks of cover per category"))
    return meta
