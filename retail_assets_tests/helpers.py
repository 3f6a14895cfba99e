"""Shared builders of the test suite: generated zones, real ingest and store-pipeline runs, synthetic stores,
minimal landing zones, the `retail` command in a child process. Fixtures (conftest.py) and test modules
import them from here; nothing here is a fixture."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from retail_assets.core.demo.world import GeneratorConfig
from retail_assets.core.forecast.models import TrainConfig

# Three stores (US, UK, DE), both autumn clock changes (29 Oct UK/DE, 5 Nov US), one late opener.
SMALL = GeneratorConfig(stores=4, items=6, days=75, start=dt.date(2023, 10, 1), seed=7)


def materialize_ingest(data_dir: Path) -> dg.ExecuteInProcessResult:
    """A real run of the landing and dbt assets, and the warehouse checks, against `data_dir`."""
    from retail_assets.defs.harmonize.assets import dbt_models
    harmonized = dbt_models()
    from retail_assets.defs.harmonize.checks import warehouse_checks
    from retail_assets.defs.ingest.assets import raw_landing
    gx_demand_checks, gx_quarantine_rate = warehouse_checks()
    from retail_assets.resources import build_resources

    os.environ["RETAIL_DATA_DIR"] = str(data_dir)
    return dg.materialize([raw_landing, harmonized, gx_demand_checks, gx_quarantine_rate],
                          resources=build_resources(data_dir))


def load_truth(landing: Path) -> dict:
    return json.loads((landing / "_truth" / "defects.json").read_text())


# short folds so the 75-day demo history still gets two backtest folds
# fit_workers 1: a small test store fits faster in process than a spawned pool starts (Prophet, statsforecast and
# cmdstan imports per worker); the pool itself is tested where it matters (core/fitting, core/forecast, e2e chaos)
FAST_SETTINGS = {"min_history_days": 20, "fold_days": 14, "backtest_folds": 2, "min_train_days": 28, "fit_workers": 1}


def run_store_pipeline(data_dir: Path, instance: dg.DagsterInstance, only: list[str] | None = None,
                       **settings) -> dict:
    """Register the stores of dim_store as partitions, run the per-store assets once per store (features,
    their blocking gate, model, forecast, edge bundle), then publish the forecasts view."""
    from retail_assets.defs.edge.bundles import edge_bundle
    from retail_assets.defs.forecasting.assets import (
        demand_forecast,
        demand_model,
        forecasts_view,
    )
    from retail_assets.defs.stores.assets import store_assets
    store_registry = store_assets()[0]
    from retail_assets.definitions import build_definitions
    from retail_assets.resources import build_resources

    resources = build_resources(data_dir, **{**FAST_SETTINGS, **settings})
    assert dg.materialize([store_registry], instance=instance, resources=resources,
                          selection=[store_registry]).success
    store_pipeline = build_definitions(resources).resolve_job_def("store_pipeline")  # the real job
    results = {}
    for store in only or instance.get_dynamic_partitions("stores"):
        results[store] = store_pipeline.execute_in_process(instance=instance, partition_key=store,
                                                            raise_on_error=False)
    if any(r.success for r in results.values()):
        from retail_assets.defs.governance.assets import model_registry

        assert dg.materialize([forecasts_view, model_registry, demand_forecast, demand_model, edge_bundle],
                              instance=instance, resources=resources,
                              selection=[forecasts_view, model_registry]).success
    return results


# ---------------------------------------------------------------- synthetic stores (no warehouse)

FAST = TrainConfig(horizon=14, folds=3, fold_horizon=14, min_train_days=42, raw_interval_samples=50)
# the stores of small_store follow the seasonal-index model's own form (level x weekday x trend), so it wins
# their selection; tests of how Prophet-served items are fitted and served leave it out
FAST_WITHOUT_INDEX = dataclasses.replace(FAST, seasonal_index=False)


def small_store(n_items: int = 4, days: int = 450, store: str = "0001") -> pd.DataFrame:
    """A features frame like store_features writes: closed Sundays in the first months, promotions and
    one holiday, 450 days so the seasonal calibration folds (a year back) are fitted too."""
    rng = np.random.default_rng(11)
    dates = pd.date_range("2024-01-01", periods=days + FAST.horizon, freq="D")
    weekly = np.array([0.8, 0.9, 0.9, 1.0, 1.1, 1.4, 1.2])
    rows = []
    for i in range(n_items):
        level = [2.0, 6.0, 15.0, 40.0][i % 4]
        promo = rng.random(len(dates)) < 0.05
        for k, d in enumerate(dates):
            fut = k >= days
            open_day = not (d.weekday() == 6 and k < 90)
            mean = level * weekly[d.weekday()] * (1 + k / days * 0.2) * (1.5 if promo[k] else 1.0)
            units = None if fut else (float(rng.poisson(mean)) if open_day else 0.0)
            rows.append({"store_id": store, "item_id": f"SKU-{i + 1:04d}", "date": d, "is_future": fut,
                         "units": units, "is_open_day": open_day, "promo_planned": bool(promo[k]),
                         "holiday_name": "New Year" if (d.month, d.day) == (1, 1) else None})
    return pd.DataFrame(rows)


def synthetic_store(items: dict[str, np.ndarray], start="2024-01-01", horizon=14, store="0001") -> pd.DataFrame:
    """A features frame like store_features writes, from given history arrays (one per item)."""
    rows = []
    for item, y in items.items():
        dates = pd.date_range(start, periods=len(y) + horizon, freq="D")
        for k, d in enumerate(dates):
            fut = k >= len(y)
            rows.append({"store_id": store, "item_id": item, "date": d, "is_future": fut,
                         "units": None if fut else float(y[k]), "is_open_day": True, "promo_planned": False,
                         "holiday_name": None, "fiscal_year": 2024, "fiscal_week": 1})
    return pd.DataFrame(rows)


def noisy_weekly(n: int, level: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    weekly = np.array([0.8, 0.9, 0.9, 1.0, 1.1, 1.4, 1.2])
    trend = 1 + np.arange(n) / n * 0.3
    return rng.poisson(level * weekly[np.arange(n) % 7] * trend).astype(float)


# ---------------------------------------------------------------- minimal landing zones

US_HEADER = "txn_id,store_id,sku,sold_at,qty,unit_price,currency,promo_code,color"


def us_line(txn: str, qty: str = "2", promo: str = "", sku: str = "SKU-0001") -> str:
    return f"{txn},0001,{sku},2023-12-01 10:00:00,{qty},3.50,USD,{promo},red"


def minimal_zone(root: Path) -> Path:
    """A landing zone with valid reference files and nothing else."""
    landing = root / "landing"
    ref = landing / "reference"
    ref.mkdir(parents=True)
    (ref / "stores.csv").write_text("store_id,region,timezone,currency,opened_on,climate_zone,closed_weekdays\n"
                                    "0001,US,America/New_York,USD,2013-05-05,humid_continental,\n")
    (ref / "items.csv").write_text("sku,item_name,category,color,list_price_usd,launched_on\n"
                                   "SKU-0001,Grocery 0001,grocery,red,19.23,2022-10-01\n")
    (ref / "holidays.csv").write_text("date,region,holiday_name,store_closed\n")
    (ref / "promotions.csv").write_text("promo_code,region,sku,start_date,end_date,discount_pct\n")
    (ref / "fx_rates.csv").write_text("date,currency,usd_per_unit\n2023-01-01,USD,1\n")
    (landing / "pos" / "region=US").mkdir(parents=True)
    return landing


def retail_cli(*args, data_dir: Path, env: dict | None = None):
    """`retail ...` in a child process, as a user types it."""
    return subprocess.run([sys.executable, "-m", "retail_assets.cli", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
