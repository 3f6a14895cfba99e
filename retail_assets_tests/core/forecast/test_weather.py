"""Temperature as-of: a fold (or a served forecast) reads only forecasts issued before its origin, and never the
temperature observed on its own days; beyond the forecasts' reach, climatology of the same weeks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retail_assets.core.fitting.store_models import add_store_models
from retail_assets.core.forecast.backtest import FoldForecast, ItemResult, ItemTask
from retail_assets.core.forecast.models import TrainConfig
from retail_assets.core.forecast.weather import StoreWeather, on_grid

DAYS = pd.date_range("2023-01-01", periods=500, freq="D")
SEASONAL = 12 - 10 * np.cos(2 * np.pi * (DAYS.dayofyear.to_numpy() - 15) / 365.25)
_AR = np.random.default_rng(17).normal(0, 2.0, len(DAYS))
for _t in range(1, len(DAYS)):  # day-to-day weather around the season (AR(1)), which the items respond to
    _AR[_t] += 0.8 * _AR[_t - 1]
OBSERVED = SEASONAL + _AR


def _issues(days, value_of, issued_offset_hours=-19, lead=range(1, 10)) -> pd.DataFrame:
    """One issue per day at 05:00 UTC (the day before the first forecast day, by default) for `lead` days."""
    rows = []
    for d in days:
        issued = d + pd.Timedelta(hours=24 + issued_offset_hours)  # 05:00 of day d
        for k in lead:
            rows.append({"forecast_date": d + pd.Timedelta(days=k), "issued_at": issued.tz_localize("UTC"),
                         "temperature_mean_c": value_of(d, k)})
    return pd.DataFrame(rows)


def test_as_of_takes_the_latest_issue_before_the_origin_then_climatology():
    observed = pd.Series(SEASONAL, index=DAYS)
    issues = _issues(DAYS[400:430], lambda d, k: 100.0 + d.day + k / 100)
    weather = StoreWeather.build(DAYS, observed.to_numpy(), issues)
    origin = DAYS[420]
    dates = pd.date_range(origin, periods=15, freq="D")
    temp, source = weather.as_of(origin, dates)
    # issued at 05:00 on the day before the origin (DAYS[419]) covers origin .. origin + 8; nothing later is read
    latest = DAYS[419]
    assert list(source[:9]) == ["forecast"] * 9 and list(source[9:]) == ["climatology"] * 6
    np.testing.assert_allclose(temp[:9], on_grid([100.0 + latest.day + k / 100 for k in range(1, 10)]))
    # climatology: the mean observed in the same ISO week before the origin (a year earlier here)
    week = dates[12].isocalendar().week
    same = observed[(observed.index < origin) & (observed.index.isocalendar().week == week)]
    assert temp[12] == pytest.approx(on_grid(same.mean()), abs=1 / 64)
    assert weather.latest_issue(origin) == f"{latest:%Y-%m-%d}T05:00:00Z"


@settings(max_examples=25, deadline=None)
@given(origin=st.integers(380, 470), seed=st.integers(0, 10_000))
def test_a_forecast_issued_on_or_after_the_origin_is_never_read(origin, seed):
    rng = np.random.default_rng(seed)
    base = _issues(DAYS[360:480], lambda d, k: float(rng.normal(10, 5)))
    later = base[base["issued_at"] >= pd.Timestamp(DAYS[origin]).tz_localize("UTC")]
    changed = pd.concat([base.drop(later.index), later.assign(temperature_mean_c=999.0)])
    dates = pd.date_range(DAYS[origin], periods=20, freq="D")
    a = StoreWeather.build(DAYS, SEASONAL, base).as_of(DAYS[origin], dates)
    b = StoreWeather.build(DAYS, SEASONAL, changed).as_of(DAYS[origin], dates)
    np.testing.assert_array_equal(a[0], b[0])
    # and the observed temperature on or after the origin is never read either
    observed = SEASONAL.copy()
    observed[origin:] = -50.0
    c = StoreWeather.build(DAYS, observed, base).as_of(DAYS[origin], dates)
    np.testing.assert_array_equal(a[0], c[0])


def _store(temps: np.ndarray, issues: pd.DataFrame, n_history: int, horizon: int = 14, response: float = 0.06,
           volume: float = 1.0):
    """Three items (`response`: log-units per degC, temperature-sensitive by default; `volume` times 4-10 units a
    day), their tasks and results with recent folds of 14 days."""
    cfg = dataclasses.replace(TrainConfig(horizon=horizon, folds=3, fold_horizon=14, min_train_days=42),
                              gbm_rounds=60)
    rng = np.random.default_rng(3)
    dates = [d.strftime("%Y-%m-%d") for d in DAYS[: n_history + horizon]]
    tasks, results = [], []
    for i in range(3):
        y = rng.poisson(volume * (4 + 3 * i) * np.exp(response * (OBSERVED[:n_history] - 12))).astype(float)
        task = ItemTask(store_id="0001", item_id=f"SKU-{i}", dates=dates, y=[*y, *[None] * horizon],
                        open_day=[True] * len(dates), promo=[0.0] * len(dates), holiday=[None] * len(dates),
                        n_history=n_history, cfg=cfg)
        r = ItemResult("0001", task.item_id)
        for k in range(3):
            start = n_history - (3 - k) * 14
            r.folds.append(FoldForecast(fold=k, kind="recent", dates=dates[start:start + 14],
                                        y=y[start:start + 14].tolist(), open_day=[True] * 14, yhat={},
                                        raw_lower=None, raw_upper=None, scale=1.0))
        r.future_dates = dates[n_history:]
        tasks.append(task)
        results.append(r)
    frame = pd.DataFrame({"date": DAYS[:n_history], "temperature_c": temps[:n_history]})
    weather = StoreWeather.build(frame["date"], frame["temperature_c"], issues)
    return tasks, results, cfg, weather


def _lightgbm_folds(temps, issues, n_history=420):
    tasks, results, cfg, weather = _store(temps, issues, n_history)
    _text, figures = add_store_models(tasks, results, cfg, weather=weather)
    return {(r.item_id, f.fold): f.yhat["lightgbm"] for r in results for f in r.folds}, figures


def _weather_store(items: dict, temps: np.ndarray, n: int = 400, horizon: int = 14, rounds: int = 40,
                   categories: dict | None = None):
    """A synthetic store whose history observed `temps`, the issued forecasts of its last 40 days (each the
    truth), and a short TrainConfig: (features, issues, cfg)."""
    from retail_assets_tests.helpers import synthetic_store

    store = synthetic_store(items, start=str(DAYS[0].date()), horizon=horizon)
    store["temperature_c"] = np.where(store["is_future"], np.nan, temps[(store["date"] - DAYS[0]).dt.days])
    if categories:
        store["category"] = store["item_id"].map(categories)
    issues = _issues(DAYS[n - 40:n], lambda d, k: float(temps[(d - DAYS[0]).days + k]))
    cfg = dataclasses.replace(TrainConfig(horizon=horizon, folds=3, fold_horizon=14, min_train_days=42),
                              gbm_rounds=rounds)
    return store, issues, cfg


def test_the_store_trees_fold_forecasts_read_only_what_was_known_at_each_origin():
    issues = _issues(DAYS[300:440], lambda d, k: float(SEASONAL[min(d.dayofyear + k, 499) % 500]) + 0.5)
    folds, figures = _lightgbm_folds(OBSERVED, issues)
    assert figures["temperature_outlook"]["source"][:9] == ["forecast"] * 9
    assert len(figures["temperature_slopes"]) == 3, figures["temperature_slopes"]  # all three respond
    # the last fold starts at day 406: observed temperatures from then on, and forecasts issued from then on,
    # changed beyond recognition, leave its forecasts as they were (earlier folds' too)
    temps = OBSERVED.copy()
    temps[406:] += 40.0
    late = issues["issued_at"] >= pd.Timestamp(DAYS[406]).tz_localize("UTC")
    changed = issues.assign(temperature_mean_c=np.where(late, 60.0, issues["temperature_mean_c"]))
    again, _ = _lightgbm_folds(temps, changed)
    for key in folds:
        np.testing.assert_array_equal(folds[key], again[key], err_msg=str(key))
    # a forecast issued before the last fold's origin does move it: the items' slopes read the temperature
    early = (issues["issued_at"] < pd.Timestamp(DAYS[406]).tz_localize("UTC")) & (
        issues["issued_at"] >= pd.Timestamp(DAYS[404]).tz_localize("UTC"))
    moved, _ = _lightgbm_folds(OBSERVED, issues.assign(
        temperature_mean_c=np.where(early, -30.0, issues["temperature_mean_c"])))
    assert any(not np.array_equal(folds[(i, 2)], moved[(i, 2)]) for i in ("SKU-0", "SKU-1", "SKU-2"))


def test_the_edge_graph_takes_the_temperature_and_a_device_a_newer_forecast(tmp_path):
    from retail_assets.core.edge.bundle import build_bundle, load_private_key
    from retail_assets.core.edge.keys import ensure_dev_keys
    from retail_assets.core.fitting.train import train_store
    from retail_assets.edge import runner
    from retail_assets.edge import telemetry as tel

    n, horizon = 400, 14
    rng = np.random.default_rng(5)
    weather = np.zeros(len(DAYS))  # day-to-day weather around the season, which demand follows
    for t in range(1, len(DAYS)):
        weather[t] = 0.8 * weather[t - 1] + rng.normal(0, 2.5)
    temps = SEASONAL + weather
    items = {f"SKU-{i}": rng.poisson((20 + 10 * i) * np.exp(0.1 * (temps[:n] - 12))).astype(float)
             for i in range(3)}
    store, issues, cfg = _weather_store(items, temps, n, horizon, rounds=60)
    cfg = dataclasses.replace(cfg, seasonal_index=False)  # the trees serve: the graph's temperature input is theirs
    mv = train_store(store, tmp_path / "models", "weather-test", cfg, workers=1, weather_issues=issues)
    # the trees with the temperature's factor beat the same store's trees without it, held out
    without = train_store(store.drop(columns="temperature_c"), tmp_path / "without", "weather-test", cfg, workers=1)
    alone = [m.manifest["summary"]["heldout_weighted_wape_alone"]["lightgbm"] for m in (mv, without)]
    assert alone[0] < 0.8 * alone[1], alone
    outlook = mv.manifest["summary"]["temperature_outlook"]
    assert outlook["source"] == ["forecast"] * 9 + ["climatology"] * 5
    assert outlook["issued_at"] == f"{DAYS[n - 1]:%Y-%m-%d}T05:00:00Z"
    served_gbm = [i for i, info in mv.manifest["items"].items() if info["champion"] in ("lightgbm", "combination")]
    assert served_gbm, mv.manifest["summary"]["champion_mix"]
    priv, pub = ensure_dev_keys(tmp_path / "keys")
    # publishing verifies the graph against the served forecast, item by item and day by day
    published = build_bundle(mv, store, horizon, load_private_key(priv.read_bytes()), tmp_path / "bundles", "t")
    calendar = json.loads(zipfile.ZipFile(published.path).read("calendar.json"))
    np.testing.assert_allclose(calendar["temperature"], outlook["temperature_c"])
    # a device with a newer forecast: 25 degC colder on the first five days
    first = calendar["dates"][0]
    newer = tmp_path / "weather_newer.csv"
    lines = ["issued_at,store_id,region,date,temperature_mean_c"]
    lines += [f"{first}T05:00:00Z,0001,,{d},{t - 25:.1f}" for d, t in zip(calendar["dates"][:5], calendar["temperature"])]
    lines += [f"{first}T05:00:00Z,0002,,{calendar['dates'][6]},-40"]  # another store's row: not read
    newer.write_text("\n".join(lines) + "\n")
    log = tmp_path / "telemetry.jsonl"
    now = dt.datetime.fromisoformat(f"{first}T12:00:00+00:00")
    kw = dict(public_key=pub, start=first, store_id="0001", state=tmp_path / "state.json", now=now)
    base = pd.DataFrame(runner.serve_once(published.path, telemetry=tel.TelemetryWriter(log), **kw))
    cold = pd.DataFrame(runner.serve_once(published.path, telemetry=tel.TelemetryWriter(log), weather=newer, **kw))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["weather_source"], r["weather_issued_at"]) for r in records] == [
        ("bundle", outlook["issued_at"]), ("device file", f"{first}T05:00:00Z")]
    moved = cold.merge(base, on=["item_id", "date"], suffixes=("_cold", "_base"))
    gbm_rows = moved[moved["item_id"].isin(served_gbm)]
    first5 = pd.to_datetime(gbm_rows["date"]) < pd.Timestamp(calendar["dates"][5])
    # the trees' forecast moves on the days the newer forecast covers, and only there; as far as the items'
    # slopes say (demand here falls exp(-0.1 x 25) = 8 % of normal): far past anything the trees saw
    slopes = mv.manifest["summary"]["temperature_slopes"]
    assert set(slopes) == set(items) and all(0.06 < s < 0.14 for s in slopes.values()), slopes
    trees_only = gbm_rows["item_id"].isin([i for i in served_gbm if mv.manifest["items"][i]["champion"] == "lightgbm"])
    fell = gbm_rows[first5 & trees_only]
    assert len(fell) and fell["yhat_cold"].sum() < 0.3 * fell["yhat_base"].sum(), fell
    assert not np.allclose(gbm_rows.loc[first5, "yhat_cold"], gbm_rows.loc[first5, "yhat_base"])
    # every model an item may serve is moved by the weather (its slope, temperature against climatology), not
    # only the trees: each item falls on the colder days, as the graph and the served model agree (verified)
    factors = {i: info["temperature_slope"] for i, info in mv.manifest["items"].items()}
    assert all(0.06 < f < 0.14 for f in factors.values()), factors
    assert "normal_c" in outlook and calendar["temperature_normal"] == outlook["normal_c"]
    cold5 = moved[pd.to_datetime(moved["date"]) < pd.Timestamp(calendar["dates"][5])]
    assert (cold5.groupby("item_id")["yhat_cold"].sum() < 0.5 * cold5.groupby("item_id")["yhat_base"].sum()).all()
    np.testing.assert_allclose(gbm_rows.loc[~first5, "yhat_cold"], gbm_rows.loc[~first5, "yhat_base"])


def test_a_cold_the_trees_never_saw_moves_the_forecast_as_far_as_the_item_slope_says():
    """Trees are flat past the coldest anomaly they learned from; the item's log-linear slope, estimated on
    day-to-day weather only, carries a freak cold snap (-18 degC) into the forecast. An item the weather does
    not move gets no slope."""
    from retail_assets.core.forecast import gbm

    rng = np.random.default_rng(11)
    weather = np.zeros(len(DAYS))
    for t in range(1, len(DAYS)):
        weather[t] = 0.8 * weather[t - 1] + rng.normal(0, 2.0)
    temps = SEASONAL + weather
    n = 470
    season = 0.3 * np.sin(2 * np.pi * DAYS.dayofyear.to_numpy() / 365.25)  # the same shape for both items
    sold = {"SKU-0": rng.poisson(6 * np.exp(season[:n] + 0.07 * (temps[:n] - 12))),  # ice cream: 0.07 / degC
            "SKU-1": rng.poisson(6 * np.exp(season[:n]))}                              # the weather does not move it
    dates = [d.strftime("%Y-%m-%d") for d in DAYS]
    items = [{"item_id": k, "dates": dates, "y": [*v.astype(float), *[None] * (len(DAYS) - n)],
              "open_day": [True] * len(DAYS), "promo": [0.0] * len(DAYS), "holiday": [None] * len(DAYS),
              "n_history": n} for k, v in sold.items()]
    cold = temps.copy()
    cold[n:] -= 18.0  # the forecast days: a snap 18 degC below anything the history held

    frame = gbm.store_frame(items, lag=28, window=56, year=364, temperature=lambda d: (cold, temps))
    cutoff = pd.Timestamp(DAYS[n])
    slopes = gbm.temperature_slopes(frame, cutoff)
    assert 0.05 < slopes[0.0] < 0.10, slopes  # the weather's slope, not the season's
    assert slopes[1.0] == 0.0, slopes
    booster = gbm.fit(frame, cutoff, 80, slopes)
    ahead = frame[(~frame["history"]) & (frame["ds"] < cutoff + pd.Timedelta(days=14))]
    normal = gbm.with_temperature(ahead, ahead[gbm.WINDOW_TEMPERATURE] + 0.0)
    snap = gbm.with_temperature(ahead, ahead[gbm.WINDOW_TEMPERATURE] - 18.0)
    ratio = {code: gbm.predict(booster, snap[snap["item_code"] == code], slopes).sum()
             / gbm.predict(booster, normal[normal["item_code"] == code], slopes).sum() for code in (0.0, 1.0)}
    assert abs(ratio[0.0] - np.exp(-0.07 * 18)) < 0.12, ratio  # 0.28: what the world does to ice cream
    assert ratio[1.0] == pytest.approx(1.0, abs=1e-12), ratio  # the other item does not move: no slope, and the
    # trees do not read the temperature (shared by every item, they moved the items the weather does not move)
    assert gbm.TEMPERATURE not in booster.feature_name() and gbm.TEMPERATURE_ANOMALY not in booster.feature_name()


def test_a_cold_snap_is_never_its_own_normal():
    """Climatology (what a model without the temperature assumes) reads earlier years' same weeks, not this
    year's cold days in the same week; without an earlier year, the median of the four weeks before the origin
    (a snap shorter than half of them is not its own normal either)."""
    days = pd.date_range("2023-01-01", periods=560, freq="D")
    temps = 12 - 10 * np.cos(2 * np.pi * (days.dayofyear.to_numpy() - 15) / 365.25)
    cold = temps.copy()
    cold[-6:] -= 18.0  # the snap's first six days, in this year's week of the origin
    origin = days[-1] + pd.Timedelta(days=1)
    ahead = pd.date_range(origin, periods=3, freq="D")
    weather = StoreWeather.build(days, cold, None)
    year_ago = [temps[days.get_loc(d - pd.Timedelta(days=364))] for d in ahead]
    np.testing.assert_allclose(weather.normal(origin, ahead), on_grid(year_ago), atol=1.5)  # not the snap's 4 degC
    assert (weather.normal(origin, ahead) - cold[-1] > 12).all()
    young = StoreWeather.build(days[-100:], cold[-100:], None)  # less than a year observed, nothing to borrow
    np.testing.assert_allclose(young.normal(origin, ahead), on_grid(np.median(cold[-28:])), atol=1 / 64)
    assert (young.normal(origin, ahead) - cold[-1] > 12).all()  # the mean would be 3.9 degC colder
    # ... and with its climate zone's temperature (features/grid.py build_climate): the zone's earlier year,
    # never the zone's own snap days (they are within the gap too)
    zone = pd.DataFrame({"date": days, "temperature_c": cold + 1.0})
    borrowed = StoreWeather.build(days[-100:], cold[-100:], None, zone)
    np.testing.assert_allclose(borrowed.normal(origin, ahead), on_grid(np.array(year_ago) + 1.0), atol=1.5)
    assert (borrowed.normal(origin, ahead) - cold[-1] > 12).all()


def test_a_young_store_borrows_its_analog_stores_category_slopes(tmp_path):
    """A few months of a young store's own history rarely show the weather's slope: it takes the mean of its
    analog stores' live slopes per category (a store whose weather showed none counts as 0)."""
    from retail_assets.core.fitting.train import analog_slopes

    # 0001: a version before estimates were recorded (its kept slopes); 0002: its estimate, not significant there
    estimates = {"0002": {"ice_cream": {"slope": 0.02, "se": 0.01}, "grocery": {"slope": 0.001, "se": 0.004}}}
    for store, slopes in (("0001", {"SKU-1": 0.06, "SKU-2": 0.06, "SKU-3": 0.0}), ("0002", {"SKU-1": 0.0})):
        vdir = tmp_path / f"store={store}" / "v1"
        vdir.mkdir(parents=True)
        (vdir / "manifest.json").write_text(json.dumps({
            "items": {i: {"temperature_slope": s} for i, s in slopes.items()},
            "summary": {"temperature_slope_estimates": estimates.get(store)}}))
        (vdir.parent / "live.json").write_text(json.dumps({"version": "v1"}))
    ref = pd.DataFrame({"item_id": ["SKU-1"], "analog_stores": ["0001,0002,0003"]})  # 0003: no live version
    features = pd.DataFrame({"item_id": ["SKU-1", "SKU-2", "SKU-3"], "category": ["ice_cream", "ice_cream", "grocery"],
                             "date": pd.to_datetime(["2024-03-01", "2024-06-01", "2024-06-02"]), "is_future": False})
    assert analog_slopes(tmp_path, ref, features) == {"ice_cream": pytest.approx(0.04), "grocery": pytest.approx(0.0005)}
    assert analog_slopes(tmp_path, None, features) is None  # no analogs, nothing to borrow
    mature = features.assign(date=pd.to_datetime(["2023-03-01", "2024-06-01", "2024-06-02"]))
    assert analog_slopes(tmp_path, ref, mature) is None  # a year of its own history: a young item borrows no slope
    # the young store's own history shows no slope: the borrowed one is used, per category
    from retail_assets.core.forecast import gbm

    frame = pd.DataFrame({"item_code": [0.0] * 10, "ds": pd.date_range("2024-01-01", periods=10), "history": True,
                          "y": 1.0, "open": True, gbm.TEMPERATURE: 10.0, "day_of_week": 0.0})
    assert gbm.temperature_slopes(frame, pd.Timestamp("2025-01-01"), {0.0: "ice_cream"}, {"ice_cream": 0.03}) == {0.0: 0.03}
    assert gbm.temperature_slopes(frame, pd.Timestamp("2025-01-01"), {0.0: "grocery"}, {"ice_cream": 0.03}) == {0.0: 0.0}


