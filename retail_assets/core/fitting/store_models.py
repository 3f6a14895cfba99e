"""The store-level candidates, added once every item's own models are back from the pool: the store's
LightGBM model (one fit per backtest origin over all items, and the final fit), its seasonal-index model (the same
origins) and each item's combination.
Pure: no Dagster, no files."""

from __future__ import annotations

import bisect
import math
import time

import numpy as np
import pandas as pd

from retail_assets.core.forecast import gbm, seasonal_index
from retail_assets.core.forecast.backtest import ItemResult, ItemTask, pooled_wape
from retail_assets.core.forecast.combine import add_combinations
from retail_assets.core.forecast.fold_cache import digest
from retail_assets.core.forecast.seasonal_index import SEASONAL_INDEX
from retail_assets.core.forecast.weather import StoreWeather, weather_factor


def _rows(item_frame: pd.DataFrame, dates: list[str]) -> pd.DataFrame | None:
    """One item's feature rows for `dates`, or None when any is missing or an open day has no level."""
    rows = item_frame[item_frame["ds"].isin(pd.to_datetime(dates))]
    if len(rows) != len(dates) or rows.loc[rows["open"], "level"].isna().any():
        return None
    return rows


def _pooled_wape(forecasts: dict, folds: dict, keys: list) -> float:
    """pooled_wape over the folds `keys` ((item, fold index)); inf when any has no forecast."""
    if not keys or any(k not in forecasts for k in keys):
        return math.inf
    return pooled_wape([folds[k] for k in keys], [forecasts[k] for k in keys])


def _variant(by_variant: dict[str, dict], folds: dict, keys: list) -> tuple[str, dict[str, float]]:
    """The LightGBM variant with the lowest pooled WAPE on the folds `keys`; the first variant when none
    of them has a forecast on all of those folds (no earlier fold: the store's first origin)."""
    scores = {v: _pooled_wape(forecasts, folds, keys) for v, forecasts in by_variant.items()}
    finite = {v: w for v, w in scores.items() if np.isfinite(w)}
    return (min(finite, key=finite.get) if finite else next(iter(by_variant))), scores


def _fit_trees(frame: pd.DataFrame, cutoff, rounds: int, slopes: dict[float, float]) -> tuple:
    """The store's trees at `cutoff`: (plain, weather). `plain` learns demand over the level alone and serves
    the items without a temperature slope, exactly as a store without weather data would; `weather` learns it
    over the level and each sloped item's temperature factor, reading the temperature too (`gbm.fit` with
    `slopes` and `temperature`), and serves the items with a slope; None when no item has one. Two models:
    shared trees fitted on the sloped items' weather-adjusted targets also moved the forecasts of the items
    the weather does not move."""
    plain = gbm.fit(frame, cutoff, rounds)
    weather = (gbm.fit(frame, cutoff, rounds, slopes, temperature=True) if plain is not None and any(slopes.values())
               else None)
    return plain, weather


def _origin_key(tasks: list[ItemTask], start: str, cfg, weather: StoreWeather | None = None,
                slope_groups: dict | None = None, borrowed: dict | None = None) -> str:
    """Everything the store's LightGBM fits at `start` and their fold forecasts read (fold_cache.py): every
    item's rows up to a fold after `start`, actuals before `start` only; the item set fixes the item codes; the
    temperature observed before `start` and as known at `start` over the fold; what the slopes at `start` read
    besides (the items' categories, a young store's borrowed slopes). One hash per origin; each
    variant's key adds its name (`digest([key, variant])`)."""
    rows = []
    for t in sorted(tasks, key=lambda t: t.item_id):
        before = bisect.bisect_left(t.dates, start)
        stop = before + cfg.fold_horizon
        rows.append([t.item_id, t.dates[:stop], t.y[:before], t.open_day[:stop], t.promo[:stop], t.holiday[:stop]])
    temps = None
    if weather is not None:
        days = pd.date_range(pd.Timestamp(start), periods=cfg.fold_horizon, freq="D")
        seen = weather.observed[weather.observed.index < pd.Timestamp(start)]
        temps = [np.round(seen.to_numpy(float), 3).tolist(), np.round(weather.as_of(start, days)[0], 3).tolist()]
    slope_inputs = None
    if weather is not None and (slope_groups or borrowed):
        slope_inputs = {"groups": sorted((slope_groups or {}).items()), "borrowed": sorted((borrowed or {}).items())}
    return digest({"salt": tasks[0].cache_salt if tasks else "", "start": start, "items": rows, "temperature": temps,
                   **({"slopes": slope_inputs} if slope_inputs else {})})


