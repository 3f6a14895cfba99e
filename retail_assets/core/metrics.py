"""Forecast-error metrics and population stability: one definition for training (champion choice, held-out
figures) and monitoring (drift). Pure numpy: no pandas, no files.

The rule when there are no actuals to judge against (sum |y| == 0: an item that sold nothing in the window):

- `wape` is 0.0 when the forecast is zero too (every |yhat| within 1e-8: perfect on nothing, and an empty window
  has nothing to get wrong) and +inf otherwise (any forecast error against no sales). It is never NaN for
  NaN-free input, so it orders: champion selection takes `min()` over it, and the summaries drop the +inf
  with `np.isfinite`. This is what champion selection has always used; it is unchanged.
- `bias` is NaN: undefined. It used to be 0.0 in training, which claimed "no bias" with no data to judge;
  bias is recorded in the model manifest but never used to choose a model, so this changes no champion.

NaN anywhere in `y` or `yhat` gives NaN from both: the caller decides what a missing value means (training
scores closed and missing days as zero sales before it gets here). Monitoring reports any non-finite value
as None: "not judged", never a drift reason.
"""

from __future__ import annotations

import math

import numpy as np


def _pair(y, yhat) -> tuple[np.ndarray, np.ndarray]:
    y, yhat = np.asarray(y, dtype=float), np.asarray(yhat, dtype=float)
    if y.shape != yhat.shape:
        raise ValueError(f"actuals and forecast differ in shape: {y.shape} vs {yhat.shape}")
    return y, yhat


def wape(y, yhat) -> float:
    """Weighted absolute percentage error, sum |y - yhat| / sum |y|.

    sum |y| == 0: 0.0 when yhat is all zero (within 1e-8), else +inf. NaN in the input: NaN."""
    y, yhat = _pair(y, yhat)
    if np.isnan(y).any() or np.isnan(yhat).any():
        return math.nan
    denom = float(np.abs(y).sum())
    return float(np.abs(y - yhat).sum() / denom) if denom > 0 else (0.0 if np.allclose(yhat, 0) else math.inf)


def bias(y, yhat) -> float:
    """Signed total error over the volume, sum(yhat - y) / sum |y|: +0.1 is a forecast 10% too high.

    sum |y| == 0: NaN (no actuals, no bias to measure). NaN in the input: NaN."""
    y, yhat = _pair(y, yhat)
    if np.isnan(y).any() or np.isnan(yhat).any():
        return math.nan
    denom = float(np.abs(y).sum())
    return float((yhat - y).sum() / denom) if denom > 0 else math.nan


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float | None:
    """Population stability index of `actual` against `expected`, on the expected quantile bins:
    sum over bins of (a - e) * ln(a / e), with the shares floored at 1e-4 so an empty bin counts as rare, not
    impossible. 0 for the same distribution; >= 0 always. NaNs are dropped first.

    None when it cannot be judged: fewer than 50 expected or 20 actual values, or `expected` too concentrated
    to give at least two bins."""
    expected, actual = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    expected, actual = expected[~np.isnan(expected)], actual[~np.isnan(actual)]
    if len(expected) < 50 or len(actual) < 20:
        return None
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    if len(edges) < 3:
        return None
    edges[0], edges[-1] = -np.inf, np.inf
    e = np.histogram(expected, edges)[0] / len(expected)
    a = np.histogram(actual, edges)[0] / len(actual)
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


def interval_score(y, lower, upper, nominal: float) -> float:
    """Mean interval score of central `nominal` intervals (Gneiting & Raftery 2007): the width, plus 2/alpha
    times how far each actual falls outside. Lower is better; it rewards narrow intervals only while they
    still cover, so it judges what coverage alone cannot. NaN when there is nothing to score."""
    y, lo, hi = (np.asarray(v, dtype=float) for v in (y, lower, upper))
    if y.size == 0:
        return math.nan
    alpha = 1.0 - nominal
    below = np.clip(lo - y, 0, None)
    above = np.clip(y - hi, 0, None)
    return float(np.mean((hi - lo) + (2.0 / alpha) * (below + above)))
