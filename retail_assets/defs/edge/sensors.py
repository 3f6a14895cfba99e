"""A store whose device still serves a non-live bundle past the grace period gets its live bundle again."""

import json

import dagster as dg

from retail_assets.core.monitor import fleet
from retail_assets.defs.edge.fleet import compute_fleet_status
from retail_assets.resources import FleetSettings, RetailDataRoot


@dg.sensor(minimum_interval_seconds=300, job_name="republish_bundles",
           description="A store whose device still serves a non-live bundle past the grace period gets its live "
                       "bundle republished, once per stale episode (run key: store, live bundle, episode start).")
def stale_bundle_sensor(context: dg.SensorEvaluationContext, data_root: RetailDataRoot, fleet_settings: FleetSettings):
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
