"""Inventory room: per-store inventory cover from shelf stock and the served forecast."""

import dagster as dg

from retail_assets.defs.inventory.assets import store_inventory_cover


def definitions() -> dg.Definitions:
    return dg.Definitions(assets=[store_inventory_cover])
