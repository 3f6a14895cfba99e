"""Great Expectations suites, as code a data engineer can read: what each check expects, on which frame.

Each suite comes with the small pandas frame it runs on (derived columns such as a per-item cap or the
gap between consecutive days are computed here, so every expectation stays a plain GX expectation).
No Dagster here: the checks in `retail_assets/checks/` run these and report the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd

from retail_assets.core.quality.gx import ensure_context


@dataclass(frozen=True)
class ValidationConfig:
    """Thresholds, overridable from check config."""

    min_history_days: int = 1  # a young store trains (analogs); dead feeds, gaps and broken keys block
    horizon_days: int = 28
    max_store_zero_streak_days: int = 7  # a whole store selling nothing this long is a dead feed
    unit_cap_floor: int = 200
    unit_cap_multiplier: float = 10.0  # cap = max(floor, multiplier x the item's 99th percentile)
    max_file_quarantine_rate: float = 0.05
    min_volume_ratio: float = 0.4  # last 7 days vs the trailing 8 weeks' weekly mean, per store
    max_volume_ratio: float = 2.5


def _suite(name: str) -> gx.ExpectationSuite:
    ensure_context()  # GX 1.x suites need a (here ephemeral) data context to exist
    return gx.ExpectationSuite(name=name)


# ---------------------------------------------------------------- fct_daily_demand


def demand_values_frame(demand: pd.DataFrame, stores: pd.DataFrame) -> pd.DataFrame:
    """fct_daily_demand with each store's opening date and each item's unit cap beside every row."""
    frame = demand.merge(stores[["store_id", "opened_on"]], on="store_id", how="left")
    return frame


def add_unit_caps(frame: pd.DataFrame, cfg: ValidationConfig) -> pd.DataFrame:
    p99 = frame.groupby("item_id")["units_total"].quantile(0.99).rename("p99")
    frame = frame.merge(p99, left_on="item_id", right_index=True, how="left")
    frame["units_cap"] = (frame["p99"] * cfg.unit_cap_multiplier).clip(lower=cfg.unit_cap_floor)
    return frame.drop(columns="p99")


def demand_values_suite(store_ids: list[str], item_ids: list[str]) -> gx.ExpectationSuite:
    suite = _suite("fct_daily_demand.values")
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="store_id", value_set=sorted(store_ids)))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="item_id", value_set=sorted(item_ids)))
    suite.add_expectation(gxe.ExpectCompoundColumnsToBeUnique(column_list=["store_id", "item_id", "business_date"]))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="units_total", min_value=0))
    suite.add_expectation(
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="units_cap", column_B="units_total", or_equal=True)
    )
    suite.add_expectation(
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="business_date", column_B="opened_on", or_equal=True)
    )
    return suite


def completeness_frame(demand: pd.DataFrame, open_days: pd.DataFrame) -> pd.DataFrame:
    """Every open store-day (from the calendar) with the number of demand rows it has."""
    per_day = demand.groupby(["store_id", "business_date"]).size().rename("rows_for_day").reset_index()
    frame = open_days.merge(per_day, on=["store_id", "business_date"], how="left")
    frame["rows_for_day"] = frame["rows_for_day"].fillna(0).astype(int)
    return frame


def completeness_suite() -> gx.ExpectationSuite:
    suite = _suite("fct_daily_demand.completeness")
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="rows_for_day", min_value=1))
    return suite


def volume_frame(demand: pd.DataFrame) -> pd.DataFrame:
    """Per store: units of its last 7 days against the weekly mean of the 8 weeks before."""
    daily = demand.groupby(["store_id", "business_date"])["units_total"].sum().reset_index()
    last = daily["business_date"].max()
    rows = []
    for store, g in daily.groupby("store_id"):
        recent = g[g["business_date"] > last - pd.Timedelta(days=7)]["units_total"].sum()
        window = g[(g["business_date"] <= last - pd.Timedelta(days=7))
                   & (g["business_date"] > last - pd.Timedelta(days=63))]
        if window["business_date"].nunique() < 28:  # a store too new to judge
            continue
        weekly = window["units_total"].sum() / (window["business_date"].nunique() / 7.0)
        rows.append({"store_id": store, "last_7_days": float(recent), "trailing_weekly_mean": float(weekly),
                     "volume_ratio": float(recent / weekly) if weekly > 0 else float("inf")})
    return pd.DataFrame(rows, columns=["store_id", "last_7_days", "trailing_weekly_mean", "volume_ratio"])


def volume_suite(cfg: ValidationConfig) -> gx.ExpectationSuite:
    suite = _suite("fct_daily_demand.volume")
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeBetween(
            column="volume_ratio", min_value=cfg.min_volume_ratio, max_value=cfg.max_volume_ratio
        )
    )
    return suite


# ---------------------------------------------------------------- ingest


def ingest_suite(cfg: ValidationConfig) -> gx.ExpectationSuite:
    suite = _suite("ingest_reconciliation.quarantine_rate")
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="reconciled", value_set=[True]))
    # a file the loader refused whole: the failure's sample is its reason
    suite.add_expectation(gxe.ExpectColumnValuesToBeNull(column="rejected_reason"))
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeBetween(column="quarantine_rate", min_value=0, max_value=cfg.max_file_quarantine_rate)
    )
    return suite


# ---------------------------------------------------------------- store_features (per store, blocking)


def features_history_frame(features: pd.DataFrame) -> pd.DataFrame:
    """History rows with the gap to the previous row of the same item, in days."""
    hist = features[~features["is_future"]].sort_values(["item_id", "date"]).copy()
    hist["days_since_previous_row"] = hist.groupby("item_id")["date"].diff().dt.days
    return hist


def features_items_frame(features: pd.DataFrame, cfg: ValidationConfig) -> pd.DataFrame:
    """One row per item: history units, future rows and how many of them lack a known-future flag."""
    fut = features[features["is_future"]]
    hist = features[~features["is_future"]]
    items = pd.DataFrame({"item_id": sorted(features["item_id"].unique())})
    items = items.merge(hist.groupby("item_id")["units"].sum().rename("history_units"), on="item_id", how="left")
    items = items.merge(fut.groupby("item_id").size().rename("future_rows"), on="item_id", how="left")
    missing = fut[["promo_planned", "is_holiday", "is_open_day"]].isna().any(axis=1)
    items = items.merge(missing.groupby(fut["item_id"]).sum().rename("future_rows_missing_flags"),
                        on="item_id", how="left")
    items = items.fillna({"history_units": 0, "future_rows": 0, "future_rows_missing_flags": 0})
    items["not_yet_trading"] = not_yet_trading(features)
    return items


def store_zero_streak(features: pd.DataFrame) -> int:
    """Longest run of consecutive open days on which the whole store sold nothing."""
    hist = features[(~features["is_future"]) & features["is_open_day"]]
    daily = hist.groupby("date")["units"].sum().sort_index()
    longest = run = 0
    for units in daily.to_numpy():
        run = run + 1 if units == 0 else 0
        longest = max(longest, run)
    return int(longest)


def not_yet_trading(features: pd.DataFrame) -> bool:
    """No open day in the store's history: it opens within the horizon (served a cold-start forecast), so the
    history rules have nothing to judge. A store open for days without a sale is trading, with a dead feed."""
    hist = features[~features["is_future"]]
    return bool(len(features)) and not hist["is_open_day"].fillna(False).astype(bool).any()


TRADING = "not_yet_trading == False"  # the history rules judge a store that has traded (pandas row condition)


def features_store_frame(features: pd.DataFrame) -> pd.DataFrame:
    hist = features[~features["is_future"]]
    return pd.DataFrame([{
        "store_id": features["store_id"].iloc[0] if len(features) else None,
        "history_days": int(hist["date"].nunique()),
        "longest_zero_sales_streak_days": store_zero_streak(features),
        "not_yet_trading": not_yet_trading(features),
    }])


def features_suites(cfg: ValidationConfig) -> dict[str, gx.ExpectationSuite]:
    history = _suite("store_features.history")
    history.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="days_since_previous_row", min_value=1, max_value=1))
    history.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="units"))
    history.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="units", min_value=0))

    items = _suite("store_features.items")
    items.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="history_units", min_value=1,
                                                            row_condition=TRADING, condition_parser="pandas"))
    items.add_expectation(
        gxe.ExpectColumnValuesToBeBetween(column="future_rows", min_value=cfg.horizon_days, max_value=cfg.horizon_days)
    )
    items.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="future_rows_missing_flags", max_value=0))

    store = _suite("store_features.store")
    store.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="history_days", min_value=cfg.min_history_days,
                                                            row_condition=TRADING, condition_parser="pandas"))
    store.add_expectation(
        gxe.ExpectColumnValuesToBeBetween(
            column="longest_zero_sales_streak_days", max_value=cfg.max_store_zero_streak_days
        )
    )
    return {"history": history, "items": items, "store": store}


def features_frames(features: pd.DataFrame, cfg: ValidationConfig) -> dict[str, pd.DataFrame]:
    return {
        "history": features_history_frame(features),
        "items": features_items_frame(features, cfg),
        "store": features_store_frame(features),
    }
