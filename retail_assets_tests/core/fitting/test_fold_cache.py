"""Folds cached by what made them (core/forecast/fold_cache.py), with real Prophet, statsforecast and LightGBM
fits: a retrain after a new day refits no fold and gives the very forecasts a training without the cache
gives; a late row refits the folds that saw it and no earlier one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from retail_assets.core.fitting import pool
from retail_assets.core.fitting.train import train_store
from retail_assets.core.forecast import fold_cache
from retail_assets_tests.helpers import FAST, noisy_weekly, synthetic_store

CFG = dataclasses.replace(FAST, gbm_rounds=60)
START = pd.Timestamp("2024-01-01")  # a Monday


def _days_to(weekday: int, near: int) -> int:
    """A history length near `near` whose last day falls on `weekday` (Monday 0)."""
    return next(n for n in range(near, near + 7) if (START + pd.Timedelta(days=n - 1)).dayofweek == weekday)


SERIES = {f"SKU-{i}": noisy_weekly(420, 5 + 4 * i, i) for i in range(3)}


def _features(n: int, late: dict | None = None) -> pd.DataFrame:
    items = {k: v[:n].copy() for k, v in SERIES.items()}
    for (item, day), value in (late or {}).items():
        items[item][day] = value
    return synthetic_store(items, start=str(START.date()))


def _folds(mv) -> pd.DataFrame:
    return pd.read_parquet(mv.path / "backtest.parquet").sort_values(["item_id", "fold", "date"], ignore_index=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    n = _days_to(2, 300)  # a Wednesday: the next day is still before Sunday's fold boundary
    first = train_store(_features(n), root, "day-0", CFG, workers=1)
    second = train_store(_features(n + 1), root, "day-1", CFG, workers=1)
    return root, n, first, second


def test_a_retrain_after_a_new_day_refits_no_fold_and_matches_a_training_without_the_cache(trained, tmp_path):
    root, n, first, second = trained
    assert first.manifest["summary"]["folds_cached"] == 0
    s = second.manifest["summary"]
    assert s["folds_total"] > 0 and s["folds_cached"] == s["folds_total"]
    assert s["gbm_origins_cached"] > 0 and s["gbm_fits"] == 1  # the final fit alone
    assert fold_cache.cache_path(root, "0001").is_file()
    # the same day trained from nothing, without the cache: the same fold forecasts, the same choices
    fresh = train_store(_features(n + 1), tmp_path, "day-1", dataclasses.replace(CFG, fold_cache=False), workers=1)
    pd.testing.assert_frame_equal(_folds(second), _folds(fresh))
    assert {i: d["champion"] for i, d in second.manifest["items"].items()} == \
        {i: d["champion"] for i, d in fresh.manifest["items"].items()}
    assert s["heldout_weighted_wape_champion"] == fresh.manifest["summary"]["heldout_weighted_wape_champion"]


def test_a_late_row_refits_the_folds_that_saw_it_and_no_earlier_one(trained):
    root, n, _first, second = trained
    held_out_start = pd.Timestamp(_folds(second).query("kind == 'recent'")["date"].max()) - pd.Timedelta(
        days=CFG.fold_horizon - 1)
    day = (held_out_start - START).days + 2  # inside the held-out fold: read by no fit, only scored
    inside = train_store(_features(n + 1, {("SKU-0", day): 999.0}), root, "late-1", CFG, workers=1)
    s = inside.manifest["summary"]
    assert s["folds_cached"] == s["folds_total"]  # a fold's actuals are scored, never fitted: nothing to refit
    late = _folds(inside).query("item_id == 'SKU-0' and date == @held_out_start.strftime('%Y-%m-%d')")
    assert len(late) == 1
    # a late row before the last origin: the folds after it refit, the ones before it stay
    day = (held_out_start - START).days - 3
    before = train_store(_features(n + 1, {("SKU-1", day): 999.0}), root, "late-2", CFG, workers=1)
    s = before.manifest["summary"]
    refitted = s["folds_total"] - s["folds_cached"]
    assert refitted == 1  # SKU-1's held-out fold: no other item's, none of its earlier folds
    assert s["gbm_fits"] == len(CFG.gbm_variants) + 1  # the store's trees at the held-out origin, and the final
    assert np.isfinite(s["heldout_weighted_wape_champion"])


def test_a_retrain_from_the_cache_starts_no_worker_and_many_misses_hand_the_rest_to_the_pool(trained, tmp_path,
                                                                                           monkeypatch):
    _root, n, _first, second = trained
    train_store(_features(n), tmp_path, "day-0", CFG, workers=1)
    s = train_store(_features(n + 1), tmp_path, "day-1", CFG, workers=2).manifest["summary"]
    assert s["folds_cached"] == s["folds_total"]
    assert s["items_fitted_in_process"] == len(SERIES)  # final fits only: no worker started
    held_out_start = pd.Timestamp(_folds(second).query("kind == 'recent'")["date"].max()) - pd.Timedelta(
        days=CFG.fold_horizon - 1)
    day = (held_out_start - START).days - 4  # in SKU-1's training window: its held-out fold misses
    s = train_store(_features(n + 1, {("SKU-1", day): 777.0}), tmp_path, "late", CFG, workers=2).manifest["summary"]
    assert s["folds_total"] - s["folds_cached"] == 1
    assert s["items_fitted_in_process"] == len(SERIES)  # one fold refitted here costs less than starting workers
    # a late row early in SKU-0's history: every fold of SKU-0 refits, more than this process's budget (made small
    # for three small items): SKU-1 and SKU-2 go to the pool
    monkeypatch.setattr(pool, "IN_PROCESS_REFITS", 2)
    s = train_store(_features(n + 1, {("SKU-0", 10): 555.0}), tmp_path, "early", CFG, workers=2).manifest["summary"]
    assert s["folds_total"] - s["folds_cached"] > pool.IN_PROCESS_REFITS  # SKU-0's 3, and SKU-1's fold back
    assert s["items_fitted_in_process"] == 1


def _reference(last: pd.Timestamp) -> pd.DataFrame:
    """A young store's analog reference (core/forecast/analog.py) through `last`: the analogs' own new day is in it."""
    from retail_assets.core.forecast import analog

    start = START - pd.Timedelta(days=analog.YEAR + analog.PROFILE_DAYS)
    days = pd.date_range(start, periods=900)  # one history of the analogs, cut at `last`
    rows = pd.concat([pd.DataFrame({"item_id": item, "date": days,
                                    "analog_units": noisy_weekly(len(days), 6 + 3 * k, 50 + k)})
                      for k, item in enumerate(SERIES)])
    rows = rows[rows["date"] <= last]
    return analog.reference_frame(rows, sorted(SERIES), start, last, ["0002", "0003"], "test")


def test_a_young_store_after_a_new_day_reuses_its_folds_analog_forecasts_included(tmp_path):
    n = _days_to(2, 300)
    last = START + pd.Timedelta(days=n - 1)
    first = train_store(_features(n), tmp_path, "day-0", CFG, workers=1, analog_reference=_reference(last))
    second = train_store(_features(n + 1), tmp_path, "day-1", CFG, workers=1,
                         analog_reference=_reference(last + pd.Timedelta(days=1)))
    s = second.manifest["summary"]
    assert "analog" in _folds(first).columns and _folds(first)["analog"].notna().any()
    assert s["folds_total"] > 0 and s["folds_cached"] == s["folds_total"]
    pd.testing.assert_frame_equal(_folds(first)[["item_id", "fold", "date", "analog"]],
                                  _folds(second)[["item_id", "fold", "date", "analog"]])
