"""Inventory cover on crafted stock and forecasts: weeks of cover, over-stock of seasonal categories only,
stock-out risk within the lead time, stale readings left out, and the planner's columns."""

from __future__ import annotations

import pandas as pd
import pytest

from retail_assets.core.inventory import cover

DAY0 = pd.Timestamp("2024-03-01")  # the forecast's first day
CFG = cover.CoverConfig(overstock_weeks=6, seasonal_categories=("patio",), replenishment_lead_days=3,
                        max_reading_age_days=3)


def _features(readings: dict[str, tuple[str, float, int]]) -> pd.DataFrame:
    """item -> (category, on hand, days before DAY0 of the reading); history rows with no reading around it."""
    rows = []
    for item, (category, units, ago) in readings.items():
        for back in range(1, 8):
            rows.append({"item_id": item, "category": category, "date": DAY0 - pd.Timedelta(days=back),
                         "is_future": False, "on_hand_units": units if back == ago else None})
        rows.append({"item_id": item, "category": category, "date": DAY0, "is_future": True, "on_hand_units": None})
    return pd.DataFrame(rows)


def _forecast(daily: dict[str, float], upper: dict[str, float] | None = None) -> pd.DataFrame:
    days = pd.date_range(DAY0, periods=28)
    return pd.DataFrame([{"item_id": i, "date": d, "yhat": v, "yhat_upper": (upper or {}).get(i, v * 1.5)}
                         for i, v in daily.items() for d in days])


def test_weeks_of_cover_and_the_flags_a_planner_acts_on():
    features = _features({"P1": ("patio", 60, 1), "P2": ("patio", 24, 1), "G1": ("grocery", 100, 1),
                          "G2": ("grocery", 10, 2)})
    items, cats = cover.store_cover(features, _forecast({"P1": 1, "P2": 0.5, "G1": 20, "G2": 2},
                                                        upper={"G2": 5}), CFG)
    by_item = items.set_index("item_id")
    assert by_item.loc["P1", "weeks_of_cover"] == pytest.approx(60 / 7)
    assert by_item.loc["G2", "lead_time_upper_units"] == pytest.approx(15)
    assert by_item["stockout_risk"].to_dict() == {"P1": False, "P2": False, "G1": False, "G2": True}
    c = cats.set_index("category")
    assert c.loc["patio", "weeks_of_cover"] == pytest.approx(84 / (7 * 1.5))  # 8 weeks: over the 6
    assert bool(c.loc["patio", "overstock"]) and not c.loc["grocery", "overstock"]
    # grocery holds 110 / (22 x 7) = 0.7 weeks; a non-seasonal category is never flagged as over-stocked
    assert not cover.category_cover(items.assign(on_hand_units=10_000), CFG).set_index("category").loc[
        "grocery", "overstock"]
    assert cover.flags(items, cats, CFG) == [
        "over-stock: patio holds 8.0 weeks of cover (threshold 6)",
        "stock-out risk: G2 has 10 on hand, up to 15.0 may sell in the 3-day lead time"]


def test_a_stale_reading_is_no_stock_and_no_demand_is_capped():
    features = _features({"OLD": ("patio", 50, 5), "IDLE": ("patio", 30, 1), "NEW": ("patio", 7, 1)})
    items, cats = cover.store_cover(features, _forecast({"OLD": 1, "IDLE": 0, "NEW": 1}), CFG)
    assert set(items["item_id"]) == {"IDLE", "NEW"}, "a reading 5 days old is not today's stock"
    idle = items.set_index("item_id").loc["IDLE"]
    assert idle["no_demand"] and idle["weeks_of_cover"] == cover.NO_DEMAND_WEEKS
    export = cover.export_columns(items, cats)
    planner = _forecast({"OLD": 1, "IDLE": 0, "NEW": 1}).merge(export, on="item_id", how="left")
    assert planner.loc[planner["item_id"] == "OLD", "on_hand_units"].isna().all()
    assert planner.loc[planner["item_id"] == "NEW", "weeks_of_cover"].eq(1.0).all()


def test_no_shelf_feed_no_cover():
    features = _features({"A": ("patio", 1, 1)}).drop(columns="on_hand_units")
    items, cats = cover.store_cover(features, _forecast({"A": 1}), CFG)
    assert items.empty and cats.empty and cover.flags(items, cats, CFG) == []
