"""Harmonize room: dbt models and tests as assets and checks, the GX suites on the marts, the ingest job."""

import dagster as dg

from retail_assets.defs.harmonize.assets import dbt_models, warehouse_marts
from retail_assets.defs.harmonize.checks import warehouse_checks
from retail_assets.defs.harmonize.jobs import ingest_and_harmonize_job


def definitions() -> dg.Definitions:
    return dg.Definitions(assets=[dbt_models(), warehouse_marts()], asset_checks=warehouse_checks(), jobs=[ingest_and_harmonize_job()])
