"""Edge bundles: ONNX parity with Prophet per model feature, the zip round trip, refusal cases (tampering, zip
bombs and duplicate names, another store's, replayed and expired bundles, dates outside the horizon), isolation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prophet import Prophet
from prophet.serialize import model_to_json

from retail_assets.core.canonical import dumps
from retail_assets.core.edge.bundle import (
    LATENCY_MIN_RUNS,
    MAX_REL_ERROR_TREES,
    BundleVerificationError,
    build_bundle,
    load_private_key,
    measure_latency,
)
from retail_assets.core.edge.compile import compile_store
from retail_assets.core.edge.keys import ensure_dev_keys
from retail_assets.core.fitting.train import train_store
from retail_assets.core.forecast.models import TrainConfig
from retail_assets.core.forecast.serving import forecast_store
from retail_assets.edge import runner
from retail_assets.edge import telemetry as tel
from retail_assets_tests.helpers import noisy_weekly, synthetic_store

HOLIDAYS = pd.DataFrame({"holiday": ["Sale", "Sale", "Sale", "Closed-ish"],
                         "ds": pd.to_datetime(["2023-11-24", "2024-11-29", "2025-11-28", "2025-12-25"]),
                         "lower_window": 0, "upper_window": 0})


def _series(n=800, seed=0):
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2023-09-01", periods=n, freq="D")
    t = np.arange(n)
    y = 20 + 0.02 * t + 5 * np.sin(2 * np.pi * t / 365.25) + 3 * (ds.dayofweek >= 5) + rng.normal(0, 1, n)
    y[t > n * 0.6] += 0.03 * (t[t > n * 0.6] - n * 0.6)  # a change in slope for the changepoints
    promo = (rng.random(n) < 0.1).astype(float)
    return pd.DataFrame({"ds": ds, "y": y + 4 * promo, "promo": promo})


def _fit(df, **kwargs):
    regressor = kwargs.pop("regressor", None)
    m = Prophet(uncertainty_samples=0, **kwargs)
    if regressor:
        m.add_regressor("promo", **regressor)
    m.fit(df if regressor else df[["ds", "y"]], iter=1000)
    return m


CASES = {
    "changepoints_weekly_yearly": dict(yearly_seasonality=True, weekly_seasonality=True),
    "holidays_additive": dict(holidays=HOLIDAYS, yearly_seasonality=False),
    "regressor_standardized": dict(regressor={"standardize": True}, yearly_seasonality=False),
    "multiplicative_with_holidays_and_promo": dict(seasonality_mode="multiplicative", holidays=HOLIDAYS,
                                                   regressor={"standardize": False, "mode": "multiplicative"}),
    "flat_trend": dict(growth="flat", yearly_seasonality=False),
}


def _run_graph(compiled, dates, promo_by_item, holiday_dates=None):
    import onnxruntime as ort

    cal = {"dates": [d.strftime("%Y-%m-%d") for d in dates], "open": [1] * len(dates),
           "holidays": holiday_dates or {}, "holiday_columns": [list(c) for c in compiled.holidays],
           "promo": promo_by_item}
    session = ort.InferenceSession(compiled.onnx_bytes, providers=["CPUExecutionProvider"])
    feeds, _, _ = runner.inputs_for(runner.Bundle({"items_order": compiled.items}, cal, session, "mem"))
    return session.run(["yhat"], feeds)[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_onnx_reproduces_prophet_predict(case):
    df = _series(seed=len(case))
    model = _fit(df, **CASES[case])
    future = pd.DataFrame({"ds": pd.date_range(df["ds"].max() + pd.Timedelta(days=1), periods=120, freq="D")})
    future["promo"] = (np.arange(120) % 9 == 0).astype(float)
    expected = np.clip(model.predict(future)["yhat"].to_numpy(), 0, None)
    compiled = compile_store({"SKU-X": {"champion": "prophet", "artifact": model_to_json(model)}})
    holiday_dates = {d.strftime("%Y-%m-%d"): n for n, d in zip(HOLIDAYS["holiday"], HOLIDAYS["ds"])}
    got = _run_graph(compiled, future["ds"], {"SKU-X": future["promo"].astype(int).tolist()}, holiday_dates)[0]
    assert np.max(np.abs(got - expected) / np.maximum(np.abs(expected), 1.0)) < 1e-9
    if "holidays" in case:  # the holiday really moves the forecast, and the graph follows
        assert ("Closed-ish", 0) in compiled.holidays


def test_batched_graph_mixes_prophet_and_baselines():
    df = _series(400, seed=9)
    model = _fit(df, yearly_seasonality=False)
    week = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    items = {
        "A": {"champion": "prophet", "artifact": model_to_json(model)},
        "B": {"champion": "seasonal_naive", "artifact": dumps(
            {"model": "seasonal_naive", "anchor_date": "2024-10-03", "last_week": week, "moving_average_level": 3})},
        "C": {"champion": "moving_average", "artifact": dumps(
            {"model": "moving_average", "anchor_date": "2024-10-03", "last_week": week, "moving_average_level": 3.5})},
    }
    dates = pd.date_range("2024-10-04", periods=10, freq="D")
    got = _run_graph(compile_store(items), dates, {k: [0] * 10 for k in items})
    assert got[1].tolist() == [week[i % 7] for i in range(10)]  # the day after the anchor is last week's first day
    assert got[2].tolist() == [3.5] * 10
    assert np.allclose(got[0], np.clip(model.predict(pd.DataFrame({"ds": dates}))["yhat"], 0, None), rtol=1e-9)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("edge")
    items = {f"SKU-{i}": noisy_weekly(200, level, 40 + i) for i, level in enumerate([2, 8, 25])}
    store = synthetic_store(items, horizon=28)
    store.loc[store["date"] == "2024-03-15", "holiday_name"] = "Spring Fair"
    store.loc[store["date"] == store["date"].max() - pd.Timedelta(days=3), "holiday_name"] = "Spring Fair"
    store.loc[(store["item_id"] == "SKU-1") & (store["date"].dt.day % 5 == 0), "promo_planned"] = True
    mv = train_store(store, root / "models", "features-test", TrainConfig(min_train_days=42), workers=1)
    priv, pub = ensure_dev_keys(root / "keys")
    published = build_bundle(mv, store, 28, load_private_key(priv.read_bytes()), root / "bundles", "test")
    return root, mv, store, published, pub


def test_bundle_round_trip_matches_the_served_forecast(bundle):
    _root, mv, store, published, pub = bundle
    assert published.manifest["verification"]["over_limit"] == []
    assert published.manifest["verification"]["max_rel_error"] < MAX_REL_ERROR_TREES
    assert published.size_bytes < 1_000_000
    loaded = runner.load_bundle(published.path, runner.read_public_key(pub), expected_store="0001")
    rows = pd.DataFrame(runner.predict(loaded, start=loaded.dates[0]))
    served = forecast_store(mv, store, 28)
    merged = rows.merge(served.assign(date=pd.to_datetime(served["date"]).dt.strftime("%Y-%m-%d")),
                        on=["item_id", "date"], suffixes=("_edge", "_served"))
    assert len(merged) == len(served) == 3 * 28
    for col in ("yhat", "yhat_lower", "yhat_upper"):
        assert np.allclose(merged[f"{col}_edge"], merged[f"{col}_served"], rtol=1e-6, atol=1e-6), col
    assert set(merged["model_version_edge"]) == {mv.version}


def _rewrite(src: Path, dst: Path, change) -> Path:
    with zipfile.ZipFile(src) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    files = change(files)
    with zipfile.ZipFile(dst, "w") as zf:
        for n, b in files.items():
            zf.writestr(n, b)
    return dst


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


@pytest.mark.parametrize("name, change, message", [
    ("graph", lambda f: {**f, "model.onnx": _flip(f["model.onnx"], len(f["model.onnx"]) // 2)}, "model.onnx does not match"),
    ("calendar", lambda f: {**f, "calendar.json": f["calendar.json"].replace(b'"open": [\n  1', b'"open": [\n  0', 1)},
     "calendar.json does not match"),
    ("manifest", lambda f: {**f, "manifest.json": f["manifest.json"].replace(b'"store_id"', b'"store_iD"', 1)},
     "signature does not match"),
    ("missing", lambda f: {k: v for k, v in f.items() if k != "calendar.json"}, "missing calendar.json"),
])
def test_tampered_bundles_are_refused(bundle, tmp_path, name, change, message):
    _root, _mv, _store, published, pub = bundle
    bad = _rewrite(published.path, tmp_path / f"{name}.zip", change)
    with pytest.raises(runner.BundleError, match=message):
        runner.load_bundle(bad, runner.read_public_key(pub))


def test_wrong_key_and_expired_horizon_are_refused(bundle, tmp_path):
    _root, _mv, _store, published, pub = bundle
    _other_priv, other_pub = ensure_dev_keys(tmp_path / "other")
    with pytest.raises(runner.BundleError, match="signature does not match"):
        runner.load_bundle(published.path, runner.read_public_key(other_pub))
    loaded = runner.load_bundle(published.path, runner.read_public_key(pub))
    last = loaded.dates[-1]
    with pytest.raises(runner.BundleError, match="expired horizon"):
        runner.predict(loaded, start=last, horizon=2)
    with pytest.raises(runner.BundleError, match="outside this bundle's horizon"):
        runner.predict(loaded, start="2030-01-01")


BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'prophet', 'pandas', 'cmdstanpy', 'dagster', 'duckdb', 'cryptography', 'click'}:
            raise ImportError(f'{name} is not on this device')
        return None
sys.meta_path.insert(0, Block())
from retail_assets.edge import runner
sys.exit(runner.main(sys.argv[1:]))
"""


