"""Per-item forecasting: Prophet and two baselines, a rolling-origin backtest, honest champion selection
and split-conformal intervals. Pure: no Dagster, no files.

Honesty rule: a choice is never scored on the data that made it. The champion is picked and the interval
calibrated on the earlier folds; the held-out figures come from the last fold. The served model then uses
every fold (more data, same rule for choosing).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from retail_assets.core.metrics import bias, wape

MODELS = ("prophet", "seasonal_naive", "moving_average")
BASELINE = "seasonal_naive"


@dataclass(frozen=True)
class TrainConfig:
    horizon: int = 28  # days forecast for planners
    folds: int = 3  # rolling-origin folds; the last one is held out for scoring
    fold_horizon: int = 28
    interval: float = 0.8  # nominal coverage of the served interval
    horizon_buckets: int = 4  # calibration offsets per week of horizon
    max_iter: int = 2000  # Stan optimizer iteration cap per fit
    fit_timeout_s: float = 60.0  # per Prophet fit; a fit past this falls back
    min_train_days: int = 56
    yearly_min_days: int = 730  # yearly seasonality only with two years of history
    raw_interval_samples: int = 200  # Prophet's own intervals, for the raw coverage figure only
    moving_average_days: int = 28  # periods
    freq: str = "D"  # "D" daily or "W" weekly

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @property
    def season(self) -> int:
        """Seasonal-naive lag: a week of days, or a year of weeks."""
        return 7 if self.freq == "D" else 52

    @property
    def year(self) -> int:
        """One year in periods, whole weeks so weekdays line up."""
        return 364 if self.freq == "D" else 52


# ---------------------------------------------------------------- metrics
# wape and bias live in core/metrics.py (one definition with monitoring); `fc.wape` stays importable for
# training and backtest_csv. Champion selection orders by wape: 0.0 / +inf when an item sold nothing.


def naive_scale(y_train: np.ndarray, season: int = 7) -> float:
    """In-sample MAE of the seasonal naive forecast: the MASE denominator and the interval scale."""
    y = y_train[~np.isnan(y_train)]
    if len(y) <= season:
        return max(float(np.mean(np.abs(y))) if len(y) else 1.0, 0.1)
    mae = float(np.mean(np.abs(y[season:] - y[:-season])))
    return mae if mae > 0 else max(float(np.mean(np.abs(y))), 0.1)


def recent_level(y_train: np.ndarray, open_train: np.ndarray, days: int = 28) -> float:
    y = y_train[open_train & ~np.isnan(y_train)][-days:]
    return float(y.mean()) if len(y) else 0.0


def local_scale(yhat: np.ndarray, scale: float, level: float) -> np.ndarray:
    """Noise grows with the level of demand (count data): the item's scale, stretched where the forecast
    is above its recent level (a peak) and shrunk below it."""
    return scale * np.sqrt((np.clip(yhat, 0, None) + 1.0) / (max(level, 0.0) + 1.0))


# ---------------------------------------------------------------- models


def seasonal_naive(y_train: np.ndarray, open_train: np.ndarray, horizon: int, season: int = 7) -> np.ndarray:
    """Repeat the last full week (closed days count as zero sales on the same weekday)."""
    y = np.where(open_train, np.nan_to_num(y_train), 0.0)
    last = y[-season:] if len(y) >= season else np.resize(y, season)
    return np.array([last[h % season] for h in range(horizon)], dtype=float)


def moving_average(y_train: np.ndarray, open_train: np.ndarray, horizon: int, window: int) -> np.ndarray:
    y = y_train[open_train & ~np.isnan(y_train)][-window:]
    return np.full(horizon, float(y.mean()) if len(y) else 0.0)


def holidays_frame(dates: pd.Series, names: pd.Series) -> pd.DataFrame | None:
    mask = names.notna()
    if not mask.any():
        return None
    return pd.DataFrame({"holiday": names[mask].astype(str).values, "ds": pd.to_datetime(dates[mask].values),
                         "lower_window": 0, "upper_window": 0})


def prophet_init(model) -> dict:
    """A fitted model's parameters as an init for the next fit (Prophet docs: updating fitted models)."""
    res = {p: float(model.params[p][0][0]) for p in ("k", "m", "sigma_obs")}
    for p in ("delta", "beta"):
        res[p] = [float(v) for v in model.params[p][0]]
    return res


