"""Governance room: the model registry tables, the reaper of runs whose process died, and the sensor that lets
forecasts and bundles follow a retrain by themselves."""

import dagster as dg

from retail_assets.defs.governance.assets import model_registry
from retail_assets.defs.governance.audit import audit_report
from retail_assets.defs.governance.run_hygiene import dead_runs_sensor


def definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[model_registry, audit_report],
        sensors=[
            dead_runs_sensor,
            dg.AutomationConditionSensorDefinition(
                "forecast_and_bundle_follow_models", target=dg.AssetSelection.all(),
                default_status=dg.DefaultSensorStatus.RUNNING,
            ),
        ],
    )