def test_runner_works_without_prophet_pandas_stan_or_dagster(bundle, tmp_path, monkeypatch):
    monkeypatch.delenv(runner.STORE_ENV, raising=False)
    _root, _mv, _store, published, pub = bundle
    run = lambda *args: subprocess.run([sys.executable, "-c", BLOCKER, *args],  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    ok = run("verify", str(published.path), "--public-key", str(pub))
    assert ok.returncode == 0, ok.stderr
    assert "signature and 2 file hashes verified" in ok.stdout and "store 0001 bundle" in ok.stdout
    assert "sequence 1 " in ok.stdout and "store and sequence not checked" in ok.stdout
    device = ["--public-key", str(pub), "--store", "0001", "--state", str(tmp_path / "state.json"),
              "--no-telemetry"]
    first = published.manifest["horizon"]["first"]
    out = run("predict", str(published.path), *device, "--start", first, "--horizon", "7", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 3 * 7 and all(r["yhat_lower"] <= r["yhat"] <= r["yhat_upper"] for r in rows)
    refused = run("predict", str(published.path), *device, "--start", "2031-01-01")
    assert refused.returncode != 0 and "outside this bundle's horizon" in refused.stderr
    today = run("predict", str(published.path), *device)  # no --start: today, long after this 2024 horizon
    assert today.returncode == 2 and "outside this bundle's horizon" in today.stderr, today.stderr
    no_store = run("predict", str(published.path), "--public-key", str(pub), "--start", first, "--no-telemetry")
    assert no_store.returncode == 2 and "pass --store" in no_store.stderr


# ---------------------------------------------------------------- TUF-style refusals


def _files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _resign(root: Path, src: Path, change, dst: Path) -> Path:
    """The bundle with its manifest changed and signed again with the platform's own key."""
    key = load_private_key((root / "keys" / "edge_signing.pem").read_bytes())

    def resign(files):
        raw = json.dumps(change(json.loads(files["manifest.json"])), sort_keys=True, indent=1).encode()
        return {**files, "manifest.json": raw, "manifest.sig": key.sign(raw).hex().encode()}

    return _rewrite(src, dst, resign)


def _claim_size(data: bytearray, name: bytes, size: int) -> None:
    """Make the central directory and the local header claim `size` uncompressed bytes for member `name`."""
    for sig, len_at, name_at, size_at in ((b"PK\x01\x02", 28, 46, 24), (b"PK\x03\x04", 26, 30, 22)):
        at = data.find(sig)
        while at >= 0:
            n = struct.unpack_from("<H", data, at + len_at)[0]
            if data[at + name_at:at + name_at + n] == name:
                struct.pack_into("<I", data, at + size_at, size)
            at = data.find(sig, at + 4)


MEASURE = """
import resource, sys
from retail_assets.edge import runner
key = bytes.fromhex(open(sys.argv[1]).read().strip())
for path in sys.argv[2:]:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        runner.load_bundle(path, key)
        outcome = "loaded"
    except runner.BundleError as exc:
        outcome = f"refused: {exc}"
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # KiB on Linux
    print(f"{grew:.1f} MiB {outcome}")
"""


def test_zip_bomb_is_refused_from_the_directory_before_inflating(bundle, tmp_path):
    _root, _mv, _store, published, pub = bundle
    files = _files(published.path)
    bomb = tmp_path / "bomb.zip"
    size = 256 * 2**20  # 4x the per-file bound; deflates to ~256 KB, written in 1 MiB steps
    with zipfile.ZipFile(bomb, "w") as zf:
        for name, data in files.items():
            if name != "model.onnx":
                zf.writestr(name, data)
        info = zipfile.ZipInfo("model.onnx")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w") as f:
            for _ in range(size // 2**20):
                f.write(bytes(2**20))
    assert bomb.stat().st_size < 2**20
    # the same bomb whose directory (and local header) claim the small original size
    liar = tmp_path / "liar.zip"
    data = bytearray(bomb.read_bytes())
    _claim_size(data, b"model.onnx", len(files["model.onnx"]))
    liar.write_bytes(bytes(data))
    out = subprocess.run([sys.executable, "-c", MEASURE, str(pub), str(bomb), str(liar)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    (bomb_line, liar_line) = out.stdout.splitlines()
    assert "refused: model.onnx would inflate to 268,435,456 bytes, over the 67,108,864-byte limit" in bomb_line
    assert "refused: model.onnx cannot be read from the zip (Bad CRC-32" in liar_line  # read stopped at the claim
    for line in (bomb_line, liar_line):
        assert float(line.split()[0]) < 32, line  # refused without inflating the 256 MiB


def test_bounds_cover_the_whole_bundle_and_the_manifest(bundle, tmp_path, monkeypatch):
    _root, _mv, _store, published, pub = bundle
    key = runner.read_public_key(pub)
    files = _files(published.path)
    deflated = tmp_path / "deflated.zip"
    with zipfile.ZipFile(deflated, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    total = sum(map(len, files.values()))
    assert deflated.stat().st_size < total
    monkeypatch.setattr(runner, "MAX_TOTAL_BYTES", total - 1)
    with pytest.raises(runner.BundleError, match="bundle would inflate to"):
        runner.load_bundle(deflated, key)
    monkeypatch.setattr(runner, "MAX_TOTAL_BYTES", deflated.stat().st_size - 1)
    with pytest.raises(runner.BundleError, match="deflated.zip is .* bytes, over the"):
        runner.load_bundle(deflated, key)
    monkeypatch.undo()
    monkeypatch.setattr(runner, "MAX_MANIFEST_BYTES", len(files["manifest.json"]) - 1)
    with pytest.raises(runner.BundleError, match="manifest.json would inflate"):
        runner.load_bundle(published.path, key)


def test_duplicate_member_names_are_refused(bundle, tmp_path):
    _root, _mv, _store, published, pub = bundle
    files = _files(published.path)
    evil = files["calendar.json"].replace(b'"open": [\n  1', b'"open": [\n  0', 1)
    dup = tmp_path / "dup.zip"
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(dup, "w") as zf:
        zf.writestr("calendar.json", evil)  # what a first-entry reader would serve
        for name, data in files.items():
            zf.writestr(name, data)  # the genuine copy last: what zipfile's name lookup reads
    with zipfile.ZipFile(dup) as zf:
        assert zf.open(zf.infolist()[0]).read() == evil and zf.read("calendar.json") == files["calendar.json"]
    with pytest.raises(runner.BundleError, match="holds calendar.json twice"):
        runner.load_bundle(dup, runner.read_public_key(pub))


def test_another_stores_bundle_is_refused_and_the_store_is_required(bundle, tmp_path, monkeypatch):
    _root, _mv, _store, published, pub = bundle
    monkeypatch.delenv(runner.STORE_ENV, raising=False)
    key = runner.read_public_key(pub)
    with pytest.raises(runner.BundleError, match="bundle is for store 0001, this device is store 0002"):
        runner.load_bundle(published.path, key, expected_store="0002")
    writer = tel.TelemetryWriter(tmp_path / "t.jsonl")
    state = tmp_path / "state.json"
    with pytest.raises(runner.BundleError, match="this device is store 0002"):
        runner.serve_once(published.path, key, start=published.manifest["horizon"]["first"], telemetry=writer,
                          store_id="0002", state=state)
    with pytest.raises(runner.BundleError, match="pass --store"):
        runner.serve_once(published.path, key, telemetry=writer, state=state)
    monkeypatch.setenv(runner.STORE_ENV, "0001")  # the device's store from its environment
    assert runner.serve_once(published.path, key, start=published.manifest["horizon"]["first"], horizon=1,
                             telemetry=writer, state=state)
    other, no_store, ok = tel.read_records(writer.path)
    assert (other["outcome"], other["store_id"], other["verified"]) == ("refused", "0002", False)
    assert no_store["outcome"] == "refused" and "pass --store" in no_store["error"]
    assert (ok["outcome"], ok["store_id"], ok["verified"], ok["bundle_sequence"]) == ("ok", "0001", True, 1)
    assert not (tmp_path / "0002.json").exists() and json.loads(state.read_text())["store_id"] == "0001"


def test_an_older_bundle_is_refused_once_a_newer_one_served(bundle, tmp_path):
    _root, mv, store, old, pub = bundle
    key = runner.read_public_key(pub)
    out_root = tmp_path / "bundles"
    (out_root / "store=0001").mkdir(parents=True)
    (out_root / "store=0001" / "latest.json").write_text(json.dumps({"sequence": 41}))
    new = build_bundle(mv, store, 28, load_private_key((_root / "keys" / "edge_signing.pem").read_bytes()),
                       out_root, "test", latency_runs=5)
    assert (old.manifest["sequence"], new.manifest["sequence"]) == (1, 42)
    assert json.loads((out_root / "store=0001" / "latest.json").read_text())["sequence"] == 42
    state = tmp_path / "device" / "state.json"

    def serve(b, **kw):
        kw = {"start": old.manifest["horizon"]["first"], "horizon": 2, "state": state, **kw}
        return runner.serve_once(b.path, key, telemetry=tel.TelemetryWriter(tmp_path / "t.jsonl"), store_id="0001",
                                 **kw)

    assert serve(old) and json.loads(state.read_text())["sequence"] == 1
    assert serve(new) and json.loads(state.read_text())["sequence"] == 42
    with pytest.raises(runner.BundleError, match="sequence 1 is older than sequence 42"):
        serve(old)
    assert serve(new)  # the same bundle again is fine
    assert [p.name for p in state.parent.iterdir()] == ["state.json"]  # written by rename, no temp left behind
    assert runner.main(["verify", str(old.path), "--public-key", str(pub), "--store", "0001",
                        "--state", str(state)]) == 2
    fresh = tmp_path / "fresh.json"  # recorded only after a forecast succeeded
    with pytest.raises(runner.BundleError, match="outside this bundle's horizon"):
        serve(new, start="1999-01-01", state=fresh)
    assert not fresh.exists()
    assert tel.read_records(tmp_path / "t.jsonl")[1]["bundle_sequence"] == 42
    state.write_text('{"store_id": "0001", "seq')  # a state that cannot be read is refused, not forgotten
    with pytest.raises(runner.BundleError, match="device state .* is unreadable"):
        serve(old)


def test_expired_bundles_and_manifests_without_rollback_fields_are_refused(bundle, tmp_path):
    root, _mv, _store, published, pub = bundle
    key = runner.read_public_key(pub)
    m = published.manifest
    created, expires = (dt.datetime.fromisoformat(m[k]) for k in ("created_at", "expires_at"))
    assert expires - created == dt.timedelta(days=14) and expires.tzinfo is not None
    assert runner.load_bundle(published.path, key, now=expires).manifest["sequence"] == 1
    with pytest.raises(runner.BundleError, match="bundle expired at"):
        runner.load_bundle(published.path, key, now=expires + dt.timedelta(seconds=1))
    for field in ("sequence", "expires_at", "store_id"):
        bad = _resign(root, published.path, lambda mf: {k: v for k, v in mf.items() if k != field},
                      tmp_path / "b.zip")
        with pytest.raises(runner.BundleError, match="lacks store_id, sequence or expires_at"):
            runner.load_bundle(bad, key)


def test_predict_starts_today_and_refuses_a_day_outside_the_horizon(bundle):
    _root, _mv, _store, published, pub = bundle
    loaded = runner.load_bundle(published.path, runner.read_public_key(pub))
    noon = dt.datetime.fromisoformat(f"{loaded.dates[3]}T12:00:00+00:00")
    rows = runner.predict(loaded, horizon=2, now=noon)
    assert sorted({r["date"] for r in rows}) == loaded.dates[3:5]
    with pytest.raises(runner.BundleError, match="outside this bundle's horizon"):
        runner.predict(loaded)  # today is long after this 2024 horizon: not served from its first day
    feeds, first, n = runner.inputs_for(loaded)  # the platform's checks still see the whole horizon
    assert (first, n) == (0, len(loaded.dates))


def test_a_model_file_changed_after_training_is_not_published(bundle, tmp_path):
    root, mv, store, published, _pub = bundle
    assert {i["model_sha256"] for i in published.manifest["items"].values()} == \
        {mv.manifest["items"][i]["sha256"] for i in mv.manifest["items"]}
    copy = tmp_path / mv.path.name
    shutil.copytree(mv.path, copy)
    item = next(iter(mv.manifest["items"].values()))["file"]
    (copy / item).write_text((copy / item).read_text() + " ")  # still valid JSON, still compiles
    with pytest.raises(BundleVerificationError, match="the model file changed after training"):
        build_bundle(dataclasses.replace(mv, path=copy), store, 28,
                     load_private_key((root / "keys" / "edge_signing.pem").read_bytes()), tmp_path / "b", "test",
                     latency_runs=5)
    assert not (tmp_path / "b").exists()


def test_a_nan_is_refused_at_publish(bundle, tmp_path, monkeypatch):
    root, mv, store, _published, _pub = bundle
    from retail_assets.core.edge import bundle as bundle_module

    real = bundle_module.predict_item

    def one_nan(mv_, item, future):
        out = np.array(real(mv_, item, future), dtype=float)
        if item == "SKU-1":
            out[5] = np.nan  # a reference that is not a number must not pass as "no difference"
        return out

    monkeypatch.setattr(bundle_module, "predict_item", one_nan)
    priv, _ = ensure_dev_keys(root / "keys")
    with pytest.raises(BundleVerificationError, match="inf"):
        build_bundle(mv, store, 28, load_private_key(priv.read_bytes()), tmp_path / "bundles", "test")
    assert not list((tmp_path / "bundles").rglob("*.zip"))  # nothing published


def test_the_build_latency_figure_stops_at_its_budget_after_enough_runs(bundle):
    """The publication's latency figure is bounded in time: at least LATENCY_MIN_RUNS timed runs, then it stops
    once the budget has passed; never more than the runs asked for; the manifest says how many it timed."""
    _root, _mv, _store, published, pub = bundle
    loaded = runner.load_bundle(published.path, runner.read_public_key(pub), expected_store="0001")
    spent = measure_latency(loaded, runs=10_000, budget_seconds=0.0)
    assert spent["runs"] == LATENCY_MIN_RUNS and 0 < spent["p50"] <= spent["p99"]
    capped = measure_latency(loaded, runs=7, budget_seconds=60.0)
    assert capped["runs"] == 7
    assert 0 < published.manifest["latency_ms"]["runs"] <= 200
