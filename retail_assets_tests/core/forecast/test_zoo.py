"""The model zoo behind one interface: every model type backtested, selected, served from its artifact and
compiled into the store's edge graph with the same numbers; intermittent items served by intermittent models;
a combination's weights set only on folds that ended before the forecast they weight."""

from __future__ import annotations

import copy
import dataclasses
import hashlib

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from retail_assets.core.edge.compile import compile_store
from retail_assets.core.fitting.champion import decide
from retail_assets.core.fitting.pool import build_tasks
from retail_assets.core.fitting.store_models import add_store_models
from retail_assets.core.forecast import gbm
from retail_assets.core.forecast.backtest import recent, run_item
from retail_assets.core.forecast.combine import _end, _start
from retail_assets.core.forecast import analog
from retail_assets.core.forecast.models import MODELS
from retail_assets.core.forecast.serving import predict_artifact
from retail_assets.core.registry.versions import BOOSTER_FILE, ModelVersion, model_artifact
from retail_assets_tests.helpers import FAST, noisy_weekly, synthetic_store


def _intermittent(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(n) < 0.12).astype(float) * rng.integers(1, 5, n)


@pytest.fixture(scope="module")
def zoo_store():
    """Four regular items and one intermittent one, 300 days, every model fitted in-process."""
    items = {f"SKU-{i}": noisy_weekly(300, 4 + 5 * i, i) for i in range(4)}
    items["SKU-sparse"] = _intermittent(300, 11)
    features = synthetic_store(items)
    features.loc[features["date"].dt.dayofweek == 5, "promo_planned"] = True  # a known-ahead regressor
    cfg = dataclasses.replace(FAST, gbm_rounds=60)
    # a young store (300 days): its analog stores' mean sales, from a year and four weeks before its first day
    first, last = features["date"].min(), features.loc[~features["is_future"], "date"].max()
    start = first - pd.Timedelta(days=analog.YEAR + analog.PROFILE_DAYS)
    days = pd.date_range(start, last)
    ref = pd.concat([pd.DataFrame({"item_id": item, "date": days,
                                   "analog_units": noisy_weekly(len(days), 6 + 4 * k, 100 + k)})
                     for k, item in enumerate(items)])
    reference = analog.reference_frame(ref, sorted(items), start, last, ["0002", "0003"], "test")
    tasks = build_tasks(features, cfg, analog_reference=reference)
    results = [run_item(t) for t in tasks]
    booster_text, figures = add_store_models(tasks, results, cfg)
    return features, cfg, results, booster_text, figures


def test_every_model_type_backtests_and_the_intermittent_item_gets_an_intermittent_model(zoo_store):
    _features, cfg, results, booster_text, figures = zoo_store
    assert set(booster_text) == {BOOSTER_FILE} and figures["gbm_fits"] >= 2  # no weather data: plain trees
    assert figures["seasonal_index_fits"] == len({f.dates[0] for r in results for f in r.folds}) + 1
    regular = [r for r in results if r.item_id != "SKU-sparse"]
    for r in regular:
        assert not r.intermittent
        for f in recent(r.folds):
            assert {"prophet", "seasonal_naive", "ets", "theta", "lightgbm", "seasonal_index", "analog"} <= set(f.yhat)
    sparse = next(r for r in results if r.item_id == "SKU-sparse")
    assert sparse.intermittent and {"croston_sba", "tsb"} <= set(recent(sparse.folds)[-1].yhat)
    training = decide("0001", results, cfg, booster_text)
    champions = {d.item_id: d.champion for d in training.decisions}
    assert champions["SKU-sparse"] in ("croston_sba", "tsb"), champions
    assert "intermittent item" in next(d.reason for d in training.decisions if d.item_id == "SKU-sparse")
    alone = training.summary["heldout_weighted_wape_alone"]
    assert set(alone) >= {"prophet", "lightgbm", "ets", "combination"} and all(v is not None for v in alone.values())


def test_combination_weights_never_see_the_fold_they_weight(zoo_store):
    from retail_assets.core.forecast.combine import weights_from

    _features, _cfg, results, _booster, _figures = zoo_store
    for r in results:
        folds = sorted(r.folds, key=_start)
        first, *later = folds
        assert first.weights is not None and len(set(first.weights.values())) == 1  # no earlier fold: equal
        for f in later:
            earlier = [g for g in folds if _end(g) < _start(f)]
            assert earlier
            # change every actual of this fold and after: the weights it was combined with cannot move
            tampered = [dataclasses.replace(g, y=[v * 5 + 3 for v in g.y]) if _end(g) >= _start(f) else g
                        for g in folds]
            again = weights_from([g for g in tampered if _end(g) < _start(f)], set(f.yhat))
            assert again == f.weights
            combo = np.sum([w * np.array(f.yhat[m]) for m, w in f.weights.items()], axis=0)
            assert np.allclose(f.yhat["combination"], combo)
        assert r.weights and abs(sum(r.weights.values()) - 1) < 1e-9


