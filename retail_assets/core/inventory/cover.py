"""Inventory cover: how many weeks of forecast demand a store's stock would last, and what to act on.

On-hand is the units on the shelf at the last reading of the newest day with one (the shelf sensors,
`fct_shelf_stock.on_hand_units`, carried in the store's features), no older than `max_reading_age_days` before
the forecast's first day. Demand is the served forecast over the horizon. Per item and per category:
weeks of cover = on-hand / (mean daily forecast x 7). Two flags:
  * over-stock: a seasonal category (`seasonal_categories`) holding more than `overstock_weeks` of cover: stock a
    planner moves or marks down before the season turns;
  * stock-out risk: an item whose upper forecast over the replenishment lead time exceeds its on-hand: it may
    run out before an order placed today arrives.
Pure: no Dagster, no files.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

NO_DEMAND_WEEKS = 99.0  # the cover reported when the forecast sells nothing: capped, and said so (`no_demand`)


@dataclass(frozen=True)
class CoverConfig:
    overstock_weeks: float = 6.0
    seasonal_categories: tuple[str, ...] = ("patio", "ice_cream", "heating", "toys", "apparel")
    replenishment_lead_days: int = 3
    max_reading_age_days: int = 3


def on_hand(features: pd.DataFrame, first_forecast_day: pd.Timestamp, cfg: CoverConfig) -> pd.DataFrame:
    """item_id, category, as_of (the day of the reading), on_hand_units: the newest shelf reading per item
    within `max_reading_age_days` before the forecast; items without one are left out (no cover to state)."""
    hist = features[~features["is_future"]]
    if "on_hand_units" not in hist:
        return pd.DataFrame(columns=["item_id", "category", "as_of", "on_hand_units"])
    oldest = first_forecast_day - pd.Timedelta(days=cfg.max_reading_age_days)
    rows = hist[hist["on_hand_units"].notna() & (hist["date"] >= oldest)].sort_values("date")
    last = rows.groupby("item_id").tail(1)
    return last.rename(columns={"date": "as_of"})[["item_id", "category", "as_of", "on_hand_units"]]


def item_cover(features: pd.DataFrame, forecast: pd.DataFrame, cfg: CoverConfig) -> pd.DataFrame:
    """Per item of the forecast: on-hand, mean daily forecast, weeks of cover, the upper forecast over the lead
    time and the flags. `forecast`: item_id, date, yhat, yhat_upper (the served forecast)."""
    f = forecast.assign(date=pd.to_datetime(forecast["date"])).sort_values(["item_id", "date"])
    first = f["date"].min()
    lead_end = first + pd.Timedelta(days=cfg.replenishment_lead_days)
    demand = f.groupby("item_id").agg(daily_forecast_units=("yhat", "mean"))
    demand["lead_time_upper_units"] = f[f["date"] < lead_end].groupby("item_id")["yhat_upper"].sum()
    out = on_hand(features, first, cfg).merge(demand.reset_index(), on="item_id", how="inner")
    out["no_demand"] = out["daily_forecast_units"] <= 0
    weeks = out["on_hand_units"] / (7.0 * out["daily_forecast_units"].where(~out["no_demand"]))
    out["weeks_of_cover"] = weeks.fillna(NO_DEMAND_WEEKS).clip(upper=NO_DEMAND_WEEKS)
    out["stockout_risk"] = out["lead_time_upper_units"] > out["on_hand_units"]
    return out.reset_index(drop=True)


def category_cover(items: pd.DataFrame, cfg: CoverConfig) -> pd.DataFrame:
    """Per category: on-hand and forecast summed over its items with a reading, weeks of cover, the over-stock
    flag, and how many of its items risk a stock-out within the lead time."""
    if items.empty:
        return pd.DataFrame(columns=["category", "as_of", "items", "on_hand_units", "daily_forecast_units",
                                     "weeks_of_cover", "seasonal", "overstock", "stockout_risk_items"])
    g = items.groupby("category").agg(
        as_of=("as_of", "max"), items=("item_id", "size"), on_hand_units=("on_hand_units", "sum"),
        daily_forecast_units=("daily_forecast_units", "sum"), stockout_risk_items=("stockout_risk", "sum"),
    ).reset_index()
    demand = g["daily_forecast_units"].where(g["daily_forecast_units"] > 0)
    g["weeks_of_cover"] = (g["on_hand_units"] / (7.0 * demand)).fillna(NO_DEMAND_WEEKS).clip(upper=NO_DEMAND_WEEKS)
    g["seasonal"] = g["category"].isin(cfg.seasonal_categories)
    g["overstock"] = g["seasonal"] & (g["weeks_of_cover"] > cfg.overstock_weeks)
    g["stockout_risk_items"] = g["stockout_risk_items"].astype(int)
    return g[["category", "as_of", "items", "on_hand_units", "daily_forecast_units", "weeks_of_cover", "seasonal",
              "overstock", "stockout_risk_items"]]


def flags(items: pd.DataFrame, categories: pd.DataFrame, cfg: CoverConfig) -> list[str]:
    """What a planner acts on, one line each: the over-stocked seasonal categories, the items at risk."""
    out = [f"over-stock: {r.category} holds {r.weeks_of_cover:.1f} weeks of cover (threshold {cfg.overstock_weeks:g})"
           for r in categories[categories["overstock"]].itertuples()]
    out += [f"stock-out risk: {r.item_id} has {r.on_hand_units:g} on hand, up to {r.lead_time_upper_units:.1f} may "
            f"sell in the {cfg.replenishment_lead_days}-day lead time"
            for r in items[items["stockout_risk"]].sort_values("item_id").itertuples()]
    return out


def export_columns(items: pd.DataFrame, categories: pd.DataFrame) -> pd.DataFrame:
    """The planner export's cover columns per item: its on-hand, weeks of cover, its category's over-stock flag
    and its own stock-out risk (NaN / False for an item without a shelf reading)."""
    cols = items[["item_id", "category", "on_hand_units", "weeks_of_cover", "stockout_risk"]]
    cols = cols.merge(categories[["category", "overstock"]].rename(columns={"overstock": "category_overstock"}),
                      on="category", how="left").drop(columns="category")
    return cols.assign(category_overstock=cols["category_overstock"].fillna(False).astype(bool),
                       stockout_risk=cols["stockout_risk"].astype(bool))


def store_cover(features: pd.DataFrame, forecast: pd.DataFrame,
                cfg: CoverConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(items, categories) of one store: `item_cover` and `category_cover` from its features and forecast."""
    items = item_cover(features, forecast, cfg)
    return items, category_cover(items, cfg)
