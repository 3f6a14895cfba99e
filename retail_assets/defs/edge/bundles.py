"""A store's edge bundle: its served models compiled to ONNX, verified, signed and published for devices."""

import dagster as dg

from retail_assets.core import pipeline
from retail_assets.defs.forecasting.assets import demand_model
from retail_assets.defs.partitions import stores_partitions
from retail_assets.defs.results import or_failure
from retail_assets.defs.stores.assets import STORE_FEATURES
from retail_assets.resources import EdgeSigning, ForecastSettings, RetailDataRoot


@dg.asset(
    partitions_def=stores_partitions,
    deps=[demand_model, STORE_FEATURES],
    group_name="edge",
    automation_condition=dg.AutomationCondition.eager(),  # follows a retrain by itself
    kinds={"onnx"},
    description="The store's models compiled to one ONNX graph with its horizon's calendar, verified against "
                "Prophet to 1e-6, signed (Ed25519) and zipped for offline devices.",
)
def edge_bundle(
    context: dg.AssetExecutionContext, data_root: RetailDataRoot, settings: ForecastSettings,
    edge_signing: EdgeSigning,
) -> dg.MaterializeResult:
    r = or_failure(lambda: pipeline.publish_bundle(data_root.layout, settings, edge_signing.load(data_root),
                                                    context.partition_key, context.log.info))
    return dg.MaterializeResult(metadata=bundle_metadata(r, settings), data_version=dg.DataVersion(r.version))


def bundle_metadata(r: pipeline.BundleResult, settings: ForecastSettings) -> dict:
    bundle = r.bundle
    v, lat = bundle.manifest["verification"], bundle.manifest["latency_ms"]
    return {
        "bundle_version": bundle.bundle_version,
        "model_version": r.mv.version,
        "path": dg.MetadataValue.path(str(bundle.path)),
        "size_bytes": bundle.size_bytes,
        "items": len(bundle.manifest["items_order"]),
        "horizon": f"{bundle.manifest['horizon']['first']} .. {bundle.manifest['horizon']['last']}",
        "verification_max_rel_error": v["max_rel_error"],
        "verification_max_abs_error": v["max_abs_error"],
        "latency_p50_ms": round(lat["p50"], 4),
        "latency_p99_ms": round(lat["p99"], 4),
        "latency_runs": lat["runs"],
    }