def test_a_version_whose_trees_read_the_temperature_still_serves_and_publishes(tmp_path, monkeypatch):
    """Boosters of session 11 and earlier read the temperature and its anomaly as their last two features: such
    a live version must still forecast and compile (publish verifies the graph against serving, item by day)."""
    from retail_assets.core.edge.bundle import build_bundle, load_private_key
    from retail_assets.core.edge.keys import ensure_dev_keys
    from retail_assets.core.fitting.train import train_store
    from retail_assets.core.forecast import gbm

    monkeypatch.setattr(gbm, "FEATURES", (*gbm.FEATURES, gbm.TEMPERATURE, gbm.TEMPERATURE_ANOMALY))
    n, horizon = 400, 14
    rng = np.random.default_rng(8)
    items = {f"SKU-{i}": rng.poisson((20 + 10 * i) * np.exp(0.1 * (OBSERVED[:n] - 12))).astype(float)
             for i in range(3)}
    store, issues, cfg = _weather_store(items, OBSERVED, n, horizon)
    mv = train_store(store, tmp_path / "models", "legacy", cfg, workers=1, weather_issues=issues)
    from retail_assets.core.registry.versions import BOOSTER_FILE

    booster = gbm.booster_from_text((mv.path / BOOSTER_FILE).read_text())
    assert booster.feature_name()[-2:] == [gbm.TEMPERATURE, gbm.TEMPERATURE_ANOMALY]
    assert any(info["champion"] in ("lightgbm", "combination") for info in mv.manifest["items"].values())
    priv, _pub = ensure_dev_keys(tmp_path / "keys")
    published = build_bundle(mv, store, horizon, load_private_key(priv.read_bytes()), tmp_path / "bundles", "t")
    assert published.path.exists()


