"""Ingest room: the raw landing loader and the sensor that watches the landing zone."""

import dagster as dg

from retail_assets.defs.automation import sensor_status
from retail_assets.defs.ingest.assets import raw_landing
from retail_assets.defs.ingest.sensors import landing_files_sensor


def definitions() -> dg.Definitions:
    return dg.Definitions(assets=[raw_landing], sensors=[landing_files_sensor(sensor_status())])
