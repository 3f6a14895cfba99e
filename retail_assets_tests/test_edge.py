"""Edge bundles: ONNX parity with Prophet per model feature, the zip round trip, refusal cases, isolation."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prophet import Prophet
from prophet.serialize import model_to_json

from retail_assets.core import forecasting as fc
from retail_assets.core.edge_bundle import build_bundle, ensure_dev_keys, load_private_key
from retail_assets.core.edge_compile import compile_store
from retail_assets.core.serving import forecast_store
from retail_assets.core.training import train_store
from retail_assets.edge import runner
from retail_assets_tests.test_forecasting import noisy_weekly, synthetic_store

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
        "B": {"champion": "seasonal_naive", "artifact": fc.dumps(
            {"model": "seasonal_naive", "anchor_date": "2024-10-03", "last_week": week, "moving_average_level": 3})},
        "C": {"champion": "moving_average", "artifact": fc.dumps(
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
    mv = train_store(store, root / "models", "features-test", fc.TrainConfig(min_train_days=42), workers=1)
    priv, pub = ensure_dev_keys(root / "keys")
    published = build_bundle(mv, store, 28, load_private_key(priv.read_bytes()), root / "bundles", "test")
    return root, mv, store, published, pub


def test_bundle_round_trip_matches_the_served_forecast(bundle):
    _root, mv, store, published, pub = bundle
    assert published.manifest["verification"]["max_rel_error"] < 1e-6
    assert published.size_bytes < 1_000_000
    loaded = runner.load_bundle(published.path, runner.read_public_key(pub))
    rows = pd.DataFrame(runner.predict(loaded))
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


def test_runner_works_without_prophet_pandas_stan_or_dagster(bundle):
    _root, _mv, _store, published, pub = bundle
    run = lambda *args: subprocess.run([sys.executable, "-c", BLOCKER, *args],  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    ok = run("verify", str(published.path), "--public-key", str(pub))
    assert ok.returncode == 0, ok.stderr
    assert "signature and 2 file hashes verified" in ok.stdout
    out = run("predict", str(published.path), "--public-key", str(pub), "--horizon", "7", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 3 * 7 and all(r["yhat_lower"] <= r["yhat"] <= r["yhat_upper"] for r in rows)
    refused = run("predict", str(published.path), "--public-key", str(pub), "--start", "2031-01-01")
    assert refused.returncode != 0 and "outside this bundle's horizon" in refused.stderr
