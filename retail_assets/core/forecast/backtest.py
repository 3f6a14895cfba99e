"""One item's rolling-origin backtest, run in a worker: each of the item's own candidates on every fold (the
store's LightGBM and the combinations are added after, core/fitting/store_models.py), then the final fits on
all history. Pure: no Dagster, no files.

Honesty rule: a choice is never scored on the data that made it. The champion is picked, the combination
weighted and the interval calibrated on the earlier folds; the held-out figures come from the last fold. The served model then uses
every fold (more data, same rule for choosing).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from retail_assets.core.forecast.analog import analog_path, history_stage
from retail_assets.core.forecast.classic import classic_forecasts, classic_models, is_intermittent
from retail_assets.core.forecast.fold_cache import digest
from retail_assets.core.forecast.models import (
    ProphetSpec,
    TrainConfig,
    fit_prophet,
    holidays_frame,
    last_open_season,
    model_json,
    moving_average,
    naive_scale,
    prophet_init,
    prophet_predict,
    prophet_spec,
    recent_level,
    seasonal_naive,
)
from retail_assets.core.metrics import wape

# ---------------------------------------------------------------- one item, in a worker


@dataclass
class ItemTask:
    store_id: str
    item_id: str
    dates: list[str]  # ISO dates, history then future
    y: list[float | None]  # None on future rows
    open_day: list[bool]
    promo: list[float]  # the promotion regressor: its depth (features.grid.promo_regressor)
    holiday: list[str | None]
    n_history: int
    cfg: TrainConfig
    init: dict | None = None  # previous version's Prophet parameters (warm start of the final fit)
    fit_prophet: bool = True  # False: baselines only (the item's worker died)
    fold_cache: dict | None = None  # this item's cached folds by key (fold_cache.py); None: no cache
    cache_salt: str = ""  # code, libraries and configuration, shared by every key of the training
    analog_start: int | None = None  # a young item: where its analog reference starts, in days from dates[0]
    analog_y: list[float | None] | None = None  # the reference, one value a day (core/forecast/analog.py)
    analog_stores: str | None = None  # the analog stores it is the mean of
    analog_rule: str | None = None  # how the reference was chosen (analog stores' same item, or a category profile)
    # True: the final Prophet fit and the classic models' final fits wait until the store knows which of them the
    # item is served by (`serve_finals` in core/fitting/train.py calls `final_prophet` and `final_classic`): an
    # item served by another model never pays for an unread fit
    defer_finals: bool = False


@dataclass
class FoldForecast:
    fold: int  # recent folds 0..folds-1 (oldest first); -1 and -2 for the seasonal calibration folds
    kind: str  # "recent" | "seasonal_heldout" | "seasonal_serving"
    dates: list[str]
    y: list[float]
    open_day: list[bool]
    yhat: dict[str, list[float]]  # per model
    raw_lower: list[float] | None  # Prophet's own interval
    raw_upper: list[float] | None
    scale: float  # in-sample naive MAE of the fold's training data
    level: float = 0.0  # mean units of the training's last 28 open days
    weights: dict[str, float] | None = None  # the combination's weights on this fold (set on earlier folds)


@dataclass
class ItemResult:
    store_id: str
    item_id: str
    folds: list[FoldForecast] = field(default_factory=list)
    prophet_json: str | None = None  # the final fit on all history, Prophet's own JSON
    future_yhat: dict[str, list[float]] = field(default_factory=dict)
    future_dates: list[str] = field(default_factory=list)
    future_open: list[bool] = field(default_factory=list)
    scale: float = 1.0
    level: float = 0.0
    baseline_state: dict = field(default_factory=dict)
    prophet_error: str | None = None
    fit_seconds: float = 0.0
    fits: int = 0
    fit_starts: dict[str, int] = field(default_factory=dict)  # Prophet fits per way they started (PROPHET_STARTS)
    fit_optimizers: dict[str, int] = field(default_factory=dict)  # Prophet fits per optimizer (PROPHET_OPTIMIZERS)
    final_start: str | None = None  # how the served fit started
    spec: dict = field(default_factory=dict)  # the item's ProphetSpec, the same at every origin
    intermittent: bool = False  # decided once from the whole history, like the spec
    future_paths: dict[str, list[float]] = field(default_factory=dict)  # classic models, before closed days
    weights: dict[str, float] = field(default_factory=dict)  # the served combination's weights
    gbm_state: dict = field(default_factory=dict)  # item code and level path for the store's LightGBM model
    # d log(demand) / d degC (gbm.temperature_slopes): every other model's forecast is moved by the forecast
    # temperature's departure from climatology (core/fitting/store_models.py `weather_adjust`); 0: not moved
    temperature_slope: float = 0.0
    fold_cache: dict = field(default_factory=dict)  # the folds this run used or made, by key (fold_cache.py)
    cached_folds: int = 0  # folds read from the cache instead of fitted
    fitted_here: bool = False  # in the training's own process, not a pool worker (FitPool.run)
    stage: str = "mature"  # analog.STAGES: which models an item of its age is served from
    analog_stores: str | None = None  # the stores its analog forecast borrows from
    analog_rule: str | None = None
    final_init: dict | None = None  # where the served Prophet fit starts: the previous version's, else the last fold's
    prophet_pending: bool = False  # the final Prophet fit was deferred, not (yet) made (ItemTask.defer_finals)
    classic_pending: list[str] = field(default_factory=list)  # classic models whose final fit was deferred, not made
    classic_error: str | None = None  # a served classic model whose final fit failed (the item fell back)
    future_factor: list[float] | None = None  # the weather factor on the served forecast of all models but the trees

    @property
    def servable(self) -> set[str]:
        """The models this item could be served from: those with a final forecast, those whose final fit is
        pending, and the combination when all its parts are among them."""
        have = set(self.future_yhat) | ({"prophet"} if self.prophet_pending else set()) | set(self.classic_pending)
        if self.weights and set(self.weights) <= have:
            have.add("combination")
        return have

    def count_fit(self, start: str, optimizer: str) -> None:
        self.fits += 1
        self.fit_starts[start] = self.fit_starts.get(start, 0) + 1
        self.fit_optimizers[optimizer] = self.fit_optimizers.get(optimizer, 0) + 1

    @property
    def warm_started(self) -> bool:
        """The served Prophet fit started from every parameter of the previous one (not a fallback)."""
        return self.final_start == "warm"


def _frame(task: ItemTask) -> pd.DataFrame:
    return pd.DataFrame({
        "ds": pd.to_datetime(task.dates), "y": pd.array(task.y, dtype="Float64").astype(float),
        "open": task.open_day, "promo": task.promo, "holiday": task.holiday,
    })


def fold_end(history_dates: pd.Series, cfg: TrainConfig) -> int:
    """Periods of history the backtest folds cover: all of it, or on daily data with `cfg.anchor_folds` up to the
    last Sunday, so the days after it move no fold (and no cached fold) until the next week closes."""
    n = len(history_dates)
    if not cfg.anchor_folds or cfg.freq != "D" or not n:
        return n
    return n - (int(pd.Timestamp(history_dates.iloc[-1]).dayofweek) - 6) % 7


def _item_key(task: ItemTask, result: ItemResult) -> dict:
    """The part of every fold key that is the same for all of an item's folds: computed once per item."""
    return {"salt": task.cache_salt, "holidays": [(d, h) for d, h in zip(task.dates, task.holiday) if h],
            "spec": result.spec, "intermittent": result.intermittent,
            # a young item's analog stores, rule and where its reference starts (its values: per fold, `_fold_key`)
            "analog": ([task.analog_start, task.analog_stores, task.analog_rule] if task.analog_y is not None
                       else None)}


