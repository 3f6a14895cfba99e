"""The per-item models: Prophet (fit, predict, its JSON) and the seasonal-naive and moving-average baselines,
with the training configuration they share. Pure: no Dagster, no files."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

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
