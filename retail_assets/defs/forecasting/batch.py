"""Retrain many stores in one run: the weekly and seasonal retrains must not become hundreds of runs.

Dynamic partitions are not ranges, and a range run would give one metadata set to every store, so one op
walks a list of stores with the same per-store steps as the assets and records, per store partition, the
asset materializations and the blocking gate's result. A store that fails its gate or its training is
reported and skipped; the others go on.
"""

import dagster as dg

from retail_assets.defs.edge.bundles import bundle_metadata
from retail_assets.defs.forecasting.assets import forecast_metadata, model_metadata, promotion_check_result
from retail_assets.defs.inventory.assets import cover_check_result, cover_metadata
from retail_assets.defs.results import gate_check_result
from retail_assets.defs.stores.assets import STORE_FEATURES, features_metadata
from retail_assets.core import pipeline
from retail_assets.resources import EdgeSigning, ForecastSettings, RetailDataRoot

BATCH_SIZE = 50
DATA_VERSION_TAG = "dagster/data_version"
DETECTED_TAG = "retail/detected_at"  # when the trigger of a retrain (drift, spike, a peak ahead) was first seen


class RetrainConfig(dg.Config):
    stores: list[str]
    reason: str = "manual"


@dg.op(description="Features, gate, model, forecast, inventory cover and bundle for each store of the batch, "
                   "in turn.")
def retrain_stores_op(context: dg.OpExecutionContext, config: RetrainConfig, data_root: RetailDataRoot,
                      settings: ForecastSettings, edge_signing: EdgeSigning) -> dict:
    metadata_of = {"store_features": features_metadata, "demand_model": lambda r: model_metadata(r, settings),
                   "demand_forecast": lambda r: forecast_metadata(r, settings),
                   "store_inventory_cover": lambda r: cover_metadata(r, settings),
                   "edge_bundle": lambda r: bundle_metadata(r, settings)}

    def record(step: str, store: str, result) -> None:
        """Each step's result lands on its own asset partition, as if the asset had run."""
        if step == "gx_store_features":
            check = gate_check_result(result)
            context.log_event(dg.AssetCheckEvaluation(
                asset_key=STORE_FEATURES, check_name="gx_store_features", passed=check.passed,
                metadata=check.metadata, severity=check.severity, partition=store))
            return
        context.log_event(dg.AssetMaterialization(asset_key=step, partition=store, metadata=metadata_of[step](result),
                                                  tags={DATA_VERSION_TAG: result.version}))
        if step in ("store_inventory_cover", "demand_model"):  # and its warning check, as the asset reports it
            check = cover_check_result(result) if step == "store_inventory_cover" else promotion_check_result(result)
            context.log_event(dg.AssetCheckEvaluation(
                asset_key=check.asset_key, check_name=check.check_name, passed=check.passed,
                metadata=check.metadata, severity=check.severity, partition=store))

    outcomes = pipeline.run_stores(data_root.layout, settings, edge_signing.load(data_root), config.stores,
                                   run_id=context.run_id, say=context.log.info, on_step=record,
                                   trigger={"kind": config.reason, "detected_at": context.run.tags.get(DETECTED_TAG)})
    outcome = {o.store_id: o.status if o.status == "ok" else f"{o.status}: {o.reason}" for o in outcomes}
    context.log.info(f"{config.reason}: " + ", ".join(f"{s} {o}" for s, o in outcome.items()))
    failed = {s: o for s, o in outcome.items() if o.startswith("failed")}
    if failed:
        raise dg.Failure(f"{len(failed)} of {len(outcome)} stores failed", metadata={"outcome": outcome})
    return outcome


@dg.job(description="Retrain a batch of stores in one run (weekly and seasonal schedules).",
        tags={"retail/kind": "batch_retrain"})
def retrain_stores():
    retrain_stores_op()


def batch_run_requests(stores: list[str], reason: str, key_prefix: str, batch_size: int = BATCH_SIZE,
                       detected_at: str | None = None) -> list:
    """Runs of `retrain_stores`, `batch_size` stores each; `detected_at`: when the trigger fired (its lag)."""
    return [
        dg.RunRequest(
            run_key=f"{key_prefix}-{i // batch_size}",
            job_name="retrain_stores",
            run_config={"ops": {"retrain_stores_op": {"config": {"stores": stores[i : i + batch_size],
                                                                  "reason": reason}}}},
            tags={"retail/trigger": reason, "retail/stores": str(len(stores[i : i + batch_size])),
                  **({DETECTED_TAG: detected_at} if detected_at else {})},
        )
        for i in range(0, len(stores), batch_size)
    ]