def _fold_key(task: ItemTask, cutoff: int, item_key: dict, prophet_ok: bool, init: dict | None,
              raw_interval: bool) -> str:
    """Everything a fold's forecasts are made from (fold_cache.py): rows up to the fold's end with actuals
    before its origin only, the item's part (`_item_key`: salt, the holidays Prophet is given, specification),
    the parameters its Prophet fit starts from (the fold before's), whether Prophet's own interval is sampled, and
    for a young item its analog reference before the origin (all its analog forecast reads: a new day moves none)."""
    stop = cutoff + task.cfg.fold_horizon
    return digest({
        **item_key, "cutoff": cutoff, "dates": task.dates[:stop], "y": task.y[:cutoff],
        "open": task.open_day[:stop], "promo": task.promo[:stop], "holiday": task.holiday[:stop],
        "prophet": prophet_ok, "init": init, "raw_interval": raw_interval,
        "analog_before": task.analog_y[:max(cutoff - task.analog_start, 0)] if task.analog_y is not None else None,
    })


def _fit_fold(train: pd.DataFrame, test: pd.DataFrame, y_fit: pd.Series, holidays, cfg: TrainConfig, spec,
              init: dict | None, result: ItemResult, prophet_ok: bool, raw_interval: bool) -> dict:
    """Every candidate of the item on one fold: the cache entry (forecasts with closed days at 0, Prophet's own
    interval, the parameters the next fit starts from, a Prophet failure)."""
    y_train = train["y"].to_numpy(float)
    open_train = train["open"].to_numpy(bool)
    yhat = {
        "seasonal_naive": seasonal_naive(y_train, open_train, len(test), cfg.season),
        "moving_average": moving_average(y_train, open_train, len(test), cfg.moving_average_days),
    }
    if cfg.zoo:
        yhat.update(classic_forecasts(y_train, open_train, len(test), cfg, classic_models(result.intermittent)))
    raw_lo = raw_hi = error = None
    # Prophet's own interval is only read for the raw-coverage figure, on the held-out (last recent) fold:
    # sampling 200 trajectories anywhere else is time spent on nothing
    samples = cfg.raw_interval_samples if raw_interval else 0
    if prophet_ok:
        try:
            t0 = time.perf_counter()
            model, start = fit_prophet(pd.DataFrame({"ds": train["ds"], "y": y_fit, "promo": train["promo"]}),
                                       holidays, cfg, spec, init, uncertainty_samples=samples)
            result.fit_seconds += time.perf_counter() - t0
            result.count_fit(start, model.fit_optimizer)
            pred = prophet_predict(model, pd.DataFrame({"ds": test["ds"], "promo": test["promo"]}))
            yhat["prophet"] = np.clip(pred["yhat"].to_numpy(), 0, None)
            if samples:
                raw_lo = np.clip(pred["yhat_lower"].to_numpy(), 0, None).tolist()
                raw_hi = np.clip(pred["yhat_upper"].to_numpy(), 0, None).tolist()
            init = prophet_init(model)  # the next, longer fit starts where this one ended
        except Exception as exc:  # a failed or timed-out fit falls back; the store goes on
            error = f"{type(exc).__name__}: {exc}"[:300]
    closed = ~test["open"].to_numpy(bool)
    return {"yhat": {name: np.where(closed, 0.0, v).tolist() for name, v in yhat.items()},
            "raw_lower": raw_lo, "raw_upper": raw_hi, "init_after": init, "prophet_error": error}


