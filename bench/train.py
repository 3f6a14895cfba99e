"""Training speed on one generated store of 50 items x 3 years (the demo demand model).

Prints, all measured in this run:
  * parallel efficiency: (sum of single-item times, run one at a time) / cores / (wall time of the process
    pool over the same items). Goal (issue 5): >= 0.8 on 2 cores.
  * the model zoo's cost: a full store train (backtest, selection, calibration, the version written) with the
    zoo (statsforecast, the store's LightGBM, combinations) vs Prophet and the baselines only (the platform
    before the zoo, `TrainConfig(zoo=False)`), same store, both cold, with each one's held-out WAPE.
    Goal (issue 16): within the wall time of the path without the zoo.
  * warm start: Prophet fit seconds of a retrain whose first fit per item starts from the previous version's
    parameters vs one whose first fit starts cold (later folds chain in both), same store, same data.
    Goal: >= 3x faster.

    .venv/bin/python bench/train.py [--items 50] [--days 1096]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from retail_assets.core.forecast.models import TrainConfig
from retail_assets.core.features.grid import materialize_store_features
from retail_assets.core.demo.generator import generate_landing_zone
from retail_assets.core.demo.world import GeneratorConfig
from retail_assets.core.ingest.load import load_landing_zone
from retail_assets.core.fitting.champion import decide
from retail_assets.core.fitting.pool import build_tasks, run_items
from retail_assets.core.fitting.store_models import add_store_models
from retail_assets.core.fitting.train import previous_inits, train_store
from retail_assets.dbt import dbt_executable
from retail_assets.settings import DBT_PROJECT_DIR


def prepare(root: Path, items: int, days: int):
    generate_landing_zone(root / "landing", GeneratorConfig(stores=1, items=items, days=days, channels=("pos",)))
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        load_landing_zone(con, root / "landing")
    env = {**os.environ, "RETAIL_DATA_DIR": str(root)}
    subprocess.run([dbt_executable(), "build", "--quiet", "--profiles-dir", str(DBT_PROJECT_DIR),
                    "--project-dir", str(DBT_PROJECT_DIR)], check=True, env=env)
    return materialize_store_features(root / "warehouse.duckdb", root / "features", "0001", 28)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--days", type=int, default=1096)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    root = Path(tempfile.mkdtemp(prefix="bench_train_"))
    try:
        fs = prepare(root, args.items, args.days)
        cfg = TrainConfig()
        tasks = build_tasks(fs.frame, cfg)
        print(f"store 0001: {len(tasks)} items x {args.days} days; {cores} cores", flush=True)

        t0 = time.perf_counter()
        serial = run_items(tasks, workers=1)
        t_serial = time.perf_counter() - t0
        per_item_sum = t_serial  # one at a time, in this process: the sum of single-item times
        fits = sum(r.fits for r in serial)
        print(f"  one at a time : {t_serial:6.1f}s wall, {fits} Prophet fits, "
              f"{sum(r.fit_seconds for r in serial):.1f}s inside Prophet.fit", flush=True)

        t0 = time.perf_counter()
        run_items(tasks, workers=cores)
        t_pool = time.perf_counter() - t0
        eff = per_item_sum / cores / t_pool
        print(f"  process pool  : {t_pool:6.1f}s wall with {cores} workers (spawn start-up included)")
        print(f"  parallel efficiency = {per_item_sum:.1f}s / {cores} / {t_pool:.1f}s = {eff:.2f} "
              f"(goal >= 0.80: {'met' if eff >= 0.8 else 'NOT met'})", flush=True)

        for label, zoo_cfg in (("Prophet + baselines", TrainConfig(zoo=False)), ("model zoo", cfg)):
            t0 = time.perf_counter()
            mv = train_store(fs.frame, root / f"models-{label[:5]}", "bench-zoo", zoo_cfg, workers=cores,
                             warm_start=False)
            s = mv.manifest["summary"]
            print(f"  full train, {label:<19}: {time.perf_counter() - t0:6.1f}s wall; held-out weighted WAPE "
                  f"champion {s['heldout_weighted_wape_champion']:.4f}, seasonal naive "
                  f"{s['heldout_weighted_wape_seasonal_naive']:.4f}; mix {s['champion_mix']}", flush=True)

        models = root / "models"
        first = train_store(fs.frame, models, "bench-v1", cfg, workers=cores, warm_start=False)
        inits = previous_inits(first)
        warm_tasks = build_tasks(fs.frame, cfg, inits)
        t0 = time.perf_counter()
        cold = run_items(build_tasks(fs.frame, cfg), workers=1)
        t_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        warm = run_items(warm_tasks, workers=1)
        t_warm = time.perf_counter() - t0
        fit_cold = sum(r.fit_seconds for r in cold)
        fit_warm = sum(r.fit_seconds for r in warm)
        print(f"  retrain, cold first fit : {t_cold:6.1f}s wall, {fit_cold:.1f}s inside Prophet.fit "
              "(each later fold starts from the fold before, as in every training)")
        starts: dict[str, int] = {}
        for r in warm:
            for k, n in r.fit_starts.items():
                starts[k] = starts.get(k, 0) + n
        print(f"  retrain, warm first fit : {t_warm:6.1f}s wall, {fit_warm:.1f}s inside Prophet.fit "
              f"({len(inits)} items given the previous version's parameters; fits by start: {starts})")
        add_store_models(build_tasks(fs.frame, cfg), cold, cfg)  # the store's LightGBM and the combinations
        add_store_models(warm_tasks, warm, cfg)
        w_cold = decide("0001", cold, cfg).summary["heldout_weighted_wape_champion"]
        w_warm = decide("0001", warm, cfg).summary["heldout_weighted_wape_champion"]
        print(f"  held-out weighted WAPE of the champion: cold {w_cold:.4f}, warm {w_warm:.4f}")
        ratio = fit_cold / fit_warm if fit_warm else float("inf")
        print(f"  warm-start speed-up (fit time) = {ratio:.2f}x, wall {t_cold / t_warm:.2f}x "
              f"(goal >= 3x: {'met' if ratio >= 3 else 'NOT met'})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
