"""Per-item champion choice: backtest metrics per model over chosen folds, lowest WAPE wins, ties and failures
go to seasonal naive. With a few folds per item, an item's own winner is mostly luck: a regular item is served
the store's best model (lowest WAPE pooled over the store's regular items on the same folds), its own ranking
kept in the reason. Measured on real data (README): letting an item keep its own winner when it beat the
store's by 5, 15 or 30 % was worse held-out at every margin. Intermittent items choose among their own
candidates on RMSE.
"""

from __future__ import annotations

import math

import numpy as np

from retail_assets.core.forecast.backtest import FoldForecast, ItemResult, pooled_wape
from retail_assets.core.forecast.classic import INTERMITTENT_MODELS
from retail_assets.core.forecast.models import BASELINE, MODELS
from retail_assets.core.metrics import bias, wape


def fold_metrics(result: ItemResult, model: str, folds: list[FoldForecast]) -> dict[str, float]:
    ys, yh, sc = [], [], []
    for f in folds:
        if model not in f.yhat:
            return {"wape": math.inf, "mase": math.inf, "rmse": math.inf, "bias": math.nan, "n": 0}
        mask = np.array(f.open_day, bool)
        ys.append(np.array(f.y)[mask])
        yh.append(np.array(f.yhat[model])[mask])
        sc.append(np.full(mask.sum(), f.scale))
    if not ys:
        return {"wape": math.inf, "mase": math.inf, "rmse": math.inf, "bias": math.nan, "n": 0}
    y, yhat, scale = np.concatenate(ys), np.concatenate(yh), np.concatenate(sc)
    return {"wape": wape(y, yhat), "mase": float(np.mean(np.abs(y - yhat) / scale)) if len(y) else math.nan,
            "rmse": float(np.sqrt(np.mean((y - yhat) ** 2))) if len(y) else math.inf,
            "bias": bias(y, yhat), "n": int(len(y))}


INTERMITTENT_CANDIDATES = (*INTERMITTENT_MODELS, "lightgbm", BASELINE)


def store_best(results: list[ItemResult], folds_of) -> str | None:
    """The model with the lowest WAPE pooled over the open days of every regular (not intermittent) item's
    `folds_of(result)`, among models every such item has on all of them; None when there is none."""
    folds = [f for r in results if not r.intermittent for f in folds_of(r)]
    if not folds:
        return None
    shared = [m for m in MODELS if all(m in f.yhat for f in folds)]
    pooled = {m: pooled_wape(folds, [f.yhat[m] for f in folds]) for m in shared}
    finite = {m: w for m, w in pooled.items() if np.isfinite(w)}
    return min(finite, key=finite.get) if finite else None


def choose_champion(result: ItemResult, folds: list[FoldForecast], serving: bool = True,
                    default: str | None = None) -> tuple[str, str, dict]:
    """Lowest backtest WAPE on `folds`; ties and missing backtests go to the seasonal-naive baseline.
    An intermittent item (core/forecast/classic.py) is served by an intermittent-demand model, the store's
    LightGBM (trained on every item's days, zeros included) or the baseline, chosen on RMSE: WAPE is an
    absolute error, which a forecast of zero minimizes on mostly-zero days, so it would pick a forecast that
    never stocks the item.
    `serving`: the choice is served, so only a model with a forecast from the final fit competes (a failed final
    Prophet fit, a store too young for its LightGBM); a held-out choice (serving=False) is judged on its folds
    alone, never on the final fit, which saw the held-out fold."""
    scores = {m: fold_metrics(result, m, folds) for m in MODELS}
    if not folds:
        if "analog" in result.future_yhat:
            return "analog", ("cold start, too little history for a backtest: serving the analog forecast "
                              f"({result.analog_rule or 'analog stores'}) scaled to this item's own level"), scores
        return BASELINE, "too little history for a backtest: serving seasonal naive", scores

    metric = "rmse" if result.intermittent else "wape"
    candidates = INTERMITTENT_CANDIDATES if result.intermittent else MODELS

    def rank(m: str):
        # WAPE orders (0.0 / +inf when the item sold nothing, core/metrics); NaN (a forecast with gaps) would
        # compare false to everything and win from first place, so it ranks last like +inf
        w = scores[m][metric]
        return (math.inf if math.isnan(w) else w, m != BASELINE)

    label = f"backtest {metric.upper()}" + (" (intermittent item)" if result.intermittent else "")
    best = min(candidates, key=rank)
    if serving and best not in result.servable:
        unserved = best
        best = min([m for m in candidates if m in result.servable] or [BASELINE], key=rank)
        return best, (f"{unserved.replace('_', ' ')} backtested best but has no final fit to serve: serving "
                      f"{best.replace('_', ' ')} ({label} {scores[best][metric]:.3f})"), scores
    if (default and not result.intermittent and best != default
            and (not serving or default in result.servable) and np.isfinite(scores[default][metric])):
        return default, (f"{default.replace('_', ' ')}, the store's best model (backtest WAPE "
                         f"{scores[default][metric]:.3f} on this item; the item's own best: "
                         f"{best.replace('_', ' ')} {scores[best][metric]:.3f})"), scores
    ranked = sorted((m for m in candidates if m != best and np.isfinite(scores[m][metric])), key=rank)[:3]
    others = ", ".join(f"{m.replace('_', ' ')} {scores[m][metric]:.3f}" for m in ranked)
    reason = f"{best.replace('_', ' ')} has the lowest {label} {scores[best][metric]:.3f} (next: {others})"
    return best, reason, scores