def _analog(task: ItemTask, ref: np.ndarray | None, hist: pd.DataFrame, origin: int,
            horizon: int) -> np.ndarray | None:
    """The analog forecast of a young item from `origin` (core/forecast/analog.py), or None."""
    if ref is None or not horizon:
        return None
    return analog_path(ref, task.analog_start, hist["y"].to_numpy(float), hist["open"].to_numpy(bool), origin,
                       horizon)


def run_item(task: ItemTask) -> ItemResult:
    """Backtest all models on rolling origins, then fit the final Prophet on all history. Never raises
    for a Prophet failure: the error is recorded and the baselines still stand."""
    cfg = task.cfg
    df = _frame(task)
    hist, fut = df.iloc[: task.n_history], df.iloc[task.n_history:]
    holidays = holidays_frame(df["ds"], df["holiday"])
    y_fit = hist["y"].where(hist["open"])  # closed days are missing, not zero, for Prophet
    ref = None if task.analog_y is None else np.array([np.nan if v is None else v for v in task.analog_y], float)
    result = ItemResult(task.store_id, task.item_id)
    spec = prophet_spec(pd.DataFrame({"ds": hist["ds"], "y": y_fit, "promo": hist["promo"]}), cfg)
    result.spec = spec.to_json()
    # an intermittent item is served by an intermittent-demand model, the store's LightGBM or seasonal naive
    # (forecast/selection.py): with the zoo on, its Prophet fits would be time spent on a model it cannot serve
    result.intermittent = cfg.zoo and is_intermittent(hist["y"].to_numpy(float), hist["open"].to_numpy(bool))
    # the folds start cold and each fit warm-starts the next: a fold depends on its own inputs only (never on
    # the previous version), so its cached forecasts stay valid; the final fit starts from the previous version
    init = None
    # Prophet needs two open days to fit; an item without them (a store not trading yet) is served its analogs
    prophet_ok = task.fit_prophet and not result.intermittent and int(hist["open"].sum()) >= 2
    end = fold_end(hist["ds"], cfg)
    item_key = _item_key(task, result) if task.fold_cache is not None else None
    # Recent rolling origins, plus the same season a year before the held-out fold and before the
    # forecast window: December's intervals are calibrated on last December's errors, not November's.
    origins = [(end - (cfg.folds - k) * cfg.fold_horizon, k, "recent") for k in range(cfg.folds)]
    origins += [(end - cfg.fold_horizon - cfg.year, -1, "seasonal_heldout"),
                (end - cfg.year, -2, "seasonal_serving")]
    for cutoff, k, kind in sorted(origins):
        if cutoff < cfg.min_train_days or int(hist["open"].iloc[:cutoff].sum()) < cfg.min_train_days:
            continue
        train, test = hist.iloc[:cutoff], hist.iloc[cutoff: cutoff + cfg.fold_horizon]
        y_train = train["y"].to_numpy(float)
        open_train = train["open"].to_numpy(bool)
        raw_interval = kind == "recent" and k == cfg.folds - 1  # the held-out fold: the raw-coverage figure
        key = _fold_key(task, cutoff, item_key, prophet_ok, init, raw_interval) if item_key is not None else None
        hit = task.fold_cache.get(key) if key else None
        if hit is None:
            hit = _fit_fold(train, test, y_fit.iloc[:cutoff], holidays, cfg, spec, init, result, prophet_ok,
                            raw_interval)
            path = _analog(task, ref, hist, cutoff, len(test))
            if path is not None:
                hit["yhat"]["analog"] = np.where(test["open"].to_numpy(bool), path, 0).tolist()
        else:
            result.cached_folds += 1
        if key:
            result.fold_cache[key] = hit
        init = hit["init_after"]
        if hit["prophet_error"] and prophet_ok:
            prophet_ok = False
            result.prophet_error = hit["prophet_error"]
        result.folds.append(FoldForecast(
            fold=k, kind=kind, dates=test["ds"].dt.strftime("%Y-%m-%d").tolist(), y=test["y"].fillna(0).tolist(),
            open_day=test["open"].tolist(), yhat={m: list(v) for m, v in hit["yhat"].items()},
            raw_lower=hit["raw_lower"], raw_upper=hit["raw_upper"],
            scale=naive_scale(np.where(open_train, y_train, np.nan), cfg.season),
            level=recent_level(y_train, open_train),
        ))
    result.final_init = task.init or init  # the previous version's final fit, else the last fold's

    y_all = hist["y"].to_numpy(float)
    open_all = hist["open"].to_numpy(bool)
    result.scale = naive_scale(np.where(open_all, y_all, np.nan), cfg.season)
    result.level = recent_level(y_all, open_all)
    h = len(fut)
    open_future = fut["open"].to_numpy(bool)
    result.future_dates = fut["ds"].dt.strftime("%Y-%m-%d").tolist()
    result.future_open = open_future.tolist()
    sn = seasonal_naive(y_all, open_all, h, cfg.season)
    ma = moving_average(y_all, open_all, h, cfg.moving_average_days)
    result.future_yhat = {"seasonal_naive": np.where(open_future, sn, 0).tolist(),
                          "moving_average": np.where(open_future, ma, 0).tolist()}
    if cfg.zoo:
        result.classic_pending = list(classic_models(result.intermittent))
        if not task.defer_finals:
            apply_final_classic(result, final_classic(task, result.intermittent, result.classic_pending),
                                result.classic_pending)
    path = _analog(task, ref, hist, len(hist), h)
    if path is not None:
        result.future_paths["analog"] = path.tolist()
        result.future_yhat["analog"] = np.where(open_future, path, 0).tolist()
    result.analog_stores, result.analog_rule = task.analog_stores, task.analog_rule
    result.stage = history_stage(int(open_all.sum()), len(hist), cfg.min_train_days)
    last_week = last_open_season(y_all, open_all, cfg.season)  # what seasonal naive repeats
    result.baseline_state = {
        # the last history day; for a store without sales yet, the day before its horizon
        "anchor_date": (hist["ds"].iloc[-1] if len(hist) else fut["ds"].iloc[0] - pd.Timedelta(days=1)
                        ).strftime("%Y-%m-%d"),
        "last_week": [float(v) for v in last_week],
        "moving_average_level": float(ma[0]) if h else 0.0,
    }
    if prophet_ok:
        result.prophet_pending = True
        if not task.defer_finals:
            apply_final_prophet(result, final_prophet(task, result.spec, result.final_init))
    return result


