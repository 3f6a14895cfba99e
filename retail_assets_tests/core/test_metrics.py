"""core/metrics: WAPE, bias and PSI, the one definition training and monitoring share. Pure and fast."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retail_assets.core import metrics
from retail_assets.core.fitting import champion
from retail_assets.core.forecast import selection
from retail_assets.core.monitor import signals as monitoring

# a day's units of one item, or its forecast: zero, or a real quantity (no subnormal dust)
unit = st.one_of(st.just(0.0), st.floats(min_value=1e-3, max_value=1e4))
units = st.lists(unit, min_size=1, max_size=60)
# (actuals, forecast) of equal length
pairs = st.integers(1, 60).flatmap(lambda n: st.tuples(st.lists(unit, min_size=n, max_size=n),
                                                       st.lists(unit, min_size=n, max_size=n)))


# ---------------------------------------------------------------- one definition


def test_training_and_monitoring_use_the_same_functions():
    assert selection.wape is metrics.wape and selection.bias is metrics.bias and champion.wape is metrics.wape
    assert monitoring.wape is metrics.wape and monitoring.bias is metrics.bias and monitoring.psi is metrics.psi


# ---------------------------------------------------------------- wape and bias: values


def test_wape_and_bias_known_values():
    y, yhat = np.array([10.0, 0.0, 5.0, 5.0]), np.array([8.0, 2.0, 5.0, 7.0])
    assert metrics.wape(y, yhat) == 0.3  # (2 + 2 + 0 + 2) / 20
    assert metrics.bias(y, yhat) == 0.1  # (-2 + 2 + 0 + 2) / 20
    assert metrics.bias(yhat=y, y=yhat) == pytest.approx(-2 / 22)
    assert metrics.wape([4.0, 4.0], [0.0, 0.0]) == 1.0  # a zero forecast misses everything
    assert metrics.bias([4.0, 4.0], [0.0, 0.0]) == -1.0


def test_negative_actuals_count_by_size_in_the_denominator():
    # returns: the volume is sum |y|, so a return does not shrink the denominator
    assert metrics.wape([-2.0, 4.0], [0.0, 4.0]) == pytest.approx(2 / 6)
    assert metrics.bias([-2.0, 4.0], [0.0, 4.0]) == pytest.approx(2 / 6)


def test_zero_actuals_rule():
    zeros = np.zeros(5)
    # perfect on nothing: 0.0; any error against nothing: +inf (orders above every finite WAPE)
    assert metrics.wape(zeros, zeros) == 0.0
    assert metrics.wape(zeros, np.array([0, 0, 0.5, 0, 0])) == math.inf
    # within np.allclose's 1e-8 a forecast counts as zero: the value champion selection has always used
    assert metrics.wape(zeros, np.full(5, 1e-9)) == 0.0
    assert metrics.wape(zeros, np.full(5, 1e-6)) == math.inf
    # nothing sold: bias is undefined, not "no bias"
    assert math.isnan(metrics.bias(zeros, zeros))
    assert math.isnan(metrics.bias(zeros, np.ones(5)))


def test_empty_window():
    assert metrics.wape([], []) == 0.0
    assert math.isnan(metrics.bias([], []))


@pytest.mark.parametrize("y, yhat", [
    ([1.0, math.nan, 3.0], [1.0, 2.0, 3.0]),
    ([1.0, 2.0, 3.0], [1.0, math.nan, 3.0]),
    ([0.0, math.nan], [0.0, 0.0]),  # zero actuals and a gap: still missing, not "perfect"
    ([0.0, 0.0], [0.0, math.nan]),
])
def test_nan_anywhere_is_nan(y, yhat):
    assert math.isnan(metrics.wape(y, yhat))
    assert math.isnan(metrics.bias(y, yhat))


def test_shapes_must_match():
    with pytest.raises(ValueError, match="shape"):
        metrics.wape([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="shape"):
        metrics.bias([1.0, 2.0], [1.0, 2.0, 3.0])


def test_integer_actuals_score_like_floats():
    y, yhat = np.array([3, 0, 7], dtype=np.int64), np.array([2.5, 1.0, 7.0])
    assert metrics.wape(y, yhat) == metrics.wape(y.astype(float), yhat) == 0.15
    assert metrics.bias(y, yhat) == pytest.approx(0.05)


# ---------------------------------------------------------------- wape and bias: properties


@settings(max_examples=200, deadline=None)
@given(units)
def test_a_perfect_forecast_scores_zero(y):
    y = np.array(y)
    assert metrics.wape(y, y) == 0.0
    if np.abs(y).sum() > 0:
        assert metrics.bias(y, y) == 0.0
    else:
        assert math.isnan(metrics.bias(y, y))


@settings(max_examples=200, deadline=None)
@given(pairs)
def test_bias_never_exceeds_wape_and_both_are_bounded(pair):
    y, yhat = (np.array(v) for v in pair)
    w, b = metrics.wape(y, yhat), metrics.bias(y, yhat)
    assert w >= 0
    if y.sum() > 0:
        assert abs(b) <= w * (1 + 1e-12) + 1e-12  # |sum e| <= sum |e|
        assert b >= -1 - 1e-12  # a forecast of non-negative units cannot be more than 100% too low
    else:
        assert math.isnan(b)
        assert w == (0.0 if np.allclose(yhat, 0) else math.inf)


@settings(max_examples=200, deadline=None)
@given(pairs, st.integers(-8, 8))
def test_wape_and_bias_do_not_depend_on_the_unit(pair, k):
    y, yhat = (np.array(v) for v in pair)
    c = 2.0 ** k  # exact in binary floating point
    if y.sum() > 0:
        assert metrics.wape(c * y, c * yhat) == pytest.approx(metrics.wape(y, yhat), rel=1e-12)
        assert metrics.bias(c * y, c * yhat) == pytest.approx(metrics.bias(y, yhat), rel=1e-12, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(units, st.floats(-1, 3))
def test_a_proportional_forecast_has_that_bias(y, k):
    y = np.array(y)
    if y.sum() > 0:
        assert metrics.bias(y, (1 + k) * y) == pytest.approx(k, abs=1e-9)
        assert metrics.wape(y, (1 + k) * y) == pytest.approx(abs(k), abs=1e-9)


def _legacy_training_wape(y: np.ndarray, yhat: np.ndarray) -> float:
    """forecasting.wape before the move to core/metrics, verbatim: what every champion so far was chosen by."""
    denom = float(np.abs(y).sum())
    return float(np.abs(y - yhat).sum() / denom) if denom > 0 else (0.0 if np.allclose(yhat, 0) else math.inf)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 40).flatmap(lambda n: st.tuples(
    st.lists(st.one_of(unit, st.integers(0, 50).map(float), st.floats(-1e4, 1e4)), min_size=n, max_size=n),
    st.lists(st.one_of(unit, st.just(1e-9), st.floats(0, 1e4)), min_size=n, max_size=n))))
def test_wape_is_bit_identical_to_the_selection_metric_before(pair):
    """Champion choice orders by WAPE: on NaN-free input it must be the same float, bit for bit, as before, or
    model versions would change."""
    y, yhat = (np.array(v, dtype=float) for v in pair)
    new, old = metrics.wape(y, yhat), _legacy_training_wape(y, yhat)
    assert new == old or (math.isnan(new) and math.isnan(old))


# ---------------------------------------------------------------- monitoring reports what it cannot judge as None


def test_monitoring_reports_non_finite_statistics_as_not_judged():
    assert monitoring._judged(0.42) == 0.42
    assert monitoring._judged(0.0) == 0.0
    assert monitoring._judged(-0.3) == -0.3
    assert monitoring._judged(math.inf) is None
    assert monitoring._judged(math.nan) is None
    nothing_sold = np.zeros(7)
    assert monitoring._judged(metrics.wape(nothing_sold, np.full(7, 3.0))) is None
    assert monitoring._judged(metrics.bias(nothing_sold, np.full(7, 3.0))) is None
    assert monitoring._judged(metrics.wape(nothing_sold, nothing_sold)) == 0.0


# ---------------------------------------------------------------- PSI


EXPECTED = np.arange(100.0)  # deciles 0-9, 10-19, ...: ten values per bin


def _psi_by_hand(shares: list[float]) -> float:
    """PSI of `shares` against ten equal bins, from the definition (shares floored at 1e-4)."""
    return sum((max(a, 1e-4) - 0.1) * math.log(max(a, 1e-4) / 0.1) for a in shares)


def test_psi_of_identical_samples_is_zero():
    assert metrics.psi(EXPECTED, EXPECTED) == 0.0
    rng = np.random.default_rng(3)
    x = rng.poisson(4.0, 400).astype(float)
    assert metrics.psi(x, x) == 0.0


def test_psi_known_values():
    all_low = np.zeros(20)  # every actual value in the first decile
    assert metrics.psi(EXPECTED, all_low) == pytest.approx(_psi_by_hand([1.0] + [0.0] * 9), rel=1e-12)
    assert metrics.psi(EXPECTED, all_low) == pytest.approx(0.9 * math.log(10) + 9 * 0.0999 * math.log(1000))
    split = np.array([0.0] * 10 + [99.0] * 10)  # half in the first decile, half in the last
    assert metrics.psi(EXPECTED, split) == pytest.approx(_psi_by_hand([0.5] + [0.0] * 8 + [0.5]), rel=1e-12)
    shares = [0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.0]  # a tenth moved from the top to the bottom
    moved = np.array([5.0] * 20 + [15.0, 25.0, 35.0, 45.0, 55.0, 65.0, 75.0, 85.0] * 10)
    assert metrics.psi(EXPECTED, moved) == pytest.approx(_psi_by_hand(shares), rel=1e-12)


def test_psi_is_symmetric_under_mirroring():
    """Mass moved to the lowest decile or, just as much, to the highest: the same shift, the same PSI."""
    low = np.concatenate([EXPECTED, np.arange(0.0, 10.0)])
    high = np.concatenate([EXPECTED, np.arange(90.0, 100.0)])
    assert metrics.psi(EXPECTED, low) == pytest.approx(metrics.psi(EXPECTED, high), rel=1e-12)
    assert metrics.psi(EXPECTED, low) == pytest.approx(_psi_by_hand([20 / 110] + [10 / 110] * 9), rel=1e-12)


def test_psi_separates_a_shift_from_sampling_noise():
    rng = np.random.default_rng(11)
    train = rng.normal(20, 4, 3000)
    same = rng.normal(20, 4, 3000)
    shifted = rng.normal(24, 4, 3000)  # one standard deviation up
    assert metrics.psi(train, same) < 0.02
    assert metrics.psi(train, shifted) > monitoring.DriftThresholds().max_psi


def test_psi_drops_nans_and_refuses_too_little_data():
    with_gaps = np.concatenate([EXPECTED, [math.nan] * 30])
    actual = np.arange(0.0, 40.0)
    assert metrics.psi(with_gaps, actual) == metrics.psi(EXPECTED, actual)
    assert metrics.psi(EXPECTED, np.concatenate([actual, [math.nan] * 5])) == metrics.psi(EXPECTED, actual)
    assert metrics.psi(np.arange(49.0), actual) is None  # fewer than 50 expected
    assert metrics.psi(EXPECTED, np.arange(19.0)) is None  # fewer than 20 actual
    assert metrics.psi(np.concatenate([np.arange(30.0), [math.nan] * 30]), actual) is None  # 30 after dropping
    assert metrics.psi(np.full(100, 3.0), actual) is None  # one value: no bins
    assert metrics.psi(EXPECTED, np.arange(20.0)) is not None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=50, max_size=200), st.lists(st.integers(0, 30), min_size=20,
                                                                         max_size=100))
def test_psi_is_never_negative(expected, actual):
    value = metrics.psi(np.array(expected, float), np.array(actual, float))
    assert value is None or value >= 0


# ---------------------------------------------------------------- interval score


def test_interval_score_known_values():
    # inside: the width alone; outside: the width plus 2/alpha times the miss (alpha 0.2 -> 10x)
    assert metrics.interval_score([5.0], [4.0], [6.0], 0.8) == 2.0
    assert math.isclose(metrics.interval_score([7.0], [4.0], [6.0], 0.8), 2.0 + 10.0 * 1.0)
    assert math.isclose(metrics.interval_score([1.0], [4.0], [6.0], 0.8), 2.0 + 10.0 * 3.0)
    assert math.isnan(metrics.interval_score([], [], [], 0.8))


@given(pairs)
def test_interval_score_never_rewards_a_miss(pair):
    y, centre = (np.array(v) for v in pair)
    narrow = metrics.interval_score(y, centre - 0.5, centre + 0.5, 0.8)
    covering = metrics.interval_score(y, np.minimum(centre - 0.5, y), np.maximum(centre + 0.5, y), 0.8)
    # widening just enough to cover every actual never scores worse than missing it
    assert covering <= narrow + 1e-9
