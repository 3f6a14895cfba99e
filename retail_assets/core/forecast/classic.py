"""Classic per-item models from statsforecast: ETS and Theta with the weekly (or yearly, on weekly data) season,
and Croston-SBA and TSB for intermittent items. Each returns a forecast path from its origin; the served
artifact is that path as JSON over the bundle's horizon (statsforecast models have no portable format but
pickle). Pure: no Dagster, no files."""

from __future__ import annotations

import numpy as np

from retail_assets.core.forecast.models import TrainConfig, last_open_season

CLASSIC_MODELS = ("ets", "theta", "croston_sba", "tsb")
INTERMITTENT_MODELS = ("croston_sba", "tsb")
REGULAR_MODELS = ("ets", "theta")
INTERMITTENT_ADI = 1.32  # Syntetos-Boylan: mean interval between demands above this is intermittent
TSB_ALPHA = 0.1  # TSB's smoothing of demand size and probability (statsforecast has no automatic TSB)


def average_demand_interval(y_train: np.ndarray, open_train: np.ndarray) -> float:
    """Open periods per period with demand (ADI); infinite when the item never sold."""
    y = y_train[open_train & ~np.isnan(y_train)]
    sold = int((y > 0).sum())
    return len(y) / sold if sold else float("inf")


def is_intermittent(y_train: np.ndarray, open_train: np.ndarray) -> bool:
    return average_demand_interval(y_train, open_train) >= INTERMITTENT_ADI


def filled_open_series(y_train: np.ndarray, open_train: np.ndarray, season: int) -> np.ndarray:
    """The history as one unbroken series for models that need one: each closed or missing period takes the
    value of the same weekday's last open period (a closed Christmas Day is not a zero-demand day)."""
    y = np.where(open_train & ~np.isnan(y_train), y_train, np.nan)
    out = y.copy()
    for i in np.flatnonzero(np.isnan(out)):
        j = i - season
        while j >= 0 and np.isnan(out[j]):
            j -= season
        out[i] = out[j] if j >= 0 else np.nan
    if np.isnan(out).any():  # the first season before any open period: its open mean
        fill = last_open_season(y_train, open_train, season)
        out[np.isnan(out)] = float(np.mean(fill)) if fill.size else 0.0
    return out


def classic_models(intermittent: bool) -> tuple[str, ...]:
    """The classic models an item is fitted with: the intermittent ones for an intermittent item (the only classic
    models it can be served by), else ETS and Theta."""
    return INTERMITTENT_MODELS if intermittent else REGULAR_MODELS


def classic_forecasts(y_train: np.ndarray, open_train: np.ndarray, horizon: int, cfg: TrainConfig,
                      names: tuple[str, ...] | list[str]) -> dict[str, np.ndarray]:
    """The forecast path over `horizon` from the end of `y_train` of each classic model in `names` (of one
    `classic_models` group), clipped at zero; ETS and Theta fitted on the last `cfg.classic_window` periods (their
    optimizers' cost grows with the window and the level they track is recent). A model that fails to fit is
    left out, never replaced by another's forecast. statsforecast is imported here, on first use: its package
    imports statsmodels and dask (~1 s), which a retrain whose served items need no classic fit never pays."""
    from statsforecast.models import TSB, AutoETS, CrostonSBA, DynamicOptimizedTheta

    y = filled_open_series(y_train, open_train, cfg.season)[-cfg.classic_window:]
    season = cfg.season if len(y) >= 2 * cfg.season else 1
    make = {"croston_sba": CrostonSBA, "tsb": lambda: TSB(alpha_d=TSB_ALPHA, alpha_p=TSB_ALPHA),
            "ets": lambda: AutoETS(season_length=season, model="ZNZ"),
            "theta": lambda: DynamicOptimizedTheta(season_length=season)}
    out = {}
    for name in names:
        model = make[name]()
        try:
            path = np.asarray(model.forecast(y=y.astype(float), h=horizon)["mean"], dtype=float)
        except Exception:  # noqa: BLE001 - a degenerate series (constant, too short) for this model only
            continue
        if path.shape == (horizon,) and np.isfinite(path).all():
            out[name] = np.clip(path, 0, None)
    return out
