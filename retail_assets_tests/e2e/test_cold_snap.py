"""The cold snap: three warm stores turn cold; drift retrains exactly those, the spike sensor stays quiet,
their forecasts move toward the new level, and the retrain's inventory cover flags their summer stock as
over-stocked. Also measures the lag from the first cold day ingested to
the retrained bundle, in days of data and in drift-sensor ticks."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from retail_assets.core.demo.generator import generate_landing_zone
from retail_assets.core.demo.world import GeneratorConfig
from retail_assets.defs.forecasting.sensors import drift_sensor, sales_spike_sensor
from retail_assets.resources import DriftSettings, RetailDataRoot
from retail_assets_tests.helpers import materialize_ingest, run_store_pipeline

SNAP = GeneratorConfig(stores=7, items=16, days=400, start=dt.date(2024, 6, 20), seed=3, scenario="cold_snap",
                       channels=("pos", "iot", "weather"))
TRAIN = {"min_history_days": 100, "fold_days": 28, "backtest_folds": 3, "min_train_days": 56}
SENSITIVE = ("patio", "ice_cream", "beverages")


def _day(path: Path) -> dt.date:
    stamp = next(x for x in path.stem.split("_") if x.isdigit() and len(x) == 8)
    return dt.date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:]))


def _sensitive_forecast(root: Path, store: str, first: dt.date, last: dt.date) -> float:
    f = pd.read_parquet(root / "forecasts" / f"store={store}" / "forecast.parquet")
    items = pd.read_csv(root / "landing" / "reference" / "items.csv").rename(columns={"sku": "item_id"})
    f = f.merge(items[["item_id", "category"]], on="item_id")
    f["date"] = pd.to_datetime(f["date"]).dt.date
    return float(f[f["category"].isin(SENSITIVE) & (f["date"] >= first) & (f["date"] <= last)]["yhat"].sum())


@pytest.mark.scenario
def test_cold_snap_retrains_exactly_the_cold_stores(tmp_path):
    root = tmp_path / "data"
    truth = generate_landing_zone(root / "landing", SNAP)
    cold = set(truth["counts"]["cold_snap"]["stores"].split(","))
    first = dt.date.fromisoformat(truth["counts"]["cold_snap"]["first_day"])
    held = tmp_path / "held"
    for path in [*(root / "landing" / "pos").rglob("*.csv"), *(root / "landing" / "iot").glob("*.csv"),
                 *(root / "landing" / "weather").glob("*.csv")]:
        if _day(path) >= first:
            target = held / path.relative_to(root / "landing")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
    assert materialize_ingest(root).success
    instance = dg.DagsterInstance.ephemeral()
    trained = run_store_pipeline(root, instance, **TRAIN)
    assert sum(r.success for r in trained.values()) >= 6  # the newest store may be too young to train
    resources = {"data_root": RetailDataRoot(data_dir=str(root)), "drift_settings": DriftSettings()}

    # the cold days arrive one day at a time; the drift sensor ticks after each day's ingest, and a store it
    # requests is retrained that day (as the sensor's run would): its forecast before and after, its cover
    detected, before, after, cover, reasons, day = {}, {}, {}, {}, {}, first
    while set(detected) < cold and day < first + dt.timedelta(days=12):
        for path in sorted(held.rglob("*.csv")):
            if _day(path) == day:
                target = root / "landing" / path.relative_to(held)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(path, target)
        assert materialize_ingest(root).success
        result = drift_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        reasons.update({e.partition: e.metadata["drift_reasons"].value for e in result.asset_events})
        new = sorted({r.partition_key for r in result.run_requests} - set(detected))
        assert set(new) <= cold, json.dumps(reasons)  # a warm store is never retrained
        if new:
            window = (day + dt.timedelta(days=1), day + dt.timedelta(days=7))  # the next 7 days
            before.update({s: _sensitive_forecast(root, s, *window) for s in new})
            retrained = run_store_pipeline(root, instance, **TRAIN, only=new)
            assert all(r.success for r in retrained.values())
            for s in new:
                detected[s] = day
                after[s] = _sensitive_forecast(root, s, *window)
                # the retrain's inventory cover flags the stalled summer stock in the same run
                table = pd.read_parquet(root / "inventory" / f"store={s}" / "cover.parquet").set_index("category")
                flagged = table[table["overstock"]]
                check = [e for e in retrained[s].get_asset_check_evaluations()
                         if e.check_name == "inventory_cover_flags"]
                assert check and not check[0].passed and len(flagged), (s, table)
                assert set(flagged.index) <= set(SENSITIVE)
                cover[s] = {c: round(float(w), 1) for c, w in table.loc[list(SENSITIVE), "weeks_of_cover"].items()}
        day += dt.timedelta(days=1)
    assert set(detected) == cold, json.dumps(reasons)
    quiet = sales_spike_sensor(dg.build_sensor_context(cursor=str(first - dt.timedelta(days=1)), resources=resources))
    assert isinstance(quiet, dg.SkipReason)
    for path in sorted(held.rglob("*.csv")):  # what actually sold in those days
        target = root / "landing" / path.relative_to(held)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
    assert materialize_ingest(root).success
    import duckdb

    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        actual = {s: con.execute(
            "select sum(units_total) from fct_daily_demand f join dim_item i using (item_id) "
            f"where i.category in {SENSITIVE} and store_id = ? and business_date between ? and ?",
            [s, d + dt.timedelta(days=1), d + dt.timedelta(days=7)]).fetchone()[0] for s, d in detected.items()}
    for s in cold:
        assert abs(after[s] - actual[s]) < abs(before[s] - actual[s]), (s, before[s], after[s], actual[s])
    print("\ncold snap: " + "; ".join(
        f"{s}: drift detected after {(detected[s] - first).days + 1} days of cold data and retrained the same day; "
        f"next 7 days' sensitive-category forecast {before[s]:.0f} -> {after[s]:.0f}, actual {actual[s]:.0f} "
        f"({after[s] / actual[s] - 1:+.0%} after, {before[s] / actual[s] - 1:+.0%} before); weeks of cover {cover[s]}"
        for s in sorted(cold)))
