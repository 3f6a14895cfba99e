"""Per-store training features: a daily grid per item with the target and known-future regressors.

Read from the warehouse read-only (DuckDB's one writer is dbt), written as one Parquet file per store.
Each row is one item-day: history rows carry units (the target); the `horizon` future rows carry only
what is known in advance (promotions, holidays, the fiscal calendar, whether the store trades).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from retail_assets.core.atomic import atomic_write_bytes, sha256_file
from retail_assets.core.forecast import analog
from retail_assets.core.ids import validate_store_id
from retail_assets.core.ingest.load import table_exists
from retail_assets.core.warehouse import connect_readonly
from retail_assets.settings import ANALOG_FILE, CLIMATE_FILE, FEATURES_FILE, WEATHER_FILE

FEATURES_SQL = """
with store as (
    select * from dim_store where store_id = $store_id
),
last_day as (select max(business_date) as d from fct_daily_demand),
own_items as (select distinct item_id from fct_daily_demand where store_id = $store_id),
first_day as (
    -- a store without sales yet: from its opening day when that has passed (a year back at most: its open days
    -- show zero sales, which the gate judges a dead feed), else the horizon alone (not trading yet)
    select coalesce(
        (select min(business_date) from fct_daily_demand where store_id = $store_id),
        least(greatest((select opened_on from store), l.d - 364), l.d + 1)) as d
    from last_day l
),
items as (
    -- what the store sold; a store without sales yet is ranged with what the chain sold in the last four weeks
    select i.item_id, i.category, i.launched_on
    from dim_item i
    where i.item_id in (select item_id from own_items)
       or (not exists (select 1 from own_items)
           and i.item_id in (select distinct item_id from fct_daily_demand
                             where business_date > (select d from last_day) - $assortment_days))
),
days as (
    select c.*
    from dim_calendar c, first_day f, last_day l
    where c.calendar_date between f.d and l.d + $horizon
)
select
    s.store_id,
    i.item_id,
    i.category,
    d.calendar_date as date,
    d.calendar_date > l.d as is_future,
    case when d.calendar_date > l.d then null else coalesce(f.units_total, 0) end::double as units,
    sd.is_open_day,
    p.item_id is not null as promo_planned,
    coalesce(p.discount_pct, 0)::double / 100 as promo_depth,
    sd.is_holiday,
    sd.holiday_name,
    d.iso_day_of_week as day_of_week,
    d.fiscal_year, d.fiscal_quarter, d.fiscal_period, d.fiscal_week,
    sc.temperature_mean_c as temperature_c,
    ss.out_of_stock_hours,
    ss.on_hand_units
from store s
cross join items i
cross join last_day l
join days d on d.calendar_date >= i.launched_on
left join fct_daily_demand f
    on f.store_id = s.store_id and f.item_id = i.item_id and f.business_date = d.calendar_date
join dim_store_day sd on sd.store_id = s.store_id and sd.calendar_date = d.calendar_date
left join fct_planned_promotion p
    on p.store_id = s.store_id and p.item_id = i.item_id and p.calendar_date = d.calendar_date
left join fct_store_conditions sc on sc.store_id = s.store_id and sc.business_date = d.calendar_date
left join fct_shelf_stock ss
    on ss.store_id = s.store_id and ss.item_id = i.item_id and ss.business_date = d.calendar_date
