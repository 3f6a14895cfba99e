"""The per-item models: Prophet (fit, predict, its JSON) and the seasonal-naive and moving-average baselines,
with the training configuration they share. Pure: no Dagster, no files."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MODELS = ("prophet", "seasonal_naive", "moving_average", "ets", "theta", "croston_sba", "tsb", "lightgbm",
          "seasonal_index", "analog", "combination")
"""Every candidate of an item's selection: Prophet; the baselines; statsforecast's classic models
(core/forecast/classic.py); the store's gradient-boosted model (core/forecast/gbm.py) and its seasonal-index model
(core/forecast/seasonal_index.py); and the combination
of the best of them with weights set on earlier folds (core/forecast/combine.py); for a young store's items,
the analog stores' forecast scaled to its level (core/forecast/analog.py)."""
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
    zoo: bool = True  # False: Prophet and the baselines only (the platform before the model zoo; bench/train.py)
    classic_window: int = 364  # periods ETS and Theta fit on (the most recent)
    gbm_rounds: int = 300  # boosting rounds of the store's LightGBM model
    gbm_variants: tuple[str, ...] = ("level", "calendar")  # the LightGBM variants a store chooses from (gbm.VARIANTS)
    seasonal_index: bool = True  # the store's seasonal-index model among the candidates (seasonal_index.py)
    freq: str = "D"  # "D" daily or "W" weekly
    anchor_folds: bool = True  # daily folds end on the last Sunday: a new day moves no fold (fold_cache.py)
    fold_cache: bool = True  # reuse a fold's forecasts when everything that made them is unchanged
    prophet_optimizer: str = "in_process"  # or "cmdstan": where Prophet's optimum is found (prophet_map.py)

    def __post_init__(self) -> None:
        if self.prophet_optimizer not in ("in_process", "cmdstan"):
            raise ValueError(f"prophet_optimizer {self.prophet_optimizer!r}: choose 'in_process' or 'cmdstan'")

    def to_json(self) -> dict:
        """As JSON gives it back (tuples as lists): a stored config compares equal to the one that wrote it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @property
    def season(self) -> int:
        """Seasonal-naive lag: a week of days, or a year of weeks."""
        return 7 if self.freq == "D" else 52

    @property
    def year(self) -> int:
        """One year in periods, whole weeks so weekdays line up."""
        return 364 if self.freq == "D" else 52



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


def last_open_season(y_train: np.ndarray, open_train: np.ndarray, season: int = 7) -> np.ndarray:
    """The last season's values, aligned with its last `season` periods, where each period closed then (a
    Thanksgiving, a Christmas Day) is replaced by the last open period of the same weekday before it: a
    holiday closure last week is not a forecast of zero for every such weekday ahead. A weekday never open
    in the history stays zero; a weekday the history is too short to have seen gets the open mean."""
    y = np.where(open_train & ~np.isnan(y_train), y_train, np.nan)
    n = len(y)
    observed = y[~np.isnan(y)]
    out = np.zeros(season)
    for phase in range(season):
        idx = n - season + phase
        if idx < 0:  # a history shorter than a season never saw this weekday: its open mean
            out[phase] = float(observed.mean()) if observed.size else 0.0
            continue
        while idx >= 0 and np.isnan(y[idx]):
            idx -= season
        if idx >= 0:
            out[phase] = y[idx]
    return out


def seasonal_naive(y_train: np.ndarray, open_train: np.ndarray, horizon: int, season: int = 7) -> np.ndarray:
    """Repeat the last season, each weekday at its last open value (`last_open_season`); the forecast is
    set to zero on the horizon's own closed days by the caller."""
    last = last_open_season(y_train, open_train, season)
    return np.array([last[h % season] for h in range(horizon)], dtype=float)


def moving_average(y_train: np.ndarray, open_train: np.ndarray, horizon: int, window: int) -> np.ndarray:
    y = y_train[open_train & ~np.isnan(y_train)][-window:]
    return np.full(horizon, float(y.mean()) if len(y) else 0.0)


