"""Edge room: signed ONNX bundles per store, what the fleet really serves, and republishing to stale devices."""

import dagster as dg

from retail_assets.defs.edge.bundles import edge_bundle
from retail_assets.defs.edge.fleet import fleet_assets
from retail_assets.defs.edge.jobs import refresh_edge_fleet_job, republish_bundles_job
from retail_assets.defs.automation import started
from retail_assets.defs.edge.sensors import stale_bundle_sensor


def definitions() -> dg.Definitions:
    return dg.Definitions(assets=[edge_bundle, *fleet_assets()], jobs=[refresh_edge_fleet_job(), republish_bundles_job],
                          sensors=[started(stale_bundle_sensor)])
