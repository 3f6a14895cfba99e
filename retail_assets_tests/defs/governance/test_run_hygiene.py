"""Runs left STARTED by a killed process: the dead_runs_sensor marks them failed; live runs are left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg

from retail_assets.defs.governance.run_hygiene import dead_runs_sensor, reap_dead_runs
from retail_assets.resources import RetailDataRoot

SLOW_JOB = textwrap.dedent("""
    import sys, time
    import dagster as dg
    from retail_assets.defs.governance.run_hygiene import local_run_tags

    @dg.op
    def wait_long(context):
        print("started", flush=True)
        time.sleep(600)

    @dg.job
    def slow():
        wait_long()

    with dg.DagsterInstance.get() as instance:
        slow.execute_in_process(instance=instance, tags=local_run_tags())
""")


def _start_run(home, script) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "DAGSTER_HOME": str(home)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:  # the op has begun: the run is STARTED in the instance
        seen.append(line)
        if line.strip() == "started":
            return proc
    raise AssertionError("the job never started:\n" + "".join(seen))


def test_a_killed_run_is_marked_failed_and_a_live_one_is_left_alone(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    script = tmp_path / "slow_job.py"
    script.write_text(SLOW_JOB)
    killed, alive = _start_run(home, script), _start_run(home, script)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.get() as instance:
            started = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
            assert len(started) == 2  # the killed run never wrote its end
            (tmp_path / "data").mkdir()
            with dg.build_sensor_context(instance=instance,
                                         resources={"data_root": RetailDataRoot(data_dir=str(tmp_path / "data"))}) as ctx:
                result = dead_runs_sensor(ctx)
            assert "marked 1 dead runs failed" in result.skip_message
            failed = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
            assert len(failed) == 1
            assert "is gone" in instance.get_records_for_run(
                failed[0].run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records[0].event_log_entry.dagster_event.message
            still = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
            assert len(still) == 1  # the live run is not touched
            assert reap_dead_runs(instance) == []  # and a second look finds nothing new
    finally:
        alive.kill()
        alive.wait()
        time.sleep(0.1)
