"""Store-level decisions: each item's champion (on all folds, and on the earlier folds for the held-out
figures), the store's calibration, and the summary a planner reads."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import numpy as np

from retail_assets.core.forecast.analog import STAGES
from retail_assets.core.forecast.backtest import ItemResult, recent, seasonal
from retail_assets.core.forecast.calibration import (
    CalibrationSet,
    calibrate_set,
    interval_figures,
    raw_prophet_coverage,
)
from retail_assets.core.forecast.models import BASELINE, TrainConfig
from retail_assets.core.forecast.selection import choose_champion, fold_metrics, store_best
from retail_assets.core.metrics import wape

# ---------------------------------------------------------------- store-level decisions


@dataclass
class ItemDecision:
    item_id: str
    champion: str
    reason: str
    backtest: dict[str, dict]  # model -> metrics on all folds
    heldout_champion: str  # chosen on the earlier folds only
    heldout: dict[str, dict]  # model -> metrics on the last fold
    status: str  # ok | fallback
    error: str | None


@dataclass
class StoreTraining:
    store_id: str
    cfg: TrainConfig
    results: list[ItemResult]
    decisions: list[ItemDecision]
    calibration: CalibrationSet  # served: calibrated on every fold
    summary: dict = field(default_factory=dict)
    gbm_texts: dict[str, str] = field(default_factory=dict)  # the store's final trees by file (gbm.TREE_FILES)


def selection_folds(r: ItemResult, heldout: bool) -> list:
    """The folds a choice is made on: the recent ones (for the held-out choice, all but the last) and the same
    season a year before the window it serves (the season a year before the held-out fold), when that fold has
    every model the recent ones have: a December is chosen with last December's record, not November's alone.
    The interval is calibrated on the same folds."""
    folds = recent(r.folds)[:-1] if heldout else recent(r.folds)
    models = set.intersection(*(set(f.yhat) for f in folds)) if folds else set()
    year_before = seasonal(r.folds, "seasonal_heldout" if heldout else "seasonal_serving")
    return folds + [f for f in year_before if models <= set(f.yhat)]


def decide(store_id: str, results: list[ItemResult], cfg: TrainConfig,
           gbm_texts: dict[str, str] | None = None) -> StoreTraining:
    decisions = []
    # the store's best model on the same folds each choice is made on (never the held-out fold for the held-out one)
    served_default = store_best(results, lambda r: selection_folds(r, heldout=False))
    heldout_default = store_best(results, lambda r: selection_folds(r, heldout=True))
    for r in results:
        champion, reason, scores = choose_champion(r, selection_folds(r, heldout=False), default=served_default)
        last = recent(r.folds)[-1:]
        sel, _why, _s = choose_champion(r, selection_folds(r, heldout=True), serving=False, default=heldout_default)
        heldout = {m: fold_metrics(r, m, last) for m in (sel, BASELINE)}
        decisions.append(ItemDecision(
            item_id=r.item_id, champion=champion, reason=reason, backtest=scores, heldout_champion=sel,
            heldout=heldout, status="fallback" if r.prophet_error or r.classic_error else "ok",
            error="; ".join(e for e in (r.prophet_error, r.classic_error) if e) or None,
        ))
    served_pairs = [(f, d.champion) for r, d in zip(results, decisions)
                    for f in recent(r.folds) + seasonal(r.folds, "seasonal_serving") if d.champion in f.yhat]
    calibration = calibrate_set(served_pairs, cfg)
    # honest figures: choose and calibrate on the earlier folds (and the season a year before), score on the last
    early_pairs = [(f, d.heldout_champion) for r, d in zip(results, decisions)
                   for f in recent(r.folds)[:-1] + seasonal(r.folds, "seasonal_heldout")
                   if d.heldout_champion in f.yhat]
    last_pairs = [(f, d.heldout_champion) for r, d in zip(results, decisions) for f in recent(r.folds)[-1:]
                  if d.heldout_champion in f.yhat]
    heldout_cal = calibrate_set(early_pairs, cfg)
    training = StoreTraining(store_id, cfg, results, decisions, calibration, gbm_texts=dict(gbm_texts or {}))
    training.summary = summarize(training, heldout_cal, last_pairs)
    training.summary["store_best_model"] = served_default  # what every regular item that has it is served
    return training


ALTERNATIVES = ("prophet", "lightgbm", "seasonal_index", "ets", "theta", "analog", "combination")


def alone_figures(results: list[ItemResult]) -> dict[str, float | None]:
    """Held-out weighted WAPE of each alternative served alone to every item (seasonal naive where it has no
    forecast on the held-out fold), on the open days of the last recent fold: what a user who picked that
    model instead would have got."""
    out = {}
    lasts = [recent(r.folds)[-1] for r in results if recent(r.folds)]
    for m in ALTERNATIVES:
        if not any(m in f.yhat for f in lasts):
            continue  # no item has it (a mature store's analog): no figure, not seasonal naive's under its name
        ys, yh = [], []
        for f in lasts:
            mask = np.array(f.open_day, bool)
            ys.append(np.array(f.y)[mask])
            yh.append(np.array(f.yhat.get(m, f.yhat[BASELINE]))[mask])
        out[m] = wape(np.concatenate(ys), np.concatenate(yh)) if ys and sum(map(len, ys)) else None
    return out


def _count_fits(results: list[ItemResult], by: str) -> dict[str, int]:
    """Every Prophet fit of the store by how it started (`fit_starts`) or where its optimum was found
    (`fit_optimizers`): what a warm start or the in-process optimizer really did, fallbacks included."""
    total: dict[str, int] = {}
    for r in results:
        for kind, n in getattr(r, by).items():
            total[kind] = total.get(kind, 0) + n
    return dict(sorted(total.items()))


def median_pairs(decisions: list[ItemDecision]) -> list[tuple[float, float]]:
    """(held-out champion's WAPE, seasonal naive's) per item where both are finite: the two medians are taken
    over the same items."""
    return [(d.heldout[d.heldout_champion]["wape"], d.heldout[BASELINE]["wape"]) for d in decisions
            if d.heldout.get(d.heldout_champion, {}).get("n") and d.heldout.get(BASELINE, {}).get("n")
            and np.isfinite(d.heldout[d.heldout_champion]["wape"]) and np.isfinite(d.heldout[BASELINE]["wape"])]


def summarize(t: StoreTraining, heldout_cal: CalibrationSet, last_pairs) -> dict:
    pairs = median_pairs(t.decisions)
    champ, base = [c for c, _ in pairs], [b for _, b in pairs]
    ys, yc, yb = [], [], []
    for (f, model) in last_pairs:
        mask = np.array(f.open_day, bool)
        ys.append(np.array(f.y)[mask])
        yc.append(np.array(f.yhat[model])[mask])
        yb.append(np.array(f.yhat[BASELINE])[mask])
    y = np.concatenate(ys) if ys else np.array([])
    last_fold = t.cfg.folds - 1
    figures = interval_figures(last_pairs, heldout_cal, t.cfg.interval)
    mix: dict[str, int] = {}
    for d in t.decisions:
        mix[d.champion] = mix.get(d.champion, 0) + 1
    return {
        "items": len(t.decisions),
        "items_fallback": sum(d.status == "fallback" for d in t.decisions),
        "champion_mix": dict(sorted(mix.items())),
        # which models each item could be served from by its age (core/forecast/analog.py)
        "history_stages": {st: n for st in STAGES if (n := sum(r.stage == st for r in t.results))},
        "analog_stores": sorted({s for r in t.results if r.analog_stores for s in r.analog_stores.split(",")}),
        "heldout_fold": "last of %d folds x %d %s" % (t.cfg.folds, t.cfg.fold_horizon,
                                                      "days" if t.cfg.freq == "D" else "weeks"),
        "heldout_median_wape_champion": statistics.median(champ) if champ else None,
        "heldout_median_wape_seasonal_naive": statistics.median(base) if base else None,
        "heldout_median_items": len(pairs),
        "heldout_weighted_wape_champion": wape(y, np.concatenate(yc)) if len(y) else None,
        "heldout_weighted_wape_seasonal_naive": wape(y, np.concatenate(yb)) if len(y) else None,
        "heldout_weighted_wape_alone": alone_figures(t.results),
        "heldout_share_champion_beats_naive": float(np.mean(
            [d.heldout[d.heldout_champion]["wape"] < d.heldout[BASELINE]["wape"] for d in t.decisions
             if d.heldout_champion != BASELINE])) if any(d.heldout_champion != BASELINE for d in t.decisions)
        else 0.0,
        "nominal_coverage": t.cfg.interval,
        "heldout_coverage_calibrated": (figures["coverage"] if figures["coverage"] is not None else math.nan)
        if last_pairs else None,
        "heldout_interval_mean_width": figures["mean_width"],
        "heldout_interval_score": figures["interval_score"],
        "heldout_interval_score_relative": figures["interval_score_relative"],
        "heldout_coverage_prophet_raw": raw_prophet_coverage(t.results, last_fold),
        "fit_seconds_total": float(sum(r.fit_seconds for r in t.results)),
        "fits": int(sum(r.fits for r in t.results)),
        "warm_started_items": int(sum(r.warm_started for r in t.results)),  # served fit started fully warm
        "prophet_fit_starts": _count_fits(t.results, "fit_starts"),
        "prophet_fit_optimizers": _count_fits(t.results, "fit_optimizers"),
    }