def test_pooled_slope_takes_what_the_stores_show_together_and_nothing_they_do_not():
    from retail_assets.core.forecast.gbm import SLOPE_MIN_Z, pooled_slope

    # beverages in a store of one year: 2.8 standard errors, short of the 3 a store alone needs
    weak = (0.017, 0.006)
    chain = [(0.025, 0.005), (0.020, 0.006), (0.023, 0.004), (0.013, 0.006)]
    got = pooled_slope(weak, chain)
    assert got is not None and got["stores"] == 5 and abs(got["pooled_mean"]) >= SLOPE_MIN_Z * got["pooled_se"]
    assert 0.017 <= got["slope"] <= 0.025, got  # the store's own estimate, moved toward the chain's
    # grocery: small estimates either side of 0 in every store; together they show nothing either
    assert pooled_slope((0.010, 0.005), [(0.005, 0.005), (0.0, 0.005), (-0.001, 0.004), (-0.006, 0.005)]) is None
    # stores that disagree widely (tau large) leave a store's own clear 0 near 0, and the mean uncertain
    split = pooled_slope((0.0, 0.004), [(0.08, 0.004), (-0.07, 0.004), (0.09, 0.004), (-0.06, 0.004)])
    assert split is None or abs(split["slope"]) < 0.01, split
    # a store without its own estimate takes the random-effects mean; alone, a store pools nothing
    assert pooled_slope(None, chain)["slope"] == pytest.approx(pooled_slope(None, chain)["pooled_mean"])
    assert pooled_slope(weak, []) is None