def quiet_prophet() -> None:
    """Prophet logs an error when plotly is absent (we plot with matplotlib); cmdstanpy chats per fit."""
    from cmdstanpy.utils import get_logger

    get_logger()  # cmdstanpy configures its logger lazily, once: let it, then turn it down

    for name, level in (("prophet.plot", logging.CRITICAL), ("prophet", logging.WARNING),
                        ("cmdstanpy", logging.WARNING)):
        logging.getLogger(name).setLevel(level)


def fit_prophet(train: pd.DataFrame, holidays: pd.DataFrame | None, cfg: TrainConfig, init: dict | None = None,
                uncertainty_samples: int = 0):
    """Fit one Prophet model on (ds, y, promo) with the seasonalities the history can support."""
    quiet_prophet()
    from prophet import Prophet

    observed = train.dropna(subset=["y"])
    span = (observed["ds"].max() - observed["ds"].min()).days if len(observed) else 0  # as Prophet measures it
    mode = "multiplicative" if observed["y"].mean() >= 2 else "additive"
    model = Prophet(
        growth="linear",
        yearly_seasonality=span >= cfg.yearly_min_days,
        weekly_seasonality=cfg.freq == "D" and span >= 14,
        daily_seasonality=False,
        seasonality_mode=mode,
        holidays=holidays,
        interval_width=cfg.interval,
        uncertainty_samples=uncertainty_samples,
    )
    if observed["promo"].nunique() > 1:
        model.add_regressor("promo", standardize=False, mode=mode)
    kwargs: dict[str, Any] = {"iter": cfg.max_iter, "timeout": cfg.fit_timeout_s}
    if init is not None:
        kwargs["init"] = init
    try:
        model.fit(train[["ds", "y", "promo"]], **kwargs)
    except Exception:
        if init is None:
            raise
        model = fit_prophet(train, holidays, cfg, None, uncertainty_samples)  # a stale init must not fail a fit
    return model


