"""Stores room: stores as dynamic partitions, their features and the blocking gate, the new-store sensor."""

import dagster as dg

from retail_assets.defs.stores.assets import store_assets
from retail_assets.defs.stores.checks import gx_store_features
from retail_assets.defs.automation import started
from retail_assets.defs.stores.sensors import new_stores_sensor


def definitions() -> dg.Definitions:
    return dg.Definitions(assets=store_assets(), asset_checks=[gx_store_features], sensors=[started(new_stores_sensor)])
