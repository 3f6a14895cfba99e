"""The store's seasonal-index model: each item's level times factors the store's items share (day of week,
month, year on daily data; week of year and year on weekly data), the day's promotion depth and holiday, and
on daily data the four weeks before Christmas, week by week. Where the items' categories are known, the yearly
shape (month or week of year) and the Christmas run-up are per category: ice cream and heating do not share a
summer.
The classic retail planning model (base demand x seasonal indices), fitted as the maximum-likelihood Poisson
log-linear model of those main effects: iterative proportional fitting, which matches every factor level's
fitted total to its sold total. Pooling the shapes over the store's items estimates a weekday or a December
from thousands of days instead of one item's few; the trees (gbm.py) learn the same shapes but split them
with noise. Measured on real data (README): alone it beats the store's LightGBM on each daily set, and is far
worse on weekly departments with shapes of their own, where the selection passes it by.

Pure numpy: no Dagster, no files. A fit reads the open periods before its cutoff only. The served artifact is
the forecast path over the bundle's horizon as JSON, as for the classic models (core/forecast/classic.py)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np
import pandas as pd

SEASONAL_INDEX = "seasonal_index"
PROMO_STEP = 0.1  # promotion depth in steps of 10 points: one factor per step seen
MAX_ITER = 100
TOLERANCE = 1e-7  # largest relative change of any factor in a sweep at convergence
MIN_YEAR_PERIODS = {"D": 56, "W": 8}  # a year with less history before the cutoff takes the year before's factor
NO_HOLIDAY = ""
RUN_UP_WEEKS = 4  # weeks before Christmas Day with a factor each (on daily data)


@dataclass
class StoreRows:
    """Every item's periods, concatenated in the order of `items`: codes of each factor and what was sold."""
    offsets: list[int]  # first row of each item
    dates: list[list[str]]  # each item's dates (ISO), to find a fold's rows
    ds: pd.DatetimeIndex
    y: np.ndarray  # NaN ahead and where unknown
    open: np.ndarray
    codes: dict[str, np.ndarray]  # factor -> level per row (year: the calendar year, mapped per cutoff in `fit`)