def weather_adjust(results: list[ItemResult], codes: dict[str, float], slopes, weather: StoreWeather,
                   served: dict, outlook: dict | None) -> int:
    """Every model's forecast but the trees' (which read the temperature themselves) times `weather_factor`
    for items whose demand the weather moves: in each fold with the slope and temperature as known at its
    origin (the selection judges what would have been served), ahead with the served slope and outlook (also
    recorded per item, so serving and the edge graph apply the same factor). Returns how many items moved."""
    moved, seen = 0, {}  # (origin, dates) -> (temperature as known then, normal): items share their dates
    for r in results:
        code = codes[r.item_id]
        for f in r.folds:
            slope = slopes(f.dates[0]).get(code, 0.0)
            if slope:
                key = (f.dates[0], tuple(f.dates))
                if key not in seen:
                    seen[key] = (weather.as_of(f.dates[0], f.dates)[0], weather.normal(f.dates[0], f.dates))
                factor = weather_factor(slope, *seen[key])
                f.yhat = {m: v if m == "lightgbm" else (np.asarray(v, dtype=float) * factor).tolist()
                          for m, v in f.yhat.items()}
        r.temperature_slope = float(served.get(code, 0.0))
        if r.temperature_slope and outlook:
            by_date = dict(zip(outlook["dates"], zip(outlook["temperature_c"], outlook["normal_c"])))
            temp, normal = np.array([by_date.get(d, (0.0, 0.0)) for d in r.future_dates]).T.reshape(2, -1)
            factor = weather_factor(r.temperature_slope, temp, normal)
            r.future_yhat = {m: v if m == "lightgbm" else (np.asarray(v, dtype=float) * factor).tolist()
                             for m, v in r.future_yhat.items()}
            r.future_factor = np.asarray(factor, dtype=float).tolist()  # a deferred Prophet fit's too (backtest.py)
            moved += 1
    return moved


