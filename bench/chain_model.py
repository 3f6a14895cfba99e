"""One LightGBM model per store (what the platform trains) against one chain-level model over every store's
items (what an unpartitioned asset would train), on the same held-out days.

Both are the platform's own trees (`core/forecast/gbm.py`: the same features, target and rounds), fitted on the
history before the held-out fold's origin and scored on that fold (the last recent fold of a training: the 28
days ending on the last Sunday of the history for daily data, or the file's last `--horizon` periods of a CSV).
The chain model's items are the stores' items (a store-item is its category, as the per-store model's item is),
so it shares the calendar shapes across stores where the per-store model learns them from one store alone.
Both variants (`level`, `calendar`) are run; neither reads the temperature (the weather trees are a per-store
refinement, left out of both sides alike).

    .venv/bin/python bench/chain_model.py --data-dir data            # the demo (after `make run`)
    .venv/bin/python bench/chain_model.py --history train.csv --date-col date --series-cols store,item \
        --target sales [--freq D] [--horizon 28]    # a CSV; the first series column is the store
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from retail_assets.core.fitting.pool import build_tasks
from retail_assets.core.forecast import gbm
from retail_assets.core.forecast.backtest import ItemTask, fold_end
from retail_assets.core.forecast.backtest_csv import load_history, series_tasks
from retail_assets.core.forecast.models import TrainConfig
from retail_assets.core.metrics import wape


def _items(tasks: list[ItemTask], prefix: str = "") -> list[dict]:
    return [{"item_id": prefix + t.item_id, "dates": t.dates, "y": t.y, "open_day": t.open_day, "promo": t.promo,
             "holiday": t.holiday, "n_history": t.n_history} for t in tasks]


def demo_stores(data_dir: Path, cfg: TrainConfig) -> dict[str, list[ItemTask]]:
    """Each store's items from its features file (features/store=<id>/features.parquet)."""
    out = {}
    for path in sorted(data_dir.glob("features/store=*/features.parquet")):
        frame = pd.read_parquet(path)
        frame["date"] = pd.to_datetime(frame["date"])
        out[path.parent.name.split("=", 1)[1]] = build_tasks(frame, cfg)
    return out


def csv_stores(args, cfg: TrainConfig) -> dict[str, list[ItemTask]]:
    """Each store's series of a CSV, the store being the first series column."""
    cols = [c.strip() for c in args.series_cols.split(",")]
    frame = load_history(args.history, args.date_col, cols, args.target, args.freq, args.holiday_col)
    out: dict[str, list[ItemTask]] = {}
    for t in series_tasks(frame, cfg):
        out.setdefault(t.item_id.split("|", 1)[0], []).append(t)
    return out


def heldout_cutoff(stores: dict[str, list[ItemTask]], cfg: TrainConfig) -> pd.Timestamp:
    """The held-out fold's first day: the last recent fold's origin of the longest store's history."""
    t = max((t for ts in stores.values() for t in ts), key=lambda t: t.n_history)
    hist = pd.Series(pd.to_datetime(t.dates[:t.n_history]))
    return hist.iloc[fold_end(hist, cfg) - cfg.fold_horizon]


def score(frame: pd.DataFrame, booster, start: pd.Timestamp, horizon: int, step: pd.Timedelta) -> tuple:
    """Actuals and forecasts on the open days of [start, start + horizon) where the history has them."""
    rows = frame[frame["history"] & (frame["ds"] >= start) & (frame["ds"] < start + step * horizon)
                 & frame["open"] & frame["y"].notna()]
    rows = rows[rows["level"].notna()]
    return rows["y"].to_numpy(float), gbm.predict(booster, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--history", type=Path)
    parser.add_argument("--date-col")
    parser.add_argument("--series-cols")
    parser.add_argument("--target")
    parser.add_argument("--freq", default="D", choices=["D", "W"])
    parser.add_argument("--horizon", type=int, default=None)
    parser.add_argument("--holiday-col", default=None)
    args = parser.parse_args()
    if args.data_dir:
        cfg = TrainConfig()
        stores = demo_stores(args.data_dir, cfg)
    else:
        horizon = args.horizon or (28 if args.freq == "D" else 8)
        cfg = TrainConfig(horizon=horizon, fold_horizon=horizon, freq=args.freq, anchor_folds=False)
        stores = csv_stores(args, cfg)
    lag = max(cfg.horizon, cfg.fold_horizon)
    step = pd.Timedelta(days=1 if cfg.freq == "D" else 7)
    start = heldout_cutoff(stores, cfg)
    n_items = sum(len(ts) for ts in stores.values())
    print(f"{len(stores)} stores, {n_items} items; held-out {cfg.fold_horizon} periods from {start.date()}")
    for variant in gbm.VARIANTS:
        per_store, chain_items = {}, []
        t0 = time.perf_counter()
        for store, tasks in stores.items():
            frame = gbm.store_frame(_items(tasks), lag=lag, window=2 * lag, year=cfg.year, variant=variant)
            booster = gbm.fit(frame, start, cfg.gbm_rounds)
            if booster is not None:
                per_store[store] = score(frame, booster, start, cfg.fold_horizon, step)
            chain_items += _items(tasks, prefix=f"{store}|")
        t_store = time.perf_counter() - t0
        t0 = time.perf_counter()
        chain_frame = gbm.store_frame(chain_items, lag=lag, window=2 * lag, year=cfg.year, variant=variant)
        chain = gbm.fit(chain_frame, start, cfg.gbm_rounds)
        chain_frame["store"] = chain_frame["item_id"].str.split("|", n=1).str[0]
        by_chain = {s: score(g, chain, start, cfg.fold_horizon, step) for s, g in chain_frame.groupby("store")}
        t_chain = time.perf_counter() - t0
        print(f"\n  variant {variant!r}: per-store models {t_store:.1f}s ({len(per_store)} fits), "
              f"one chain model {t_chain:.1f}s")
        ys, a, b = [], [], []
        for store in sorted(per_store):
            y, f_store = per_store[store]
            y2, f_chain = by_chain[store]
            assert np.array_equal(y, y2)  # the same days and actuals on both sides
            print(f"    store {store}: held-out WAPE per-store {wape(y, f_store):.4f}, chain {wape(y, f_chain):.4f}")
            ys.append(y)
            a.append(f_store)
            b.append(f_chain)
        y = np.concatenate(ys)
        w_store, w_chain = wape(y, np.concatenate(a)), wape(y, np.concatenate(b))
        print(f"    all stores: per-store {w_store:.4f}, chain {w_chain:.4f} ({w_chain / w_store - 1:+.1%} for the chain)")


if __name__ == "__main__":
    main()
