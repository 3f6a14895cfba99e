"""What moved: forecast drift per store, sales spikes per store and category (new landing files are
core/ingest/cursor.py's). Pure logic the sensors call; no Dagster.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from retail_assets.core.metrics import bias, psi, wape
from retail_assets.core.registry.versions import live_version
from retail_assets.core.warehouse import RUN_READER_WAIT_S, connect_readonly

# ---------------------------------------------------------------- drift


@dataclass(frozen=True)
class DriftThresholds:
    wape_ratio: float = 1.75  # recent WAPE over the model's own backtest WAPE
    max_abs_bias: float = 0.25  # |sum(forecast - actual)| / sum(actual) over 14 days
    max_psi: float = 0.25  # population stability of daily item units, recent 28 days vs training
    min_overlap_days: int = 5  # days of new actuals inside the served forecast before judging
    category_bias_ratio: float = 1.5  # category-level bias over the last 7 days vs the backtest's


@dataclass
class StoreDrift:
    store_id: str
    model_version: str
    overlap_days: int
    last_actual_date: str | None
    wape_7: float | None
    wape_14: float | None
    bias_7: float | None
    bias_14: float | None
    backtest_wape: float | None
    category_bias_7: float | None
    backtest_category_bias: float | None
    psi: float | None
    drifted: bool
    reasons: list[str]

    def metadata(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("reasons",)} | {"reasons": ", ".join(self.reasons)}


def _category_level(frame: pd.DataFrame, items: pd.DataFrame, value_cols: list[str]) -> pd.DataFrame:
    """Aggregate to store x category x day: item noise averages out, a real shift stays."""
    f = frame.merge(items, on="item_id", how="left")
    return f.groupby(["category", "date"], as_index=False)[value_cols].sum()


def _judged(value: float) -> float | None:
    """A drift statistic (core/metrics), or None when the window cannot judge it: no actual sales (WAPE +inf
    against a non-zero forecast, bias NaN) or missing values. A window without sales is a closure or a data gap,
    not forecast drift; None is never a drift reason and is left out of the sensor's metadata."""
    return value if math.isfinite(value) else None


def store_drift(layout, store_id: str, th: DriftThresholds, wait_seconds: float = RUN_READER_WAIT_S) -> StoreDrift | None:
    """Recent actuals against the forecast the live model served for those days; None without a forecast."""
    mv = live_version(layout.models, store_id)
    fpath = layout.store_dir("forecasts", store_id) / "forecast.parquet"
    if mv is None or not fpath.exists():
        return None
    served = pd.read_parquet(fpath)
    served = served[served["model_version"] == mv.version]
    if served.empty:
        return None
    served["date"] = pd.to_datetime(served["date"])
    first, last = served["date"].min(), served["date"].max()
    with connect_readonly(layout.warehouse, wait_seconds) as con:
        actual = con.execute(
            "select item_id, business_date as date, units_total as units from fct_daily_demand "
            "where store_id = ? and business_date between ? and ?", [store_id, first.date(), last.date()]).df()
        items = con.execute("select item_id, category from dim_item").df()
    actual["date"] = pd.to_datetime(actual["date"])
    joined = served.merge(actual, on=["item_id", "date"], how="inner")
    days = sorted(joined["date"].unique())
    backtest_wape, backtest_cat_bias = _backtest_category_errors(mv, items)
    result = StoreDrift(store_id, mv.version, len(days), str(pd.Timestamp(days[-1]).date()) if days else None,
                        None, None, None, None, backtest_wape, None, backtest_cat_bias, None, False, [])
    if len(days) < th.min_overlap_days:
        return result
    cat = _category_level(joined, items, ["units", "yhat"])
    for window in (7, 14):
        recent = cat[cat["date"] > pd.Timestamp(days[-1]) - pd.Timedelta(days=window)]
        setattr(result, f"wape_{window}", _judged(wape(recent["units"].to_numpy(), recent["yhat"].to_numpy())))
        setattr(result, f"bias_{window}", _judged(bias(recent["units"].to_numpy(), recent["yhat"].to_numpy())))
        if window == 7:
            result.category_bias_7 = category_bias(recent)
    features = pd.read_parquet(layout.features_file(store_id),
                               columns=["date", "units", "is_future", "is_open_day"])
    train = features[(~features["is_future"]) & features["is_open_day"]]
    train = train[train["date"] > train["date"].max() - pd.Timedelta(days=365)]
    recent_units = actual[actual["date"] > pd.Timestamp(days[-1]) - pd.Timedelta(days=28)]["units"]
    result.psi = psi(train["units"].to_numpy(float), recent_units.to_numpy(float))
    if result.wape_7 is not None and backtest_wape and result.wape_7 > th.wape_ratio * backtest_wape:
        result.reasons.append(f"wape_7 {result.wape_7:.3f} > {th.wape_ratio} x backtest {backtest_wape:.3f}")
    if result.bias_14 is not None and abs(result.bias_14) > th.max_abs_bias:
        result.reasons.append(f"bias_14 {result.bias_14:+.3f} beyond +-{th.max_abs_bias}")
    if result.category_bias_7 is not None and backtest_cat_bias and \
            result.category_bias_7 > th.category_bias_ratio * backtest_cat_bias:
        result.reasons.append(f"category bias 7d {result.category_bias_7:.3f} > {th.category_bias_ratio} x "
                              f"backtest {backtest_cat_bias:.3f}")
    if result.psi is not None and result.psi > th.max_psi:
        result.reasons.append(f"psi {result.psi:.3f} > {th.max_psi}")
    result.drifted = bool(result.reasons)
    return result