order by i.item_id, d.calendar_date
"""


NEW_STORE_ASSORTMENT_DAYS = 28  # a store without sales yet is ranged with what the chain sold in these days


@dataclass(frozen=True)
class FeatureSet:
    store_id: str
    frame: pd.DataFrame
    path: Path
    data_version: str  # SHA-256 of the Parquet bytes
    dropped_items: tuple[str, ...] = ()  # ranged here but never sold: nothing to learn from


def build_store_features(warehouse: Path, store_id: str, horizon: int = 28) -> pd.DataFrame:
    """The feature grid of one store, from a read-only connection to the warehouse."""
    validate_store_id(store_id)
    if horizon < 1:
        raise ValueError("forecast horizon must be at least one day")
    with connect_readonly(warehouse) as con:
        exists = con.execute("select count(*) from dim_store where store_id = ?", [store_id]).fetchone()[0]
        if not exists:
            raise KeyError(f"store {store_id} is not in dim_store; run ingest first")
        frame = con.execute(FEATURES_SQL, {"store_id": store_id, "horizon": horizon,
                                           "assortment_days": NEW_STORE_ASSORTMENT_DAYS}).df()
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def write_features(frame: pd.DataFrame, path: Path) -> str:
    """Write Parquet atomically; return the SHA-256 of its bytes (the features' data version)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def promo_regressor(frame: pd.DataFrame) -> np.ndarray:
    """The promotion as the models see it: its depth (discount / 100), so a 40 % markdown is not a 10 % one.
    A frame without depths (a CSV backtest, an older features file) gives the plain flag."""
    if "promo_depth" in frame:
        return frame["promo_depth"].fillna(0.0).to_numpy(float)
    return frame["promo_planned"].fillna(False).astype(bool).to_numpy(float)


def drop_never_sold(frame: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Items ranged here but never sold: nothing to learn from. A store that has sold nothing at all keeps its
    items: it is not trading yet (served from analogs) or its feed is dead (the gate blocks it)."""
    per_item = frame[~frame["is_future"]].groupby("item_id")["units"].sum()
    if not (per_item > 0).any():
        return frame, ()
    dead = tuple(sorted(per_item[per_item == 0].index))
    return frame[~frame["item_id"].isin(dead)].reset_index(drop=True), dead


ANALOG_STORES_SQL = """
select s.store_id, s.region, s.climate_zone,
       coalesce(date_diff('day', min(f.business_date), max(f.business_date)) + 1, 0) as history_days
from dim_store s left join fct_daily_demand f using (store_id)
group by all order by 1
"""


def _mean_sold_units(con, stores: list[str], items: list[str], start: pd.Timestamp, last: pd.Timestamp,
                     by_item: bool = True) -> pd.DataFrame:
    """item_id (when `by_item`), date, analog_units: the mean units on open days from `start` to `last` over the
    (store, item) pairs of `stores` x `items` that sold anything in that window: a store that ranges an item
    without selling it (the demand mart's zero rows) does not dilute the mean."""
    con.register("_mean_stores", pd.DataFrame({"store_id": pd.Series(stores, dtype=str)}))
    con.register("_mean_items", pd.DataFrame({"item_id": pd.Series(items, dtype=str)}))
    key = "f.item_id, " if by_item else ""
    return con.execute(f"""
        with sold as (
            select store_id, item_id from fct_daily_demand
            where store_id in (select store_id from _mean_stores) and item_id in (select item_id from _mean_items)
              and business_date between $start and $last
            group by all having sum(units_total) > 0
        )
        select {key}f.business_date as date, avg(f.units_total)::double as analog_units
        from fct_daily_demand f join sold using (store_id, item_id)
        where f.is_open_day and f.business_date between $start and $last
        group by all""", {"start": start.date(), "last": last.date()}).df()


def young_items(frame: pd.DataFrame) -> list[str]:
    """The items with less than a year of history here: every item of a young store, the new items of a mature
    one (an item's rows start at its launch, features SQL). These are served from analogs while they are young."""
    hist = frame[~frame["is_future"]]
    if hist["date"].nunique() < analog.MATURE_DAYS:
        return sorted(frame["item_id"].unique())
    days = hist.groupby("item_id")["date"].nunique()
    return sorted(days[days < analog.MATURE_DAYS].index)


def build_analog_reference(warehouse: Path, store_id: str, frame: pd.DataFrame) -> pd.DataFrame | None:
    """The young items' reference (core/forecast/analog.py, `young_items`): per item and day, the mean units of
    the same item in the analog stores on their open days, from a year and four weeks before the items' first day
    to the last history day; an item none of them sells takes its category's profile instead (the mean item of
    its category in this store when it is mature, else in the analog stores). The chosen stores and the rule
    beside every row. None when every item is mature, or without analogs."""
    hist = frame[~frame["is_future"]]
    items = young_items(frame) if len(frame) else []
    if not items:
        return None
    young_store = hist["date"].nunique() < analog.MATURE_DAYS
    mine = hist[hist["item_id"].isin(items)]
    # a store without sales yet: the reference ends the day before its horizon
    first = mine["date"].min() if len(mine) else frame["date"].min()
    last = hist["date"].max() if len(hist) else first - pd.Timedelta(days=1)
    start = first - pd.Timedelta(days=analog.YEAR + analog.PROFILE_DAYS)
    with connect_readonly(warehouse) as con:
        stores = con.execute(ANALOG_STORES_SQL).df()
        con.register("_items", pd.DataFrame({"item_id": items}))
        early = None
        own_open = hist[hist["is_open_day"]]["date"].nunique()
        if young_store and own_open >= analog.SIMILARITY_DAYS:  # these items' sales in every store, its own days
            early = con.execute(
                "select store_id, item_id, business_date as date, units_total::double as units from fct_daily_demand"
                " where business_date between ? and ? and is_open_day and item_id in (select item_id from _items)",
                [first.date(), last.date()]).df()
        chosen, rule = analog.choose_analogs(stores, store_id, early)
        ref = _mean_sold_units(con, chosen, items, start, last)
        # an item no analog store sells: its category's mean item (of those with sales), in this store when it
        # is mature, else in the analog stores
        profile_stores = chosen if young_store else [store_id]
        categories = frame.drop_duplicates("item_id").set_index("item_id")["category"]
        orphans = [i for i in items if i not in set(ref["item_id"])]
        profiles = {}
        for category in sorted({categories[i] for i in orphans}):
            peers = con.execute("select item_id from dim_item where category = ? order by 1", [category]).df()
            peers = [i for i in peers["item_id"] if i not in set(orphans)]
            profiles[category] = _mean_sold_units(con, profile_stores, peers, start, last, by_item=False)
    parts = []
    if len(ref):
        parts.append(analog.reference_frame(ref, sorted(set(ref["item_id"])), start, last, chosen, rule))
    where = "the analog stores" if young_store else "this store"
    for item in orphans:
        prof = profiles[categories[item]]
        if prof.empty:
            continue
        parts.append(analog.reference_frame(prof.assign(item_id=item), [item], start, last,
                                            profile_stores if young_store else [],
                                            f"category profile: the mean {categories[item]} item in {where}"))
    return pd.concat(parts, ignore_index=True) if parts else None


WEATHER_SQL = """
select forecast_date, issued_at, lead_days, temperature_mean_c, issued_for
from fct_weather_forecast
where store_id = ? and forecast_date between ? and ?
order by forecast_date, issued_at
"""


def build_weather_issues(warehouse: Path, store_id: str, frame: pd.DataFrame) -> pd.DataFrame | None:
    """The store's issued weather forecasts for its features' days (history and horizon); None when it has
    none (no weather feed, or an older warehouse without the mart)."""
    if frame.empty:
        return None
    with connect_readonly(warehouse) as con:
        if not table_exists(con, "fct_weather_forecast"):
            return None
        issues = con.execute(WEATHER_SQL, [store_id, frame["date"].min().date(), frame["date"].max().date()]).df()
    return issues if len(issues) else None


CLIMATE_SQL = """
select c.business_date as date, avg(c.temperature_mean_c) as temperature_c, count(distinct c.store_id) as stores
from fct_store_conditions c join dim_store s using (store_id)
where s.climate_zone = (select climate_zone from dim_store where store_id = ?) and c.store_id <> ?
  and c.temperature_mean_c is not null and c.business_date <= ?
group by 1 order by 1
"""
OWN_CLIMATE_DAYS = analog.MATURE_DAYS  # a store with a year of its own temperature is its own climatology


def build_climate(warehouse: Path, store_id: str, frame: pd.DataFrame) -> pd.DataFrame | None:
    """A young store's normal weather: the daily mean temperature observed by the other stores of its climate
    zone up to its last history day (core/forecast/weather.py reads their earlier years' weeks where the store
    has none of its own). None for a store with a year of its own temperature, or without any to borrow."""
    if frame.empty or "temperature_c" not in frame:
        return None
    hist = frame[~frame["is_future"] & frame["temperature_c"].notna()]
    last = frame.loc[~frame["is_future"], "date"].max()
    if len(hist) and (last - hist["date"].min()).days >= OWN_CLIMATE_DAYS:
        return None
    with connect_readonly(warehouse) as con:
        if not table_exists(con, "fct_store_conditions"):
            return None
        zone = con.execute(CLIMATE_SQL, [store_id, store_id, last.date()]).df()
    if zone.empty:
        return None
    zone["date"] = pd.to_datetime(zone["date"])
    zone["temperature_c"] = zone["temperature_c"].astype(float)
    return zone


def read_climate(features_path: Path) -> pd.DataFrame | None:
    path = features_path.with_name(CLIMATE_FILE)
    return pd.read_parquet(path) if path.exists() else None


def features_version(path: Path) -> str:
    """The features' data version: the SHA-256 of the features file, and of the files beside it that decide
    the store's models too (a young store's analog reference and climate, the weather forecasts)."""
    digest = sha256_file(path)
    extra = [f for f in (path.with_name(ANALOG_FILE), path.with_name(WEATHER_FILE), path.with_name(CLIMATE_FILE))
             if f.exists()]
    if not extra:
        return digest
    return hashlib.sha256("\n".join([digest, *(f"{f.name}:{sha256_file(f)}" for f in extra)]).encode()).hexdigest()


def read_analog_reference(features_path: Path) -> pd.DataFrame | None:
    ref = features_path.with_name(ANALOG_FILE)
    return pd.read_parquet(ref) if ref.exists() else None


def read_weather_issues(features_path: Path) -> pd.DataFrame | None:
    path = features_path.with_name(WEATHER_FILE)
    return pd.read_parquet(path) if path.exists() else None


def materialize_store_features(warehouse: Path, out_dir: Path, store_id: str, horizon: int = 28) -> FeatureSet:
    frame, dropped = drop_never_sold(build_store_features(warehouse, store_id, horizon))
    path = out_dir / FEATURES_FILE
    ref = build_analog_reference(warehouse, store_id, frame)
    # written first: the features file is the one a reader waits for; a file no longer needed (a store that
    # matured, lost its analogs or its weather feed) leaves no stale copy
    for extra, name in ((ref, ANALOG_FILE), (build_weather_issues(warehouse, store_id, frame), WEATHER_FILE),
                        (build_climate(warehouse, store_id, frame), CLIMATE_FILE)):
        if extra is not None:
            write_features(extra, out_dir / name)
        else:
            (out_dir / name).unlink(missing_ok=True)
    write_features(frame, path)
    return FeatureSet(store_id, frame, path, features_version(path), dropped)


def summarize(frame: pd.DataFrame) -> dict:
    """What a data engineer reads on the materialization: size, span, sparsity."""
    hist = frame[~frame["is_future"]]
    open_hist = hist[hist["is_open_day"]]
    return {
        "rows": int(len(frame)),
        "history_rows": int(len(hist)),
        "future_rows": int(frame["is_future"].sum()),
        "items": int(frame["item_id"].nunique()),
        "first_date": str(hist["date"].min().date()) if len(hist) else None,
        "last_history_date": str(hist["date"].max().date()) if len(hist) else None,
        "last_future_date": str(frame["date"].max().date()) if len(frame) else None,
        "history_days": int(hist["date"].nunique()),
        "share_zero_days": float((open_hist["units"] == 0).mean()) if len(open_hist) else 0.0,
        "units_total": float(hist["units"].sum()),
    }
