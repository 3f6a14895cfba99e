"""Does the temperature regressor help the categories that respond to weather, and leave the others alone?

Generates a demo zone (POS, store IoT temperature, issued weather forecasts), ingests it, builds each store's
features and trains every store twice in this run, cold (no fold cache): with the temperature regressor (the
observed temperature and the store's issued forecasts, as-of: core/forecast/weather.py) and without it (the
same features with the temperature column and the weather file removed). Prints the held-out weighted WAPE (the
last recent fold, champions chosen on the earlier folds only) of the weather-sensitive categories and of the
others, for the champion and for the store's LightGBM alone, and the time of each training.

    .venv/bin/python bench/weather.py [--stores 2] [--items 30] [--days 1096] [--scenario demo] [--seeds 42]

`--seeds 42,43,44` repeats it on zones generated from each seed (the spread says what is noise).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from retail_assets.core.demo.generator import generate_landing_zone
from retail_assets.core.demo.world import CATEGORIES, GeneratorConfig
from retail_assets.core.features.grid import materialize_store_features, read_weather_issues
from retail_assets.core.fitting.train import train_store
from retail_assets.core.forecast.models import TrainConfig
from retail_assets.core.ingest.load import load_landing_zone
from retail_assets.core.metrics import wape
from retail_assets.dbt import dbt_executable
from retail_assets.settings import DBT_PROJECT_DIR

SENSITIVE = sorted(c for c, v in CATEGORIES.items() if v["temp"] != 0)


def heldout(mv, categories: pd.Series) -> dict[str, float]:
    """Held-out weighted WAPE per category group: the champion chosen on the earlier folds, and LightGBM alone."""
    bt = pd.read_parquet(mv.path / "backtest.parquet")
    last = bt[(bt["kind"] == "recent") & (bt["fold"] == bt.loc[bt["kind"] == "recent", "fold"].max())
              & bt["is_open_day"]].copy()
    champ = {i: info["heldout_champion"] for i, info in mv.manifest["items"].items()}
    last["champion"] = [row[champ[row["item_id"]]] for _, row in last.iterrows()]
    last["group"] = np.where(last["item_id"].map(categories).isin(SENSITIVE), "sensitive", "other")
    out = {}
    for group, g in last.groupby("group"):
        out[f"{group} champion"] = wape(g["y"].to_numpy(float), g["champion"].to_numpy(float))
        ok = g["lightgbm"].notna()
        out[f"{group} lightgbm"] = wape(g.loc[ok, "y"].to_numpy(float), g.loc[ok, "lightgbm"].to_numpy(float))
    return out


def run_zone(args, seed: int) -> list[dict]:
    """One generated zone: every mature store trained with and without the temperature."""
    root = Path(tempfile.mkdtemp(prefix="bench_weather_"))
    generate_landing_zone(root / "landing", GeneratorConfig(
        stores=args.stores, items=args.items, days=args.days, scenario=args.scenario,
        channels=("pos", "iot", "weather"), seed=seed))
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        load_landing_zone(con, root / "landing")
    env = {**os.environ, "RETAIL_DATA_DIR": str(root)}
    subprocess.run([dbt_executable(), "build", "--quiet", "--profiles-dir", str(DBT_PROJECT_DIR),
                    "--project-dir", str(DBT_PROJECT_DIR)], check=True, env=env)
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        stores = [r[0] for r in con.execute(
            "select store_id from dim_store where first_sale_date <= last_sale_date - 365 order by 1").fetchall()]
    cfg = dataclasses.replace(TrainConfig(), fold_cache=False)
    rows = []
    for store in stores:
        fs = materialize_store_features(root / "warehouse.duckdb", root / "features" / f"store={store}", store, 28)
        categories = fs.frame.drop_duplicates("item_id").set_index("item_id")["category"]
        issues = read_weather_issues(fs.path)
        for label, features, weather in (("with temperature", fs.frame, issues),
                                          ("without", fs.frame.drop(columns=["temperature_c"]), None)):
            t0 = time.perf_counter()
            mv = train_store(features, root / "models" / label.replace(" ", "_"), f"{store}-{label}", cfg,
                             workers=args.workers, analog_reference=None, weather_issues=weather)
            seconds = time.perf_counter() - t0
            rows.append({"seed": seed, "store": store, "run": label, "seconds": seconds, **heldout(mv, categories),
                         "temperature_data": bool(mv.manifest["summary"].get("temperature_regressor"))})
            print(f"seed {seed} store {store} {label}: {seconds:.0f}s", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=2)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--days", type=int, default=1096)
    parser.add_argument("--scenario", default="demo")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", default="42", help="Comma-separated generator seeds, one zone each.")
    args = parser.parse_args()
    rows = []
    for seed in [int(x) for x in args.seeds.split(",")]:
        rows += run_zone(args, seed)
    table = pd.DataFrame(rows)
    print(f"\n{args.stores} stores x {args.items} items x {args.days} days, scenario {args.scenario}, seeds "
          f"{args.seeds}; held-out "
          f"weighted WAPE (last fold), weather-sensitive categories: {', '.join(SENSITIVE)}")
    print(table.round(4).to_string(index=False))
    for group in ("sensitive", "other"):
        for who in ("champion", "lightgbm"):
            a = table[table["run"] == "with temperature"][f"{group} {who}"].mean()
            b = table[table["run"] == "without"][f"{group} {who}"].mean()
            w = table[table["run"] == "with temperature"][f"{group} {who}"].to_numpy()
            o = table[table["run"] == "without"][f"{group} {who}"].to_numpy()
            per = ", ".join(f"{x:+.1%}" for x in w / o - 1)
            print(f"  {group:<9} {who:<8}: {a:.4f} with temperature vs {b:.4f} without ({a / b - 1:+.1%}; per store "
                  f"and seed: {per})")


if __name__ == "__main__":
    main()