def _run_up_week(ds: pd.DatetimeIndex) -> np.ndarray:
    """1 for the 7 days before Christmas Day, 2 for the 7 before those, .. RUN_UP_WEEKS; 0 otherwise."""
    christmas = pd.to_datetime({"year": ds.year, "month": 12, "day": 25})
    days = (pd.DatetimeIndex(christmas) - ds.normalize()).days.to_numpy()
    return np.where((days >= 1) & (days <= 7 * RUN_UP_WEEKS), (days + 6) // 7, 0)


def store_rows(items: list[dict], freq: str, categories: dict[str, str] | None = None) -> StoreRows:
    """`items`: dicts with item_id, dates, y (None ahead), open_day, promo, holiday (name or None);
    `categories` (item -> category): the yearly shape and the run-up per category, else one for the store."""
    offsets, n = [], 0
    for it in items:
        offsets.append(n)
        n += len(it["dates"])
    dates = [list(it["dates"]) for it in items]
    ds = pd.DatetimeIndex(pd.to_datetime([d for it in items for d in it["dates"]]))
    y = np.array([np.nan if v is None else v for it in items for v in it["y"]], dtype=float)
    names = [NO_HOLIDAY if h is None else str(h) for it in items for h in it["holiday"]]
    holidays = [NO_HOLIDAY] + sorted(set(names) - {NO_HOLIDAY})
    index = {h: i for i, h in enumerate(holidays)}
    lengths = [len(it["dates"]) for it in items]
    names_of = sorted({(categories or {}).get(it["item_id"], "") for it in items})
    group = np.repeat([names_of.index((categories or {}).get(it["item_id"], "")) for it in items], lengths)
    codes = {"item": np.repeat(np.arange(len(items)), lengths)}
    if freq == "D":
        codes["day_of_week"] = ds.dayofweek.to_numpy()
        codes["month"] = group * 12 + ds.month.to_numpy() - 1
        codes["run_up"] = group * (RUN_UP_WEEKS + 1) + _run_up_week(ds)
    else:
        codes["week_of_year"] = group * 52 + np.minimum(ds.isocalendar().week.to_numpy(dtype=int), 52) - 1
    codes["year"] = ds.year.to_numpy()
    promo = np.array([float(v) for it in items for v in it["promo"]], dtype=float)
    codes["promo"] = np.rint(np.clip(np.nan_to_num(promo), 0.0, 1.0) / PROMO_STEP).astype(int)
    codes["holiday"] = np.array([index[h] for h in names], dtype=int)
    return StoreRows(offsets, dates, ds, y, np.array([bool(v) for it in items for v in it["open_day"]]), codes)


@dataclass
class SeasonalIndex:
    """Fitted factors: `factors[name][level]`, every shared factor scaled to a mean of 1 over the fit's rows
    (the item factor is the item's level); `years` the years with a factor of their own."""
    factors: dict[str, np.ndarray]
    years: list[int]
    seen: dict[str, np.ndarray]  # factor -> which levels the fit saw


def _year_levels(years: np.ndarray, kept: list[int]) -> np.ndarray:
    """Each year's level: its own when kept, else the latest kept year before it (the first kept for earlier)."""
    pos = np.searchsorted(np.asarray(kept), years, side="right") - 1
    return np.clip(pos, 0, len(kept) - 1)


def fit(rows: StoreRows, cutoff: pd.Timestamp, freq: str) -> SeasonalIndex | None:
    """The factors on the open periods before `cutoff` with a known sale (negative sales count as 0); None
    when there are none. The cutoff's own year gets a factor once it has MIN_YEAR_PERIODS periods of history,
    before that its periods share the year before's."""
    use = rows.open & np.isfinite(rows.y) & (rows.ds < cutoff)
    if not use.any():
        return None
    y = np.clip(rows.y[use], 0.0, None)
    years = rows.codes["year"][use]
    last_year = int(years.max())
    kept = [int(v) for v in np.unique(years)]  # the years with history
    if len(kept) > 1 and len(np.unique(rows.ds[use][years == last_year])) < MIN_YEAR_PERIODS[freq]:
        kept.remove(last_year)
    codes = {k: (v[use] if k != "year" else _year_levels(years, kept)) for k, v in rows.codes.items()}
    sizes = {k: (len(kept) if k == "year" else int(rows.codes[k].max()) + 1) for k in codes}
    factors = {k: np.ones(sizes[k]) for k in codes}
    n_item = np.bincount(codes["item"], minlength=sizes["item"])
    factors["item"] = np.divide(np.bincount(codes["item"], weights=y, minlength=sizes["item"]), n_item,
                                out=np.zeros(sizes["item"]), where=n_item > 0)
    pred = factors["item"][codes["item"]].copy()
    for _ in range(MAX_ITER):
        change = 0.0
        for k in codes:
            sold = np.bincount(codes[k], weights=y, minlength=sizes[k])
            fitted = np.bincount(codes[k], weights=pred, minlength=sizes[k])
            ratio = np.divide(sold, fitted, out=np.ones(sizes[k]), where=fitted > 0)
            factors[k] *= ratio
            pred *= ratio[codes[k]]
            moved = fitted > 0
            if moved.any():
                change = max(change, float(np.max(np.abs(ratio[moved] - 1.0))))
        if change < TOLERANCE:
            break
    seen = {k: np.bincount(codes[k], minlength=sizes[k]) > 0 for k in codes}
    for k in codes:  # shared factors averaged to 1 over the fit's rows, the scale moved into the items' levels
        if k != "item":
            mean = float(factors[k][codes[k]].mean())
            if mean > 0:
                factors[k] /= mean
                factors["item"] *= mean
    return SeasonalIndex(factors, kept, seen)


def predict(model: SeasonalIndex, rows: StoreRows, positions: np.ndarray) -> np.ndarray:
    """The forecast at the rows `positions` (closed periods included: the caller zeroes them). A level the fit
    never saw takes 1 (the average), a promotion depth the nearest depth it saw, a year after the last its
    factor."""
    out = np.ones(len(positions))
    for k, f in model.factors.items():
        if k == "year":
            levels = _year_levels(rows.codes["year"][positions], model.years)
        else:
            levels = rows.codes[k][positions]
        inside = levels < len(f)  # a level past every one the rows had when fitted (a deeper promotion) is unseen
        safe = np.where(inside, levels, 0)
        factor = f[safe]
        unseen = ~inside | ~model.seen[k][safe]
        if k == "promo" and unseen.any() and model.seen[k].any():
            seen_at = np.flatnonzero(model.seen[k])
            nearest = seen_at[np.abs(seen_at[None, :] - levels[unseen][:, None]).argmin(axis=1)]
            factor[unseen] = f[nearest]
        elif k != "item":
            factor[unseen] = 1.0
        out *= factor
    return out


def positions(rows: StoreRows, item: int, dates: list[str]) -> np.ndarray:
    """The rows of item number `item` on `dates` (consecutive days of its own)."""
    start = rows.offsets[item] + bisect.bisect_left(rows.dates[item], dates[0])
    return np.arange(start, start + len(dates))
