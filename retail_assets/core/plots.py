"""PNG plots for materialization metadata (markdown with an embedded image) and for auditors on disk."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from retail_assets.core.forecast.models import quiet_prophet
from retail_assets.core.ids import path_component  # noqa: E402


def plot_file(kind: str, item_id: str) -> str:
    """A plot's path relative to its version directory: the item id goes through the one path gate."""
    return f"plots/{kind}_{path_component(item_id)}.png"


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def markdown_image(png: bytes, title: str) -> str:
    return f"**{title}**\n\n![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"


CANDIDATE_COLORS = {"prophet": "tab:green", "lightgbm": "tab:purple", "seasonal_index": "tab:olive", "ets": "tab:brown", "combination": "tab:pink"}


def forecast_plot(item_id: str, history: pd.DataFrame, backtest: pd.DataFrame, forecast: pd.DataFrame,
                  champion: str, interval: float, days: int = 120) -> bytes:
    """Recent actuals, the held-out fold's forecasts (the champion's and each main candidate's), and the served
    forecast with its interval."""
    fig, ax = plt.subplots(figsize=(9, 3))
    recent = history.tail(days)
    ax.plot(recent["date"], recent["units"], color="black", lw=1, label="actual units")
    if len(backtest):
        last = backtest[backtest["fold"] == backtest["fold"].max()]  # the held-out recent fold
        ax.plot(pd.to_datetime(last["date"]), last[champion], color="tab:orange", lw=1.2,
                label=f"held-out fold ({champion})")
        ax.plot(pd.to_datetime(last["date"]), last["seasonal_naive"], color="tab:gray", lw=0.8, ls="--",
                label="seasonal naive")
        for model, color in CANDIDATE_COLORS.items():  # what the champion was chosen over
            if model != champion and model in last and last[model].notna().all():
                ax.plot(pd.to_datetime(last["date"]), last[model], color=color, lw=0.7, alpha=0.8, label=model)
    ax.plot(forecast["date"], forecast["yhat"], color="tab:blue", lw=1.5, label=f"forecast ({champion})")
    ax.fill_between(forecast["date"], forecast["yhat_lower"], forecast["yhat_upper"], color="tab:blue", alpha=0.2,
                    label=f"{interval:.0%} interval (calibrated)")
    ax.set_title(f"{item_id}: actuals, backtest and forecast")
    ax.legend(fontsize=7, loc="upper left")
    ax.tick_params(labelsize=7)
    return png_bytes(fig)


def components_plot(prophet_json: str, future: pd.DataFrame) -> bytes:
    """Prophet's own components (trend, holidays, weekly, yearly, promo) over history and horizon."""
    quiet_prophet()
    from prophet.serialize import model_from_json

    model = model_from_json(prophet_json)
    model.uncertainty_samples = 0
    frame = pd.concat([model.history[["ds", "promo"]] if "promo" in model.history else
                       model.history[["ds"]].assign(promo=0), future[["ds", "promo"]]], ignore_index=True)
    fig = model.plot_components(model.predict(frame), uncertainty=False, figsize=(8, 7))
    return png_bytes(fig)


def fleet_plot(status: pd.DataFrame, max_p99_ms: float, max_failure_rate: float) -> bytes:
    """Per store: p99 latency and failure rate against their thresholds (red when past them, grey when the
    store serves a bundle that is not its live one)."""
    s = status[status["forecasts"] > 0].sort_values("store_id")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.2))
    stale = (s["serving_bundle"] != s["live_bundle"]).to_numpy()
    for ax, col, limit, label in ((ax1, "p99_ms", max_p99_ms, "p99 latency (ms), log scale"),
                                  (ax2, "failure_rate", max_failure_rate, "failure rate")):
        values = s[col].fillna(0.0).astype(float).to_numpy()
        colors = ["tab:red" if v > limit else ("tab:gray" if st else "tab:blue") for v, st in zip(values, stale)]
        ax.bar(s["store_id"], values, color=colors)
        ax.axhline(limit, color="tab:red", linestyle="--", linewidth=1)
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=8)
    ax1.set_yscale("log")
    fig.suptitle("edge fleet, last window (grey: serving a non-live bundle)", fontsize=9)
    return png_bytes(fig)


def cover_plot(store_id: str, categories: pd.DataFrame, overstock_weeks: float) -> bytes:
    """Weeks of cover per category against the over-stock threshold (red: over-stocked seasonal category,
    grey: a category the threshold does not apply to)."""
    c = categories.sort_values("weeks_of_cover")
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(c) + 1.2))
    colors = ["tab:red" if o else ("tab:blue" if s else "tab:gray") for o, s in zip(c["overstock"], c["seasonal"])]
    ax.barh(c["category"], c["weeks_of_cover"].clip(upper=3 * overstock_weeks), color=colors)
    ax.axvline(overstock_weeks, color="tab:red", linestyle="--", linewidth=1)
    ax.set_xlabel("weeks of cover (on hand / forecast demand)", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.set_title(f"store {store_id}: inventory cover (red: over-stocked seasonal category)", fontsize=9)
    return png_bytes(fig)
