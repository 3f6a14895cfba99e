"""Per-item champion choice: backtest metrics per model over chosen folds, lowest WAPE wins, ties and failures
go to seasonal naive."""

from __future__ import annotations

import math

import numpy as np

from retail_assets.core.forecast.backtest import FoldForecast, ItemResult
from retail_assets.core.forecast.models import BASELINE, MODELS
from retail_assets.core.metrics import bias, wape


def fold_metrics(result: ItemResult, model: str, folds: list[FoldForecast]) -> dict[str, float]:
    ys, yh, sc = [], [], []
    for f in folds:
        if model not in f.yhat:
            return {"wape": math.inf, "mase": math.inf, "bias": math.nan, "n": 0}
        mask = np.array(f.open_day, bool)
        ys.append(np.array(f.y)[mask])
        yh.append(np.array(f.yhat[model])[mask])
        sc.append(np.full(mask.sum(), f.scale))
    if not ys:
        return {"wape": math.inf, "mase": math.inf, "bias": math.nan, "n": 0}
    y, yhat, scale = np.concatenate(ys), np.concatenate(yh), np.concatenate(sc)
    return {"wape": wape(y, yhat), "mase": float(np.mean(np.abs(y - yhat) / scale)) if len(y) else math.nan,
            "bias": bias(y, yhat), "n": int(len(y))}


def choose_champion(result: ItemResult, folds: list[FoldForecast], serving: bool = True) -> tuple[str, str, dict]:
    """Lowest backtest WAPE on `folds`; ties and missing backtests go to the seasonal-naive baseline.
    `serving`: the choice is served, so a Prophet win needs the final fit; a held-out choice (serving=False)
    is judged on its folds alone, never on the final fit, which saw the held-out fold."""
    scores = {m: fold_metrics(result, m, folds) for m in MODELS}
    if not folds:
        return BASELINE, "too little history for a backtest: serving seasonal naive", scores
    # WAPE orders (0.0 / +inf when the item sold nothing, core/metrics); NaN (a forecast with gaps) would compare
    # false to everything and win from first place, so it ranks last like +inf
    best = min(MODELS, key=lambda m: (math.inf if math.isnan(scores[m]["wape"]) else scores[m]["wape"],
                                      m != BASELINE))
    if serving and best == "prophet" and result.prophet_json is None:
        best = BASELINE
        return best, "prophet failed to fit: serving seasonal naive", scores
    others = ", ".join(f"{m.replace('_', ' ')} {scores[m]['wape']:.3f}" for m in MODELS if m != best)
    reason = f"{best.replace('_', ' ')} has the lowest backtest WAPE {scores[best]['wape']:.3f} (vs {others})"
    return best, reason, scores