def test_a_slope_the_stores_show_together_moves_the_served_forecast_never_the_folds():
    """Slow items whose own history does not show their temperature response clearly, in a chain whose other
    stores show it for their category: the served slope comes from the pool (recorded), the backtest folds stay as without it (those
    estimates saw the other stores' days after every fold's origin)."""
    issues = _issues(DAYS[300:440], lambda d, k: float(OBSERVED[min((d - DAYS[0]).days + k, 499)]) - 20.0)
    categories = {f"SKU-{i}": "ice_cream" for i in range(3)}
    runs = {}
    for label, pool in (("alone", None), ("pooled", {"ice_cream": [(0.06, 0.008)] * 4})):
        tasks, results, cfg, weather = _store(OBSERVED, issues, 420, response=0.03, volume=0.1)
        _text, figures = add_store_models(tasks, results, cfg, weather=weather, categories=categories,
                                          pooled_estimates=pool)
        runs[label] = (results, figures)
    alone, pooled = runs["alone"][1], runs["pooled"][1]
    assert not alone["temperature_slopes"] and alone["temperature_slopes_pooled"] is None
    record = pooled["temperature_slopes_pooled"]["ice_cream"]
    assert record["stores"] == 5 and 0.02 < record["slope"] <= 0.06, record
    assert pooled["temperature_slopes"] == {f"SKU-{i}": record["slope"] for i in range(3)}
    for a, b in zip(runs["alone"][0], runs["pooled"][0]):
        assert [f.yhat for f in a.folds] == [f.yhat for f in b.folds]  # the folds never read the pool
        # ahead: the issued forecasts 20 degC colder than observed, the pooled slope lowers the served forecast
        assert np.sum(b.future_yhat["lightgbm"][:9]) < 0.9 * np.sum(a.future_yhat["lightgbm"][:9])


