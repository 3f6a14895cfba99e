"""Per-item models with real Prophet fits on small synthetic stores."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from retail_assets.core.fitting.champion import decide
from retail_assets.core.fitting.pool import build_tasks, run_items
from retail_assets.core.fitting.train import train_store
from retail_assets.core.forecast.models import MODELS, TrainConfig
from retail_assets_tests.helpers import FAST, noisy_weekly, synthetic_store


def test_champion_is_the_baseline_when_prophet_is_worse():
    # an exact weekly pattern: seasonal naive is perfect, a smooth Prophet fit cannot be
    pattern = np.tile([2, 12, 2, 12, 2, 12, 40], 20).astype(float)  # sells every day: not intermittent
    results = run_items(build_tasks(synthetic_store({"SKU-A": pattern}), FAST), workers=1)
    decision = decide("0001", results, FAST).decisions[0]
    assert results[0].prophet_json is not None  # Prophet did fit...
    assert decision.backtest["prophet"]["wape"] > decision.backtest["seasonal_naive"]["wape"] == 0.0
    assert decision.champion == "seasonal_naive"  # ...and lost
    assert "seasonal naive" in decision.reason


def test_champion_is_prophet_when_it_wins():
    results = run_items(build_tasks(synthetic_store({"SKU-B": noisy_weekly(200, 30, 3)}), FAST), workers=1)
    decision = decide("0001", results, FAST).decisions[0]
    assert decision.champion == "prophet"
    assert decision.backtest["prophet"]["wape"] < decision.backtest["seasonal_naive"]["wape"]


def test_a_fit_that_raises_falls_back_and_the_store_goes_on():
    bad = noisy_weekly(150, 10, 2)
    bad[5] = np.inf  # Prophet refuses infinite values
    store = synthetic_store({"SKU-GOOD": noisy_weekly(150, 10, 3), "SKU-BAD": bad})
    results = run_items(build_tasks(store, FAST), workers=2)  # through the real process pool
    training = decide("0001", results, FAST)
    by_item = {d.item_id: d for d in training.decisions}
    assert by_item["SKU-BAD"].status == "fallback" and "infinity" in by_item["SKU-BAD"].error.lower()
    assert by_item["SKU-BAD"].champion != "prophet"
    assert by_item["SKU-GOOD"].status == "ok"
    assert training.summary["items_fallback"] == 1


def test_a_timed_out_fit_falls_back():
    cfg = TrainConfig(**{**FAST.to_json(), "fit_timeout_s": 1e-6})
    results = run_items(build_tasks(synthetic_store({"SKU-A": noisy_weekly(120, 10, 4)}), cfg), workers=1)
    decision = decide("0001", results, cfg).decisions[0]
    assert decision.status == "fallback" and "Timeout" in decision.error
    assert decision.champion != "prophet" and "prophet" not in results[0].future_yhat  # never the failed fit


def test_same_features_give_the_same_model_bytes(tmp_path):
    store = synthetic_store({"SKU-A": noisy_weekly(160, 20, 5), "SKU-B": noisy_weekly(160, 5, 6)})
    a = train_store(store, tmp_path / "a", "features-v1", FAST, workers=2)
    b = train_store(store, tmp_path / "b", "features-v1", FAST, workers=1)
    assert a.version == b.version
    assert a.manifest["files"] == b.manifest["files"]
    for item, info in a.manifest["items"].items():
        assert hashlib.sha256((a.path / info["file"]).read_bytes()).hexdigest() == info["sha256"]
    again = train_store(store, tmp_path / "a", "features-v1", FAST, workers=2)
    assert again.reused and again.version == a.version  # nothing changed: nothing retrained
    changed = train_store(store, tmp_path / "a", "features-v2", FAST, workers=2)
    serves_prophet = any(i["champion"] == "prophet" or (i["champion"] == "combination"
                                                        and "prophet" in i["combination_weights"])
                         for i in a.manifest["items"].values())  # a warm start needs a served Prophet fit
    assert not changed.reused
    assert changed.manifest["warm_started_from"] == (a.version if serves_prophet else None)


def test_calibrated_intervals_cover_the_nominal_share_on_held_out_data():
    items = {f"SKU-{i:02d}": noisy_weekly(420, level, 100 + i) for i, level in enumerate([3, 5, 8, 12, 20, 30] * 3)}
    results = run_items(build_tasks(synthetic_store(items), FAST), workers=2)
    summary = decide("0001", results, FAST).summary
    assert summary["heldout_coverage_calibrated"] == pytest.approx(0.80, abs=0.05)
    assert summary["heldout_weighted_wape_champion"] <= summary["heldout_weighted_wape_seasonal_naive"]


def _history_csv(path, freq: str, periods: int) -> None:
    step = "D" if freq == "D" else "W-MON"
    rows = []
    for s, level in (("A", 20), ("B", 6), ("C", 40)):
        y = noisy_weekly(periods, level, ord(s))
        for d, v in zip(pd.date_range("2022-01-03", periods=periods, freq=step), y):
            rows.append({"region": "north", "sku": s, "week_or_day": d.date().isoformat(), "sales": v})
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.mark.parametrize("freq, periods", [("D", 220), ("W", 110)])
def test_retail_backtest_on_a_csv(tmp_path, freq, periods):
    import subprocess
    import sys

    src, out = tmp_path / "history.csv", tmp_path / "results.csv"
    _history_csv(src, freq, periods)
    proc = subprocess.run(
        [sys.executable, "-m", "retail_assets.cli", "backtest", "--history", str(src), "--date-col", "week_or_day",
         "--series-cols", "region,sku", "--target", "sales", "--freq", freq, "--out", str(out), "--workers", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "series: 3" in proc.stdout
    for model in ("prophet", "seasonal_naive", "moving_average", "ets", "theta", "lightgbm", "combination"):
        assert model in proc.stdout
    assert "interval coverage" in proc.stdout
    results = pd.read_csv(out)
    assert sorted(results["series"]) == ["north|A", "north|B", "north|C"]
    assert set(results["champion"]) <= set(MODELS)


def test_retail_backtest_refuses_bad_columns(tmp_path):
    import subprocess
    import sys

    src = tmp_path / "history.csv"
    _history_csv(src, "D", 30)
    proc = subprocess.run(
        [sys.executable, "-m", "retail_assets.cli", "backtest", "--history", str(src), "--date-col", "when",
         "--series-cols", "sku", "--target", "sales"], capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0 and "['when'] not in history.csv" in proc.stderr


def test_retail_backtest_closed_when_missing_and_regressors(tmp_path):
    from retail_assets.core.forecast.backtest_csv import load_history, series_tasks

    days = pd.date_range("2024-01-01", periods=120, freq="D")
    rows = [{"day": d.date().isoformat(), "sku": "A", "sales": 10 + (d.dayofweek == 5) * 5,
             "on_promo": int(d.day in (10, 11))} for d in days if d.dayofweek != 6]  # no rows on Sundays: closed
    src = tmp_path / "h.csv"
    pd.DataFrame(rows).to_csv(src, index=False)
    cfg = TrainConfig(horizon=14, fold_horizon=14, min_train_days=42)
    frame = load_history(src, "day", ["sku"], "sales", "D", None, ["on_promo"])
    zero = series_tasks(frame, cfg)[0]
    closed = series_tasks(frame, cfg, closed_when_missing=True)[0]
    sundays = [i for i, d in enumerate(zero.dates[: zero.n_history]) if pd.Timestamp(d).dayofweek == 6]
    assert sundays and all(zero.open_day[i] and zero.y[i] == 0.0 for i in sundays)  # the old reading: zero sales
    assert not any(closed.open_day[i] for i in sundays)  # closed: never scored, never learned as zero
    assert sum(closed.promo) == sum(r["on_promo"] for r in rows) > 0
    proc = subprocess.run(
        [sys.executable, "-m", "retail_assets.cli", "backtest", "--history", str(src), "--date-col", "day",
         "--series-cols", "sku", "--target", "sales", "--horizon", "14", "--closed-when-missing",
         "--regressor-cols", "on_promo", "--out", str(tmp_path / "r.csv"), "--workers", "1"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # every Sunday closed: seasonal naive is exact on the open days, where the zero reading was not
    assert pd.read_csv(tmp_path / "r.csv")["heldout_wape_seasonal_naive"].iloc[0] == 0.0


def test_retail_backtest_trains_each_store_apart_with_store_col(tmp_path):
    """With --store-col, each store's series are trained as the platform trains a store: every series' result
    is the one its store's file alone gives, and the summary pools the stores' figures."""
    from retail_assets.core.forecast.backtest_csv import BacktestInputError, run_backtest

    rows = []
    for store, skus in (("s1", (("A", 20), ("B", 6))), ("s2", (("A", 35), ("C", 9), ("D", 14)))):
        for sku, level in skus:
            y = noisy_weekly(200, level, ord(sku) + len(store) * 7 + int(store[1]))
            for d, v in zip(pd.date_range("2023-01-02", periods=200, freq="D"), y):
                rows.append({"store": store, "sku": sku, "day": d.date().isoformat(), "sales": v})
    frame = pd.DataFrame(rows)
    both = tmp_path / "both.csv"
    frame.to_csv(both, index=False)
    args = dict(date_col="day", series_cols=["store", "sku"], target="sales", freq="D", horizon=14, workers=1)
    apart = run_backtest(both, store_col="store", **args)
    alone = {}
    for store, g in frame.groupby("store"):
        g.to_csv(tmp_path / f"{store}.csv", index=False)
        alone[store] = run_backtest(tmp_path / f"{store}.csv", **args)
    one_model = run_backtest(both, **args)

    cols = ["series", "champion", "heldout_champion", "heldout_wape_lightgbm", "heldout_wape_prophet"]
    joined = pd.concat([r.results for r in alone.values()]).sort_values("series")[cols].reset_index(drop=True)
    assert apart.results.sort_values("series")[cols].reset_index(drop=True).equals(joined)
    assert apart.summary["stores"] == 2 and apart.summary["items"] == 5
    assert sum(apart.summary["champion_mix"].values()) == 5
    # the pooled weighted WAPE lies between the two stores' own
    own = [r.summary["heldout_weighted_wape_champion"] for r in alone.values()]
    assert min(own) <= apart.summary["heldout_weighted_wape_champion"] <= max(own)
    # without it, one LightGBM model over both stores' series: other trees, other forecasts
    lgb = lambda r: r.results.sort_values("series")["heldout_wape_lightgbm"].to_numpy()  # noqa: E731
    assert not np.allclose(lgb(one_model), lgb(apart))
    with pytest.raises(BacktestInputError, match="--store-col 'region' is not one of"):
        run_backtest(both, store_col="region", **args)
