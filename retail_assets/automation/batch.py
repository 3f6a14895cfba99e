"""Retrain many stores in one run: the weekly and seasonal retrains must not become hundreds of runs.

Dynamic partitions are not ranges, and a range run would give one metadata set to every store, so one op
walks a list of stores with the same per-store steps as the assets and records, per store partition, the
asset materializations and the blocking gate's result. A store that fails its gate or its training is
reported and skipped; the others go on.
"""

import dagster as dg

from retail_assets.assets.forecasting import bundle_step, forecast_step, model_step
from retail_assets.assets.stores import features_step
from retail_assets.checks.gx_checks import features_gate
from retail_assets.resources import EdgeSigning, ForecastSettings, RetailDataRoot

BATCH_SIZE = 50
DATA_VERSION_TAG = "dagster/data_version"


class RetrainConfig(dg.Config):
    stores: list[str]
    reason: str = "manual"


@dg.op(description="Features, gate, model, forecast and bundle for each store of the batch, in turn.")
def retrain_stores_op(context: dg.OpExecutionContext, config: RetrainConfig, data_root: RetailDataRoot,
                      settings: ForecastSettings, edge_signing: EdgeSigning) -> dict:
    layout = data_root.layout
    key = edge_signing.load(data_root)
    outcome: dict[str, str] = {}

    def record(asset: str, store: str, metadata: dict, version: str) -> None:
        context.log_event(dg.AssetMaterialization(asset_key=asset, partition=store, metadata=metadata,
                                                  tags={DATA_VERSION_TAG: version}))

    with settings.fit_pool() as pool:  # fit workers start once per batch (on its first fit), not per store
        for store in config.stores:
            try:
                metadata, version = features_step(layout, settings, store, context.log.info)
                record("store_features", store, metadata, version)
                gate = features_gate(layout, settings, store)
                context.log_event(dg.AssetCheckEvaluation(
                    asset_key=dg.AssetKey("store_features"), check_name="gx_store_features", passed=gate.passed,
                    metadata=gate.metadata, severity=gate.severity, partition=store))
                if not gate.passed:
                    outcome[store] = "blocked by gx_store_features"
                    context.log.warning(f"store {store}: features failed their gate; not trained in this run")
                    continue
                log = context.log.info
                for asset, step in (("demand_model", lambda: model_step(layout, settings, store, log, pool)),
                                    ("demand_forecast", lambda: forecast_step(layout, settings, store, context.run_id)),
                                    ("edge_bundle", lambda: bundle_step(layout, settings, key, store, log))):
                    metadata, version = step()
                    record(asset, store, metadata, version)
                outcome[store] = "ok"
            except Exception as exc:  # one store's failure is reported, never the batch's
                outcome[store] = f"failed: {type(exc).__name__}: {exc}"[:300]
                context.log.error(f"store {store}: {outcome[store]}")
    context.log.info(f"{config.reason}: " + ", ".join(f"{s} {o}" for s, o in outcome.items()))
    failed = {s: o for s, o in outcome.items() if o.startswith("failed")}
    if failed:
        raise dg.Failure(f"{len(failed)} of {len(outcome)} stores failed", metadata={"outcome": outcome})
    return outcome


@dg.job(description="Retrain a batch of stores in one run (weekly and seasonal schedules).",
        tags={"retail/kind": "batch_retrain"})
def retrain_stores():
    retrain_stores_op()


def batch_run_requests(stores: list[str], reason: str, key_prefix: str, batch_size: int = BATCH_SIZE) -> list:
    return [
        dg.RunRequest(
            run_key=f"{key_prefix}-{i // batch_size}",
            job_name="retrain_stores",
            run_config={"ops": {"retrain_stores_op": {"config": {"stores": stores[i : i + batch_size],
                                                                  "reason": reason}}}},
            tags={"retail/trigger": reason, "retail/stores": str(len(stores[i : i + batch_size]))},
        )
        for i in range(0, len(stores), batch_size)
    ]
