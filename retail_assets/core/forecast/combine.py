"""Combinations of an item's best models, with weights set only on folds that ended before the forecast they
weight begins: a fold's combination never sees its own actuals, the held-out fold's never sees the held-out
fold, and the served one is weighted on every fold. Pure."""

from __future__ import annotations

import datetime as dt

import numpy as np

from retail_assets.core.forecast.backtest import FoldForecast, pooled_wape

COMBINED = ("prophet", "lightgbm", "seasonal_index", "ets", "theta", "croston_sba", "tsb")  # candidates a combination draws on
TOP = 3  # models per combination, at most
WITHIN = 1.5  # a part's WAPE on the earlier folds is at most this times the best part's (1.15 left out
# parts that still helped: measured on the real weekly data, README)
DEFAULT_PARTS = ("prophet", "lightgbm")  # equal weights when no earlier fold exists


def _end(f: FoldForecast) -> dt.date:
    return dt.date.fromisoformat(f.dates[-1])


def _start(f: FoldForecast) -> dt.date:
    return dt.date.fromisoformat(f.dates[0])


def weights_from(folds: list[FoldForecast], available: set[str]) -> dict[str, float]:
    """Weights in proportion to 1 / WAPE^2 over `folds` pooled, of at most TOP models of `available` whose
    WAPE there is within WITHIN of the best (a far weaker model only dilutes a mean); equal weights of the
    defaults when there is no fold to judge on."""
    candidates = [m for m in COMBINED if m in available and all(m in f.yhat for f in folds)]
    if not folds or not candidates:
        parts = [m for m in DEFAULT_PARTS if m in available] or sorted(available & set(COMBINED))
        return {m: 1.0 / len(parts) for m in parts} if parts else {}
    scores = {m: pooled_wape(folds, [f.yhat[m] for f in folds]) for m in candidates}
    ranked = sorted((s, m) for m, s in scores.items() if np.isfinite(s))[:TOP]
    if not ranked:
        return {m: 1.0 / len(candidates) for m in candidates[:TOP]}
    ranked = [(s, m) for s, m in ranked if s <= WITHIN * ranked[0][0]]
    inv = {m: 1.0 / max(s, 1e-6) ** 2 for s, m in ranked}
    total = sum(inv.values())
    return {m: inv[m] / total for m in sorted(inv)}


def combine(yhat: dict[str, list[float]], weights: dict[str, float]) -> list[float]:
    return np.sum([w * np.asarray(yhat[m], dtype=float) for m, w in weights.items()], axis=0).tolist()


def add_combinations(folds: list[FoldForecast], future_yhat: dict[str, list[float]],
                     servable: set[str] | None = None) -> dict[str, float]:
    """Add the `combination` forecast to every fold and to the future. A fold's weights are set on the folds
    (recent, and the seasonal ones a year back) that ended before it began, the earliest fold's are the
    defaults in equal weights; the served weights on every fold, among the `servable` models (default: those
    with a future forecast; a deferred Prophet fit counts, and its part joins in `complete_combination`).
    Returns the served weights ({} when no combination can be served)."""
    for f in folds:
        earlier = [g for g in folds if _end(g) < _start(f)]
        w = weights_from(earlier, set(f.yhat))
        if w and all(m in f.yhat for m in w):
            f.yhat["combination"] = combine(f.yhat, w)
            f.weights = w
    available = set(future_yhat) if servable is None else set(servable)
    served = weights_from(folds, available)
    if not served or not set(served) <= available:
        return {}
    complete_combination(future_yhat, served)
    return served


def complete_combination(future_yhat: dict[str, list[float]], weights: dict[str, float]) -> bool:
    """The served combination's forecast, once every part has one; False while a part is missing."""
    if not weights or not all(m in future_yhat for m in weights):
        return False
    future_yhat["combination"] = combine(future_yhat, weights)
    return True
