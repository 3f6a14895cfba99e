"""PNG plots for materialization metadata (markdown with an embedded image) and for auditors on disk."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from retail_assets.core import forecasting as fc  # noqa: E402


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def markdown_image(png: bytes, title: str) -> str:
    return f"**{title}**\n\n![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"


def forecast_plot(item_id: str, history: pd.DataFrame, backtest: pd.DataFrame, forecast: pd.DataFrame,
                  champion: str, days: int = 120) -> bytes:
    """Recent actuals, the held-out fold's forecasts, and the served forecast with its interval."""
    fig, ax = plt.subplots(figsize=(9, 3))
    recent = history.tail(days)
    ax.plot(recent["date"], recent["units"], color="black", lw=1, label="actual units")
    if len(backtest):
        last = backtest[backtest["fold"] == backtest["fold"].max()]  # the held-out recent fold
        ax.plot(pd.to_datetime(last["date"]), last[champion], color="tab:orange", lw=1.2,
                label=f"held-out fold ({champion})")
        ax.plot(pd.to_datetime(last["date"]), last["seasonal_naive"], color="tab:gray", lw=0.8, ls="--",
                label="seasonal naive")
    ax.plot(forecast["date"], forecast["yhat"], color="tab:blue", lw=1.5, label=f"forecast ({champion})")
    ax.fill_between(forecast["date"], forecast["yhat_lower"], forecast["yhat_upper"], color="tab:blue", alpha=0.2,
                    label="80% interval (calibrated)")
    ax.set_title(f"{item_id}: actuals, backtest and forecast")
    ax.legend(fontsize=7, loc="upper left")
    ax.tick_params(labelsize=7)
    return png_bytes(fig)


def components_plot(prophet_json: str, future: pd.DataFrame) -> bytes:
    """Prophet's own components (trend, holidays, weekly, yearly, promo) over history and horizon."""
    fc.quiet_prophet()
    from prophet.serialize import model_from_json

    model = model_from_json(prophet_json)
    model.uncertainty_samples = 0
    frame = pd.concat([model.history[["ds", "promo"]] if "promo" in model.history else
                       model.history[["ds"]].assign(promo=0), future[["ds", "promo"]]], ignore_index=True)
    fig = model.plot_components(model.predict(frame), uncertainty=False, figsize=(8, 7))
    return png_bytes(fig)
