"""Split-conformal intervals: per-horizon-bucket quantiles of scaled residuals, pooled per (model, volume class)
across a store's items (`CalibrationSet`), and the coverage figures that judge them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from retail_assets.core.forecast.backtest import FoldForecast, ItemResult
from retail_assets.core.forecast.models import TrainConfig, local_scale
from retail_assets.core.metrics import interval_score


@dataclass(frozen=True)
class Calibration:
    """Per-horizon-bucket quantiles of scaled residuals: interval = yhat + q * item scale."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    bucket_days: int
    n: tuple[int, ...]

    def bounds(self, yhat: np.ndarray, scale: float, level: float) -> tuple[np.ndarray, np.ndarray]:
        b = np.minimum(np.arange(len(yhat)) // self.bucket_days, len(self.lower) - 1)
        s = local_scale(yhat, scale, level)
        lo = np.clip(yhat + np.array(self.lower)[b] * s, 0, None)
        hi = yhat + np.array(self.upper)[b] * s
        return np.minimum(lo, yhat), np.maximum(hi, yhat)

    def to_json(self) -> dict:
        return {"lower": list(self.lower), "upper": list(self.upper), "bucket_days": self.bucket_days, "n": list(self.n)}


def calibrate(pairs: list[tuple[FoldForecast, str]], cfg: TrainConfig) -> Calibration:
    """Split-conformal quantiles per horizon bucket from (fold, model) residuals, pooled across items."""
    bucket_days = math.ceil(cfg.fold_horizon / cfg.horizon_buckets)
    per_bucket: list[list[float]] = [[] for _ in range(cfg.horizon_buckets)]
    for f, model in pairs:
        y, yhat = np.array(f.y), np.array(f.yhat[model])
        s = local_scale(yhat, f.scale, f.level)
        for h, (yy, yh, sh, op) in enumerate(zip(y, yhat, s, f.open_day)):
            if op:
                per_bucket[min(h // bucket_days, cfg.horizon_buckets - 1)].append((yy - yh) / sh)
    alpha = 1 - cfg.interval
    lows, highs, ns = [], [], []
    for r in per_bucket:
        r = np.sort(np.array(r))
        n = len(r)
        if n < 10:
            lows.append(-2.0)
            highs.append(2.0)
            ns.append(n)
            continue
        # finite-sample conformal levels for the two tails
        ql = max(math.floor((n + 1) * (alpha / 2)) - 1, 0) / max(n - 1, 1)
        qh = min(math.ceil((n + 1) * (1 - alpha / 2)) - 1, n - 1) / max(n - 1, 1)
        lows.append(min(float(np.quantile(r, ql)), 0.0))
        highs.append(max(float(np.quantile(r, qh)), 0.0))
        ns.append(n)
    return Calibration(tuple(lows), tuple(highs), bucket_days, tuple(ns))


def volume_class(level: float, cuts: tuple[float, float]) -> str:
    return "low" if level < cuts[0] else "high" if level >= cuts[1] else "mid"


MIN_GROUP_RESIDUALS = 200  # a (model, volume class) pool smaller than this borrows its model's, then the store's


@dataclass(frozen=True)
class CalibrationSet:
    """Conformal quantiles per (model, volume class), each falling back to its model's pool and then to the
    store's when too few residuals back it: LightGBM's errors are not Prophet's, nor a slow seller's a
    fast one's. Volume classes split the store's item levels at their terciles (`cuts`)."""

    store: Calibration
    cuts: tuple[float, float]
    groups: dict  # "<model>|<class>" or "<model>" -> Calibration

    def key(self, model: str, level: float) -> str:
        """The pool an item's interval comes from."""
        for key in (f"{model}|{volume_class(level, self.cuts)}", model):
            if key in self.groups:
                return key
        return "store"

    def for_item(self, model: str, level: float) -> Calibration:
        key = self.key(model, level)
        return self.store if key == "store" else self.groups[key]

    def bounds(self, yhat: np.ndarray, scale: float, level: float, model: str):
        return self.for_item(model, level).bounds(yhat, scale, level)

    def to_json(self) -> dict:
        return {**self.store.to_json(), "volume_cuts": list(self.cuts),
                "groups": {k: c.to_json() for k, c in sorted(self.groups.items())}}

    @classmethod
    def from_json(cls, data: dict) -> "CalibrationSet":
        def one(d: dict) -> Calibration:
            return Calibration(tuple(d["lower"]), tuple(d["upper"]), d["bucket_days"], tuple(d["n"]))

        return cls(one(data), tuple(data.get("volume_cuts", (math.inf, math.inf))),
                   {k: one(v) for k, v in data.get("groups", {}).items()})


def calibrate_set(pairs: list[tuple[FoldForecast, str]], cfg: TrainConfig) -> CalibrationSet:
    """The store's pool, each model's, and each (model, volume class) with at least MIN_GROUP_RESIDUALS open
    days; a fold's volume class is its training level's."""
    levels = np.array([f.level for f, _m in pairs]) if pairs else np.array([0.0])
    cuts = (float(np.quantile(levels, 1 / 3)), float(np.quantile(levels, 2 / 3)))
    by_key: dict[str, list] = {}
    for f, model in pairs:
        by_key.setdefault(model, []).append((f, model))
        by_key.setdefault(f"{model}|{volume_class(f.level, cuts)}", []).append((f, model))
    groups = {k: calibrate(v, cfg) for k, v in by_key.items()
              if sum(int(np.sum(f.open_day)) for f, _m in v) >= MIN_GROUP_RESIDUALS}
    return CalibrationSet(calibrate(pairs, cfg), cuts, groups)


def _open_day_bounds(pairs: list[tuple[FoldForecast, str]], cal: Calibration | CalibrationSet):
    """Actuals and calibrated bounds on the open days of `pairs`, concatenated."""
    ys, los, his = [np.empty(0)], [np.empty(0)], [np.empty(0)]
    for f, model in pairs:
        one = cal.for_item(model, f.level) if isinstance(cal, CalibrationSet) else cal
        lo, hi = one.bounds(np.array(f.yhat[model]), f.scale, f.level)
        mask = np.array(f.open_day, bool)
        ys.append(np.array(f.y, dtype=float)[mask])
        los.append(lo[mask])
        his.append(hi[mask])
    return np.concatenate(ys), np.concatenate(los), np.concatenate(his)


def interval_coverage(pairs: list[tuple[FoldForecast, str]], cal: Calibration | CalibrationSet) -> float:
    y, lo, hi = _open_day_bounds(pairs, cal)
    return int(((y >= lo) & (y <= hi)).sum()) / len(y) if len(y) else math.nan


def interval_figures(pairs: list[tuple[FoldForecast, str]], cal: Calibration | CalibrationSet,
                     nominal: float) -> dict:
    """Held-out coverage, mean width and interval score (also over the mean actual, to compare stores and
    datasets) of the calibrated interval on the open days of `pairs`."""
    y, lo, hi = _open_day_bounds(pairs, cal)
    if not len(y):
        return {"coverage": None, "mean_width": None, "interval_score": None, "interval_score_relative": None}
    score = interval_score(y, lo, hi, nominal)
    mean_y = float(np.mean(y))
    return {"coverage": int(((y >= lo) & (y <= hi)).sum()) / len(y), "mean_width": float(np.mean(hi - lo)),
            "interval_score": score, "interval_score_relative": score / mean_y if mean_y > 0 else None}


def raw_prophet_coverage(results: list[ItemResult], fold_index: int) -> float:
    hits, total = 0, 0
    for r in results:
        for f in r.folds:
            if f.fold == fold_index and f.raw_lower is not None:
                mask = np.array(f.open_day, bool)
                y = np.array(f.y)
                ok = (y >= np.array(f.raw_lower)) & (y <= np.array(f.raw_upper))
                hits += int(ok[mask].sum())
                total += int(mask.sum())
    return hits / total if total else math.nan
