"""Train one store: reuse the live version when nothing changed, else fit every item, decide, and write a
new version. Where the fits run never changes the models."""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from retail_assets.core.fitting.champion import StoreTraining, decide
from retail_assets.core.fitting.store_models import add_store_models
from retail_assets.core.forecast.weather import StoreWeather
from retail_assets.core.fitting.pool import (
    FitPool,
    build_tasks,
    shared,
    validate_fit_engine,
)
from retail_assets.core.forecast.backtest import ItemResult, ItemTask, apply_final_classic, apply_final_prophet
from retail_assets.core.forecast.combine import add_combinations, complete_combination
from retail_assets.core.forecast import fold_cache
from retail_assets.core.forecast.models import TrainConfig
from retail_assets.core.ids import STORE_ID_PATTERN, validate_store_id
from retail_assets.core.forecast.analog import MATURE_DAYS
from retail_assets.core.registry import promotion
from retail_assets.core.registry import records as registry
from retail_assets.core.registry.promotion import PromotionPolicy
from retail_assets.core.registry.versions import (
    ModelVersion,
    code_version,
    library_versions,
    live_version,
    read_version,
    write_version,
)


def previous_inits(mv: ModelVersion | None) -> dict[str, dict]:
    """Prophet parameters of every item whose served model holds a Prophet fit (a Prophet champion, or a
    combination with a Prophet part), to warm-start a retrain."""
    if mv is None:
        return {}
    inits = {}
    for item_id, info in mv.manifest["items"].items():
        text = (mv.path / info["file"]).read_text() if info["champion"] in ("prophet", "combination") else None
        if text is not None and info["champion"] == "combination":
            text = json.loads(text)["parts"].get("prophet")
        if text is not None:
            params = json.loads(text)["params"]
            params = {k: json.loads(v) if isinstance(v, str) else v for k, v in params.items()}
            inits[item_id] = {
                "k": float(np.ravel(params["k"])[0]), "m": float(np.ravel(params["m"])[0]),
                "sigma_obs": float(np.ravel(params["sigma_obs"])[0]),
                "delta": [float(v) for v in np.asarray(params["delta"])[0]],
                "beta": [float(v) for v in np.asarray(params["beta"])[0]],
            }
    return inits


def store_weather(features: pd.DataFrame, issues: pd.DataFrame | None,
                  climate: pd.DataFrame | None = None) -> StoreWeather | None:
    """The store's observed daily temperature (its features' history), issued forecasts and (a young store) its
    climate zone's temperature, or None."""
    if "temperature_c" not in features:
        return None
    hist = features[~features["is_future"]].drop_duplicates("date")
    return StoreWeather.build(hist["date"], hist["temperature_c"], issues, climate)


def analog_slopes(models_root: Path, analog_reference: pd.DataFrame | None,
                  features: pd.DataFrame) -> dict[str, float] | None:
    """A young store's temperature slope per category, borrowed from its analog stores' live versions: the mean
    of their estimates for the category, kept or not (`summary.temperature_slope_estimates`; an older version
    without them: its kept slopes, a category without one counting as 0): a few months of
    its own history rarely show a slope clearly. None for a store without analogs (core/forecast/analog.py) and
    for a mature store (a year of its own history: a slope it does not show is not there), young items or not."""
    if analog_reference is None or "category" not in features.columns:
        return None
    hist = pd.to_datetime(features.loc[~features["is_future"], "date"])
    if len(hist) and (hist.max() - hist.min()).days >= MATURE_DAYS:
        return None
    stores = sorted({s for names in analog_reference["analog_stores"].dropna().unique() for s in str(names).split(",") if s})
    category = features.drop_duplicates("item_id").set_index("item_id")["category"].astype(str)
    per_store = []
    for store in stores:
        mv = live_version(models_root, store)
        if mv is None:
            continue
        estimates = mv.manifest.get("summary", {}).get("temperature_slope_estimates")
        if estimates:  # every category's estimate, kept or not (an unbiased mean)
            per_store.append({c: float(e["slope"]) for c, e in estimates.items()})
            continue
        slopes: dict[str, float] = {}  # a version before estimates were recorded: its kept slopes
        for item, info in mv.manifest["items"].items():
            if item in category.index and info.get("temperature_slope"):
                slopes.setdefault(category[item], float(info["temperature_slope"]))
        per_store.append(slopes)
    if not per_store:
        return None
    cats = sorted({c for s in per_store for c in s})
    return {c: float(np.mean([s.get(c, 0.0) for s in per_store])) for c in cats} or None


