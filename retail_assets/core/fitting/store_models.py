"""The store-level candidates, added once every item's own models are back from the pool: the store's
LightGBM model (one fit per backtest origin over all items, and the final fit) and each item's combination.
Pure: no Dagster, no files."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from retail_assets.core.forecast import gbm
from retail_assets.core.forecast.backtest import ItemResult, ItemTask
from retail_assets.core.forecast.combine import add_combinations


def _rows(item_frame: pd.DataFrame, dates: list[str]) -> pd.DataFrame | None:
    """One item's feature rows for `dates`, or None when any is missing or an open day has no level."""
    rows = item_frame[item_frame["ds"].isin(pd.to_datetime(dates))]
    if len(rows) != len(dates) or rows.loc[rows["open"], "level"].isna().any():
        return None
    return rows


def add_store_models(tasks: list[ItemTask], results: list[ItemResult], cfg) -> tuple[str | None, dict]:
    """Fit the store's LightGBM at each origin the items' folds use and on all history, add its forecasts
    and then every item's combination to `results`. Returns the final booster's text (None when the store's
    history is too short) and timing figures."""
    if not cfg.zoo:
        return None, {}
    t0 = time.perf_counter()
    lag = max(cfg.horizon, cfg.fold_horizon)
    frame = gbm.store_frame([{"item_id": t.item_id, "dates": t.dates, "y": t.y, "open_day": t.open_day,
                              "promo": t.promo, "holiday": t.holiday, "n_history": t.n_history} for t in tasks],
                            lag=lag, window=2 * lag, year=cfg.year)
    frame = frame.set_index("item_id", drop=False)
    by_item = {item: g for item, g in frame.groupby(level=0, sort=False)}
    fits = 0
    starts = sorted({f.dates[0] for r in results for f in r.folds})
    for start in starts:
        booster = gbm.fit(frame, pd.Timestamp(start), cfg.gbm_rounds)
        if booster is None:
            continue
        fits += 1
        for r in results:
            for f in r.folds:
                if f.dates[0] != start:
                    continue
                rows = _rows(by_item[r.item_id], f.dates)
                if rows is not None:
                    f.yhat["lightgbm"] = gbm.predict(booster, rows).tolist()
    text = None
    future = frame[~frame["history"]]
    if len(future):
        booster = gbm.fit(frame, future["ds"].min(), cfg.gbm_rounds)
        if booster is not None:
            fits += 1
            text = booster.model_to_string()
            for r in results:
                rows = _rows(by_item[r.item_id], r.future_dates)
                if rows is None:
                    continue
                r.future_yhat["lightgbm"] = gbm.predict(booster, rows).tolist()
                r.gbm_state = {"item_code": int(rows["item_code"].iloc[0]),
                               "level_path": [float(v) if np.isfinite(v) else 0.0 for v in rows["level"]],
                               "last_year_path": [float(v) for v in rows["last_year"]]}
    for r in results:
        r.weights = add_combinations(r.folds, r.future_yhat)
    return text, {"gbm_fits": fits, "gbm_seconds": time.perf_counter() - t0}
