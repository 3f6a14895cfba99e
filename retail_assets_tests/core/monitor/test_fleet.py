"""Edge telemetry: the real runner writes it from real bundles, the platform loads it as a landing source,
judges the fleet (stale, failing, slow stores) and republishes a stale store's bundle once per episode."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import zipfile
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from retail_assets.core.demo.telemetry import generate_fleet_telemetry
from retail_assets.core.monitor import fleet
from retail_assets.core.registry import records as registry
from retail_assets.edge import runner
from retail_assets.edge import telemetry as tel
from retail_assets.settings import DataLayout
from retail_assets_tests.helpers import FAST_SETTINGS, retail_cli

TELEMETRY_MODELS = ["stg_edge_telemetry", "int_edge_telemetry", "fct_edge_forecasts", "quarantine",
                    "ingest_reconciliation"]


def _live_bundle_path(layout: DataLayout, store: str) -> tuple[Path, dict]:
    live = fleet.live_bundles(layout.models)[store]
    entry = [e for e in registry.history(layout.models, store)
             if e["kind"] == "bundle" and e["bundle_version"] == live.bundle_version][-1]
    assert not Path(entry["file"]).is_absolute()  # the registry records paths relative to the data root
    return registry.recorded_file(layout.models, entry["file"]), entry


def _device(bundle_path: Path, tmp: Path) -> dict:
    """`serve_once` arguments for a device of the bundle's store on the bundle's first day (the small zone's
    horizon is in the past), with its own state file."""
    with zipfile.ZipFile(bundle_path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    return {"store_id": manifest["store_id"], "start": manifest["horizon"]["first"], "state": tmp / "edge_state.json"}


@pytest.fixture(scope="module")
def fleet_zone(stores_run, tmp_path_factory):
    """A copy of the trained small zone (the shared one stays as other tests expect it), with a real runner's
    telemetry and 60 h of generated fleet telemetry ending 30 h from now, loaded by a real Dagster run."""
    src, _instance, results = stores_run
    root = tmp_path_factory.mktemp("fleet") / "data"
    # a plain copy: the registry names files relative to the data root, so the copy reads its own bundles
    shutil.copytree(src, root, ignore=shutil.ignore_patterns("dagster_home"))
    assert not any(str(src) in reg.read_text() for reg in (root / "models").glob("store=*/registry.jsonl"))
    layout = DataLayout(root)
    stores = sorted(s for s, r in results.items() if r.success)
    assert len(stores) >= 3, "the small zone should train at least three stores"
    pub = runner.read_public_key(root / "keys" / "edge_signing.pub")
    real_file = root / "landing" / "telemetry" / "device=test-host" / "telemetry.jsonl"
    writer = tel.TelemetryWriter(real_file)
    bundle_path, _ = _live_bundle_path(layout, stores[0])
    rows = runner.serve_once(bundle_path, pub, telemetry=writer, **_device(bundle_path, root.parent))
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    truth = generate_fleet_telemetry(root / "landing", layout.models, now + dt.timedelta(hours=30), seed=3,
                                     hours=60)
    result = _refresh(root)
    assert result.success
    return {"root": root, "layout": layout, "stores": stores, "truth": truth, "now": now,
            "real_record": tel.read_records(real_file)[0], "rows": rows}


def _refresh(root: Path, load: bool = True, **fleet_settings) -> dg.ExecuteInProcessResult:
    """Load the telemetry files and rebuild the telemetry marts (load=True), then judge the fleet."""
    from retail_assets.defs.edge.fleet import fleet_assets
    (edge_fleet_status,) = fleet_assets()
    from retail_assets.defs.harmonize.assets import dbt_models
    harmonized = dbt_models()
    from retail_assets.defs.ingest.assets import raw_landing
    from retail_assets.resources import FleetSettings, build_resources

    resources = {**build_resources(root, **FAST_SETTINGS), "fleet_settings": FleetSettings(**fleet_settings)}
    if not load:
        return dg.materialize([edge_fleet_status], resources=resources, raise_on_error=False)
    return dg.materialize([raw_landing, harmonized, edge_fleet_status], resources=resources, raise_on_error=False,
                          selection=dg.AssetSelection.assets(raw_landing, edge_fleet_status, *TELEMETRY_MODELS))


def _status(zone, as_of: dt.datetime, **kw) -> pd.DataFrame:
    with duckdb.connect(str(zone["layout"].warehouse), read_only=True) as con:
        tele = fleet.read_telemetry(con)
    return fleet.fleet_status(fleet.live_bundles(zone["layout"].models), tele, pd.Timestamp(as_of),
                              fleet.FleetConfig(**kw)).set_index("store_id")


# ---------------------------------------------------------------- runner side


def test_runner_records_each_forecast_with_what_it_served(fleet_zone):
    rec, layout, store = fleet_zone["real_record"], fleet_zone["layout"], fleet_zone["stores"][0]
    _path, entry = _live_bundle_path(layout, store)
    assert rec["outcome"] == "ok" and rec["error_class"] is None and rec["verified"] is True
    assert rec["store_id"] == store
    assert rec["bundle_version"] == entry["bundle_version"]
    assert rec["manifest_sha256"] == entry["manifest_sha256"]  # the signed bytes the registry published
    assert rec["model_versions"] == [entry["version"]]
    assert rec["latency_ms"] > rec["predict_ms"] > 0
    assert rec["items"] == len({r["item_id"] for r in fleet_zone["rows"]})
    assert rec["host"] and dt.datetime.fromisoformat(rec["started_at"].replace("Z", "+00:00"))


def test_refused_bundle_is_recorded_then_raised(fleet_zone, tmp_path):
    layout, store = fleet_zone["layout"], fleet_zone["stores"][0]
    good, _ = _live_bundle_path(layout, store)
    bad = tmp_path / "tampered.zip"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            zout.writestr(name, data + b" " if name == "calendar.json" else data)
    writer = tel.TelemetryWriter(tmp_path / "t.jsonl")
    pub = runner.read_public_key(fleet_zone["root"] / "keys" / "edge_signing.pub")
    with pytest.raises(runner.BundleError, match="calendar.json does not match"):
        runner.serve_once(bad, pub, telemetry=writer, **_device(good, tmp_path))
    with pytest.raises(runner.BundleError, match="outside this bundle's horizon"):
        runner.serve_once(good, pub, telemetry=writer, **{**_device(good, tmp_path), "start": "1999-01-01"})
    refused, expired = tel.read_records(writer.path)
    assert (refused["outcome"], refused["error_class"], refused["verified"]) == ("refused", "BundleError", False)
    assert refused["store_id"] == store and "calendar.json" in refused["error"]
    assert expired["outcome"] == "refused" and expired["verified"] is True and "horizon" in expired["error"]


def test_telemetry_never_fails_a_forecast(fleet_zone, tmp_path):
    layout, store = fleet_zone["layout"], fleet_zone["stores"][0]
    good, _ = _live_bundle_path(layout, store)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the telemetry folder should be")
    writer = tel.TelemetryWriter(blocker / "sub" / "telemetry.jsonl")
    pub = runner.read_public_key(fleet_zone["root"] / "keys" / "edge_signing.pub")
    rows = runner.serve_once(good, pub, horizon=7, telemetry=writer, **_device(good, tmp_path))
    assert len(rows) == 7 * fleet_zone["real_record"]["items"]
    assert (writer.written, writer.dropped) == (0, 1)


def test_telemetry_file_rotates_by_size(tmp_path):
    writer = tel.TelemetryWriter(tmp_path / "telemetry.jsonl", max_bytes=1500, keep=2)
    for i in range(30):
        assert writer.write(tel.make_record(
            store_id="0001", bundle_version="b1", model_versions=["v1"], manifest_sha256="0" * 64, verified=True,
            started_at=tel.utc_now_iso(), latency_ms=1.0 + i, predict_ms=0.1, outcome="ok"))
    rotated = writer.rotated()
    assert len(rotated) == 2  # older ones pruned
    for f in rotated + [writer.path]:
        assert f.stat().st_size <= 1500
        assert all(json.loads(line)["store_id"] == "0001" for line in f.read_text().splitlines())
    assert tel.read_records(writer.path)[-1]["latency_ms"] == 30.0  # the newest record is in the live file


def test_cli_predict_writes_telemetry_unless_told_not_to(fleet_zone, tmp_path):
    layout, store = fleet_zone["layout"], fleet_zone["stores"][0]
    good, _ = _live_bundle_path(layout, store)
    out = tmp_path / "cli.jsonl"
    device = _device(good, tmp_path)
    key = ["--public-key", str(fleet_zone["root"] / "keys" / "edge_signing.pub"), "--store", device["store_id"],
           "--start", device["start"], "--state", str(device["state"])]
    assert runner.main(["predict", str(good), "--horizon", "3", "--telemetry", str(out), *key]) == 0
    assert runner.main(["predict", str(good), "--horizon", "3", "--telemetry", str(out), "--no-telemetry", *key]) == 0
    assert [r["horizon"] for r in tel.read_records(out)] == [3]


# ---------------------------------------------------------------- platform side


def test_stale_failing_and_slow_stores_from_generated_telemetry(fleet_zone):
    roles = {r: s for s, r in fleet_zone["truth"]["roles"].items()}
    status = _status(fleet_zone, fleet_zone["now"])  # judged now: telemetry "from the future" is ignored
    stale, failing, slow = status.loc[roles["stale"]], status.loc[roles["failing"]], status.loc[roles["slow"]]
    assert stale["status"] == "stale_within_grace"  # the live bundle was published minutes ago
    assert stale["serving_bundle"] != stale["live_bundle"] and not stale["in_registry"]
    assert failing["status"] == "failing" and 0.1 < failing["failure_rate"] < 0.45
    assert slow["status"] == "slow" and slow["p99_ms"] > 250 and slow["p50_ms"] > 200
    healthy = status.loc[roles["healthy"]]
    assert healthy["status"] == "ok" and healthy["p50_ms"] < 100 and healthy["serving_bundle"] == healthy["live_bundle"]
    assert healthy["forecasts"] == pytest.approx(24 * 3, abs=3)  # one every 20 minutes over the 24 h window
    later = _status(fleet_zone, fleet_zone["now"] + dt.timedelta(hours=30))
    assert later.loc[roles["stale"], "status"] == "stale_overdue"
    assert 30 <= later.loc[roles["stale"], "stale_hours"] < 31.5  # since the live bundle was published


def test_fleet_check_severity(fleet_zone):
    warn = _refresh(fleet_zone["root"], load=False, as_of=fleet_zone["now"].isoformat())
    (check,) = warn.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    roles = {r: s for s, r in fleet_zone["truth"]["roles"].items()}
    problems = check.metadata["problems"].value
    assert f"{roles['failing']} failing" in problems and f"{roles['slow']} slow" in problems
    error = _refresh(fleet_zone["root"], load=False, as_of=(fleet_zone["now"] + dt.timedelta(hours=30)).isoformat())
    (check,) = error.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["stale_overdue_stores"].value == roles["stale"]
    lenient = _refresh(fleet_zone["root"], load=False, as_of=fleet_zone["now"].isoformat(), max_failure_rate=0.9,
                       max_p99_latency_ms=10_000)
    (check,) = lenient.get_asset_check_evaluations()
    assert check.passed
    md = lenient.asset_materializations_for_node("edge_fleet_status")[0].metadata["fleet"].value
    assert "| store | status | serving | live |" in md and roles["stale"] in md
    plot = lenient.asset_materializations_for_node("edge_fleet_status")[0].metadata["fleet_plot"].value
    assert "data:image/png;base64," in plot


def test_malformed_and_duplicate_telemetry_is_quarantined_and_counted(fleet_zone):
    truth = fleet_zone["truth"]
    with duckdb.connect(str(fleet_zone["layout"].warehouse), read_only=True) as con:
        reasons = dict(con.execute("select reason, count(*) from quarantine where source = 'telemetry' group by 1"
                                   ).fetchall())
        read, kept, dup, quar, ok = con.execute(
            "select sum(rows_read), sum(rows_accepted), sum(rows_duplicate), sum(rows_quarantined), bool_and(reconciled)"
            " from ingest_reconciliation where source = 'telemetry'").fetchone()
        raw = con.execute("select raw_values from quarantine where reason = 'invalid_store_id'").fetchone()[0]
        real = con.execute("select count(*) from fct_edge_forecasts where record_id = ?",
                           [fleet_zone["real_record"]["record_id"]]).fetchone()[0]
        types = dict(con.execute("select column_name, data_type from information_schema.columns"
                                 " where table_name = 'edge_fleet_status'").fetchall())
        fleet_rows = con.execute("select count(*) from edge_fleet_status").fetchone()[0]
    assert types["last_seen"] == "TIMESTAMP WITH TIME ZONE" and types["p99_ms"] == "DOUBLE"  # typed for SQL users
    assert fleet_rows == len(truth["roles"])
    assert reasons == truth["malformed"]
    assert ok and read == truth["lines"] + 1  # + the real runner's record
    assert (kept, dup, quar) == (truth["records"] + 1, truth["duplicates"], sum(truth["malformed"].values()))
    assert "../../etc/passwd" in raw
    assert real == 1


def test_sensor_republishes_a_stale_store_once_per_episode(fleet_zone):
    from retail_assets.defs.edge.sensors import stale_bundle_sensor
    from retail_assets.resources import FleetSettings, RetailDataRoot

    stale = next(s for s, r in fleet_zone["truth"]["roles"].items() if r == "stale")
    later = (fleet_zone["now"] + dt.timedelta(hours=30)).isoformat()
    resources = {"data_root": RetailDataRoot(data_dir=str(fleet_zone["root"])),
                 "fleet_settings": FleetSettings(as_of=later)}
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
            requests = stale_bundle_sensor(ctx)
            assert [r.partition_key for r in requests] == [stale]
            assert requests[0].run_key.startswith(f"republish-{stale}-")
            assert requests[0].tags["retail/trigger"] == "stale_bundle"
            cursor = ctx.cursor
        with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as ctx:
            assert isinstance(stale_bundle_sensor(ctx), dg.SkipReason)  # same episode: asked once
        now = {**resources, "fleet_settings": FleetSettings(as_of=fleet_zone["now"].isoformat())}
        with dg.build_sensor_context(instance=instance, resources=now) as ctx:
            assert isinstance(stale_bundle_sensor(ctx), dg.SkipReason)  # within grace: not yet


def test_a_new_stale_episode_gets_a_new_key():
    t0 = pd.Timestamp("2026-01-01T00:00Z")
    live = {"S1": fleet.LiveBundle("S1", "v2", "b2", None, t0, {"b1": "v1", "b2": "v2"})}

    def reports(versions):
        return pd.DataFrame({"store_id": "S1", "bundle_version": versions, "manifest_sha256": None,
                             "started_at_utc": [t0 + pd.Timedelta(hours=h) for h in range(1, len(versions) + 1)],
                             "latency_ms": 5.0, "outcome": "ok", "error_class": None, "host": "h"})

    cfg = fleet.FleetConfig(stale_grace_hours=2, silent_after_hours=100)
    first = fleet.stale_episodes(fleet.fleet_status(live, reports(["b1"] * 4), t0 + pd.Timedelta(hours=4), cfg))
    again = fleet.stale_episodes(fleet.fleet_status(live, reports(["b1"] * 5), t0 + pd.Timedelta(hours=5), cfg))
    assert first[0]["key"] == again[0]["key"]  # the same episode, seen twice
    relapse = reports(["b1", "b1", "b2", "b2", "b1", "b1", "b1", "b1"])
    second = fleet.stale_episodes(fleet.fleet_status(live, relapse, t0 + pd.Timedelta(hours=8), cfg))
    assert second[0]["key"] != first[0]["key"] and second[0]["stale_hours"] == 3.0
    recovered = fleet.fleet_status(live, reports(["b1", "b2"]), t0 + pd.Timedelta(hours=2), cfg)
    assert fleet.stale_episodes(recovered) == [] and recovered.loc[0, "status"] == "ok"


def test_retail_models_shows_what_each_store_serves(fleet_zone):
    roles = fleet_zone["truth"]["roles"]
    out = retail_cli("models", "--format", "json", data_dir=fleet_zone["root"])
    assert out.returncode == 0, out.stderr
    rows = {r["store_id"]: r for r in json.loads(out.stdout)}
    for store, role in roles.items():
        assert rows[store]["last_seen"], store
        assert (rows[store]["serving_bundle"] == rows[store]["bundle_version"]) == (role != "stale")
    table = retail_cli("models", data_dir=fleet_zone["root"]).stdout
    stale = next(s for s, r in roles.items() if r == "stale")
    assert "NOT LIVE" in next(line for line in table.splitlines() if line.startswith(stale))


def _reports(t0, rows):
    """rows: (hours after t0, host, bundle, outcome)."""
    return pd.DataFrame({"store_id": "S1", "bundle_version": [r[2] for r in rows], "manifest_sha256": None,
                         "started_at_utc": [t0 + pd.Timedelta(hours=r[0]) for r in rows], "latency_ms": 5.0,
                         "outcome": [r[3] for r in rows], "error_class": None, "host": [r[1] for r in rows]})


def test_a_store_is_as_stale_as_its_worst_device():
    t0 = pd.Timestamp("2026-01-01T00:00Z")
    live = {"S1": fleet.LiveBundle("S1", "v2", "b2", None, t0, {"b1": "v1", "b2": "v2"})}
    # device A took the live bundle; device B is stuck on b1; their reports interleave
    rows = [(h, "A" if h % 2 else "B", "b2" if h % 2 else "b1", "ok") for h in range(1, 49)]
    cfg = fleet.FleetConfig(stale_grace_hours=24, silent_after_hours=100)
    status = fleet.fleet_status(live, _reports(t0, rows), t0 + pd.Timedelta(hours=48), cfg).iloc[0]
    assert status["status"] == "stale_overdue" and status["serving_bundle"] == "b1"
    assert status["stale_hours"] == 46.0 and "device B serves b1" in status["problems"]  # B first at hour 2
    # a device retired two days ago with the old bundle pages nobody
    retired = [(1, "B", "b1", "ok")] + [(h, "A", "b2", "ok") for h in range(50, 100)]
    status = fleet.fleet_status(live, _reports(t0, retired), t0 + pd.Timedelta(hours=100), cfg).iloc[0]
    assert status["status"] == "ok" and status["serving_bundle"] == "b2"


def test_a_device_that_refuses_everything_serves_nothing():
    t0 = pd.Timestamp("2026-01-01T00:00Z")
    live = {"S1": fleet.LiveBundle("S1", "v2", "b2", None, t0, {"b2": "v2"})}
    rows = [(h, "A", None, "refused") for h in range(1, 40)]
    status = fleet.fleet_status(live, _reports(t0, rows), t0 + pd.Timedelta(hours=40),
                                fleet.FleetConfig(silent_after_hours=100)).iloc[0]
    assert status["status"] == "failing" and status["serving_bundle"] is None and status["stale_hours"] is None
    assert fleet.stale_episodes(pd.DataFrame([status])) == []


def test_refusals_are_recorded_even_for_garbage_bundles_and_missing_keys(fleet_zone, tmp_path):
    good, _ = _live_bundle_path(fleet_zone["layout"], fleet_zone["stores"][0])
    garbage = tmp_path / "garbage.zip"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(garbage, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, json.dumps({"items_order": 5, "store_id": ["x"]}) if name == "manifest.json"
                          else zin.read(name))
    writer = tel.TelemetryWriter(tmp_path / "t.jsonl")
    key = fleet_zone["root"] / "keys" / "edge_signing.pub"
    with pytest.raises(runner.BundleError, match="signature"):
        runner.serve_once(garbage, key, telemetry=writer, **{**_device(good, tmp_path), "store_id": "0001"})
    with pytest.raises(runner.BundleError, match="no public key"):
        runner.serve_once(good, tmp_path / "missing.pub", telemetry=writer, **_device(good, tmp_path))
    assert runner.main(["predict", str(good), "--public-key", str(tmp_path / "missing.pub"),
                        "--store", fleet_zone["stores"][0], "--telemetry", str(writer.path)]) == 2
    garbage_rec, no_key, cli = tel.read_records(writer.path)
    assert garbage_rec["outcome"] == "refused" and garbage_rec["store_id"] == "0001" and garbage_rec["items"] is None
    assert no_key["outcome"] == cli["outcome"] == "refused" and "no public key" in no_key["error"]
    assert no_key["bundle_version"]  # what the bundle claims, marked unverified
    assert no_key["verified"] is False


def test_a_line_torn_by_a_power_cut_does_not_swallow_the_next_record(tmp_path):
    path = tmp_path / "telemetry.jsonl"
    path.write_text('{"record_id": "torn", "sch')
    writer = tel.TelemetryWriter(path)
    assert writer.write({"record_id": "next"})
    lines = path.read_text().splitlines()
    assert lines[0] == '{"record_id": "torn", "sch' and json.loads(lines[1]) == {"record_id": "next"}