def test_items_the_weather_does_not_move_keep_the_trees_of_a_store_without_weather(tmp_path):
    """Two items that follow the day's temperature and one that does not: the sloped items are served by the
    weather trees (demand over their temperature factor), the other by plain trees, the very model a store
    without weather data fits (its folds and forecast unchanged to the last bit); publish verifies the graph
    with both sets of trees against serving, item by item and day by day."""
    import pandas as pd

    from retail_assets.core.edge.bundle import build_bundle, load_private_key
    from retail_assets.core.edge.keys import ensure_dev_keys
    from retail_assets.core.fitting.train import train_store
    from retail_assets.core.forecast import gbm

    n, horizon = 400, 14
    rng = np.random.default_rng(9)
    items = {"SKU-0": rng.poisson(25 * np.exp(0.08 * (OBSERVED[:n] - 12))).astype(float),
             "SKU-1": rng.poisson(30 * np.exp(0.08 * (OBSERVED[:n] - 12))).astype(float),
             "SKU-2": rng.poisson(np.full(n, 28.0)).astype(float)}
    store, issues, cfg = _weather_store(items, OBSERVED, n, horizon, categories={
        "SKU-0": "ice_cream", "SKU-1": "ice_cream", "SKU-2": "grocery"})
    mv = train_store(store, tmp_path / "models", "with", cfg, workers=1, weather_issues=issues)
    without = train_store(store.drop(columns="temperature_c"), tmp_path / "without", "without", cfg, workers=1)
    assert set(mv.manifest["summary"]["temperature_slopes"]) == {"SKU-0", "SKU-1"}
    assert {gbm.TREE_FILES["plain"], gbm.TREE_FILES["weather"]} <= set(mv.manifest["files"])
    assert mv.manifest["summary"]["gbm_weather_trees_items"] == 2
    bt = {k: pd.read_parquet(m.path / "backtest.parquet").set_index(["item_id", "fold", "kind", "date"]).sort_index()
          for k, m in (("with", mv), ("without", without))}
    plain = bt["with"].loc["SKU-2", "lightgbm"]
    assert plain.notna().all() and (plain == bt["without"].loc["SKU-2", "lightgbm"]).all()
    assert not (bt["with"].loc["SKU-0", "lightgbm"] == bt["without"].loc["SKU-0", "lightgbm"]).all()
    # every item served by the trees (as the champion here), so the graph holds both models
    from retail_assets.core.fitting.champion import decide
    from retail_assets.core.fitting.pool import build_tasks, run_items
    from retail_assets.core.fitting.train import store_weather
    from retail_assets.core.registry.versions import write_version

    tasks = build_tasks(store, cfg)
    results = run_items(tasks, 1)
    texts, figures = add_store_models(tasks, results, cfg, None, store_weather(store, issues),
                                       store.drop_duplicates("item_id").set_index("item_id")["category"].to_dict())
    assert set(texts) == set(gbm.TREE_FILES.values())
    training = decide("0001", results, cfg, texts)
    training.summary.update(figures)  # the weather outlook the bundle's calendar carries, as train_store does
    training.decisions = [dataclasses.replace(d, champion="lightgbm") for d in training.decisions]
    forced = write_version(tmp_path / "forced", training, "forced")
    served_by = {i: json.loads((forced.path / info["file"]).read_text())["booster_file"]
                 for i, info in forced.manifest["items"].items()}
    assert served_by == {"SKU-0": gbm.TREE_FILES["weather"], "SKU-1": gbm.TREE_FILES["weather"],
                         "SKU-2": gbm.TREE_FILES["plain"]}
    priv, _pub = ensure_dev_keys(tmp_path / "keys")
    published = build_bundle(forced, store, horizon, load_private_key(priv.read_bytes()), tmp_path / "bundles", "t")
    assert published.path.exists()


