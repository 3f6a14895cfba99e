"""Sensors and schedules through build_sensor_context / build_schedule_context, on real data and instances."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from retail_assets.core.registry import records as registry
from retail_assets.core.registry.versions import live_version
from retail_assets.definitions import build_definitions
from retail_assets.defs.forecasting.batch import retrain_stores
from retail_assets.defs.forecasting.schedules import (
    seasonal_retrain_schedule,
    weekly_retrain_schedule,
)
from retail_assets.defs.forecasting.sensors import drift_sensor, sales_spike_sensor
from retail_assets.defs.ingest.sensors import landing_files_sensor
from retail_assets.defs.stores.sensors import new_stores_sensor
from retail_assets.resources import DriftSettings, RetailDataRoot, build_resources
from retail_assets.settings import DataLayout
from retail_assets_tests.helpers import (
    FAST_SETTINGS,
    materialize_ingest,
    retail_cli,
    run_store_pipeline,
)


def _root(path: Path) -> dict:
    return {"data_root": RetailDataRoot(data_dir=str(path))}


def test_landing_sensor_cursor_skip_and_new_files(small_zone, tmp_path):
    src, _truth = small_zone
    shutil.copytree(src / "landing", tmp_path / "landing")
    ctx = dg.build_sensor_context(cursor=None, resources=_root(tmp_path))
    first = landing_files_sensor()(ctx)
    assert isinstance(first, dg.RunRequest) and first.run_key.startswith("landing-")
    assert int(first.tags["retail/new_files"]) > 300  # every file of the zone
    cursor = ctx.cursor
    # a restart from the stored cursor: nothing new, nothing repeated
    again = landing_files_sensor()(dg.build_sensor_context(cursor=cursor, resources=_root(tmp_path)))
    assert isinstance(again, dg.SkipReason) and "no new landing files" in again.skip_message
    # a restart that lost its cursor asks again with the same run key: Dagster runs it once
    replay = landing_files_sensor()(dg.build_sensor_context(cursor=None, resources=_root(tmp_path)))
    assert replay.run_key == first.run_key
    new = tmp_path / "landing" / "pos" / "region=US" / "pos_US_20991231.csv"
    new.write_text((next((tmp_path / "landing" / "pos" / "region=US").glob("*.csv"))).read_text())
    os.utime(new, ns=(new.stat().st_mtime_ns + 10**9, new.stat().st_mtime_ns + 10**9))
    ctx2 = dg.build_sensor_context(cursor=cursor, resources=_root(tmp_path))
    second = landing_files_sensor()(ctx2)
    assert second.tags["retail/new_files"] == "1" and second.run_key != first.run_key
    assert (first.job_name, second.job_name) == ("ingest_and_harmonize", "ingest_and_harmonize")
    # telemetry alone does not rebuild the sales marts: the light fleet refresh loads and judges it
    tele = tmp_path / "landing" / "telemetry" / "store=0001" / "pos-0001-edge01-20991231.jsonl"
    tele.parent.mkdir(parents=True)
    tele.write_text('{"record_id": "r1"}\n')
    os.utime(tele, ns=(new.stat().st_mtime_ns + 10**9, new.stat().st_mtime_ns + 10**9))
    ctx3 = dg.build_sensor_context(cursor=ctx2.cursor, resources=_root(tmp_path))
    third = landing_files_sensor()(ctx3)
    assert third.job_name == "refresh_edge_fleet" and third.tags["retail/new_files"] == "1"
    # the device appends to the same file: new again, with a new run key (else Dagster would skip the run)
    before = tele.stat().st_mtime_ns
    with tele.open("a") as fh:
        fh.write('{"record_id": "r2"}\n')
    os.utime(tele, ns=(before + 10**9, before + 10**9))  # the test's clock runs ahead of the real one
    fourth = landing_files_sensor()(dg.build_sensor_context(cursor=ctx3.cursor, resources=_root(tmp_path)))
    assert fourth.job_name == "refresh_edge_fleet" and fourth.run_key != third.run_key


def test_new_stores_become_partitions_and_get_a_first_training(ingested):
    root, _truth, _ = ingested
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources=_root(root)) as ctx:
            result = new_stores_sensor(ctx)
        added = [k for r in result.dynamic_partitions_requests for k in r.partition_keys]
        assert added == ["0001", "0002", "0003", "0004"]
        assert [r.partition_key for r in result.run_requests] == added
        assert {r.run_key for r in result.run_requests} == {f"first-train-{s}" for s in added}
        instance.add_dynamic_partitions("stores", added)
        with dg.build_sensor_context(instance=instance, resources=_root(root)) as ctx:
            assert isinstance(new_stores_sensor(ctx), dg.SkipReason)


def test_drift_sensor_records_metrics_and_stays_quiet_without_new_actuals(stores_run):
    root, instance, _ = stores_run
    result = drift_sensor(dg.build_sensor_context(
        instance=instance, resources={**_root(root), "drift_settings": DriftSettings()}))
    assert isinstance(result, dg.SensorResult)
    assert result.run_requests == []
    partitions = {e.partition for e in result.asset_events}
    assert partitions and partitions <= {"0001", "0002", "0003", "0004"}
    assert all(e.metadata["drift_overlap_days"].value == 0 for e in result.asset_events)


def test_spike_sensor_quiet_on_normal_days_and_cursor_moves(ingested):
    root, _truth, _ = ingested
    ctx = dg.build_sensor_context(cursor=None, resources={**_root(root), "drift_settings": DriftSettings()})
    result = sales_spike_sensor(ctx)
    assert isinstance(result, dg.SkipReason) and "no sales spike" in result.skip_message
    assert ctx.cursor == "2023-12-14"


@pytest.fixture(scope="module")
def drifted(small_zone, tmp_path_factory):
    """Train on the history minus its last 14 days, then receive those days with store 0002 selling 4x."""
    src, _truth = small_zone
    root = tmp_path_factory.mktemp("drift") / "data"
    shutil.copytree(src / "landing", root / "landing")
    held = root / "held_back"
    cut = dt.date(2023, 12, 1)
    for path in list((root / "landing").rglob("*_2023*.*")) + list((root / "landing").rglob("*2023*.*")):
        day = path.stem.split("_")[2] if path.stem.startswith("pos_") else path.stem.split("_")[1]
        if path.exists() and dt.date(int(day[:4]), int(day[4:6]), int(day[6:8])) >= cut:
            target = held / path.relative_to(root / "landing")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
    assert materialize_ingest(root).success
    instance = dg.DagsterInstance.ephemeral()
    run_store_pipeline(root, instance)
    for path in held.rglob("*"):
        if path.is_file():
            text = path.read_text()
            if path.suffix == ".csv" and "/pos/region=UK/" in path.as_posix():
                lines = text.splitlines()
                out = [lines[0]]
                for line in lines[1:]:
                    f = line.split(",")
                    if f[1] == "0002" and f[4].isdigit():
                        f[4] = str(int(f[4]) * 4)
                    out.append(",".join(f))
                text = "\n".join(out) + "\n"
            target = root / "landing" / path.relative_to(held)
            target.write_text(text)
    assert materialize_ingest(root).success
    return root, instance


def test_drift_retrains_only_the_store_that_moved(drifted):
    root, instance = drifted
    # trained on 61 days with no Christmas in them, the December run-up is itself a (milder) drift: a stricter
    # category-bias ratio isolates the store whose sales quadrupled
    settings = DriftSettings(category_bias_ratio=2.0)
    tick = dg.build_sensor_context(instance=instance, resources={**_root(root), "drift_settings": settings})
    result = drift_sensor(tick)
    assert [r.partition_key for r in result.run_requests] == ["0002"], [
        (e.partition, e.metadata["drift_reasons"].value) for e in result.asset_events]
    request = result.run_requests[0]
    assert request.run_key.startswith("drift-0002-v") and request.tags["retail/trigger"] == "drift"
    assert "wape_7" in request.tags["retail/drift_reasons"] or "bias_14" in request.tags["retail/drift_reasons"]
    by_store = {e.partition: e.metadata for e in result.asset_events}
    assert by_store["0002"]["drift_overlap_days"].value >= 5
    assert by_store["0002"]["drift_bias_14"].value < -0.25  # actuals far above what was served
    ctx = dg.build_sensor_context(cursor="2023-11-30", resources={**_root(root), "drift_settings": settings})
    spikes = sales_spike_sensor(ctx)
    assert [r.partition_key for r in spikes.run_requests] == ["0002"]
    assert spikes.run_requests[0].run_key == "spike-0002-2023-12-14" and ctx.cursor == "2023-12-14"

    # a later tick that still sees the drift keeps its first detection time: the start of the drift-to-live lag
    later = drift_sensor(dg.build_sensor_context(instance=instance, cursor=tick.cursor,
                                                 resources={**_root(root), "drift_settings": settings}))
    detected = request.tags["retail/detected_at"]
    assert [r.tags["retail/detected_at"] for r in later.run_requests] == [detected]
    # the run the daemon would launch: the retrain records when it was detected, started, and went live or not
    before = live_version(DataLayout(root).models, "0002").version
    job = build_definitions(build_resources(root, **FAST_SETTINGS)).resolve_job_def("store_pipeline")
    assert job.execute_in_process(instance=instance, partition_key="0002", tags=request.tags).success
    line = [e for e in registry.history(DataLayout(root).models, "0002") if e["kind"] == "retrain"][-1]
    assert (line["trigger"], line["detected_at"]) == ("drift", detected)
    assert detected <= line["retrain_started_at"] <= line["decided_at"]
    live_now = live_version(DataLayout(root).models, "0002").version
    if line["outcome"] == "live":
        assert line["live_at"] == line["decided_at"] and live_now == line["version"] != before
    else:
        assert line["outcome"] == "held back" and line["live_at"] is None and live_now == before
    lags = {r["version"]: r for r in registry.retrain_lag_rows(DataLayout(root).models)}
    assert (lags[line["version"]]["detection_to_live_hours"] is None) == (line["outcome"] != "live")

    # `retail audit` answers from those records, and each answer matches the records it cites
    layout = DataLayout(root)
    pointers = {s: (layout.models / f"store={s}" / "live.json").read_bytes() for s in registry.stores(layout.models)}
    done = retail_cli("audit", "--format", "json", data_dir=root,
                      env={"DAGSTER_HOME": str(root / "audit_home"), "RETAIL_AUTOMATION": ""})
    assert done.returncode == 0, done.stderr
    answers = {a["question"].split()[0] + str(i): a for i, a in enumerate(json.loads(done.stdout)["answers"])}
    trace, rollback, lag, live, _edge, automation, targets = answers.values()
    assert all(a["records"] and a["answer"] for a in answers.values())
    t = trace["figures"]
    served = pd.read_parquet(root / "forecasts" / f"store={t['store_id']}" / "forecast.parquet")
    row = served[(served["item_id"] == t["item_id"]) & (pd.to_datetime(served["date"]).dt.date.astype(str) == t["date"])]
    assert t["yhat"] == pytest.approx(float(row["yhat"].iloc[0])) and t["trace_seconds"] < 300
    assert t["model_version"] == live_version(layout.models, t["store_id"]).version
    r = rollback["figures"]
    if "refusals" in r and "rollback_seconds" not in r:  # the earlier version's stored paths end before today
        assert "outside the stored path" in r["refusals"][0] and "not measured" in rollback["answer"]
    else:
        assert r["real_store_untouched"] and r["from_version"] == live_version(layout.models, r["store_id"]).version
        assert r["to_version"] in [e["version"] for e in registry.history(layout.models, r["store_id"])
                                   if e["kind"] == "model"]
    assert {s: (layout.models / f"store={s}" / "live.json").read_bytes() for s in pointers} == pointers
    drift_lags = [x for x in registry.retrain_lag_rows(layout.models) if x["trigger"] in ("drift", "sales_spike")]
    assert lag["figures"]["retrains_total"] == len(drift_lags)
    assert lag["figures"]["lag_days_all"] == pytest.approx(
        [x["detection_to_live_hours"] / 24 for x in drift_lags if x["detection_to_live_hours"] is not None])
    assert live["figures"]["distinct_live_versions"] == sorted(
        {live_version(layout.models, s).version for s in pointers})
    assert all(v == "RUNNING" for v in automation["figures"]["automation"].values())
    assert "drift_sensor" in automation["figures"]["automation"] and str(root) in targets["answer"]
    # the audit_report asset: the same questions, as markdown in the UI and in exports/
    from retail_assets.defs.governance.audit import audit_report

    assert dg.materialize([audit_report], instance=instance, resources=build_resources(root, **FAST_SETTINGS)).success
    report = (root / "exports" / "audit_report.md").read_text()
    assert all(a["question"] in report for a in answers.values())


def test_weekly_schedule_batches_stores_into_few_runs():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("stores", [f"{i:04d}" for i in range(1, 121)])
        with dg.build_schedule_context(
            instance=instance, scheduled_execution_time=dt.datetime(2025, 11, 2, 3, tzinfo=dt.timezone.utc)
        ) as ctx:
            requests = list(weekly_retrain_schedule(ctx))
        assert [len(r.run_config["ops"]["retrain_stores_op"]["config"]["stores"]) for r in requests] == [50, 50, 20]
        assert [r.run_key for r in requests] == ["weekly-2025-11-02-0", "weekly-2025-11-02-1", "weekly-2025-11-02-2"]


@pytest.mark.parametrize("day, peak", [("2025-11-07", "Black Friday"), ("2025-11-27", "Christmas"),
                                       ("2025-03-30", "Easter"), ("2025-05-04", "Summer (patio)"),
                                       ("2025-11-08", None)])
def test_seasonal_schedule_fires_lead_days_before_each_peak(day, peak):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("stores", ["0001", "0002"])
        when = dt.datetime.fromisoformat(day).replace(hour=4, tzinfo=dt.timezone.utc)
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as ctx:
            result = seasonal_retrain_schedule(ctx)
            result = result if isinstance(result, dg.SkipReason) else list(result)
        if peak is None:
            assert isinstance(result, dg.SkipReason)
        else:
            (request,) = result
            assert request.tags["retail/trigger"] == f"seasonal: {peak}"


def test_batch_retrain_records_each_store_partition(stores_run):
    root, instance, _ = stores_run
    result = retrain_stores.execute_in_process(
        instance=instance, resources=build_resources(root, **FAST_SETTINGS),
        run_config={"ops": {"retrain_stores_op": {"config": {"stores": ["0001", "0002"], "reason": "test"}}}})
    assert result.success
    assert result.output_for_node("retrain_stores_op") == {"0001": "ok", "0002": "ok"}
    mats = [(m.asset_key.to_user_string(), m.partition) for m in result.asset_materializations_for_node("retrain_stores_op")]
    for store in ("0001", "0002"):
        for asset in ("store_features", "demand_model", "demand_forecast", "store_inventory_cover", "edge_bundle"):
            assert (asset, store) in mats
    checks = [e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert {(c.partition, c.passed) for c in checks if c.check_name == "gx_store_features"} == {
        ("0001", True), ("0002", True)}
    # the inventory cover's warning check, recorded per store partition as the asset reports it
    assert {c.partition for c in checks if c.check_name == "inventory_cover_flags"} == {"0001", "0002"}