HOLIDAY_WINDOWS = {  # (days before, days after) each retail holiday moves demand, as Prophet's holiday windows
    "Christmas Day": (-14, 1),  # the two-week run-up, and the day after
    "Christmas Eve": (0, 0),  # inside Christmas Day's window already
    "Thanksgiving": (-2, 1), "Thanksgiving Day": (-2, 1),
    "Black Friday": (0, 3),  # through Cyber Monday
    "New Year's Eve": (-1, 0),
}


def holidays_frame(dates: pd.Series, names: pd.Series, windows: bool = True) -> pd.DataFrame | None:
    """Prophet's holidays from the calendar's names; each with its retail window (HOLIDAY_WINDOWS), or the day
    alone for a holiday not listed there (or for every holiday with `windows=False`)."""
    mask = names.notna()
    if not mask.any():
        return None
    frame = pd.DataFrame({"holiday": names[mask].astype(str).values, "ds": pd.to_datetime(dates[mask].values)})
    span = [HOLIDAY_WINDOWS.get(n, (0, 0)) if windows else (0, 0) for n in frame["holiday"]]
    frame["lower_window"] = [lo for lo, _hi in span]
    frame["upper_window"] = [hi for _lo, hi in span]
    return frame


@dataclass(frozen=True)
class ProphetSpec:
    """What the Prophet model of one item is, decided once from its whole history and used unchanged at
    every backtest origin and in the served fit, so selection and calibration judge the model that is served."""

    yearly: bool
    weekly: bool
    mode: str  # "additive" | "multiplicative"
    promo: bool  # a promotion regressor: the item was ever promoted in its history

    def to_json(self) -> dict:
        return dict(self.__dict__)


def prophet_spec(history: pd.DataFrame, cfg: TrainConfig) -> ProphetSpec:
    """From the item's full history (ds, y with closed days missing, promo)."""
    observed = history.dropna(subset=["y"])
    span = (observed["ds"].max() - observed["ds"].min()).days if len(observed) else 0  # as Prophet measures it
    return ProphetSpec(
        yearly=span >= cfg.yearly_min_days,
        weekly=cfg.freq == "D" and span >= 14,
        mode="multiplicative" if len(observed) and observed["y"].mean() >= 2 else "additive",
        promo=bool(history["promo"].nunique() > 1),
    )


PROPHET_STARTS = ("cold", "warm", "partial", "warm_failed_cold")
"""How a Prophet fit started: cold (Prophet's own init); warm (every parameter from the init); partial (the
init's trend and noise only: Prophet keeps its own changepoint and seasonality starts when their shapes
differ); warm_failed_cold (the fit from the init failed and was refit cold)."""


def prophet_init(model) -> dict:
    """A fitted model's parameters as an init for the next fit (Prophet docs: updating fitted models)."""
    res = {p: float(model.params[p][0][0]) for p in ("k", "m", "sigma_obs")}
    for p in ("delta", "beta"):
        res[p] = [float(v) for v in model.params[p][0]]
    return res


def _stan_init(init: dict) -> dict:
    """Prophet 1.5 compares `.shape`s of delta and beta: arrays, not the lists JSON gives back."""
    return {"k": float(init["k"]), "m": float(init["m"]), "sigma_obs": float(init["sigma_obs"]),
            "delta": np.asarray(init["delta"], dtype=float), "beta": np.asarray(init["beta"], dtype=float)}


def quiet_prophet() -> None:
    """Prophet logs an error when plotly is absent (we plot with matplotlib); cmdstanpy chats per fit."""
    from cmdstanpy.utils import get_logger

    get_logger()  # cmdstanpy configures its logger lazily, once: let it, then turn it down

    for name, level in (("prophet.plot", logging.CRITICAL), ("prophet", logging.WARNING),
                        ("cmdstanpy", logging.WARNING)):
        logging.getLogger(name).setLevel(level)
    prophet_logger = logging.getLogger("prophet")
    if not any(isinstance(f, _SpecDecidedOnce) for f in prophet_logger.filters):
        prophet_logger.addFilter(_SpecDecidedOnce())