def add_store_models(tasks: list[ItemTask], results: list[ItemResult], cfg, cache: dict | None = None,
                     weather: StoreWeather | None = None,
                     categories: dict[str, str] | None = None,
                     borrowed_slopes: dict[str, float] | None = None,
                     pooled_estimates: dict[str, list[tuple[float, float]]] | None = None
                     ) -> tuple[dict[str, str], dict]:
    """Fit the store's LightGBM at each origin the items' folds use and on all history, add its forecasts
    and then every item's combination to `results`. Each variant of `cfg.gbm_variants` is fitted at every origin;
    a fold's `lightgbm` forecast comes from the variant that scored better on the folds ended before it began,
    the served model from the variant better on every fold. At each origin and in the final fit, two sets of
    trees where items have a temperature slope (`_fit_trees`). Returns the final boosters' texts by file name
    (gbm.TREE_FILES: plain, and weather where an item has a slope; empty when the store's history is too short)
    and figures: fits, seconds, the served variant and each variant's WAPE.
    `cache` (fold_cache.py: key -> {item: forecast}): origins found there are not refitted; on return it holds
    this run's origins only. `weather`: the store's temperature (core/forecast/weather.py): the weather trees
    learn on the observed temperature, and each fold forecasts with the temperature as known at its origin.
    `categories` (item -> category): the items of a category share one temperature slope; `borrowed_slopes`
    (category -> slope): a young store's analog stores' slopes, used where its own history shows none;
    `pooled_estimates` (category -> the other stores' (slope, se)): the served forecast's slope of a category
    this store's history does not show clearly, where the stores together do (`gbm.pooled_slope`). The folds
    never read it: those estimates were made on the other stores' whole history, after the folds' origins."""
    if not cfg.zoo:
        return {}, {}
    t0 = time.perf_counter()
    lag = max(cfg.horizon, cfg.fold_horizon)
    items = [{"item_id": t.item_id, "dates": t.dates, "y": t.y, "open_day": t.open_day, "promo": t.promo,
              "holiday": t.holiday, "n_history": t.n_history} for t in tasks]
    first_future = min((t.dates[t.n_history] for t in tasks if t.n_history < len(t.dates)), default=None)
    # observed before the forecast's first day, as known then from it on (no future rows: all observed)
    origin = pd.Timestamp(first_future) if first_future else pd.Timestamp.max.normalize()
    # one look-up per distinct date list and origin, not one per item and variant (items share their dates)
    memo: dict = {}

    def temperature(dates):
        key = ("column", tuple(dates))
        if key not in memo:
            memo[key] = weather.column(dates, origin)
        return memo[key]

    def as_of(start, dates):
        key = (start, tuple(dates))
        if key not in memo:
            memo[key] = weather.as_of(start, dates)[0]
        return memo[key]
    frames, by_item = {}, {}
    for v in cfg.gbm_variants:
        frames[v] = gbm.store_frame(items, lag=lag, window=2 * lag, year=cfg.year, variant=v,
                                    temperature=temperature if weather is not None else None).set_index(
            "item_id", drop=False)
        by_item[v] = {item: g for item, g in frames[v].groupby(level=0, sort=False)}
    folds = {(r.item_id, i): f for r in results for i, f in enumerate(r.folds)}
    by_variant: dict[str, dict] = {v: {} for v in cfg.gbm_variants}  # (item, fold index) -> forecast
    counts = {"fits": 0, "cached": 0, "index_fits": 0}  # LightGBM fits made, origins and trees taken from the
    # fold cache, seasonal-index fits made
    starts = sorted({f.dates[0] for f in folds.values()})
    previous, used = (cache or {}), {}
    slopes_at: dict = {}
    codes = {item: float(i) for i, item in enumerate(sorted(t.item_id for t in tasks))}  # as gbm.store_frame's
    groups = {codes[i]: c for i, c in (categories or {}).items() if i in codes} or None
    estimates_at: dict = {}  # cutoff -> per category: the slope estimate and standard error, kept or not
    origin_keys: dict = {}  # fold origin -> its key in the fold cache (`_origin_key`), when the training has one

    def slopes(cutoff) -> dict:
        """The items' temperature slopes on the history before `cutoff` (the same in every variant); at a fold
        origin from the fold cache when there (its key covers all they read), and kept under it. The per-category
        estimates behind them are kept for a computed cutoff only: the served cutoff's are the ones read."""
        if cutoff not in slopes_at:
            key = digest([origin_keys[cutoff], "slopes"]) if cutoff in origin_keys else None
            hit = previous.get(key) if key else None
            if hit is not None:
                slopes_at[cutoff] = {float(code): slope for code, slope in hit.items()}
            else:
                estimates_at[cutoff] = {}
                slopes_at[cutoff] = gbm.temperature_slopes(frames[cfg.gbm_variants[0]], pd.Timestamp(cutoff),
                                                           groups, borrowed_slopes, estimates_at[cutoff])
            if key:
                used[key] = {repr(code): slope for code, slope in slopes_at[cutoff].items()}
        return slopes_at[cutoff]
    # the variant of a fold's trees is chosen on the plain trees' forecasts of every item over the folds ended
    # before it, as a store without weather data chooses it; the weather trees are fitted in that variant only
    # (chosen on the sloped items alone, it was noisier: README)
    weather_yhat: dict = {}  # (item, fold index) -> the weather trees' forecast of a sloped item

    def fold_forecasts(key, frame_v: str, start, items: list, fold_slopes: dict | None) -> dict:
        """item -> the forecast of its fold at `start` by trees fitted on the `frame_v` variant's history before
        `start` (with `fold_slopes`: the weather trees, reading the temperature as known at `start`), from the
        fold cache under `key` when there, and kept under it for the next training."""
        forecasts = previous.get(key) if key else None
        if forecasts is None:
            forecasts = {}
            booster = gbm.fit(frames[frame_v], pd.Timestamp(start), cfg.gbm_rounds, fold_slopes,
                              temperature=fold_slopes is not None)
            if booster is not None:
                counts["fits"] += 1
                for item, _i, f in items:
                    if (rows := _rows(by_item[frame_v][item], f.dates)) is not None:
                        if fold_slopes is not None:  # the fold's days as known at its origin, never observed
                            rows = gbm.with_temperature(rows, as_of(start, f.dates))
                        forecasts[item] = gbm.predict(booster, rows, fold_slopes).tolist()
        else:
            counts["cached"] += 1
        if key:
            used[key] = forecasts
        return forecasts
    index_rows = seasonal_index.store_rows(items, cfg.freq, categories)
    numbers = {it["item_id"]: n for n, it in enumerate(items)}

    def index_forecasts(key, start, at: list) -> dict:
        """item -> its fold's forecast at `start` by the seasonal-index model fitted before `start` (closed
        days 0), from the fold cache under `key` when there, and kept under it."""
        forecasts = previous.get(key) if key else None
        if forecasts is None:
            forecasts = {}
            model = seasonal_index.fit(index_rows, pd.Timestamp(start), cfg.freq)
            if model is not None:
                counts["index_fits"] += 1
                for item, _i, f in at:
                    path = seasonal_index.predict(model, index_rows,
                                                  seasonal_index.positions(index_rows, numbers[item], f.dates))
                    forecasts[item] = np.where(np.asarray(f.open_day, bool), path, 0.0).tolist()
        if key:
            used[key] = forecasts
        return forecasts
    for start in starts:
        origin = _origin_key(tasks, start, cfg, weather, groups, borrowed_slopes) if cache is not None else None
        if origin:
            origin_keys[start] = origin
        at = [(item, i, f) for (item, i), f in folds.items() if f.dates[0] == start]
        forecasts = (index_forecasts(digest([origin, SEASONAL_INDEX]) if origin else None, start, at)
                     if cfg.seasonal_index else {})
        for item, _i, f in at:
            if item in forecasts:
                f.yhat[SEASONAL_INDEX] = forecasts[item]
        for v in cfg.gbm_variants:  # the plain trees' forecast of every item
            forecasts = fold_forecasts(digest([origin, v]) if origin else None, v, start, at, None)
            by_variant[v].update({(item, i): forecasts[item] for item, i, _f in at if item in forecasts})
        variant, _ = _variant(by_variant, folds, [k for k, f in folds.items() if f.dates[-1] < start])
        sloped = [(item, i, f) for item, i, f in at if slopes(start).get(codes[item])]
        if sloped:  # the weather trees' forecast of the items with a slope at this origin
            forecasts = fold_forecasts(digest([origin, variant, "weather"]) if origin else None, variant, start,
                                       sloped, slopes(start))
            weather_yhat.update({(item, i): forecasts[item] for item, i, _f in sloped if item in forecasts})
        for item, i, f in at:
            if (item, i) in weather_yhat:
                f.yhat["lightgbm"] = weather_yhat[(item, i)]
            elif (item, i) in by_variant[variant]:
                f.yhat["lightgbm"] = by_variant[variant][(item, i)]
    if cache is not None:
        cache.clear()
        cache.update(used)
    served, scores = _variant(by_variant, folds, list(folds))
    texts, served_slopes = {}, {}
    frame = frames[served]
    future = frame[~frame["history"]]
    estimates: dict = {}  # per category: the served cutoff's slope estimate and standard error, kept or not
    pooled: dict = {}  # per category whose served slope came from the stores together
    if len(future):
        if groups and pooled_estimates and weather is not None:  # the stores' slopes too, for the served forecast
            served_slopes = gbm.temperature_slopes(frames[cfg.gbm_variants[0]], future["ds"].min(), groups,
                                                   borrowed_slopes, estimates, pool=pooled_estimates, pooled=pooled)
        else:
            served_slopes = slopes(future["ds"].min())
            # per category (one slope per item otherwise: nothing another store could borrow by category)
            estimates = estimates_at[future["ds"].min()] if groups else {}
        trees = _fit_trees(frame, future["ds"].min(), cfg.gbm_rounds, served_slopes)
        if trees[0] is not None:
            counts["fits"] += sum(t is not None for t in trees)
            texts = {gbm.TREE_FILES[name]: t.model_to_string() for name, t in zip(("plain", "weather"), trees)
                     if t is not None}
            for r in results:
                sloped = trees[1] is not None and bool(served_slopes.get(codes[r.item_id]))
                rows = _rows(by_item[served][r.item_id], r.future_dates)
                if rows is None:
                    continue
                code = int(rows["item_code"].iloc[0])
                r.future_yhat["lightgbm"] = (gbm.predict(trees[1], rows, served_slopes) if sloped
                                             else gbm.predict(trees[0], rows)).tolist()
                r.gbm_state = {"item_code": code, "variant": served, "booster_file": gbm.TREE_FILES["plain"],
                               "level_path": [float(v) if np.isfinite(v) else 0.0 for v in rows["level"]],
                               "last_year_path": [float(v) for v in rows["last_year"]]}
                if sloped:  # what the served forecast assumed: the edge can take a newer one
                    r.gbm_state["booster_file"] = gbm.TREE_FILES["weather"]
                    r.gbm_state["temperature_path"] = [float(v) for v in rows[gbm.TEMPERATURE]]
                    r.gbm_state["window_temperature_path"] = [float(v) for v in rows[gbm.WINDOW_TEMPERATURE]]
                    r.gbm_state["temperature_slope"] = served_slopes[float(code)]
    if cfg.seasonal_index and first_future is not None:  # the seasonal-index model on all history, ahead
        model = seasonal_index.fit(index_rows, pd.Timestamp(first_future), cfg.freq)
        if model is not None:
            counts["index_fits"] += 1
            for r in results:
                if r.future_dates:
                    at = seasonal_index.positions(index_rows, numbers[r.item_id], r.future_dates)
                    path = seasonal_index.predict(model, index_rows, at)
                    r.future_paths[SEASONAL_INDEX] = path.tolist()
                    r.future_yhat[SEASONAL_INDEX] = np.where(index_rows.open[at], path, 0.0).tolist()
    outlook = None
    if weather is not None and len(future):  # the temperature the served forecast assumes, and where it came from
        days = sorted(future["ds"].unique())
        temp, source = weather.as_of(days[0], days)
        outlook = {"dates": [pd.Timestamp(d).strftime("%Y-%m-%d") for d in days],
                   # on the 1/64 degC grid (exact: what the trees, serving and a device read)
                   "temperature_c": [float(v) for v in temp], "source": source.tolist(),
                   "normal_c": [float(v) for v in weather.normal(days[0], days)],
                   "issued_at": weather.latest_issue(days[0])}
    if weather is not None:
        adjusted = weather_adjust(results, codes, slopes, weather, served_slopes if outlook else {}, outlook)
    for r in results:
        r.weights = add_combinations(r.folds, r.future_yhat, r.servable)
    return texts, {"temperature_outlook": outlook, "gbm_fits": counts["fits"],
                   "gbm_origins_cached": counts["cached"], "seasonal_index_fits": counts["index_fits"],
                  "gbm_seconds": time.perf_counter() - t0, "gbm_variant": served,
                  "weather_adjusted_items": adjusted if weather is not None else 0,
                  "temperature_slopes_borrowed": borrowed_slopes or None,  # per category, from the analog stores
                  "temperature_slope_estimates": estimates or None,  # per category, what other stores borrow
                  "temperature_slopes_pooled": pooled or None,  # per category, the served slope from the chain
                  # items whose demand the weather moves (log-units per degC), as the served forecast uses them
                  "temperature_slopes": {r.item_id: served_slopes[codes[r.item_id]] for r in results
                                         if served_slopes.get(codes[r.item_id])},
                  "gbm_weather_trees_items": sum(r.gbm_state.get("booster_file") == gbm.TREE_FILES["weather"]
                                                 for r in results),
                  "gbm_variant_wape": {v: (w if np.isfinite(w) else None) for v, w in scores.items()}}
