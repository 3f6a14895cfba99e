"""Forecasts from a stored model version: load each item's served model, predict the horizon, apply the
calibrated interval. The same artifacts the edge bundle compiles, read back through their own formats."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from retail_assets.core.features.grid import promo_regressor
from retail_assets.core.forecast import gbm
from retail_assets.core.forecast.calibration import CalibrationSet
from retail_assets.core.forecast.weather import on_grid, weather_factor as _weather_factor

from retail_assets.core.forecast.models import quiet_prophet
from retail_assets.core.registry.versions import ModelVersion, read_booster_text


def weather_factor(mv: ModelVersion, item_id: str, future: pd.DataFrame) -> np.ndarray | None:
    """The item's weather factor on `future`'s days (core/forecast/weather.py `weather_factor`: its slope,
    the served outlook's temperature against climatology); None where the weather does not move the item."""
    slope = mv.manifest["items"][item_id].get("temperature_slope") or 0.0
    outlook = mv.manifest.get("summary", {}).get("temperature_outlook") or {}
    if not slope or "normal_c" not in outlook:
        return None
    by_date = dict(zip(outlook["dates"], zip(outlook["temperature_c"], outlook["normal_c"])))
    days = pd.to_datetime(future["ds"]).dt.strftime("%Y-%m-%d")
    missing = sorted(set(days) - set(by_date))
    if missing:
        raise ValueError(f"{item_id}: days {missing[0]}..{missing[-1]} are outside the version's weather outlook: "
                         "retrain for this horizon")
    temp, normal = np.array([by_date[d] for d in days], dtype=float).reshape(-1, 2).T
    return _weather_factor(slope, on_grid(temp), normal)  # on the grid a device feeds (edge/runner.py)


def predict_artifact(mv: ModelVersion, model: str, text: str, future: pd.DataFrame,
                     weather: np.ndarray | None = None) -> np.ndarray:
    """Raw forecast of one served model from its artifact over `future` (ds, promo, is_holiday), unclipped;
    times `weather` (the item's weather factor) unless it is the store's trees, which read the temperature."""
    if weather is not None and model not in ("lightgbm", "combination"):
        return predict_artifact(mv, model, text, future) * weather
    if model == "prophet":
        quiet_prophet()
        from prophet.serialize import model_from_json

        fitted = model_from_json(text)
        fitted.uncertainty_samples = 0  # intervals come from the calibration, not sampling
        return fitted.predict(future[["ds", "promo"]])["yhat"].to_numpy()
    state = json.loads(text)
    if model == "combination":
        parts = {m: np.clip(predict_artifact(mv, m, part, future, weather), 0, None)
                 for m, part in state["parts"].items()}
        return np.sum([w * parts[m] for m, w in state["weights"].items()], axis=0)
    h = np.arange(len(future))
    offset = (future["ds"].iloc[0] - pd.Timestamp(state["anchor_date"])).days - 1 if len(future) else 0
    if model == "seasonal_naive":
        return np.array(state["last_week"])[(h + offset) % 7]
    if model == "moving_average":
        return np.full(len(future), state["moving_average_level"])
    if model == "lightgbm":
        booster = _booster(mv, state["booster_file"], state["booster_sha256"])
        rows = pd.DataFrame(gbm.calendar_matrix(future["ds"]), columns=list(gbm.CALENDAR_FEATURES))
        rows.insert(0, "item_code", float(state["item_code"]))
        rows["is_holiday"] = future["is_holiday"].to_numpy(float)
        rows["promo"] = future["promo"].to_numpy(float)
        rows["level"] = _along(state["level_path"], h + offset)
        rows["last_year"] = _along(state["last_year_path"], h + offset)
        if "temperature_path" in state:  # the temperature the version was served with (core/forecast/weather.py)
            rows[gbm.WINDOW_TEMPERATURE] = _along(state["window_temperature_path"], h + offset)
            rows = gbm.with_temperature(rows, _along(state["temperature_path"], h + offset))
        rows["open"] = True
        return gbm.predict(booster, rows, {float(state["item_code"]): state.get("temperature_slope", 0.0)})
    return _along(state["path"], h + offset)  # a classic model's path from its anchor


def _along(path: list[float], steps: np.ndarray) -> np.ndarray:
    """Values of a stored path at `steps` after its anchor; a step past its end is refused, never repeated."""
    if len(steps) and (steps.min() < 0 or steps.max() >= len(path)):
        raise ValueError(f"forecast days {steps.min() + 1}..{steps.max() + 1} after the anchor are outside the "
                         f"stored path of {len(path)} days: retrain for this horizon")
    return np.asarray(path, dtype=float)[steps]


def _booster(mv: ModelVersion, name: str, sha256: str):
    return _parsed_booster(mv.path, name, sha256)


@functools.lru_cache(maxsize=8)
def _parsed_booster(version_dir: Path, name: str, sha256: str):
    """Parsed once per version directory, file and hash, not once per item: the store's items share it."""
    return gbm.booster_from_text(read_booster_text(version_dir, sha256, name))


def predict_item(mv: ModelVersion, item_id: str, future: pd.DataFrame) -> np.ndarray:
    """Point forecast of one item over `future` (ds, promo, is_holiday, is_open_day), never negative, 0 on closed
    days."""
    info = mv.manifest["items"][item_id]
    yhat = predict_artifact(mv, info["champion"], (mv.path / info["file"]).read_text(), future,
                            weather_factor(mv, item_id, future))
    return np.where(future["is_open_day"].to_numpy(bool), np.clip(yhat, 0, None), 0.0)


def last_servable_day(mv: ModelVersion) -> pd.Timestamp | None:
    """The last day `mv` can forecast: its history's end plus its horizon (its stored paths and weather outlook
    end there); None for a version trained before the history end was recorded."""
    end = mv.manifest.get("summary", {}).get("history_end")
    return pd.Timestamp(end) + pd.Timedelta(days=int(mv.manifest["config"]["horizon"])) if end else None


def servable_features(mv: ModelVersion, features: pd.DataFrame) -> pd.DataFrame:
    """`features` without the future days `mv` cannot serve: a live version trained before the newest data (its
    challenger held back by the promotion gate) serves the rest of its own horizon, never days past it."""
    last = last_servable_day(mv)
    if last is None:
        return features
    return features[~features["is_future"] | (pd.to_datetime(features["date"]) <= last)]


def future_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """What a served model reads of an item's feature rows: ds, promo, is_holiday, is_open_day."""
    return pd.DataFrame({"ds": pd.to_datetime(rows["date"]).values, "promo": promo_regressor(rows),
                         "is_holiday": rows["holiday_name"].notna().values,
                         "is_open_day": rows["is_open_day"].astype(bool).values})


def forecast_store(mv: ModelVersion, features: pd.DataFrame, horizon: int) -> pd.DataFrame:
    calibration = CalibrationSet.from_json(mv.manifest["calibration"])
    frames = []
    future_all = features[features["is_future"]].sort_values(["item_id", "date"])
    for item_id, g in future_all.groupby("item_id", sort=True):
        if item_id not in mv.manifest["items"]:
            continue
        g = g.head(horizon)
        fut = future_frame(g)
        yhat = predict_item(mv, item_id, fut)
        info = mv.manifest["items"][item_id]
        lower, upper = calibration.bounds(yhat, info["scale"], info["level"], info["champion"])
        closed = ~fut["is_open_day"].to_numpy(bool)
        frames.append(pd.DataFrame({
            "store_id": mv.store_id, "item_id": item_id, "date": g["date"].values,
            "fiscal_year": g["fiscal_year"].values, "fiscal_week": g["fiscal_week"].values,
            "horizon_day": np.arange(1, len(g) + 1),
            "yhat": yhat, "yhat_lower": np.where(closed, 0.0, lower), "yhat_upper": np.where(closed, 0.0, upper),
            "champion": info["champion"], "model_version": mv.version, "is_open_day": fut["is_open_day"].values,
            "history_stage": info.get("history_stage", "mature"),  # versions before stages were recorded
        }))
    cols = ["store_id", "item_id", "date", "fiscal_year", "fiscal_week", "horizon_day", "yhat", "yhat_lower",
            "yhat_upper", "champion", "model_version", "is_open_day", "history_stage"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
