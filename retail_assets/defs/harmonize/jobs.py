"""The ingest job: new landing files into the warehouse, dbt over it, new stores registered."""

import functools

import dagster as dg

from retail_assets.defs.harmonize.assets import dbt_models, warehouse_marts
from retail_assets.defs.ingest.assets import raw_landing
from retail_assets.defs.stores.assets import STORE_REGISTRY


@functools.cache
def ingest_and_harmonize_job():
    return dg.define_asset_job(
        "ingest_and_harmonize",
        selection=dg.AssetSelection.assets(raw_landing, dbt_models(), warehouse_marts(), STORE_REGISTRY),
        description="Load new landing files, rebuild the harmonized warehouse with dbt, publish its marts (object-store "
                    "root), register new stores.",
    )
