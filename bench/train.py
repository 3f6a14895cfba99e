"""Training speed on one generated store of 50 items x 3 years (the demo demand model).

Prints, all measured in this run:
  * parallel efficiency: (sum of single-item times, run one at a time) / cores / (wall time of the process
    pool over the same items). Goal (issue 5): >= 0.8 on 2 cores.
  * a cold train with Prophet's optimum found in process (core/forecast/prophet_map.py) against the same train
    with CmdStan (the path before it), side by side. Goal (issue 17): at least 2x faster, the same held-out WAPE.
  * with --zoo, the model zoo's cost: a full store train (backtest, selection, calibration, the version written) with the
    zoo (statsforecast, the store's LightGBM, combinations) vs Prophet and the baselines only (the platform
    before the zoo, `TrainConfig(zoo=False)`), same store, both cold, with each one's held-out WAPE.
    Goal (issue 16): within the wall time of the path without the zoo.
  * a retrain after one new day (issue 17): yesterday's features trained cold, then today's with the fold cache
    (core/forecast/fold_cache.py) and the final Prophet fits warm-started from yesterday's version, against the
    cold train. Goals: >= 10x faster; held-out WAPE within 0.5 % of the same day trained without the cache.

    .venv/bin/python bench/train.py [--items 50] [--days 1096] [--zoo]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
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
from retail_assets.core.fitting.pool import FitPool, build_tasks, run_items, shared_pool
from retail_assets.core.fitting.train import train_store
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


def one_day_back(frame):
    """The features as they were a day earlier: the last day of history is still ahead, its sales unknown."""
    last = frame.loc[~frame["is_future"], "date"].max()
    out = frame.copy()
    day = out["date"] == last
    out.loc[day, "is_future"] = True
    out.loc[day, "units"] = None
    return out


def run_retrain(fs, root: Path, cfg: TrainConfig, cores: int, n_items: int) -> None:
    """A retrain after one new day against the cold train of the day before, and the same day without the cache."""
    # a retrain after one new day: yesterday's features trained cold, then today's (the demo's last day is a
    # Wednesday: the new day moves no fold, as on six days of seven; a Sunday starts the weekly re-backtest)
    yesterday = one_day_back(fs.frame)
    new_day = fs.frame.loc[~fs.frame["is_future"], "date"].max()
    models = root / "models"
    t0 = time.perf_counter()
    train_store(yesterday, models, "bench-day0", cfg, workers=cores)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    today = train_store(fs.frame, models, "bench-day1", cfg, workers=cores)
    t_new = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = train_store(fs.frame, root / "models-ref", "bench-day1", replace(cfg, fold_cache=False), workers=cores)
    t_ref = time.perf_counter() - t0
    s, r = today.manifest["summary"], ref.manifest["summary"]
    print(f"  cold train of yesterday   : {t_cold:6.1f}s wall")
    print(f"  retrain after one new day ({new_day:%A %Y-%m-%d}): {t_new:6.1f}s wall; folds from the cache "
          f"{s['folds_cached']} of {s['folds_total']}, LightGBM origins {s['gbm_origins_cached']} cached, "
          f"{s['gbm_fits']} fitted; Prophet fits by start {s['prophet_fit_starts']} (served final fits {s.get('prophet_final_fits', 'all made')}; classic {s.get('classic_final_fits', 'all made')}); items fitted in this process "
          f"(no worker started) {s['items_fitted_in_process']} of {n_items}")
    print(f"  the same day trained without the cache: {t_ref:6.1f}s wall")
    speed = t_cold / t_new
    print(f"  new-day retrain speed-up = {speed:.1f}x the cold train (goal >= 10x: "
          f"{'met' if speed >= 10 else 'NOT met'})")
    w_new, w_ref = s["heldout_weighted_wape_champion"], r["heldout_weighted_wape_champion"]
    print(f"  held-out weighted WAPE: retrain {w_new:.4f}, trained without the cache {w_ref:.4f} "
          f"({(w_new / w_ref - 1):+.2%}; goal within 0.5 %)")


def run_shared_pool(fs, root: Path, cfg: TrainConfig, cores: int, stores: int) -> None:
    """`stores` copies of the store (other ids, the same features), cold, each training with its own pool and then
    all in one shared pool (`pool.shared_pool`, what `retail run` opens around its store runs); twice, alternating."""
    frames = [fs.frame.assign(store_id=f"{k + 1:04d}") for k in range(stores)]
    for rep in range(2):
        t0 = time.perf_counter()
        for frame in frames:
            train_store(frame, root / f"own-{rep}", "bench-own", cfg, workers=cores, warm_start=False)
        own = time.perf_counter() - t0
        t0 = time.perf_counter()
        with FitPool("processes", cores) as pool, shared_pool(pool):
            for frame in frames:
                train_store(frame, root / f"shared-{rep}", "bench-shared", cfg, warm_start=False)
        shared = time.perf_counter() - t0
        print(f"  {stores} stores cold, one after another: a pool each {own:6.1f}s, one shared pool {shared:6.1f}s "
              f"({own / shared:.2f}x)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--days", type=int, default=1096)
    parser.add_argument("--zoo", action="store_true", help="also time the zoo against Prophet + baselines")
    parser.add_argument("--retrain-only", action="store_true",
                        help="only the retrain after one new day against its cold train")
    parser.add_argument("--shared-pool", type=int, default=0, metavar="STORES",
                        help="only STORES copies of the store trained one after another, each starting its own "
                             "pool (one Dagster run per store before) against one pool shared by all (`retail run`)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    root = Path(tempfile.mkdtemp(prefix="bench_train_"))
    try:
        fs = prepare(root, args.items, args.days)
        cfg = TrainConfig()
        tasks = build_tasks(fs.frame, cfg)
        print(f"store 0001: {len(tasks)} items x {args.days} days; {cores} cores", flush=True)

        if args.shared_pool:
            run_shared_pool(fs, root, cfg, cores, args.shared_pool)
            return
        run_retrain(fs, root, cfg, cores, len(tasks))
        if args.retrain_only:
            return
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

        cold = {}
        for label, optimizer in (("CmdStan", "cmdstan"), ("in process", "in_process")):
            t0 = time.perf_counter()
            mv = train_store(fs.frame, root / f"models-{optimizer}", "bench-cold",
                             replace(cfg, prophet_optimizer=optimizer), workers=cores, warm_start=False)
            cold[optimizer] = time.perf_counter() - t0
            s = mv.manifest["summary"]
            print(f"  cold train, Prophet {label:<10}: {cold[optimizer]:6.1f}s wall; held-out weighted WAPE "
                  f"champion {s['heldout_weighted_wape_champion']:.4f}, Prophet fits by optimizer "
                  f"{s['prophet_fit_optimizers']}", flush=True)
        speed = cold["cmdstan"] / cold["in_process"]
        print(f"  cold train speed-up = {speed:.2f}x (goal >= 2x: {'met' if speed >= 2 else 'NOT met'})", flush=True)
        zoo_runs = (("Prophet + baselines", TrainConfig(zoo=False)), ("model zoo", cfg)) if args.zoo else ()
        for label, zoo_cfg in zoo_runs:
            t0 = time.perf_counter()
            mv = train_store(fs.frame, root / f"models-{label[:5]}", "bench-zoo", zoo_cfg, workers=cores,
                             warm_start=False)
            s = mv.manifest["summary"]
            print(f"  full train, {label:<19}: {time.perf_counter() - t0:6.1f}s wall; held-out weighted WAPE "
                  f"champion {s['heldout_weighted_wape_champion']:.4f}, seasonal naive "
                  f"{s['heldout_weighted_wape_seasonal_naive']:.4f}; mix {s['champion_mix']}", flush=True)

    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
