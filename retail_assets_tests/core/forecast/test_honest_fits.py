"""What a fit reports is what it did: warm starts that really start warm (and fallbacks said as fallbacks), one
Prophet specification per item at every origin, held-out figures that never lean on the final fit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from retail_assets.core.fitting.champion import decide
from retail_assets.core.fitting.pool import build_tasks, run_items
from retail_assets.core.forecast import backtest
from retail_assets.core.forecast.backtest import FoldForecast, ItemResult, run_item
from retail_assets.core.forecast.models import TrainConfig, fit_prophet, prophet_init, prophet_spec
from retail_assets.core.forecast.selection import choose_champion
from retail_assets_tests.helpers import FAST, noisy_weekly, synthetic_store


def _train(n: int, seed: int = 1) -> pd.DataFrame:
    return pd.DataFrame({"ds": pd.date_range("2023-01-01", periods=n, freq="D"),
                         "y": noisy_weekly(n, 10, seed), "promo": 0})


def test_a_warm_start_starts_warm_and_says_so():
    cfg = TrainConfig()
    first = _train(120)
    spec = prophet_spec(first, cfg)
    cold, start = fit_prophet(first, None, cfg, spec)
    assert start == "cold"
    init = prophet_init(cold)  # lists, as a stored version gives them back
    warm, start = fit_prophet(_train(127), None, cfg, spec, init)
    assert start == "warm"  # Prophet 1.5 used every parameter: delta and beta had the right shapes
    assert np.isfinite(warm.params["k"]).all()


def test_an_init_of_another_shape_is_reported_as_partial():
    cfg = TrainConfig()
    train = _train(120)
    spec = prophet_spec(train, cfg)
    init = prophet_init(fit_prophet(train, None, cfg, spec)[0])
    init["beta"] = init["beta"][:-2]  # a seasonality the previous model did not have
    _model, start = fit_prophet(train, None, cfg, spec, init)
    assert start == "partial"  # trend and noise from the init, Prophet's own seasonality start: not "warm"


def test_a_retrain_records_how_every_fit_started():
    features = synthetic_store({"SKU-A": noisy_weekly(140, 10, 1), "SKU-B": noisy_weekly(140, 6, 2)})
    results = run_items(build_tasks(features, FAST), workers=1)
    assert all(r.fit_starts.get("cold") == 1 and r.fit_starts.get("warm", 0) + r.fit_starts.get("partial", 0)
               == r.fits - 1 for r in results)  # the first fold cold, then each fold from the one before
    summary = decide("0001", results, FAST).summary
    assert summary["prophet_fit_starts"]["cold"] == 2
    assert summary["warm_started_items"] == sum(r.final_start == "warm" for r in results)
    assert sum(summary["prophet_fit_starts"].values()) == summary["fits"]


def test_one_specification_at_every_origin(monkeypatch):
    # 800 days: yearly seasonality for the served fit; the folds' shorter windows used to drop it
    cfg = TrainConfig(horizon=14, folds=3, fold_horizon=14, min_train_days=42, yearly_min_days=790,
                      raw_interval_samples=10)
    task = build_tasks(synthetic_store({"SKU-A": noisy_weekly(800, 10, 3)}), cfg)[0]
    specs = []
    real = backtest.fit_prophet

    def spy(train, holidays, cfg_, spec, init=None, uncertainty_samples=0):
        specs.append(spec)
        return real(train, holidays, cfg_, spec, init, uncertainty_samples)

    monkeypatch.setattr(backtest, "fit_prophet", spy)
    result = run_item(task)
    assert len(specs) == result.fits >= 4
    assert len(set(specs)) == 1 and specs[0].yearly  # the served model's specification, at every origin
    assert result.spec == specs[0].to_json()


def _fold(y, yhat: dict) -> FoldForecast:
    n = len(y)
    return FoldForecast(fold=0, kind="recent", dates=[f"2024-01-{d + 1:02d}" for d in range(n)], y=list(y),
                        open_day=[True] * n, yhat=yhat, raw_lower=None, raw_upper=None, scale=1.0)


def test_the_held_out_choice_does_not_lean_on_the_final_fit():
    # Prophet won the earlier folds, then the final fit (which saw the held-out fold) failed
    y = [10.0] * 7
    folds = [_fold(y, {"prophet": y, "seasonal_naive": [5.0] * 7, "moving_average": [6.0] * 7})]
    result = ItemResult("0001", "SKU-A", folds=folds, prophet_json=None, prophet_error="final fit failed",
                        future_yhat={"seasonal_naive": [5.0] * 7, "moving_average": [6.0] * 7})
    assert choose_champion(result, folds, serving=False)[0] == "prophet"  # judged on its folds
    assert choose_champion(result, folds)[0] == "moving_average"  # the best servable: never without a final fit


def test_held_out_medians_are_over_the_same_items():
    cfg = TrainConfig(horizon=7, folds=2, fold_horizon=7)
    sold = [4.0] * 7
    results = []
    for item, y_last in (("A", sold), ("B", [0.0] * 7)):  # B sold nothing in the held-out week: WAPE inf
        f0 = _fold(sold, {"prophet": sold, "seasonal_naive": [3.0] * 7, "moving_average": [3.5] * 7})
        f1 = _fold(y_last, {"prophet": [4.5] * 7, "seasonal_naive": [1.0] * 7, "moving_average": [2.0] * 7})
        f1.fold = 1
        served = {m: [1.0] * 7 for m in ("prophet", "seasonal_naive", "moving_average")}
        results.append(ItemResult("0001", item, folds=[f0, f1], prophet_json="{}", future_yhat=served))
    summary = decide("0001", results, cfg).summary
    assert summary["heldout_median_items"] == 1
    assert math.isclose(summary["heldout_median_wape_champion"], 0.5 / 4)
    assert math.isclose(summary["heldout_median_wape_seasonal_naive"], 3.0 / 4)


@pytest.mark.parametrize("closed_weekday", [3])
def test_served_seasonal_naive_does_not_repeat_a_holiday_closure(closed_weekday):
    features = synthetic_store({"SKU-A": noisy_weekly(140, 10, 4)}, horizon=14)
    hist_days = features[~features["is_future"]].index
    closed = hist_days[-7 + closed_weekday]  # a closure in the last week of history
    features.loc[closed, "is_open_day"] = False
    result = run_items(build_tasks(features, FAST), workers=1)[0]
    naive = np.array(result.future_yhat["seasonal_naive"])
    assert naive[closed_weekday] > 0 and naive[closed_weekday + 7] > 0
    assert result.baseline_state["last_week"][closed_weekday] > 0  # what serving and the edge repeat


def test_held_out_interval_is_judged_by_width_and_score_too():
    features = synthetic_store({"SKU-A": noisy_weekly(140, 10, 5), "SKU-B": noisy_weekly(140, 3, 6)})
    summary = decide("0001", run_items(build_tasks(features, FAST), workers=1), FAST).summary
    width, score = summary["heldout_interval_mean_width"], summary["heldout_interval_score"]
    assert 0 < width <= score  # the score is the width plus the penalties for misses
    assert summary["heldout_interval_score_relative"] > 0