@dataclass
class FinalProphet:
    """One item's served Prophet fit on all history: its forecast (closed days at 0), Prophet's JSON, how it
    started and where its optimum was found; or the error that stopped it."""

    yhat: list[float] | None = None
    json: str | None = None
    start: str | None = None
    optimizer: str | None = None
    seconds: float = 0.0
    error: str | None = None


def final_prophet(task: ItemTask, spec: dict, init: dict | None) -> FinalProphet:
    """The served Prophet fit of `task`'s item (specification `spec`, as its folds used; starting from `init`).
    Never raises for a Prophet failure: the error is returned. Runs in a worker or in the training's process."""
    df = _frame(task)
    hist, fut = df.iloc[: task.n_history], df.iloc[task.n_history:]
    y_fit = hist["y"].where(hist["open"])
    try:
        t0 = time.perf_counter()
        model, start = fit_prophet(pd.DataFrame({"ds": hist["ds"], "y": y_fit, "promo": hist["promo"]}),
                                   holidays_frame(df["ds"], df["holiday"]), task.cfg, ProphetSpec(**spec), init)
        seconds = time.perf_counter() - t0
        pred = prophet_predict(model, pd.DataFrame({"ds": fut["ds"], "promo": fut["promo"]}))
        yhat = np.where(fut["open"].to_numpy(bool), np.clip(pred["yhat"].to_numpy(), 0, None), 0)
        return FinalProphet(yhat.tolist(), model_json(model), start, model.fit_optimizer, seconds)
    except Exception as exc:  # noqa: BLE001 - a failed fit costs the item its Prophet model, never the store
        return FinalProphet(error=f"{type(exc).__name__}: {exc}"[:300])


