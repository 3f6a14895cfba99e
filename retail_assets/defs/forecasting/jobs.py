"""The per-store pipeline job every trigger runs, and the publication of forecasts over every store."""

import dagster as dg

from retail_assets.defs.edge.bundles import edge_bundle
from retail_assets.defs.forecasting.assets import demand_forecast, demand_model, forecasts_view
from retail_assets.defs.governance.assets import model_registry
from retail_assets.defs.inventory.assets import store_inventory_cover
from retail_assets.defs.partitions import stores_partitions
from retail_assets.defs.stores.assets import STORE_FEATURES

store_pipeline_job = dg.define_asset_job(
    "store_pipeline",
    selection=dg.AssetSelection.assets(STORE_FEATURES, demand_model, demand_forecast, store_inventory_cover,
                                       edge_bundle),
    partitions_def=stores_partitions,
    description="Per store: features, their blocking Great Expectations gate, models, forecast, inventory cover "
                "and edge bundle.",
    # the steps are a chain (each needs the one before), so a process per step bought no parallelism and cost a
    # Python start with Dagster, pandas and DuckDB imports per step; the item fits have their own process pool
    executor_def=dg.in_process_executor,
)

publish_forecasts_job = dg.define_asset_job(
    "publish_forecasts",
    selection=dg.AssetSelection.assets(forecasts_view, model_registry),
    description="Refresh the `forecasts` view and the model registry tables over every store.",
)
