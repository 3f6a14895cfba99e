"""Forecasts from a stored model version: load each item's served model, predict the horizon, apply the
calibrated interval. The same artifacts the edge bundle compiles, read back through their own formats."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from retail_assets.core.forecast.calibration import Calibration

from retail_assets.core.forecast.models import quiet_prophet
from retail_assets.core.registry.versions import ModelVersion


def predict_item(mv: ModelVersion, item_id: str, future: pd.DataFrame) -> np.ndarray:
    """Point forecast of one item over `future` (ds, promo, is_open_day), never negative, 0 on closed days."""
    info = mv.manifest["items"][item_id]
    text = (mv.path / info["file"]).read_text()
    open_day = future["is_open_day"].to_numpy(bool)
    if info["champion"] == "prophet":
        quiet_prophet()
        from prophet.serialize import model_from_json

        model = model_from_json(text)
        model.uncertainty_samples = 0  # intervals come from the calibration, not sampling
        yhat = model.predict(future[["ds", "promo"]])["yhat"].to_numpy()
    else:
        state = json.loads(text)
        h = np.arange(len(future))
        offset = (future["ds"].iloc[0] - pd.Timestamp(state["anchor_date"])).days - 1 if len(future) else 0
        if state["model"] == "seasonal_naive":
            week = np.array(state["last_week"])
            yhat = week[(h + offset) % 7]
        else:
            yhat = np.full(len(future), state["moving_average_level"])
    return np.where(open_day, np.clip(yhat, 0, None), 0.0)


def forecast_store(mv: ModelVersion, features: pd.DataFrame, horizon: int) -> pd.DataFrame:
    cal = mv.manifest["calibration"]
    calibration = Calibration(tuple(cal["lower"]), tuple(cal["upper"]), cal["bucket_days"], tuple(cal["n"]))
    frames = []
    future_all = features[features["is_future"]].sort_values(["item_id", "date"])
    for item_id, g in future_all.groupby("item_id", sort=True):
        if item_id not in mv.manifest["items"]:
            continue
        g = g.head(horizon)
        fut = pd.DataFrame({"ds": g["date"].values, "promo": g["promo_planned"].astype(int).values,
                            "is_open_day": g["is_open_day"].values})
        yhat = predict_item(mv, item_id, fut)
        info = mv.manifest["items"][item_id]
        lower, upper = calibration.bounds(yhat, info["scale"], info["level"])
        closed = ~fut["is_open_day"].to_numpy(bool)
        frames.append(pd.DataFrame({
            "store_id": mv.store_id, "item_id": item_id, "date": g["date"].values,
            "fiscal_year": g["fiscal_year"].values, "fiscal_week": g["fiscal_week"].values,
            "horizon_day": np.arange(1, len(g) + 1),
            "yhat": yhat, "yhat_lower": np.where(closed, 0.0, lower), "yhat_upper": np.where(closed, 0.0, upper),
            "champion": info["champion"], "model_version": mv.version, "is_open_day": fut["is_open_day"].values,
        }))
    cols = ["store_id", "item_id", "date", "fiscal_year", "fiscal_week", "horizon_day", "yhat", "yhat_lower",
            "yhat_upper", "champion", "model_version", "is_open_day"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
