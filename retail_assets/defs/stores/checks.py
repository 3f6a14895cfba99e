"""The blocking Great Expectations gate on a store's features: a store that fails it is not trained."""

import dagster as dg

from retail_assets.core import pipeline
from retail_assets.defs.partitions import stores_partitions
from retail_assets.defs.results import gate_check_result
from retail_assets.defs.stores.assets import STORE_FEATURES
from retail_assets.resources import ForecastSettings, RetailDataRoot


@dg.asset_check(
    asset=STORE_FEATURES,
    name="gx_store_features",
    partitions_def=stores_partitions,
    blocking=True,
    description="Blocking: enough history, no gaps, no never-sold item kept, known-future flags for the horizon.",
)
def gx_store_features(
    context: dg.AssetCheckExecutionContext, data_root: RetailDataRoot, settings: ForecastSettings
) -> dg.AssetCheckResult:
    return gate_check_result(pipeline.check_gate(data_root.layout, settings, context.partition_key))