def prophet_predict(model, future: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    np.random.seed(seed)  # Prophet samples its own intervals with numpy's global generator
    return model.predict(future[["ds", "promo"]])


def model_json(model) -> str:
    from prophet.serialize import model_to_json

    return model_to_json(model)


# ---------------------------------------------------------------- one item, in a worker


@dataclass
class ItemTask:
    store_id: str
    item_id: str
    dates: list[str]  # ISO dates, history then future
    y: list[float | None]  # None on future rows
    open_day: list[bool]
    promo: list[int]
    holiday: list[str | None]
    n_history: int
    cfg: TrainConfig
    init: dict | None = None  # previous version's Prophet parameters (warm start)
    fit_prophet: bool = True  # False: baselines only (the item's worker died)


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
    warm_started: bool = False


def _frame(task: ItemTask) -> pd.DataFrame:
    return pd.DataFrame({
        "ds": pd.to_datetime(task.dates), "y": pd.array(task.y, dtype="Float64").astype(float),
        "open": task.open_day, "promo": task.promo, "holiday": task.holiday,
    })


def run_item(task: ItemTask) -> ItemResult:
    """Backtest all models on rolling origins, then fit the final Prophet on all history. Never raises
    for a Prophet failure: the error is recorded and the baselines still stand."""
    cfg = task.cfg
    df = _frame(task)
    hist, fut = df.iloc[: task.n_history], df.iloc[task.n_history:]
    holidays = holidays_frame(df["ds"], df["holiday"])
    y_fit = hist["y"].where(hist["open"])  # closed days are missing, not zero, for Prophet
    result = ItemResult(task.store_id, task.item_id, warm_started=task.init is not None)
    init = task.init  # the previous version's parameters; then each fit warm-starts the next
    prophet_ok = task.fit_prophet
    n = len(hist)
    # Recent rolling origins, plus the same season a year before the held-out fold and before the
    # forecast window: December's intervals are calibrated on last December's errors, not November's.
    origins = [(n - (cfg.folds - k) * cfg.fold_horizon, k, "recent") for k in range(cfg.folds)]
    origins += [(n - cfg.fold_horizon - cfg.year, -1, "seasonal_heldout"), (n - cfg.year, -2, "seasonal_serving")]
    for cutoff, k, kind in sorted(origins):
        if cutoff < cfg.min_train_days or int(hist["open"].iloc[:cutoff].sum()) < cfg.min_train_days:
            continue
        train, test = hist.iloc[:cutoff], hist.iloc[cutoff: cutoff + cfg.fold_horizon]
        y_train = train["y"].to_numpy(float)
        open_train = train["open"].to_numpy(bool)
        yhat = {
            "seasonal_naive": seasonal_naive(y_train, open_train, len(test), cfg.season),
            "moving_average": moving_average(y_train, open_train, len(test), cfg.moving_average_days),
        }
        raw_lo = raw_hi = None
        if prophet_ok:
            try:
                t0 = time.perf_counter()
                model = fit_prophet(
                    pd.DataFrame({"ds": train["ds"], "y": y_fit.iloc[:cutoff], "promo": train["promo"]}),
                    holidays, cfg, init, uncertainty_samples=cfg.raw_interval_samples,
                )
                result.fit_seconds += time.perf_counter() - t0
                result.fits += 1
                pred = prophet_predict(model, pd.DataFrame({"ds": test["ds"], "promo": test["promo"]}))
                yhat["prophet"] = np.clip(pred["yhat"].to_numpy(), 0, None)
                raw_lo = np.clip(pred["yhat_lower"].to_numpy(), 0, None).tolist()
                raw_hi = np.clip(pred["yhat_upper"].to_numpy(), 0, None).tolist()
                init = prophet_init(model)  # the next, longer fit starts where this one ended
            except Exception as exc:  # a failed or timed-out fit falls back; the store goes on
                prophet_ok = False
                result.prophet_error = f"{type(exc).__name__}: {exc}"[:300]
        closed = ~test["open"].to_numpy(bool)
        for name in yhat:
            yhat[name] = np.where(closed, 0.0, yhat[name]).tolist()
        result.folds.append(FoldForecast(
            fold=k, kind=kind, dates=test["ds"].dt.strftime("%Y-%m-%d").tolist(), y=test["y"].fillna(0).tolist(),
            open_day=test["open"].tolist(), yhat=yhat, raw_lower=raw_lo, raw_upper=raw_hi,
            scale=naive_scale(np.where(open_train, y_train, np.nan), cfg.season),
            level=recent_level(y_train, open_train),
        ))

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
    last_week = np.where(open_all, np.nan_to_num(y_all), 0.0)[-cfg.season:]
    result.baseline_state = {
        "anchor_date": hist["ds"].iloc[-1].strftime("%Y-%m-%d"),
        "last_week": [float(v) for v in last_week],
        "moving_average_level": float(ma[0]) if h else 0.0,
    }
    if prophet_ok:
        try:
            t0 = time.perf_counter()
            model = fit_prophet(pd.DataFrame({"ds": hist["ds"], "y": y_fit, "promo": hist["promo"]}), holidays, cfg,
                                init)
            result.fit_seconds += time.perf_counter() - t0
            result.fits += 1
            pred = prophet_predict(model, pd.DataFrame({"ds": fut["ds"], "promo": fut["promo"]}))
            result.future_yhat["prophet"] = np.where(open_future, np.clip(pred["yhat"].to_numpy(), 0, None), 0).tolist()
            result.prophet_json = model_json(model)
        except Exception as exc:
            result.prophet_error = f"{type(exc).__name__}: {exc}"[:300]
    return result


# ---------------------------------------------------------------- champion and calibration (store level)


def fold_metrics(result: ItemResult, model: str, folds: list[FoldForecast]) -> dict[str, float]:
    ys, yh, sc = [], [], []
    for f in folds:
        if model not in f.yhat:
            return {"wape": math.inf, "mase": math.inf, "bias": math.nan, "n": 0}
        mask = np.array(f.open_day, bool)
        ys.append(np.array(f.y)[mask])
        yh.append(np.array(f.yhat[model])[mask])
        sc.append(np.full(mask.sum(), f.scale))
    if not ys:
        return {"wape": math.inf, "mase": math.inf, "bias": math.nan, "n": 0}
    y, yhat, scale = np.concatenate(ys), np.concatenate(yh), np.concatenate(sc)
    return {"wape": wape(y, yhat), "mase": float(np.mean(np.abs(y - yhat) / scale)) if len(y) else math.nan,
            "bias": bias(y, yhat), "n": int(len(y))}


def choose_champion(result: ItemResult, folds: list[FoldForecast]) -> tuple[str, str, dict]:
    """Lowest backtest WAPE on `folds`; ties and missing backtests go to the seasonal-naive baseline."""
    scores = {m: fold_metrics(result, m, folds) for m in MODELS}
    if not folds:
        return BASELINE, "too little history for a backtest: serving seasonal naive", scores
    # WAPE orders (0.0 / +inf when the item sold nothing, core/metrics); NaN (a forecast with gaps) would compare
    # false to everything and win from first place, so it ranks last like +inf
    best = min(MODELS, key=lambda m: (math.inf if math.isnan(scores[m]["wape"]) else scores[m]["wape"],
                                      m != BASELINE))
    if best == "prophet" and result.prophet_json is None:
        best = BASELINE
        return best, "prophet failed to fit: serving seasonal naive", scores
    others = ", ".join(f"{m.replace('_', ' ')} {scores[m]['wape']:.3f}" for m in MODELS if m != best)
    reason = f"{best.replace('_', ' ')} has the lowest backtest WAPE {scores[best]['wape']:.3f} (vs {others})"
    return best, reason, scores


@dataclass(frozen=True)
class Calibration:
    """Per-horizon-bucket quantiles of scaled residuals: interval = yhat + q * item scale."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    bucket_days: int
    n: tuple[int, ...]

    def bounds(self, yhat: np.ndarray, scale: float, level: float) -> tuple[np.ndarray, np.ndarray]:
        b = np.minimum(np.arange(len(yhat)) // self.bucket_days, len(self.lower) - 1)
        s = local_scale(yhat, scale, level)
        lo = np.clip(yhat + np.array(self.lower)[b] * s, 0, None)
        hi = yhat + np.array(self.upper)[b] * s
        return np.minimum(lo, yhat), np.maximum(hi, yhat)

    def to_json(self) -> dict:
        return {"lower": list(self.lower), "upper": list(self.upper), "bucket_days": self.bucket_days, "n": list(self.n)}


def calibrate(pairs: list[tuple[FoldForecast, str]], cfg: TrainConfig) -> Calibration:
    """Split-conformal quantiles per horizon bucket from (fold, model) residuals, pooled across items."""
    bucket_days = math.ceil(cfg.fold_horizon / cfg.horizon_buckets)
    per_bucket: list[list[float]] = [[] for _ in range(cfg.horizon_buckets)]
    for f, model in pairs:
        y, yhat = np.array(f.y), np.array(f.yhat[model])
        s = local_scale(yhat, f.scale, f.level)
        for h, (yy, yh, sh, op) in enumerate(zip(y, yhat, s, f.open_day)):
            if op:
                per_bucket[min(h // bucket_days, cfg.horizon_buckets - 1)].append((yy - yh) / sh)
    alpha = 1 - cfg.interval
    lows, highs, ns = [], [], []
    for r in per_bucket:
        r = np.sort(np.array(r))
        n = len(r)
        if n < 10:
            lows.append(-2.0)
            highs.append(2.0)
            ns.append(n)
            continue
        # finite-sample conformal levels for the two tails
        ql = max(math.floor((n + 1) * (alpha / 2)) - 1, 0) / max(n - 1, 1)
        qh = min(math.ceil((n + 1) * (1 - alpha / 2)) - 1, n - 1) / max(n - 1, 1)
        lows.append(min(float(np.quantile(r, ql)), 0.0))
        highs.append(max(float(np.quantile(r, qh)), 0.0))
        ns.append(n)
    return Calibration(tuple(lows), tuple(highs), bucket_days, tuple(ns))


def interval_coverage(pairs: list[tuple[FoldForecast, str]], cal: Calibration) -> float:
    hits, total = 0, 0
    for f, model in pairs:
        yhat = np.array(f.yhat[model])
        lo, hi = cal.bounds(yhat, f.scale, f.level)
        mask = np.array(f.open_day, bool)
        y = np.array(f.y)
        hits += int(((y >= lo) & (y <= hi))[mask].sum())
        total += int(mask.sum())
    return hits / total if total else math.nan


def recent(folds: list[FoldForecast]) -> list[FoldForecast]:
    return [f for f in folds if f.kind == "recent"]


def seasonal(folds: list[FoldForecast], kind: str) -> list[FoldForecast]:
    return [f for f in folds if f.kind == kind]


def raw_prophet_coverage(results: list[ItemResult], fold_index: int) -> float:
    hits, total = 0, 0
    for r in results:
        for f in r.folds:
            if f.fold == fold_index and f.raw_lower is not None:
                mask = np.array(f.open_day, bool)
                y = np.array(f.y)
                ok = (y >= np.array(f.raw_lower)) & (y <= np.array(f.raw_upper))
                hits += int(ok[mask].sum())
                total += int(mask.sum())
    return hits / total if total else math.nan


def dumps(obj: Any) -> str:
    """Canonical JSON (sorted keys, no NaN): byte-identical for identical content."""
    def clean(v):
        if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (np.floating,)):
            return clean(float(v))
        return v
    return json.dumps(clean(obj), sort_keys=True, indent=1)