def chain_slope_estimates(models_root: Path, store_id: str) -> dict[str, list[tuple[float, float]]] | None:
    """Every other store's temperature slope estimate per category, (slope, standard error), from its live
    version (`summary.temperature_slope_estimates`, kept or not): what `gbm.pooled_slope` combines for a
    category one store's own history does not show clearly. None when no other store has estimates. Reads
    every other store's live manifest (a chain of thousands would keep one table of estimates instead); a folder
    whose name is not a valid store id is no store and is skipped."""
    pool: dict[str, list[tuple[float, float]]] = {}
    for other in registry.stores(models_root):
        if other == store_id or not STORE_ID_PATTERN.fullmatch(other):
            continue
        if (mv := live_version(models_root, other)) is None:
            continue
        for category, e in (mv.manifest.get("summary", {}).get("temperature_slope_estimates") or {}).items():
            pool.setdefault(category, []).append((float(e["slope"]), float(e["se"])))
    return pool or None


def train_store(features: pd.DataFrame, models_root: Path, features_version: str, cfg: TrainConfig,
                workers: int = 2, warm_start: bool = True, progress: Callable[[str], None] | None = None,
                engine: str = "processes", scheduler_address: str | None = None, pool: FitPool | None = None,
                analog_reference: pd.DataFrame | None = None,
                weather_issues: pd.DataFrame | None = None, climate: pd.DataFrame | None = None,
                borrowed_slopes: dict[str, float] | None = None,
                pooled_estimates: dict[str, list[tuple[float, float]]] | None = None,
                gate: PromotionPolicy | None = None) -> ModelVersion:
    """Train (or reuse) the store's models. Same features, code and config as the live version: reused.
    Where the fits run (`engine`, `scheduler_address`, an open `pool`, else the process's `pool.shared_pool`)
    never changes the models.
    `weather_issues`: the store's issued weather forecasts (features/grid.py), with the temperature observed
    in its features the store's LightGBM temperature regressor (core/forecast/weather.py); `climate`: a young
    store's climate zone's temperature, its normal (features/grid.py `build_climate`); `borrowed_slopes`: a
    young store's analog stores' temperature slopes per category (`analog_slopes`); `pooled_estimates`: the
    other stores' slope estimates per category (`chain_slope_estimates`), for the served forecast's slopes of the
    categories this store does not show clearly (`gbm.pooled_slope`). `gate`: the promotion
    policy a new version must pass to go live (core/registry/promotion.py; its decision in `mv.promotion`);
    None (a direct call of the core) puts it live ungated, as recorded."""
    store_id = validate_store_id(str(features["store_id"].iloc[0]))
    pool = pool if pool is not None else shared()
    if pool is None:
        validate_fit_engine(engine, scheduler_address)
    live = live_version(models_root, store_id)
    if live and live.manifest["features_data_version"] == features_version \
            and live.manifest["code_version"] == code_version() and live.manifest["config"] == cfg.to_json():
        live.reused = True
        return live
    held = same_inputs_challenger(models_root, store_id, features_version, cfg)
    if held is not None and gate is not None:  # held back before with these very inputs: decided again, not refit
        held.reused = True
        held.promotion = promote_or_hold(models_root, held, live, features, gate)
        return held
    inits = previous_inits(live) if warm_start else {}
    t0 = time.perf_counter()
    tasks = build_tasks(features, cfg, inits, analog_reference)
    cache_file = fold_cache.cache_path(models_root, store_id)
    cache_salt = fold_cache.salt(code_version(), library_versions(), cfg.to_json())
    cached = fold_cache.load(cache_file, cache_salt) if cfg.fold_cache else None
    for t in tasks:
        t.cache_salt = cache_salt
        t.fold_cache = cached["items"].get(t.item_id, {}) if cached is not None else None
        t.defer_finals = True  # the final Prophet and classic fits: below, only where the item is served by them
    t1 = time.perf_counter()
    workers_up = pool is not None and pool.started  # started by an earlier store of the same batch or run
    with (nullcontext(pool) if pool is not None else FitPool(engine, workers, scheduler_address)) as fits:
        read_before = fits.items_read_from_root
        results = fits.run(tasks, progress)
        read_from_root = fits.items_read_from_root - read_before
        t2 = time.perf_counter()
        store_cache = cached["store"] if cached is not None else None
        weather = store_weather(features, weather_issues, climate)
        categories = (features.drop_duplicates("item_id").set_index("item_id")["category"].astype(str).to_dict()
                      if "category" in features.columns else None)
        gbm_texts, store_figures = add_store_models(tasks, results, cfg, store_cache, weather, categories,
                                                   borrowed_slopes if weather is not None else None,
                                                   pooled_estimates if weather is not None else None)
        if cached is not None:  # what this training used or made: the next one after a new day reads it
            fold_cache.save(cache_file, cache_salt, {r.item_id: r.fold_cache for r in results}, store_cache)
        training = decide(store_id, results, cfg, gbm_texts)
        t3 = time.perf_counter()
        training, final_fits, classic_fits = serve_finals(fits, tasks, training, progress)
        t4 = time.perf_counter()
    training.summary.update(store_figures)
    training.summary["prophet_final_fits"] = final_fits
    training.summary["classic_final_fits"] = classic_fits
    training.summary["temperature_regressor"] = None if weather is None else {
        "observed_days": int(weather.observed.notna().sum()), "forecast_issues": int(weather.issues["issued_at"].nunique())}
    training.summary["folds_cached"] = int(sum(r.cached_folds for r in results))
    training.summary["folds_total"] = int(sum(len(r.folds) for r in results))
    # where the time went (not part of the version: the same models whatever the engine or the machine)
    training.summary["fit_engine"] = pool.engine if pool is not None else engine
    # items whose fit task went to a Dask worker without its history, to read it from the data root (FitPool
    # inputs_root)
    training.summary["items_read_from_root"] = read_from_root
    training.summary["items_fitted_in_process"] = int(sum(r.fitted_here for r in results))
    training.summary["fit_workers_already_up"] = workers_up
    training.summary["fit_wall_seconds"] = t2 - t1  # the fitting stage: pool start (unless reused) to last item
    training.summary["final_fits_seconds"] = t4 - t3  # the served Prophet and classic final fits, after the decisions
    training.summary["wall_seconds"] = time.perf_counter() - t0
    training.summary["history_end"] = history_end(features)
    mv = write_version(models_root, training, features_version, live.version if (live and inits) else None,
                       go_live=gate is None)
    mv.promotion = (promote_or_hold(models_root, mv, live, features, gate) if gate is not None
                    else promotion.Decision(True, "ungated", promotion.RULES["ungated"]).to_json())
    return mv