def test_the_slope_pool_reads_every_other_live_store_and_skips_what_is_no_store(tmp_path):
    from retail_assets.core.fitting.train import chain_slope_estimates
    from retail_assets.core.registry.versions import LIVE_POINTER

    def live(folder: str, estimates: dict) -> None:
        vdir = tmp_path / folder / "v1"
        vdir.mkdir(parents=True)
        (vdir / "manifest.json").write_text(json.dumps({"summary": {"temperature_slope_estimates": estimates}}))
        (tmp_path / folder / LIVE_POINTER).write_text(json.dumps({"version": "v1"}))

    live("store=0001", {"beverages": {"slope": 0.02, "se": 0.005}})
    live("store=0002", {"beverages": {"slope": 0.03, "se": 0.006}, "toys": {"slope": 0.0, "se": 0.01}})
    live("store=bad id", {"beverages": {"slope": 9.0, "se": 0.001}})  # not a store id: never read
    assert chain_slope_estimates(tmp_path, "0001") == {"beverages": [(0.03, 0.006)], "toys": [(0.0, 0.01)]}
    assert chain_slope_estimates(tmp_path, "0003") == {"beverages": [(0.02, 0.005), (0.03, 0.006)],
                                                      "toys": [(0.0, 0.01)]}
    assert chain_slope_estimates(tmp_path / "empty", "0001") is None


