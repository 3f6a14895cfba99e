"""Stores as partitions: register every store of `dim_store`, then build each store's features. Both depend on
dbt models, so they are built when the definitions load (`store_assets`); other rooms name them by key."""

import functools

import dagster as dg

from retail_assets.core import pipeline
from retail_assets.core.warehouse import connect_readonly
from retail_assets.defs.harmonize.assets import dbt_model_key
from retail_assets.defs.partitions import batches, new_store_partitions, stores_partitions
from retail_assets.resources import ForecastSettings, RetailDataRoot

STORE_REGISTRY = dg.AssetKey("store_registry")
STORE_FEATURES = dg.AssetKey("store_features")
FEATURE_MODELS = ("fct_daily_demand", "dim_calendar", "dim_store_day", "fct_planned_promotion", "fct_store_conditions",
                  "fct_shelf_stock")  # the marts the feature query reads


def register_store_partitions(instance: dg.DagsterInstance, store_ids: list[str]) -> list[str]:
    """Add the stores that are not partitions yet, in batches."""
    new = new_store_partitions(instance, store_ids)
    for batch in batches(new):
        instance.add_dynamic_partitions(stores_partitions.name, batch)
    return new


@functools.cache
def store_assets() -> list[dg.AssetsDefinition]:
    """`store_registry` and `store_features`, keyed to the dbt models they read."""

    @dg.asset(
        key=STORE_REGISTRY,
        deps=[dbt_model_key("dim_store")],
        group_name="stores",
        kinds={"python"},
        description="Keeps the `stores` dynamic partitions in sync with dim_store (new stores become partitions).",
    )
    def store_registry(context: dg.AssetExecutionContext, data_root: RetailDataRoot) -> dg.MaterializeResult:
        with connect_readonly(data_root.layout.warehouse) as con:
            ids = [r[0] for r in con.execute("select store_id from dim_store order by store_id").fetchall()]
        new = register_store_partitions(context.instance, ids)
        if new:
            context.log.info(f"registered {len(new)} new store partitions: {', '.join(new[:20])}")
        return dg.MaterializeResult(
            metadata={
                "stores_in_dim_store": len(ids),
                "partitions_added": len(new),
                "partitions_total": len(context.instance.get_dynamic_partitions(stores_partitions.name)),
                "new_stores": ", ".join(new[:50]) or "none",
            }
        )


    @dg.asset(
        partitions_def=stores_partitions,
        key=STORE_FEATURES,
        deps=[*(dbt_model_key(m) for m in FEATURE_MODELS), STORE_REGISTRY],
        group_name="stores",
        kinds={"parquet"},
        description="Per store: one row per item-day with units (the target) and the known-future regressors.",
    )
    def store_features(
        context: dg.AssetExecutionContext, data_root: RetailDataRoot, settings: ForecastSettings
    ) -> dg.MaterializeResult:
        r = pipeline.build_features(data_root.layout, settings, context.partition_key, context.log.info)
        return dg.MaterializeResult(metadata=features_metadata(r), data_version=dg.DataVersion(r.data_version))

    return [store_registry, store_features]


def features_metadata(r: pipeline.FeaturesResult) -> dict:
    """What a person checks on a store's features: rows, span, dropped items, a preview."""
    facts = r.facts
    return {
        "dagster/row_count": facts["rows"],
        "path": dg.MetadataValue.path(str(r.path)),
        "data_version_sha256": r.data_version,
        "items": facts["items"],
        "items_dropped_never_sold": ", ".join(r.dropped_items) or "none",
        "history_rows": facts["history_rows"],
        "future_rows": facts["future_rows"],
        "first_date": facts["first_date"],
        "last_history_date": facts["last_history_date"],
        "last_future_date": facts["last_future_date"],
        "share_zero_days": dg.MetadataValue.float(round(facts["share_zero_days"], 4)),
        "preview": dg.MetadataValue.md(r.preview.to_markdown(index=False, disable_numparse=True)),
    }
