"""New or changed landing files request an ingest (or, for telemetry alone, the light fleet refresh)."""

import functools

import dagster as dg

from retail_assets.core.ingest import cursor
from retail_assets.defs.edge.jobs import refresh_edge_fleet_job
from retail_assets.defs.harmonize.jobs import ingest_and_harmonize_job
from retail_assets.resources import RetailDataRoot


@functools.cache
def landing_files_sensor(default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED
                         ) -> dg.SensorDefinition:
    """Built with the jobs it starts, which select dbt assets (known once the definitions load)."""
    ingest_job, fleet_job = ingest_and_harmonize_job(), refresh_edge_fleet_job()

    @dg.sensor(jobs=[ingest_job, fleet_job], minimum_interval_seconds=60, default_status=default_status,
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
                             job_name=(fleet_job if telemetry_only else ingest_job).name,
                             tags={"retail/trigger": "new_files", "retail/new_files": str(len(fresh))})

    return landing_files_sensor
