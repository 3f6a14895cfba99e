"""Held-out accuracy on a real sales history you bring (kept outside the repository), against what a user
would pick instead, all on the same held-out days.

    .venv/bin/python bench/real_data.py --history /path/train.csv --date-col date --series-cols store,item \
        --target sales [--freq D] [--horizon 28] [--workers 2] [--label after]

Prints, for the held-out fold (the last `horizon` periods of every series, never seen by any choice):
  * the platform's champion (chosen per series on the earlier folds, as `retail backtest` and training do);
  * each single model of the platform alone: Prophet as configured here, the baselines, statsforecast's ETS,
    Theta and intermittent models, the store's LightGBM and the combination;
  * the per-series oracle (the best single model of each series, chosen on the held-out fold itself: a bound);
  * a plain gradient-boosted model (LightGBM, one model over all series with calendar and id features only,
    trained on everything before the held-out fold);
  * the calibrated interval's held-out coverage.
Weighted WAPE = sum |error| / sum actual over every series and day. Use `--label` to tell runs apart when the
same data is run with two builds (PYTHONPATH=<other checkout>).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from retail_assets.core.forecast.backtest_csv import load_history, run_backtest
from retail_assets.core.metrics import wape


def lightgbm_reference(frame: pd.DataFrame, horizon: int, freq: str) -> float | None:
    """One LightGBM over every series, calendar and id features only, trained before the held-out fold."""
    import lightgbm as lgb

    step = pd.Timedelta(days=1 if freq == "D" else 7)
    data = frame.groupby(["series", "date"], as_index=False)["y"].sum()
    cut = data.groupby("series")["date"].transform("max") - step * (horizon - 1)
    data["heldout"] = data["date"] >= cut
    d = data["date"]
    feats = pd.DataFrame({
        "series": data["series"].astype("category"),
        "dow": d.dt.day_of_week, "doy": d.dt.day_of_year, "woy": d.dt.isocalendar().week.astype(int),
        "month": d.dt.month, "year": d.dt.year, "dom": d.dt.day,
    })
    train, test = ~data["heldout"], data["heldout"]
    params = {"objective": "regression", "learning_rate": 0.05, "num_leaves": 63, "min_data_in_leaf": 20,
              "bagging_fraction": 0.8, "bagging_freq": 1, "feature_fraction": 0.9, "verbose": -1, "seed": 0,
              "num_threads": 2}
    model = lgb.train(params, lgb.Dataset(feats[train], data.loc[train, "y"]), num_boost_round=600)
    pred = np.clip(model.predict(feats[test]), 0, None)
    return wape(data.loc[test, "y"].to_numpy(float), pred)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=Path, required=True)
    parser.add_argument("--date-col", required=True)
    parser.add_argument("--series-cols", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--freq", default="D", choices=["D", "W"])
    parser.add_argument("--horizon", type=int, default=None)
    parser.add_argument("--holiday-col", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--store-col", default=None,
                        help="the series column naming the store: each store trained as the platform trains one")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    cols = [c.strip() for c in args.series_cols.split(",")]
    horizon = args.horizon or (28 if args.freq == "D" else 8)

    frame = load_history(args.history, args.date_col, cols, args.target, args.freq, args.holiday_col)
    t1 = time.perf_counter()
    gbm = lightgbm_reference(frame, horizon, args.freq)
    gbm_seconds = time.perf_counter() - t1
    t0 = time.perf_counter()
    report = run_backtest(args.history, args.date_col, cols, args.target, args.freq, horizon, args.holiday_col,
                          args.workers, store_col=args.store_col)
    seconds = time.perf_counter() - t0
    s, per = report.summary, report.per_model
    res = report.results
    heldout = [c for c in res.columns if c.startswith("heldout_wape_")]
    oracle_median = float(res[heldout].min(axis=1).median())

    fmt = lambda x: "n/a" if x is None else f"{x:.4f}"  # noqa: E731
    scope = f"{s['stores']} stores trained apart" if s.get("stores") else "one store (one LightGBM model)"
    print(f"{args.label + ': ' if args.label else ''}{args.history.name}: {report.series} series, {scope}, held-out = the "
          f"{s['heldout_fold']}; platform backtest {seconds:.0f}s")
    rows = [("platform champion", s["heldout_weighted_wape_champion"])]
    rows += [(f"{m} alone", per[m]["weighted_wape"]) for m in per]
    rows += [("LightGBM, calendar + ids (all series)", gbm)]
    # what a user would pick instead: a library's model alone or the plain gradient-boosted model (the
    # platform's own store models (LightGBM, seasonal index) and combination are parts of the champion, shown
    # but not alternatives)
    own = {"lightgbm alone", "seasonal_index alone", "combination alone"}
    best_alt = min((w for name, w in rows[1:] if w is not None and name not in own), default=None)
    for name, w in rows:
        print(f"  {name:<40} weighted WAPE {fmt(w)}")
    print(f"  per-series oracle (bound)                median WAPE {oracle_median:.4f} "
          f"(champion median {fmt(s['heldout_median_wape_champion'])})")
    if best_alt:
        gain = 1 - s["heldout_weighted_wape_champion"] / best_alt
        print(f"  champion vs the best alternative a user would pick (a model alone, the plain LightGBM): "
              f"{gain:+.1%} WAPE (goal: at least +4 %)")
    print(f"  calibrated {s['nominal_coverage']:.0%} interval held-out coverage {fmt(s['heldout_coverage_calibrated'])}"
          f" (goal 0.78-0.82), mean width {fmt(s['heldout_interval_mean_width'])}, interval score "
          f"{fmt(s['heldout_interval_score'])} ({fmt(s['heldout_interval_score_relative'])} of the mean actual); "
          f"champion mix {s['champion_mix']}; LightGBM {gbm_seconds:.0f}s")


if __name__ == "__main__":
    main()
