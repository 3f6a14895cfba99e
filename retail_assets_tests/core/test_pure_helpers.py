"""Pure forecasting helpers without a model fit: seasonal naive, champion choice on given fold forecasts, and the
split-conformal calibration of intervals per horizon bucket. Each runs in milliseconds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retail_assets.core.forecast.backtest import FoldForecast, ItemResult
from retail_assets.core.forecast.calibration import (
    Calibration,
    calibrate,
    interval_coverage,
)
from retail_assets.core.forecast.models import MODELS, TrainConfig, seasonal_naive
from retail_assets.core.forecast.selection import choose_champion

# ---------------------------------------------------------------- seasonal naive


def test_seasonal_naive_repeats_the_last_week_weekday_by_weekday():
    y = np.arange(1.0, 15.0)  # two weeks: 1..14
    out = seasonal_naive(y, np.ones(14, bool), horizon=10)
    # forecast day h is the same weekday as training day n - 7 + h % 7
    assert out.tolist() == [8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 8.0, 9.0, 10.0]
    assert out.dtype == float


def test_seasonal_naive_takes_the_last_open_same_weekday():
    y = np.arange(1.0, 22.0)  # three weeks: 1..21
    open_day = np.ones(21, bool)
    open_day[17] = False  # closed last week (a Thanksgiving): its weekday comes from the week before (11)
    open_day[16] = open_day[9] = False  # closed two weeks running: from three weeks back (3)
    y[19] = np.nan  # open but no figure: the week before (13)
    out = seasonal_naive(y, open_day, horizon=14)
    assert out.tolist() == [15.0, 16.0, 3.0, 11.0, 19.0, 13.0, 21.0] * 2


def test_seasonal_naive_a_weekday_never_open_stays_zero():
    y = np.arange(1.0, 22.0)
    open_day = np.ones(21, bool)
    open_day[[6, 13, 20]] = False  # closed every Sunday
    assert seasonal_naive(y, open_day, horizon=7).tolist() == [15.0, 16.0, 17.0, 18.0, 19.0, 20.0, 0.0]


def test_seasonal_naive_short_and_empty_history():
    # shorter than a season: weekdays it saw repeat, the others get its open mean
    out = seasonal_naive(np.array([1.0, 2.0, 3.0]), np.ones(3, bool), horizon=9)
    assert out.tolist() == [2.0, 2.0, 2.0, 2.0, 1.0, 2.0, 3.0, 2.0, 2.0]
    assert seasonal_naive(np.array([]), np.array([], bool), horizon=3).tolist() == [0.0, 0.0, 0.0]
    assert seasonal_naive(np.arange(10.0), np.ones(10, bool), horizon=0).tolist() == []


def test_seasonal_naive_weekly_data_repeats_last_year():
    y = np.arange(104.0)  # two years of weeks
    out = seasonal_naive(y, np.ones(104, bool), horizon=60, season=TrainConfig(freq="W").season)
    assert out.tolist() == [52.0 + h % 52 for h in range(60)]


# ---------------------------------------------------------------- champion choice on fold forecasts


def _item(y, yhat: dict, open_day=None, prophet_json: str | None = "{}") -> tuple[ItemResult, list]:
    n = len(y)
    fold = FoldForecast(fold=0, kind="recent", dates=[f"2024-01-{d + 1:02d}" for d in range(n)], y=list(y),
                           open_day=list(open_day) if open_day is not None else [True] * n,
                           yhat={m: list(v) for m, v in yhat.items()}, raw_lower=None, raw_upper=None, scale=1.0)
    served = {m: [0.0] * n for m in yhat if m != "prophet" or prophet_json is not None}  # what a final fit gave
    return ItemResult("0001", "SKU-1", folds=[fold], prophet_json=prophet_json, future_yhat=served), [fold]


def test_champion_is_the_lowest_wape():
    r, folds = _item([10, 10, 10, 10], {"prophet": [10, 10, 10, 11], "seasonal_naive": [8, 8, 8, 8],
                                        "moving_average": [12, 12, 12, 9]})
    best, reason, scores = choose_champion(r, folds)
    assert best == "prophet"
    assert scores["prophet"]["wape"] == 0.025 and scores["seasonal_naive"]["wape"] == 0.2
    assert scores["moving_average"]["bias"] == pytest.approx(0.125)  # (2 + 2 + 2 - 1) / 40
    assert scores["moving_average"]["wape"] == pytest.approx(0.175)
    assert scores["seasonal_naive"]["n"] == 4
    assert reason.startswith("prophet has the lowest backtest WAPE 0.025")


def test_champion_ties_and_a_failed_prophet_go_to_the_baseline():
    r, folds = _item([10, 10], {"prophet": [9, 9], "seasonal_naive": [11, 11], "moving_average": [9, 11]})
    assert choose_champion(r, folds)[0] == "seasonal_naive"  # all three at WAPE 0.1
    r, folds = _item([10, 10], {"prophet": [10, 10], "seasonal_naive": [8, 8], "moving_average": [7, 7]},
                     prophet_json=None)
    best, reason, _ = choose_champion(r, folds)
    assert best == "seasonal_naive"
    assert reason.startswith("prophet backtested best but has no final fit to serve: serving seasonal naive")


def test_closed_days_do_not_count():
    # a closed day's actual (here a bogus 500) is not scored: counted, it would make every model's WAPE ~0.96
    r, folds = _item([10, 500, 10], {"prophet": [10, 0, 10], "seasonal_naive": [12, 0, 12],
                                     "moving_average": [11, 0, 11]}, open_day=[True, False, True])
    best, _reason, scores = choose_champion(r, folds)
    assert scores["prophet"]["wape"] == 0.0 and scores["prophet"]["n"] == 2
    assert scores["seasonal_naive"]["wape"] == 0.2 and scores["moving_average"]["wape"] == 0.1
    assert best == "prophet"


def test_an_item_that_sold_nothing_keeps_the_model_that_forecast_nothing():
    """The zero-actuals rule champion selection has always used: WAPE 0.0 for a zero forecast, +inf for any
    other, the tie to the baseline; bias is NaN (undefined), not 0.0."""
    zero = [0.0] * 7
    r, folds = _item(zero, {"prophet": [0.3] * 7, "seasonal_naive": zero, "moving_average": zero})
    best, _reason, scores = choose_champion(r, folds)
    assert best == "seasonal_naive"
    assert scores["prophet"]["wape"] == math.inf and scores["seasonal_naive"]["wape"] == 0.0
    assert all(math.isnan(scores[m]["bias"]) for m in MODELS)
    r, folds = _item(zero, {"prophet": [0.3] * 7, "seasonal_naive": [1.0] * 7, "moving_average": zero})
    assert choose_champion(r, folds)[0] == "moving_average"
    r, folds = _item(zero, {"prophet": [0.3] * 7, "seasonal_naive": [1.0] * 7, "moving_average": [0.5] * 7})
    assert choose_champion(r, folds)[0] == "seasonal_naive"  # all +inf: the baseline


def test_a_forecast_with_gaps_never_wins():
    """NaN in a forecast makes its WAPE NaN (undefined); selection ranks it last, as it did +inf before."""
    gap = [1.0, math.nan, 1.0]
    r, folds = _item([2.0, 2.0, 2.0], {"prophet": gap, "seasonal_naive": [1.0] * 3, "moving_average": [3.5] * 3})
    best, _reason, scores = choose_champion(r, folds)
    assert math.isnan(scores["prophet"]["wape"]) and best == "seasonal_naive"
    r, folds = _item([0.0] * 3, {"prophet": gap, "seasonal_naive": [1.0] * 3, "moving_average": [0.0] * 3})
    assert choose_champion(r, folds)[0] == "moving_average"
    r, folds = _item([0.0] * 3, {"prophet": gap, "seasonal_naive": [1.0] * 3, "moving_average": [1.0] * 3})
    assert choose_champion(r, folds)[0] == "seasonal_naive"


def test_no_folds_or_no_forecast():
    r, _folds = _item([1.0], {"seasonal_naive": [1.0], "moving_average": [1.0]})
    assert choose_champion(r, [])[0] == "seasonal_naive"
    scores = choose_champion(r, r.folds)[2]
    assert scores["prophet"]["wape"] == math.inf and scores["prophet"]["n"] == 0  # prophet did not forecast


# ---------------------------------------------------------------- calibration


CFG = TrainConfig()  # 28-day folds in 4 buckets of 7 days, 80% nominal
YHAT = 100.0  # with level == yhat the local scale is the item scale: residuals are in units


def _folds(rng, count: int, sigma=lambda h: 1.0 + h // 7) -> list[tuple[FoldForecast, str]]:
    """`count` folds of 28 days, residual spread growing per week of horizon (1, 2, 3, 4 units)."""
    pairs = []
    for _ in range(count):
        r = np.array([rng.normal(0, sigma(h)) for h in range(CFG.fold_horizon)])
        r = np.round(r * 2**20) / 2**20  # dyadic: yhat + r is exact, so bounds compare exactly
        pairs.append((FoldForecast(fold=0, kind="recent", dates=[""] * CFG.fold_horizon,
                                      y=(YHAT + r).tolist(), open_day=[True] * CFG.fold_horizon,
                                      yhat={"m": [YHAT] * CFG.fold_horizon}, raw_lower=None, raw_upper=None,
                                      scale=1.0, level=YHAT), "m"))
    return pairs


def _coverage_per_bucket(pairs, cal: Calibration) -> list[float]:
    hits, total = np.zeros(CFG.horizon_buckets), np.zeros(CFG.horizon_buckets)
    for f, model in pairs:
        lo, hi = cal.bounds(np.array(f.yhat[model]), f.scale, f.level)
        y = np.array(f.y)
        for h in range(len(y)):
            if f.open_day[h]:
                b = min(h // cal.bucket_days, CFG.horizon_buckets - 1)
                hits[b] += lo[h] <= y[h] <= hi[h]
                total[b] += 1
    return (hits / total).tolist()


@pytest.mark.parametrize("folds", [15, 100])
def test_calibrated_interval_covers_the_nominal_share_per_horizon_bucket(folds):
    pairs = _folds(np.random.default_rng(5), folds)
    cal = calibrate(pairs, CFG)
    n = 7 * folds  # residuals per bucket
    assert cal.bucket_days == 7 and cal.n == (n,) * 4
    for b, cov in enumerate(_coverage_per_bucket(pairs, cal)):
        # finite-sample conformal: at least the nominal share (plain 10%/90% quantiles fall short with 15
        # folds), and not more than a few points over
        assert CFG.interval <= cov <= CFG.interval + 4 / n, (b, cov)
    assert interval_coverage(pairs, cal) >= CFG.interval


def test_calibrated_interval_widens_with_the_horizon():
    cal = calibrate(_folds(np.random.default_rng(5), 100), CFG)
    widths = [u - lo for lo, u in zip(cal.lower, cal.upper)]
    assert widths == sorted(widths) and widths[-1] > 3 * widths[0]  # later weeks are wider: bucketed by horizon
    for b, w in enumerate(widths):  # a normal 80% interval is 2 x 1.2816 sigma wide
        assert w == pytest.approx(2 * 1.2816 * (1 + b), rel=0.15)
    assert all(lo < 0 < u for lo, u in zip(cal.lower, cal.upper))


def test_calibrated_interval_holds_out_of_sample():
    rng = np.random.default_rng(17)
    cal = calibrate(_folds(rng, 100), CFG)
    for cov in _coverage_per_bucket(_folds(rng, 200), cal):
        assert abs(cov - CFG.interval) < 0.04


def test_a_single_bucket_interval_is_not_bucketed():
    cfg = TrainConfig(horizon_buckets=1)
    cal = calibrate(_folds(np.random.default_rng(5), 50), cfg)
    assert cal.bucket_days == 28 and cal.n == (1400,) and len(cal.lower) == 1


def test_closed_days_do_not_calibrate():
    pairs = _folds(np.random.default_rng(5), 20)
    f = pairs[0][0]
    closed = FoldForecast(fold=0, kind="recent", dates=f.dates, y=[1e6] * 28, open_day=[False] * 28,
                             yhat=f.yhat, raw_lower=None, raw_upper=None, scale=1.0, level=YHAT)
    assert calibrate(pairs + [(closed, "m")], CFG) == calibrate(pairs, CFG)


def test_few_residuals_fall_back_to_two_scales_and_bounds_stay_sane():
    cal = calibrate(_folds(np.random.default_rng(5), 1), CFG)  # 7 residuals per bucket < 10
    assert cal.lower == (-2.0,) * 4 and cal.upper == (2.0,) * 4 and cal.n == (7, 7, 7, 7)
    lo, hi = cal.bounds(np.array([0.5, 10.0, 0.0]), scale=1.0, level=0.0)
    assert lo.min() >= 0  # never below zero units
    assert (lo <= np.array([0.5, 10.0, 0.0])).all() and (hi >= np.array([0.5, 10.0, 0.0])).all()


def test_one_sided_residuals_still_contain_the_forecast():
    # the forecast is always too low: the lower offset is clamped to 0, so the interval still contains yhat
    pairs = _folds(np.random.default_rng(5), 20, sigma=lambda h: 1.0)
    for f, _m in pairs:
        f.y[:] = [YHAT + abs(v - YHAT) + 0.5 for v in f.y]
    cal = calibrate(pairs, CFG)
    assert cal.lower == (0.0,) * 4 and all(u > 0.5 for u in cal.upper)