def _version_dir(tmp_path, boosters: dict[str, str]) -> ModelVersion:
    for name, text in boosters.items():
        (tmp_path / name).write_text(text)
    return ModelVersion("0001", "vtest", tmp_path, {})


@pytest.mark.parametrize("model", [m for m in MODELS if m != "moving_average"])
def test_onnx_graph_matches_each_served_model(zoo_store, tmp_path, model):
    """Every item compiled with `model` as its champion: the graph reproduces the served model's forecast
    (its library's own predict, the stored path or the weighted parts) on every item and day."""
    features, cfg, results, booster_text, _figures = zoo_store
    _assert_graph_serves(features, cfg, results, booster_text, model, tmp_path)


@pytest.mark.parametrize("variant", gbm.VARIANTS)
def test_each_lightgbm_variant_is_chosen_on_earlier_folds_and_compiles_to_the_same_numbers(
        zoo_store, tmp_path, variant):
    """A store restricted to one variant serves it (recorded in the figures, and in each item's state), and the
    float64 graph with its trees, categorical item splits included, reproduces LightGBM's own predict."""
    features, cfg, results, _booster, figures = zoo_store
    assert figures["gbm_variant"] in gbm.VARIANTS and set(figures["gbm_variant_wape"]) == set(gbm.VARIANTS)
    one = dataclasses.replace(cfg, gbm_variants=(variant,))
    fresh = copy.deepcopy(results)
    for r in fresh:  # this store's LightGBM and combinations are made anew
        r.future_yhat = {m: v for m, v in r.future_yhat.items() if m not in ("lightgbm", "combination")}
        for f in r.folds:
            f.yhat = {m: v for m, v in f.yhat.items() if m not in ("lightgbm", "combination")}
    booster_text, again = add_store_models(build_tasks(features, one), fresh, one)
    assert again["gbm_variant"] == variant and set(again["gbm_variant_wape"]) == {variant}
    regular = [r for r in fresh if not r.intermittent]
    assert all(r.gbm_state["variant"] == variant for r in regular)
    if variant == "calendar":  # units from item x calendar: no level, no year-ago ratio
        assert all(set(r.gbm_state["level_path"]) == {0.0} for r in regular)
    _assert_graph_serves(features, one, fresh, booster_text, "lightgbm", tmp_path)


