"""Forecasting room: per-store models and forecasts, the per-store and batched retrain jobs, the weekly and
seasonal schedules, and the drift and sales-spike sensors."""

import dagster as dg

from retail_assets.defs.automation import started
from retail_assets.defs.forecasting.assets import demand_forecast, demand_model, forecasts_view
from retail_assets.defs.forecasting.batch import retrain_stores
from retail_assets.defs.forecasting.jobs import publish_forecasts_job, store_pipeline_job
from retail_assets.defs.forecasting.schedules import retrain_schedules
from retail_assets.defs.forecasting.sensors import drift_sensor, sales_spike_sensor


def definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[demand_model, demand_forecast, forecasts_view],
        jobs=[store_pipeline_job, publish_forecasts_job, retrain_stores],
        schedules=retrain_schedules(),
        sensors=[started(drift_sensor), started(sales_spike_sensor)],
    )