def test_a_retrain_from_the_fold_cache_reads_each_origins_slopes_from_it_with_the_same_forecasts(monkeypatch):
    """The items' temperature slopes at each fold origin are cached under the origin's key: a second training on
    the same inputs computes them only at the served cutoff, and every fold forecast they move (the trees' and
    every other model's weather factor) is the same as when they were computed."""
    from retail_assets.core.forecast import gbm

    issues = _issues(DAYS[300:440], lambda d, k: float(SEASONAL[min(d.dayofyear + k, 499) % 500]) + 0.5)
    cutoffs = []
    real = gbm.temperature_slopes
    monkeypatch.setattr(gbm, "temperature_slopes", lambda frame, cutoff, *a, **k: (
        cutoffs.append(pd.Timestamp(cutoff)), real(frame, cutoff, *a, **k))[1])

    def trained(cache):
        tasks, results, cfg, weather = _store(OBSERVED, issues, 420)
        for r in results:  # another model's fold forecasts, which the weather factor moves
            for f in r.folds:
                f.yhat["seasonal_naive"] = [5.0] * len(f.dates)
        add_store_models(tasks, results, cfg, cache, weather=weather)
        return {(r.item_id, f.fold, m): v for r in results for f in r.folds for m, v in f.yhat.items()}

    cache: dict = {}
    first = trained(cache)
    origins = {pd.Timestamp(c) for c in cutoffs[:-1]}
    assert len(origins) == 3 and any(key[2] == "seasonal_naive" and key[1] == 0 and first[key] != [5.0] * 14
                                     for key in first)  # the slopes moved a fold forecast
    cutoffs.clear()
    again = trained(cache)
    assert cutoffs == [pd.Timestamp(DAYS[420])]  # the served cutoff alone
    assert again.keys() == first.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], again[key], err_msg=str(key))