def _assert_graph_serves(features, cfg, results, boosters, model, tmp_path) -> None:
    mv = _version_dir(tmp_path, boosters)
    sha = {name: hashlib.sha256(text.encode()).hexdigest() for name, text in boosters.items()}
    served = [r for r in results if model in r.future_yhat and (model != "combination" or r.weights)]
    assert served, f"no item has a served {model}"
    items = {r.item_id: {"champion": model, "artifact": model_artifact(model, r, sha)} for r in served}
    compiled = compile_store(items, boosters)
    fut = features[features["is_future"] & (features["item_id"] == served[0].item_id)].head(cfg.horizon)
    dates = fut["date"].reset_index(drop=True)
    promo = {r.item_id: features[features["is_future"] & (features["item_id"] == r.item_id)]
             .head(cfg.horizon)["promo_planned"].astype(float).to_numpy() for r in served}
    session = ort.InferenceSession(compiled.onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = {"t_days": ((dates - pd.Timestamp("1970-01-01")).dt.days).to_numpy(float),
             "holiday": np.zeros((len(dates), len(compiled.holidays))),
             "promo": np.stack([promo[i] for i in compiled.items]), "open": np.ones(len(dates))}
    if any(i.name == "calendar" for i in session.get_inputs()):
        feeds["calendar"] = gbm.calendar_inputs(dates, np.zeros(len(dates)))
    assert ("calendar" in feeds) == (model in ("lightgbm", "combination") and any(
        "lightgbm" in r.weights for r in served) or model == "lightgbm")
    (yhat,) = session.run(["yhat"], feeds)
    for k, item in enumerate(compiled.items):
        future = pd.DataFrame({"ds": dates, "promo": promo[item], "is_holiday": False})
        ref = np.clip(predict_artifact(mv, model, items[item]["artifact"], future), 0, None)
        assert np.all(np.isfinite(yhat[k]))
        np.testing.assert_allclose(yhat[k], ref, rtol=1e-5, atol=1e-6, err_msg=f"{model} {item}")
        # and the artifact serves what the fit forecast when it was made (nothing lost in the stored format)
        fitted = next(r for r in served if r.item_id == item).future_yhat[model]
        np.testing.assert_allclose(ref, fitted, rtol=1e-6, atol=1e-6, err_msg=f"{model} {item} stored")


def test_holiday_windows_forecast_a_christmas_run_up_better_than_the_day_alone():
    """Two weeks of rising demand before Christmas each year: Prophet with the retail window of Christmas Day
    (models.HOLIDAY_WINDOWS) forecasts the third December's run-up better than with the holiday's day alone."""
    from retail_assets.core.forecast.models import ProphetSpec, fit_prophet, holidays_frame, prophet_predict
    from retail_assets.core.metrics import wape

    dates = pd.Series(pd.date_range("2021-01-01", "2023-12-26"))
    rng = np.random.default_rng(3)
    to_xmas = np.array([(pd.Timestamp(d.year, 12, 25) - d).days for d in dates])
    ramp = np.where((to_xmas > 0) & (to_xmas <= 14), 1.5 * (1 - to_xmas / 15), 0.0)
    y = rng.poisson(20 * (1 + 0.2 * (dates.dt.dayofweek.to_numpy() >= 5)) * (1 + ramp)).astype(float)
    names = pd.Series(np.where((dates.dt.month == 12) & (dates.dt.day == 25), "Christmas Day", None))
    train = pd.DataFrame({"ds": dates, "y": y, "promo": 0})[dates < "2023-12-01"]
    test = pd.DataFrame({"ds": dates, "y": y, "promo": 0})[(dates >= "2023-12-01") & (dates <= "2023-12-24")]
    spec = ProphetSpec(yearly=True, weekly=True, mode="multiplicative", promo=False)
    scores = {}
    for windows in (True, False):
        model, _start = fit_prophet(train, holidays_frame(dates, names, windows=windows), FAST, spec)
        scores[windows] = wape(test["y"].to_numpy(), prophet_predict(model, test)["yhat"].to_numpy())
    assert scores[True] < 0.9 * scores[False], scores  # measured: 0.195 with the window, 0.232 without


def test_intervals_are_calibrated_per_model_and_volume_class():
    """A model whose errors are three times another's gets its own, wider interval; a fast seller's pool is not
    a slow seller's; a pool with too few residuals borrows its model's, then the store's."""
    from retail_assets.core.forecast.backtest import FoldForecast
    from retail_assets.core.forecast.calibration import MIN_GROUP_RESIDUALS, calibrate_set, interval_coverage

    rng = np.random.default_rng(2)
    pairs = []
    for k in range(120):
        level = [30.0, 100.0, 300.0][k % 3]
        model, noise = ("lightgbm", 0.5) if k % 2 else ("prophet", 1.5)  # sd noise x sqrt(level): never below 0
        y = level + rng.normal(0, noise * np.sqrt(level), 14)
        f = FoldForecast(fold=0, kind="recent", dates=[f"2024-01-{d + 1:02d}" for d in range(14)], y=y.tolist(),
                         open_day=[True] * 14, yhat={model: [level] * 14}, raw_lower=None, raw_upper=None,
                         scale=1.0, level=level)
        pairs.append((f, model))
    cal = calibrate_set(pairs, FAST)
    assert cal.key("prophet", 300.0) == "prophet|high" and cal.key("lightgbm", 30.0) == "lightgbm|low"
    wide, narrow = cal.for_item("prophet", 100.0), cal.for_item("lightgbm", 100.0)
    assert wide.upper[0] > 2 * narrow.upper[0] and wide.lower[0] < 2 * narrow.lower[0]
    assert cal.key("ets", 100.0) == "store"  # no residual of ets at all: the store's pool
    for model in ("prophet", "lightgbm"):
        own = [(f, m) for f, m in pairs if m == model]
        assert 0.75 <= interval_coverage(own, cal) <= 0.9  # each model near the nominal 80 %, not one over, one under
    small = calibrate_set(pairs[:12], FAST)  # 6 folds x 14 days per model: under MIN_GROUP_RESIDUALS
    assert 12 * 14 < MIN_GROUP_RESIDUALS and small.groups == {} and small.key("prophet", 300.0) == "store"
