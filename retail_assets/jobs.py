"""The asset jobs users launch from the UI and sensors target."""

import dagster as dg

from retail_assets.assets.fleet import edge_fleet_status
from retail_assets.assets.forecasting import demand_forecast, demand_model, edge_bundle, forecasts_view
from retail_assets.assets.landing import raw_landing
from retail_assets.assets.registry import model_registry
from retail_assets.assets.harmonize import harmonized
from retail_assets.assets.stores import store_features, store_registry
from retail_assets.partitions import stores_partitions

ingest_and_harmonize_job = dg.define_asset_job(
    "ingest_and_harmonize",
    selection=dg.AssetSelection.assets(raw_landing, harmonized, store_registry),
    description="Load new landing files, rebuild the harmonized warehouse with dbt, register new stores.",
)

store_pipeline_job = dg.define_asset_job(
    "store_pipeline",
    selection=dg.AssetSelection.assets(store_features, demand_model, demand_forecast, edge_bundle),
    partitions_def=stores_partitions,
    description="Per store: features, their blocking Great Expectations gate, models, forecast and edge bundle.",
)

publish_forecasts_job = dg.define_asset_job(
    "publish_forecasts",
    selection=dg.AssetSelection.assets(forecasts_view, model_registry),
    description="Refresh the `forecasts` view and the model registry tables over every store.",
)

refresh_edge_fleet_job = dg.define_asset_job(
    "refresh_edge_fleet",
    selection=dg.AssetSelection.assets(raw_landing, edge_fleet_status, "stg_edge_telemetry", "int_edge_telemetry",
                                       "fct_edge_forecasts", "quarantine", "ingest_reconciliation"),
    description="Load new telemetry files, rebuild the telemetry marts (and quarantine, reconciliation), and "
                "judge the fleet: which bundle each store really serves.",
)

republish_bundles_job = dg.define_asset_job(
    "republish_bundles",
    selection=dg.AssetSelection.assets(edge_bundle),
    partitions_def=stores_partitions,
    description="Rebuild, verify, sign and publish a store's live bundle again (a stale device gets it pushed).",
)