@dataclass
class FinalClassic:
    """Classic models' final fits of one item: each fitted model's path from the anchor date (before closed days;
    a model that failed to fit is absent), or the error that stopped them all (a lost worker)."""

    paths: dict[str, list[float]] = field(default_factory=dict)
    error: str | None = None


def final_classic(task: ItemTask, intermittent: bool, names: list[str]) -> FinalClassic:
    """The final fits on all history of the classic models `names` of `task`'s item. Runs in a worker or in the
    training's process."""
    y = np.array([np.nan if v is None else v for v in task.y[: task.n_history]], dtype=float)
    open_all = np.asarray(task.open_day[: task.n_history], dtype=bool)
    h = len(task.dates) - task.n_history
    return FinalClassic({name: path.tolist() for name, path in classic_forecasts(
        y, open_all, h, task.cfg, [n for n in classic_models(intermittent) if n in names]).items()})


def apply_final_classic(result: ItemResult, got: FinalClassic, asked: list[str]) -> None:
    """Classic final fits into `result`: each path, and its forecast with closed days at 0 (times the weather
    factor the item's other models carry). No model `asked` for is pending any more: one without a path failed
    and is not servable."""
    result.classic_pending = [n for n in result.classic_pending if n not in asked]
    open_future = np.asarray(result.future_open, dtype=bool)
    for name, path in got.paths.items():
        result.future_paths[name] = list(path)
        yhat = np.where(open_future, np.asarray(path, dtype=float), 0)
        result.future_yhat[name] = (yhat * np.asarray(result.future_factor) if result.future_factor is not None
                                    else yhat).tolist()


def apply_final_prophet(result: ItemResult, got: FinalProphet) -> None:
    """The served Prophet fit into `result`: its forecast (times the weather factor the item's other models
    carry), JSON and fit counts; or its error, and Prophet is no longer servable."""
    result.prophet_pending = False
    if got.error is not None:
        result.prophet_error = got.error
        return
    result.fit_seconds += got.seconds
    result.count_fit(got.start, got.optimizer)
    result.final_start = got.start
    yhat = np.asarray(got.yhat, dtype=float)
    result.future_yhat["prophet"] = (yhat * np.asarray(result.future_factor) if result.future_factor is not None
                                     else yhat).tolist()
    result.prophet_json = got.json


def pooled_wape(folds: list[FoldForecast], forecasts: list[list[float]]) -> float:
    """WAPE over the open days of `folds` pooled, `forecasts[i]` forecasting `folds[i]` (at least one fold):
    the one measure that store defaults, LightGBM variants and combination weights are chosen on."""
    masks = [np.array(f.open_day, bool) for f in folds]
    y = np.concatenate([np.array(f.y)[k] for f, k in zip(folds, masks)])
    return wape(y, np.concatenate([np.array(p)[k] for p, k in zip(forecasts, masks)]))


def recent(folds: list[FoldForecast]) -> list[FoldForecast]:
    return [f for f in folds if f.kind == "recent"]


def seasonal(folds: list[FoldForecast], kind: str) -> list[FoldForecast]:
    return [f for f in folds if f.kind == kind]
