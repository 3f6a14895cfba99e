"""Runs left STARTED by a process that no longer exists are marked failed, and their pool slots freed.

A run killed with SIGKILL (an OOM kill, a reboot, `kill -9`) never writes its own end, so the instance shows it
STARTED forever and, worse, keeps its `duckdb` pool slot, so the next writer waits for nothing. Dagster's run
monitoring detects dead run workers only for launchers that can check their workers (Kubernetes, ECS, Docker),
not for the local DefaultRunLauncher nor for `retail run`'s in-process runs. This module does it for runs on
this host: the pid that wrote the run's RUN_START event is checked against /proc (a recycled pid does not
count: it must have started before the event).
"""

from __future__ import annotations

import socket

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.launcher import DefaultRunLauncher

from retail_assets.core.atomic import sweep_stale_temps
from retail_assets.core.lifetime import process_alive, sweep_scratch
from retail_assets.resources import RetailDataRoot

HOST_TAG = "retail/host"


def local_run_tags() -> dict[str, str]:
    """Tags for runs executed in this process (`retail run`), so a later reaper knows they were local."""
    return {HOST_TAG: socket.gethostname()}


def _run_worker(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_START, limit=1).records
    if not records:
        return None
    entry = records[0].event_log_entry
    pid = entry.dagster_event.pid if entry.dagster_event else None
    return (pid, entry.timestamp) if pid else None


def reap_dead_runs(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    """Mark failed every STARTED run of this host whose run worker is gone; return (run_id, message)."""
    host = socket.gethostname()
    local_launcher = isinstance(instance.run_launcher, DefaultRunLauncher)
    reaped = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        tagged = run.tags.get(HOST_TAG)
        if (tagged is not None and tagged != host) or (tagged is None and not local_launcher):
            continue  # another machine's run, or a launcher with its own health checks
        worker = _run_worker(instance, run.run_id)
        if worker is None or process_alive(worker[0], since=worker[1]):
            continue
        message = (f"run worker pid {worker[0]} on {host} is gone (killed or crashed) and never ended this run: "
                   "marked failed by retail's run hygiene; rerun it (models and bundles are content-addressed, "
                   "so a rerun converges)")
        instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append((run.run_id, message))
    return reaped


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Marks runs left STARTED by a dead run worker on this host as failed and frees their "
                       "pool slots (Dagster's run monitoring cannot check local run workers).")
def dead_runs_sensor(context: dg.SensorEvaluationContext, data_root: RetailDataRoot):
    reaped = reap_dead_runs(context.instance)
    if not reaped:
        return dg.SkipReason("no run left STARTED by a dead process")
    for run_id, message in reaped:
        context.log.warning(f"{run_id}: {message}")
    temps, scratch = sweep_stale_temps(data_root.layout.root), sweep_scratch()  # what the dead runs left
    return dg.SkipReason(f"marked {len(reaped)} dead runs failed ({', '.join(r for r, _ in reaped)}); removed "
                         f"{len(temps)} temp files and {scratch} fit scratch folders they left")
