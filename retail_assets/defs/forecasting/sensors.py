"""Sensors that retrain only the stores that moved: forecast drift, sales spikes."""

import json

import dagster as dg

from retail_assets.core.monitor import signals as monitoring
from retail_assets.core.registry.records import utc_now
from retail_assets.defs.forecasting.batch import DETECTED_TAG
from retail_assets.defs.partitions import stores_partitions
from retail_assets.resources import DriftSettings, RetailDataRoot


def _first_detected(cursor: str | None) -> dict[str, list[str]]:
    """store -> [live version, when its drift was first seen], kept in the drift sensor's cursor."""
    try:
        return dict(json.loads(cursor).get("first_detected", {})) if cursor else {}
    except (ValueError, AttributeError):
        return {}


@dg.sensor(minimum_interval_seconds=3600, job_name="store_pipeline",
           description="Per store: recent actuals vs the forecast served for those days (WAPE, bias, PSI); "
                       "a store beyond the thresholds is retrained alone. Metrics land on demand_model.")
def drift_sensor(context: dg.SensorEvaluationContext, data_root: RetailDataRoot, drift_settings: DriftSettings):
    layout = data_root.layout
    th = drift_settings.drift()
    requests, events, summary = [], [], []
    first_seen = _first_detected(context.cursor)
    for store in context.instance.get_dynamic_partitions(stores_partitions.name):
        try:
            d = monitoring.store_drift(layout, store, th, wait_seconds=0)
        except Exception as exc:  # noqa: BLE001 - the warehouse may be busy; judge next tick
            context.log.warning(f"store {store}: drift not measured ({type(exc).__name__}: {exc})")
            continue
        if d is None:
            continue
        summary.append(f"{store}:{'DRIFT' if d.drifted else 'ok'}")
        events.append(dg.AssetObservation(
            asset_key="demand_model", partition=store,
            metadata={f"drift_{k}": v for k, v in d.metadata().items() if v is not None}))
        if d.drifted:
            # the first tick that saw this store drift from its live version: the start of the drift-to-live lag
            seen = first_seen.get(store)
            if not seen or seen[0] != d.model_version:
                first_seen[store] = seen = [d.model_version, utc_now()]
            requests.append(dg.RunRequest(
                partition_key=store,
                run_key=f"drift-{store}-{d.model_version}-{d.last_actual_date}",
                tags={"retail/trigger": "drift", "retail/drift_reasons": "; ".join(d.reasons)[:200],
                      "retail/model_version": d.model_version, DETECTED_TAG: seen[1]}))
        else:
            first_seen.pop(store, None)
    if not events:
        return dg.SkipReason("no store has a served forecast to compare with yet")
    context.update_cursor(json.dumps({"last": summary, "first_detected": first_seen}))
    return dg.SensorResult(run_requests=requests, asset_events=events)


@dg.sensor(minimum_interval_seconds=3600, job_name="store_pipeline",
           description="A robust z-score jump of a store's daily units in one category retrains that store.")
def sales_spike_sensor(context: dg.SensorEvaluationContext, data_root: RetailDataRoot,
                       drift_settings: DriftSettings):
    try:
        spikes, last = monitoring.sales_spikes(data_root.layout.warehouse, context.cursor, drift_settings.spikes(),
                                               wait_seconds=0)
    except Exception as exc:  # noqa: BLE001
        return dg.SkipReason(f"warehouse not readable now: {type(exc).__name__}")
    if last:
        context.update_cursor(last)
    if not spikes:
        return dg.SkipReason(f"no sales spike up to {last}")
    stores = sorted({s["store_id"] for s in spikes})
    return dg.SensorResult(run_requests=[
        dg.RunRequest(partition_key=s, run_key=f"spike-{s}-{last}",
                      tags={"retail/trigger": "sales_spike", DETECTED_TAG: utc_now(),
                            "retail/spikes": json.dumps([x for x in spikes if x["store_id"] == s])[:200]})
        for s in stores])
