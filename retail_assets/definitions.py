"""The code location: `defs` is what `dagster dev -w workspace.yaml` loads."""

import dagster as dg

from retail_assets.assets.fleet import edge_fleet_status
from retail_assets.assets.forecasting import demand_forecast, demand_model, edge_bundle, forecasts_view
from retail_assets.assets.harmonize import harmonized
from retail_assets.assets.landing import raw_landing
from retail_assets.assets.registry import model_registry
from retail_assets.assets.stores import store_features, store_registry
from retail_assets.automation.batch import retrain_stores
from retail_assets.automation.run_hygiene import dead_runs_sensor
from retail_assets.automation.schedules import seasonal_retrain_schedule, weekly_retrain_schedule
from retail_assets.automation.sensors import (
    drift_sensor,
    landing_files_sensor,
    new_stores_sensor,
    sales_spike_sensor,
    stale_bundle_sensor,
)
from retail_assets.checks.gx_checks import gx_demand_checks, gx_quarantine_rate, gx_store_features
from retail_assets.jobs import (
    ingest_and_harmonize_job,
    publish_forecasts_job,
    refresh_edge_fleet_job,
    republish_bundles_job,
    store_pipeline_job,
)
from retail_assets.resources import build_resources

def build_definitions(resources: dict | None = None) -> dg.Definitions:
    """The code location; tests pass their own resources (a data root, short folds) and run the same jobs."""
    return dg.Definitions(
        assets=[raw_landing, harmonized, store_registry, store_features, demand_model, demand_forecast, edge_bundle,
                forecasts_view, model_registry, edge_fleet_status],
        asset_checks=[gx_demand_checks, gx_quarantine_rate, gx_store_features],
        jobs=[ingest_and_harmonize_job, store_pipeline_job, publish_forecasts_job, retrain_stores,
              refresh_edge_fleet_job, republish_bundles_job],
        sensors=[
            landing_files_sensor, new_stores_sensor, drift_sensor, sales_spike_sensor, stale_bundle_sensor,
            dead_runs_sensor,
            dg.AutomationConditionSensorDefinition(
                "forecast_and_bundle_follow_models", target=dg.AssetSelection.all(),
                default_status=dg.DefaultSensorStatus.RUNNING,
            ),
        ],
        schedules=[weekly_retrain_schedule, seasonal_retrain_schedule],
        resources=resources if resources is not None else build_resources(),
    )


defs = build_definitions()
