"""`retail backtest`: the platform's backtest and champion selection on any long-format history CSV,
so a planner can judge the method on their own data before onboarding."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from retail_assets.core.fitting.champion import decide, median_pairs
from retail_assets.core.fitting.pool import run_items
from retail_assets.core.fitting.store_models import add_store_models
from retail_assets.core.forecast.backtest import ItemTask, recent
from retail_assets.core.forecast.calibration import raw_prophet_coverage
from retail_assets.core.forecast.models import BASELINE, MODELS, TrainConfig
from retail_assets.core.forecast.selection import fold_metrics
from retail_assets.core.metrics import wape


class BacktestInputError(ValueError):
    """The CSV or the arguments do not fit; the message says how."""


@dataclass
class BacktestReport:
    series: int
    summary: dict
    per_model: dict[str, dict]
    results: pd.DataFrame


def load_history(path: Path, date_col: str, series_cols: list[str], target: str, freq: str,
                 holiday_col: str | None, regressor_cols: list[str] | None = None) -> pd.DataFrame:
    if not path.is_file():
        raise BacktestInputError(f"no such file: {path}")
    try:
        raw = pd.read_csv(path, dtype={c: str for c in series_cols})
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BacktestInputError(f"{path} is not a readable CSV: {exc}") from exc
    regressor_cols = regressor_cols or []
    wanted = [date_col, target, *series_cols, *regressor_cols] + ([holiday_col] if holiday_col else [])
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        raise BacktestInputError(f"column(s) {missing} not in {path.name}; it has {list(raw.columns)}")
    dates = pd.to_datetime(raw[date_col], errors="coerce")
    if dates.isna().any():
        bad = raw.loc[dates.isna(), date_col].head(3).tolist()
        raise BacktestInputError(f"{dates.isna().sum()} value(s) in {date_col!r} are not dates, e.g. {bad}")
    y = pd.to_numeric(raw[target], errors="coerce")
    if y.isna().any():
        bad = raw.loc[y.isna(), target].head(3).tolist()
        raise BacktestInputError(f"{y.isna().sum()} value(s) in {target!r} are not numbers, e.g. {bad}")
    frame = pd.DataFrame({"date": dates, "y": y.astype(float),
                          "series": raw[series_cols].astype(str).agg("|".join, axis=1)})
    if freq == "W":
        frame["date"] = frame["date"].dt.to_period("W-SUN").dt.start_time
    frame["holiday"] = raw[holiday_col].where(raw[holiday_col].notna() & (raw[holiday_col].astype(str) != "")) \
        if holiday_col else None
    frame["promo"] = 0
    for col in regressor_cols:  # known in advance (a promotion, a markdown): any non-zero value is "on"
        values = pd.to_numeric(raw[col], errors="coerce")
        if values.isna().any():
            bad = raw.loc[values.isna(), col].head(3).tolist()
            raise BacktestInputError(f"{values.isna().sum()} value(s) in regressor {col!r} are not numbers, e.g. {bad}")
        frame["promo"] = frame["promo"] | (values != 0).astype(int)
    return frame


def series_tasks(frame: pd.DataFrame, cfg: TrainConfig, closed_when_missing: bool = False) -> list[ItemTask]:
    """One task per series over a regular grid. A period missing from the file is zero demand, or with
    `closed_when_missing` a closed period: not scored, forecast as zero, and never a zero the models learn.
    Regressors are read where the file has rows (the backtest folds see them as known in advance); the
    periods after the file's last are forecast with them off."""
    step = pd.Timedelta(days=1 if cfg.freq == "D" else 7)
    tasks = []
    for key, g in frame.groupby("series", sort=True):
        g = g.groupby("date").agg(y=("y", "sum"), holiday=("holiday", "first"), promo=("promo", "max"))
        grid = pd.date_range(g.index.min(), g.index.max() + step * cfg.horizon, freq=step)
        present = g.index
        g = g.reindex(grid)
        n_hist = len(grid) - cfg.horizon
        missing = ~grid.isin(present)
        open_day = ~missing if closed_when_missing else np.ones(len(grid), bool)
        open_day[n_hist:] = True  # the file says nothing of closures to come
        y = g["y"].iloc[:n_hist].fillna(0.0)
        tasks.append(ItemTask(
            store_id="backtest", item_id=str(key), dates=[d.strftime("%Y-%m-%d") for d in grid],
            y=[float(v) for v in y] + [None] * cfg.horizon, open_day=[bool(v) for v in open_day],
            promo=[int(v) for v in g["promo"].fillna(0)],
            holiday=[None if pd.isna(h) else str(h) for h in g["holiday"]], n_history=n_hist, cfg=cfg,
        ))
    return tasks


def _store_groups(tasks: list[ItemTask], series_cols: list[str], store_col: str | None) -> dict[str, list[int]]:
    """Task indexes per store (the `store_col` part of each series key), or one group of all without it."""
    if store_col is None:
        return {"backtest": list(range(len(tasks)))}
    at = series_cols.index(store_col)
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(tasks):
        groups.setdefault(t.item_id.split("|")[at], []).append(i)
    return dict(sorted(groups.items()))


def _heldout_days(t) -> tuple[int, float]:
    """Open held-out days and their summed actuals, over the items whose held-out champion forecast them (the
    days a store's held-out figures are computed on)."""
    n, total = 0, 0.0
    for r, d in zip(t.results, t.decisions):
        for f in recent(r.folds)[-1:]:
            if d.heldout_champion in f.yhat:
                y = np.array(f.y, dtype=float)[np.array(f.open_day, bool)]
                n, total = n + len(y), total + float(y.sum())
    return n, total