def served_parts(champion: str, r: ItemResult) -> set[str]:
    """The models an item's served forecast is made of: the champion, or a combination's parts."""
    return set(r.weights) if champion == "combination" else {champion}


def serve_finals(fits: FitPool, tasks: list[ItemTask], training: StoreTraining,
                 progress: Callable[[str], None] | None = None) -> tuple[StoreTraining, dict, dict]:
    """The final Prophet and classic fits the decisions serve (such a champion, or a combination with such a part),
    made now that the champions are known; every other item's is never made (nothing would read it: a version
    stores each item's served model only). Where a served fit fails, the store decides again without it, as when a
    final fit failed in the worker: that item is served its next best model among those it has, with the reason.
    Returns the training and, for Prophet and for the classic models, the counts of fits made, failed, and not
    made because no served forecast reads them."""
    results = training.results
    parts = [served_parts(d.champion, r) for r, d in zip(results, training.decisions)]
    prophet = [i for i, r in enumerate(results) if r.prophet_pending and "prophet" in parts[i]]
    classic = [(i, [m for m in r.classic_pending if m in parts[i]]) for i, r in enumerate(results)]
    classic = [(i, names) for i, names in classic if names]
    if progress and (prophet or classic):
        progress(f"served final fits: Prophet {len(prophet)} of {len(results)} items, classic models {len(classic)} "
                 f"of {len(results)} items ({fits.describe()})")
    if prophet:
        got = fits.run_final_prophet([(tasks[i], results[i].spec, results[i].final_init) for i in prophet])
        for i, g in zip(prophet, got):
            apply_final_prophet(results[i], g)
    if classic:
        got = fits.run_final_classic([(tasks[i], results[i].intermittent, names) for i, names in classic])
        for (i, names), g in zip(classic, got):
            apply_final_classic(results[i], g, names)
            if missing := [m for m in names if m not in results[i].future_yhat]:
                results[i].classic_error = (f"final fit of {', '.join(missing)} failed: "
                                            + (g.error or "the model could not fit the series"))
    lost: dict[int, list[str]] = {}  # item -> the served models whose final fit failed
    for i, names in [(i, ["prophet"]) for i in prophet] + classic:
        for m in names:
            if m not in results[i].future_yhat:
                lost.setdefault(i, []).append(m)
    prophet_failed = sum("prophet" in names for names in lost.values())
    classic_failed = sum(len(names) for names in lost.values()) - prophet_failed
    counts = ({"fitted": len(prophet) - prophet_failed, "failed": prophet_failed,
               "not_served": sum(r.prophet_pending for r in results)},
              {"fitted": sum(len(names) for _, names in classic) - classic_failed, "failed": classic_failed,
               "not_served": sum(len(r.classic_pending) for r in results)})
    for i, r in enumerate(results):
        if i in lost:  # weighted again among the forecasts it has: what is pending will not be made in this run
            r.prophet_pending, r.classic_pending = False, []
            r.weights = add_combinations(r.folds, r.future_yhat, set(r.future_yhat))
        else:
            complete_combination(r.future_yhat, r.weights)
    if prophet or classic:  # the fit figures count the new fits; a failed fit's item is served its next best model
        training = decide(training.store_id, results, training.cfg, training.gbm_texts)
    return training, counts[0], counts[1]


