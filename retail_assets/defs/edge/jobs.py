"""Edge jobs: judge the fleet from new telemetry; republish a store's live bundle."""

import functools

import dagster as dg

from retail_assets.defs.edge.bundles import edge_bundle
from retail_assets.defs.edge.fleet import EDGE_FLEET_STATUS
from retail_assets.defs.harmonize.assets import dbt_selection
from retail_assets.defs.ingest.assets import raw_landing
from retail_assets.defs.partitions import stores_partitions

TELEMETRY_MODELS = "stg_edge_telemetry int_edge_telemetry fct_edge_forecasts quarantine ingest_reconciliation"


@functools.cache
def refresh_edge_fleet_job():
    return dg.define_asset_job(
        "refresh_edge_fleet",
        selection=dg.AssetSelection.assets(raw_landing, EDGE_FLEET_STATUS) | dbt_selection(TELEMETRY_MODELS),
        description="Load new telemetry files, rebuild the telemetry marts (and quarantine, reconciliation), and "
                    "judge the fleet: which bundle each store really serves.",
    )


republish_bundles_job = dg.define_asset_job(
    "republish_bundles",
    selection=dg.AssetSelection.assets(edge_bundle),
    partitions_def=stores_partitions,
    description="Rebuild, verify, sign and publish a store's live bundle again (a stale device gets it pushed).",
)
