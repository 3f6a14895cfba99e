"""Sensors that retrain only what moved: new landing files, new stores, forecast drift, sales spikes."""

import json

import dagster as dg

from retail_assets.core.ingest import cursor
from retail_assets.core.monitor import signals as monitoring
from retail_assets.core.warehouse import connect_readonly
from retail_assets.jobs import ingest_and_harmonize_job, refresh_edge_fleet_job
from retail_assets.partitions import batches, new_store_partitions, stores_partitions
from retail_assets.resources import DriftSettings, FleetSettings, RetailDataRoot  # noqa: F401 - re-exported


@dg.sensor(jobs=[ingest_and_harmonize_job, refresh_edge_fleet_job], minimum_interval_seconds=60,
           description="New or changed landing files request an ingest; the cursor remembers what was seen. "
                       "Files that are only edge telemetry request the light refresh_edge_fleet instead.")
def landing_files_sensor(context: dg.SensorEvaluationContext, data_root: RetailDataRoot):
    landing = data_root.layout.landing
    if not landing.is_dir():
        return dg.SkipReason(f"no landing zone at {landing}")
    listing = cursor.scan_landing(landing)
    fresh, next_cursor = cursor.new_files(listing, context.cursor)
    if not fresh:
        return dg.SkipReason("no new landing files since the last tick")
    context.update_cursor(next_cursor)
    telemetry_only = all(f.startswith("telemetry/") for f in fresh)
    # names and times: a file that grows (a device appending telemetry) is new again, with a new key
    mtime = dict(listing)
    return dg.RunRequest(run_key=f"landing-{cursor.files_key([f'{f}@{mtime[f]}' for f in fresh])}",
                         job_name=(refresh_edge_fleet_job if telemetry_only else ingest_and_harmonize_job).name,
                         tags={"retail/trigger": "new_files", "retail/new_files": str(len(fresh))})


@dg.sensor(minimum_interval_seconds=120, job_name="store_pipeline",
           description="A store that appears in dim_store becomes a partition and gets its first training.")
def new_stores_sensor(context: dg.SensorEvaluationContext, data_root: RetailDataRoot):
    try:
        with connect_readonly(data_root.layout.warehouse, wait_seconds=0) as con:  # busy: next tick
            ids = [r[0] for r in con.execute("select store_id from dim_store order by 1").fetchall()]
    except Exception as exc:  # the warehouse is being written (one writer): try next tick
        return dg.SkipReason(f"warehouse not readable now: {type(exc).__name__}")
    new = new_store_partitions(context.instance, ids)
    if not new:
        return dg.SkipReason(f"all {len(ids)} stores of dim_store are partitions")
    return dg.SensorResult(
        dynamic_partitions_requests=[stores_partitions.build_add_request(b) for b in batches(new)],
        run_requests=[dg.RunRequest(partition_key=s, run_key=f"first-train-{s}",
                                    tags={"retail/trigger": "new_store"}) for s in new],
    )


@dg.sensor(minimum_interval_seconds=3600, job_name="store_pipeline",
           description="Per store: recent actuals vs the forecast served for those days (WAPE, bias, PSI); "
                       "a store beyond the thresholds is retrained alone. Metrics land on demand_model.")
def drift_sensor(context: dg.SensorEvaluationContext, data_root: RetailDataRoot, drift_settings: DriftSettings):
    layout = data_root.layout
    th = drift_settings.drift()
    requests, events, summary = [], [], []
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
            requests.append(dg.RunRequest(
                partition_key=store,
                run_key=f"drift-{store}-{d.model_version}-{d.last_actual_date}",
                tags={"retail/trigger": "drift", "retail/drift_reasons": "; ".join(d.reasons)[:200],
                      "retail/model_version": d.model_version}))
    if not events:
        return dg.SkipReason("no store has a served forecast to compare with yet")
    context.update_cursor(json.dumps({"last": summary}))
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
                      tags={"retail/trigger": "sales_spike",
                            "retail/spikes": json.dumps([x for x in spikes if x["store_id"] == s])[:200]})
        for s in stores])


@dg.sensor(minimum_interval_seconds=300, job_name="republish_bundles",
           description="A store whose device still serves a non-live bundle past the grace period gets its live "
                       "bundle republished, once per stale episode (run key: store, live bundle, episode start).")
def stale_bundle_sensor(context: dg.SensorEvaluationContext, data_root: RetailDataRoot, fleet_settings: FleetSettings):
    from retail_assets.assets.fleet import compute_fleet_status
    from retail_assets.core.monitor import fleet

    try:
        status, as_of = compute_fleet_status(data_root, fleet_settings, wait_seconds=0)  # busy: next tick
    except Exception as exc:  # noqa: BLE001 - the warehouse may be busy or not built yet: judge next tick
        return dg.SkipReason(f"fleet status not readable now: {type(exc).__name__}: {exc}"[:300])
    episodes = fleet.stale_episodes(status)
    done = json.loads(context.cursor) if context.cursor else []
    fresh = [e for e in episodes if e["key"] not in done]
    if not fresh:
        return dg.SkipReason(f"as of {as_of:%Y-%m-%d %H:%M} UTC: {len(episodes)} stale stores past grace, "
                             "none in a new episode")
    context.update_cursor(json.dumps((done + [e["key"] for e in fresh])[-1000:]))
    return [dg.RunRequest(
        partition_key=e["store_id"], run_key=f"republish-{e['key']}",
        tags={"retail/trigger": "stale_bundle", "retail/serving_bundle": str(e["serving_bundle"]),
              "retail/live_bundle": str(e["live_bundle"]), "retail/stale_hours": str(e["stale_hours"])})
        for e in fresh]
