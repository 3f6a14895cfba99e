"""The code location: `defs` is what `dagster dev -w workspace.yaml` loads."""

import dagster as dg

from retail_assets.assets.harmonize import harmonized
from retail_assets.assets.landing import raw_landing
from retail_assets.assets.stores import store_features, store_registry
from retail_assets.checks.gx_checks import gx_demand_checks, gx_quarantine_rate, gx_store_features
from retail_assets.partitions import stores_partitions
from retail_assets.resources import build_resources

ingest_and_harmonize_job = dg.define_asset_job(
    "ingest_and_harmonize",
    selection=dg.AssetSelection.assets(raw_landing, harmonized, store_registry),
    description="Load new landing files, rebuild the harmonized warehouse with dbt, register new stores.",
)

store_pipeline_job = dg.define_asset_job(
    "store_pipeline",
    selection=dg.AssetSelection.assets(store_features),
    partitions_def=stores_partitions,
    description="Per store: features and their blocking Great Expectations gate.",
)

defs = dg.Definitions(
    assets=[raw_landing, harmonized, store_registry, store_features],
    asset_checks=[gx_demand_checks, gx_quarantine_rate, gx_store_features],
    jobs=[ingest_and_harmonize_job, store_pipeline_job],
    resources=build_resources(),
)
