"""A retrain after a resent file corrected one day of one item (a late row): the fits that moved run in the
training's own process unless more than `pool.IN_PROCESS_REFITS` folds missed the cache, against the rule before
(the first miss handed the rest of the store to the pool), alternating, same cache state, same run.

One demo store (`--items` x `--days`, POS only, as `bench/train.py`) is trained cold on yesterday's features; then
today's features, with the first item's units 45 days back raised by 7 (inside the training window of its newest
fold), are trained from copies of that models folder with each rule, `--repeats` times.

    .venv/bin/python bench/late_row.py [--items 30] [--days 1096] [--repeats 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from train import one_day_back, prepare

from retail_assets.core.fitting import pool
from retail_assets.core.fitting.train import train_store
from retail_assets.core.forecast.models import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--days", type=int, default=1096)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_late_row_"))
    try:
        fs = prepare(root, args.items, args.days)
        cfg = TrainConfig()
        t0 = time.perf_counter()
        train_store(one_day_back(fs.frame), root / "yesterday", "bench-day0", cfg, workers=2)
        print(f"cold train of yesterday: {time.perf_counter() - t0:.1f}s", flush=True)
        frame = fs.frame.copy()
        first = sorted(frame["item_id"].unique())[0]
        day = frame.loc[~frame["is_future"], "date"].max() - pd.Timedelta(days=45)
        late = (frame["item_id"] == first) & (frame["date"] == day)
        frame.loc[late, "units"] = frame.loc[late, "units"] + 7
        budget = pool.IN_PROCESS_REFITS
        times: dict[str, list[float]] = {"first miss -> pool (before)": [], f"budget of {budget} folds": []}
        for k in range(args.repeats):
            for label, refits in zip(times, (0, budget)):
                models = root / f"models-{k}-{refits}"
                shutil.copytree(root / "yesterday", models)
                pool.IN_PROCESS_REFITS = refits  # 0: any miss hands the rest to the pool, the rule before
                t0 = time.perf_counter()
                s = train_store(frame, models, "bench-late", cfg, workers=2).manifest["summary"]
                times[label].append(time.perf_counter() - t0)
                refitted = s["folds_total"] - s["folds_cached"]
                print(f"  {label:<28}: {times[label][-1]:5.1f}s; folds refitted {refitted}, "
                      f"items in this process {s['items_fitted_in_process']}/{args.items}, held-out WAPE "
                      f"{s['heldout_weighted_wape_champion']:.4f}", flush=True)
        before, after = (sum(v) / len(v) for v in times.values())
        print(f"  retrain after a late row: {after:.1f}s against {before:.1f}s ({before / after:.1f}x)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