def history_end(features: pd.DataFrame) -> str:
    """The day the version's forecasts are anchored after: the last history day, or for a store with no
    history yet (opening within the horizon) the day before its first future day (backtest.py's anchor)."""
    dates = pd.to_datetime(features["date"])
    hist = dates[~features["is_future"].astype(bool)]
    return str((hist.max() if len(hist) else dates.min() - pd.Timedelta(days=1)).date())


def same_inputs_challenger(models_root: Path, store_id: str, features_version: str,
                           cfg: TrainConfig) -> ModelVersion | None:
    """The newest challenger trained from these features, code and configuration, if any."""
    for entry in reversed(registry.challengers(models_root, store_id)):
        mv = read_version(models_root, store_id, entry["version"])
        if mv and mv.manifest["features_data_version"] == features_version \
                and mv.manifest["code_version"] == code_version() and mv.manifest["config"] == cfg.to_json():
            return mv
    return None


def promote_or_hold(models_root: Path, mv: ModelVersion, live: ModelVersion | None, features: pd.DataFrame,
                    gate: PromotionPolicy) -> dict:
    """The gate's decision; a promoted version goes live with an audit line, a held-back one stays a challenger."""
    decision = promotion.decide(mv, live, features, gate)
    if decision.promote:
        registry.set_live(models_root, mv, "gate", decision.reason, live.version if live else None,
                          {"rule": decision.rule})
    return decision.to_json()