def pooled_summary(trainings: list) -> dict:
    """One summary over several stores' trainings, as if one: weighted WAPEs pooled by each store's summed
    actuals, coverage, width and interval score by its open days, medians over every item, the mixes added.
    Only figures that pool: a store's own choices (its best model, LightGBM variant, fit counts) are not in it."""
    if len(trainings) == 1:
        return trainings[0].summary
    days = [_heldout_days(t) for t in trainings]
    n, total = sum(k for k, _ in days), sum(v for _, v in days)

    def pooled(key: str, by_actuals: bool) -> float | None:
        got = [(t.summary[key], k, v) for t, (k, v) in zip(trainings, days) if t.summary.get(key) is not None]
        if not got or not (total if by_actuals else n):
            return None
        return sum(x * (v if by_actuals else k) for x, k, v in got) / (total if by_actuals else n)
    pairs = [p for t in trainings for p in median_pairs(t.decisions)]
    mix: dict[str, int] = {}
    for t in trainings:
        for m, c in t.summary["champion_mix"].items():
            mix[m] = mix.get(m, 0) + c
    beats = [d.heldout[d.heldout_champion]["wape"] < d.heldout[BASELINE]["wape"] for t in trainings
             for d in t.decisions if d.heldout_champion != BASELINE]
    first = trainings[0]
    out = {"heldout_fold": first.summary["heldout_fold"], "nominal_coverage": first.summary["nominal_coverage"],
           "stores": len(trainings), "items": sum(t.summary["items"] for t in trainings),
           "heldout_coverage_prophet_raw": raw_prophet_coverage([r for t in trainings for r in t.results],
                                                                first.cfg.folds - 1),
           "champion_mix": dict(sorted(mix.items())),
           "heldout_median_wape_champion": statistics.median(c for c, _ in pairs) if pairs else None,
           "heldout_median_wape_seasonal_naive": statistics.median(b for _, b in pairs) if pairs else None,
           "heldout_share_champion_beats_naive": float(np.mean(beats)) if beats else 0.0}
    for key in ("heldout_weighted_wape_champion", "heldout_weighted_wape_seasonal_naive"):
        out[key] = pooled(key, by_actuals=True)
    for key in ("heldout_coverage_calibrated", "heldout_interval_mean_width", "heldout_interval_score"):
        out[key] = pooled(key, by_actuals=False)
    score = out["heldout_interval_score"]
    out["heldout_interval_score_relative"] = score / (total / n) if score is not None and total > 0 else None
    return out


def run_backtest(path: Path, date_col: str, series_cols: list[str], target: str, freq: str = "D",
                 horizon: int | None = None, holiday_col: str | None = None, workers: int = 2,
                 progress: Callable[[str], None] | None = None,
                 on_start: Callable[[int], None] | None = None, regressor_cols: list[str] | None = None,
                 closed_when_missing: bool = False, store_col: str | None = None) -> BacktestReport:
    """The platform's backtest on a CSV. `store_col` (one of `series_cols`): the series of each store are trained
    as the platform trains a store (its own LightGBM model and variant, its own best model and calibration);
    without it, every series is one store's item (one LightGBM model over all of them)."""
    if freq not in ("D", "W"):
        raise BacktestInputError("--freq must be D (daily) or W (weekly)")
    if store_col is not None and store_col not in series_cols:
        raise BacktestInputError(f"--store-col {store_col!r} is not one of --series-cols {series_cols}")
    horizon = horizon or (28 if freq == "D" else 8)
    if horizon < 1:
        raise BacktestInputError("--horizon must be at least 1")
    cfg = TrainConfig(horizon=horizon, fold_horizon=horizon, freq=freq,
                         min_train_days=56 if freq == "D" else 26,
                         moving_average_days=28 if freq == "D" else 8, horizon_buckets=min(4, horizon),
                         classic_window=364 if freq == "D" else 156,
                         anchor_folds=False)  # a one-off backtest: the held-out fold is the file's last periods
    frame = load_history(path, date_col, series_cols, target, freq, holiday_col, regressor_cols)
    tasks = series_tasks(frame, cfg, closed_when_missing)
    if not tasks:
        raise BacktestInputError(f"{path.name} has no rows")
    if on_start:
        on_start(len(tasks))
    results = run_items(tasks, workers, progress)
    trainings = []
    for store, at in _store_groups(tasks, series_cols, store_col).items():
        group = [results[i] for i in at]
        gbm_texts, _figures = add_store_models([tasks[i] for i in at], group, cfg)
        trainings.append(decide(store, group, cfg, gbm_texts))
    all_results = [r for t in trainings for r in t.results]
    all_decisions = [d for t in trainings for d in t.decisions]
    rows, per_model = [], {}
    for r, d in zip(all_results, all_decisions):
        row = {"series": r.item_id, "champion": d.champion, "heldout_champion": d.heldout_champion,
               "reason": d.reason, "status": d.status, "error": d.error}
        for m in MODELS:
            row[f"backtest_wape_{m}"] = d.backtest[m]["wape"]
        last = recent(r.folds)[-1:]
        for m in MODELS:
            row[f"heldout_wape_{m}"] = fold_metrics(r, m, last)["wape"]
        rows.append(row)
    results = pd.DataFrame(rows)
    for m in MODELS:
        ys, yh = [], []
        for r in all_results:
            for f in recent(r.folds)[-1:]:
                if m in f.yhat:
                    ys.append(np.array(f.y))
                    yh.append(np.array(f.yhat[m]))
        col = results[f"heldout_wape_{m}"].replace([np.inf], np.nan)
        per_model[m] = {"median_wape": float(col.median()) if col.notna().any() else None,
                        "weighted_wape": wape(np.concatenate(ys), np.concatenate(yh)) if ys else None}
    return BacktestReport(len(tasks), pooled_summary(trainings), per_model, results)