def category_bias(frame: pd.DataFrame) -> float | None:
    """Sum over categories of |sum of (forecast - actual)| over the window, over the actual units: errors that
    keep one sign within a category (a shift) add up; day-to-day noise cancels."""
    total = float(frame["units"].sum())
    if total <= 0:
        return None
    per_cat = frame.groupby("category").apply(lambda g: abs(float((g["yhat"] - g["units"]).sum())),
                                              include_groups=False)
    return float(per_cat.sum() / total)


def _backtest_category_errors(mv, items: pd.DataFrame) -> tuple[float | None, float | None]:
    """The model's own held-out WAPE and 7-day category bias, at the level the drift is measured on: each
    item's champion chosen on the earlier folds (`heldout_champion`), scored on the last fold it never saw."""
    path = mv.path / "backtest.parquet"
    if not path.exists():
        return None, None
    bt = pd.read_parquet(path)
    bt = bt[bt["kind"] == "recent"]
    if bt.empty:
        return None, None
    bt = bt[bt["fold"] == bt["fold"].max()].copy()
    champion = {i: d.get("heldout_champion", d["champion"]) for i, d in mv.manifest["items"].items()}
    chosen = bt["item_id"].map(champion).fillna("seasonal_naive")
    bt["yhat"] = 0.0
    for model in chosen.unique():  # each item's own champion's backtest forecast
        bt.loc[chosen == model, "yhat"] = bt.loc[chosen == model, model]
    bt = bt.rename(columns={"y": "units"})
    cat = _category_level(bt[["item_id", "date", "units", "yhat"]], items, ["units", "yhat"])
    cat["date"] = pd.to_datetime(cat["date"])
    weeks = [category_bias(g) for _w, g in cat.groupby((cat["date"] - cat["date"].min()).dt.days // 7)]
    weeks = [w for w in weeks if w is not None]
    return _judged(wape(cat["units"].to_numpy(), cat["yhat"].to_numpy())), (float(np.mean(weeks)) if weeks else None)


# ---------------------------------------------------------------- sales spikes


@dataclass(frozen=True)
class SpikeThresholds:
    z: float = 6.0  # robust z-score of a day's units against the same weekday of the trailing weeks
    min_excess_units: float = 25.0  # and at least this many units above the median
    weeks: int = 8


def sales_spikes(warehouse: Path, since: str | None, th: SpikeThresholds,
                 wait_seconds: float = RUN_READER_WAIT_S) -> tuple[list[dict], str | None]:
    """Store x category days after `since` whose units jump beyond the thresholds (holidays excepted).
    Returns the spikes and the last business date evaluated (the next cursor)."""
    with connect_readonly(warehouse, wait_seconds) as con:
        last = con.execute("select max(business_date) from fct_daily_demand").fetchone()[0]
        if last is None:
            return [], since
        start = pd.Timestamp(since) + pd.Timedelta(days=1) if since else pd.Timestamp(last)
        lookback = start - pd.Timedelta(weeks=th.weeks)
        daily = con.execute(
            """select f.store_id, i.category, f.business_date as date, sum(f.units_total) as units,
                      bool_or(f.promo_planned) as promo
               from fct_daily_demand f join dim_item i using (item_id)
               where f.business_date >= ? and f.is_open_day group by all""", [lookback.date()]).df()
        holidays = con.execute(
            "select s.store_id, h.holiday_date as date from dim_holiday h join dim_store s on s.region = h.region"
        ).df()
    if daily.empty:
        return [], str(last)
    daily["date"] = pd.to_datetime(daily["date"])
    holidays["date"] = pd.to_datetime(holidays["date"])
    skip = set(zip(holidays["store_id"], holidays["date"]))
    spikes = []
    for (store, category), g in daily.groupby(["store_id", "category"]):
        g = g.set_index("date").sort_index()
        for day in g.index[g.index >= start]:
            if (store, day) in skip or bool(g.loc[day, "promo"]):
                continue  # a planned peak is not a surprise
            ref = g[(g.index < day) & (g.index >= day - pd.Timedelta(weeks=th.weeks))]
            ref = ref[ref.index.dayofweek == day.dayofweek]["units"]
            if len(ref) < 4:
                continue
            med = float(ref.median())
            mad = float((ref - med).abs().median()) * 1.4826
            x = float(g.loc[day, "units"])
            z = (x - med) / max(mad, 1.0)
            if z > th.z and x - med > th.min_excess_units:
                spikes.append({"store_id": store, "category": category, "date": str(day.date()),
                               "units": x, "median": med, "z": round(z, 2)})
    return spikes, str(last)


def seasonal_trigger_dates(year: int, peaks: list[dict]) -> dict[str, str]:
    """date (ISO) -> peak name, for every peak of `year` minus its lead days."""
    from dateutil.easter import easter

    out = {}
    for peak in peaks:
        rule = peak["date"]
        if rule == "black_friday":
            nov1 = pd.Timestamp(year=year, month=11, day=1)
            day = nov1 + pd.Timedelta(days=(3 - nov1.dayofweek) % 7 + 22)
        elif rule == "easter":
            day = pd.Timestamp(easter(year))
        else:
            month, dom = (int(x) for x in rule.split("-"))
            day = pd.Timestamp(year=year, month=month, day=dom)
        out[str((day - pd.Timedelta(days=int(peak["lead_days"]))).date())] = peak["name"]
    return out