class _SpecDecidedOnce(logging.Filter):
    """Prophet warns when a fold's window is shorter than two years while yearly seasonality is on: by design
    here (`ProphetSpec` is decided once from the whole history and kept at every origin), so not a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Yearly seasonality is enabled with less than")


def stan_data_as_arrays() -> None:
    """Prophet 1.5 hands cmdstanpy its feature matrix as nested Python lists, which cmdstanpy's JSON writer
    (stanio) then walks value by value with the pure-Python encoder: most of a short fit's time. Hand it over
    as an array: stanio converts it in one call and ujson writes it. The same numbers reach Stan, so the
    optimum is the same (retail_assets_tests/core/forecast/test_prophet_data_writer.py). Idempotent."""
    from prophet.models import CmdStanPyBackend

    original = CmdStanPyBackend.prepare_data
    if getattr(original, "matrix_as_array", False):
        return

    def prepare_data(init, data):
        inits, stan_data = original(init, data)
        stan_data["X"] = np.asarray(stan_data["X"], dtype=float).reshape(len(stan_data["X"]), -1)
        return inits, stan_data

    prepare_data.matrix_as_array = True
    prepare_data.original = original  # Prophet's own, for the test that compares the two
    CmdStanPyBackend.prepare_data = staticmethod(prepare_data)


PROPHET_OPTIMIZERS = ("in_process", "cmdstan", "cmdstan_fallback")
"""Where a Prophet fit's optimum was found: in this process (prophet_map.py), by Prophet's CmdStan backend
as configured, or by CmdStan because the in-process optimisation failed (a fallback, and counted as one)."""


def fit_prophet(train: pd.DataFrame, holidays: pd.DataFrame | None, cfg: TrainConfig, spec: ProphetSpec,
                init: dict | None = None, uncertainty_samples: int = 0):
    """Fit one Prophet model of specification `spec` on (ds, y, promo). Returns the model and how it started
    (`PROPHET_STARTS`): a warm start that could not be used is reported as what happened, never as warm.
    The model's `fit_optimizer` says where its optimum was found (`PROPHET_OPTIMIZERS`)."""
    quiet_prophet()
    stan_data_as_arrays()
    from prophet import Prophet

    from retail_assets.core.forecast.prophet_map import OPTIMIZER, InProcessBackend, InProcessFitFailed

    def build(optimizer: str):
        model = Prophet(
            growth="linear",
            yearly_seasonality=spec.yearly,
            weekly_seasonality=spec.weekly,
            daily_seasonality=False,
            seasonality_mode=spec.mode,
            holidays=holidays,
            interval_width=cfg.interval,
            uncertainty_samples=uncertainty_samples,
        )
        if spec.promo:
            model.add_regressor("promo", standardize=False, mode=spec.mode)
        if optimizer == OPTIMIZER:
            model.stan_backend = InProcessBackend()
        model.fit_optimizer = optimizer
        return model

    kwargs: dict[str, Any] = {"iter": cfg.max_iter, "timeout": cfg.fit_timeout_s}
    frame = train[["ds", "y", "promo"]]

    def fit(fit_init: dict | None):
        model = build(cfg.prophet_optimizer)
        extra = {} if fit_init is None else {"init": fit_init}
        try:
            return model.fit(frame, **kwargs, **extra)
        except InProcessFitFailed:  # the optimiser failed (not the data, not the time limit): CmdStan, as a fallback
            model = build("cmdstan")
            model.fit_optimizer = "cmdstan_fallback"
            return model.fit(frame, **kwargs, **extra)

    if init is None:
        return fit(None), "cold"
    stan_init = _stan_init(init)
    try:
        model = fit(stan_init)
    except Exception:  # noqa: BLE001 - a stale init must not fail the item: refit cold, and say so
        return fit(None), "warm_failed_cold"
    used_all = all(np.shape(model.params[p])[-1] == len(stan_init[p]) for p in ("delta", "beta"))
    return model, "warm" if used_all else "partial"


def prophet_predict(model, future: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    np.random.seed(seed)  # Prophet samples its own intervals with numpy's global generator
    return model.predict(future[["ds", "promo"]])


def model_json(model) -> str:
    from prophet.serialize import model_to_json

    return model_to_json(model)
