"""The code location: `defs` is what `dagster dev -w workspace.yaml` loads."""

from __future__ import annotations

import dagster as dg

from retail_assets.assets.harmonize import harmonized
from retail_assets.assets.landing import raw_landing
from retail_assets.resources import build_resources

ingest_and_harmonize_job = dg.define_asset_job(
    "ingest_and_harmonize",
    selection=dg.AssetSelection.assets(raw_landing, harmonized),
    description="Load new landing files, then rebuild the harmonized warehouse with dbt.",
)

defs = dg.Definitions(
    assets=[raw_landing, harmonized],
    jobs=[ingest_and_harmonize_job],
    resources=build_resources(),
)
