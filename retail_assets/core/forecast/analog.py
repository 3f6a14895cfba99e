"""New stores and new items: a forecast from the first day, borrowed from analog stores and scaled to the
item's own level.

An item too young for its own models (fewer open days than a backtest needs: every item of a new store, an item
launched in a mature one) is served what similar mature stores sold: the mean over the analog stores of the
item's units on each date (`reference`; an item none of them sells: its category's mean item, built by
core/features/grid.py). From an
origin, the forecast is the reference's mean on each weekday over the four weeks before the origin, moved
along the pooled yearly shape (the reference a year before: the change from the four weeks before the origin to
each forecast day's week), times the store's own level against the reference on the days it has been open,
shrunk toward 1 while those days are few. Everything it reads is dated before the origin (the yearly shape is
364 days back), so a backtest fold at an origin sees what was known then, and the same function serves the
forecast of a new store and the simulated openings of `bench/new_store.py`.

Which stores are analogs (`choose_analogs`): mature stores (at least `MATURE_DAYS` of history) of the same
region and climate zone; with fewer than `MIN_ANALOGS` of those, the same region; then every mature store. Once
the store has `SIMILARITY_DAYS` open days of its own, the `MIN_ANALOGS`+1 mature stores whose sales over those
same days correlate best with its own (item by item, day by day) are chosen instead. Ties go to the lower store
id: the choice is deterministic.

Stages (`history_stage`): `cold_start` (fewer open days than a backtest needs: served the analog forecast, or
seasonal naive when there are no analogs), `weekly` (the model zoo with weekly seasonality, the analog forecast
one of its candidates, judged on the same folds), `mature` (a year of history: the zoo as for every store).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MATURE_DAYS = 365  # a store with a year of history needs no analogs, and can be one
MIN_ANALOGS = 2
SIMILARITY_DAYS = 28  # own open days before analogs are chosen by early sales rather than by attributes
PROFILE_DAYS = 28  # the reference's weekday profile: the four weeks before the origin
LEVEL_DAYS = 56  # the store's own level: its open days in the eight weeks before the origin
LEVEL_PRIOR_DAYS = 14  # shrinkage: with n own open days, the level is n / (n + 14) own, the rest the analogs'
YEAR = 364
STAGES = ("cold_start", "weekly", "mature")


def history_stage(open_days: int, history_days: int, min_train_days: int) -> str:
    """Which models an item of this age is served from (module docstring)."""
    if open_days < min_train_days:
        return "cold_start"
    return "mature" if history_days >= MATURE_DAYS else "weekly"


def choose_analogs(stores: pd.DataFrame, store_id: str, early: pd.DataFrame | None = None) -> tuple[list[str], str]:
    """The analog stores of `store_id` and the rule that chose them.

    `stores`: store_id, region, climate_zone, history_days (every store). `early`: optional daily sales
    (store_id, item_id, date, units) of every store over the new store's own open days."""
    me = stores.set_index("store_id").loc[store_id]
    mature = stores[(stores["store_id"] != store_id) & (stores["history_days"] >= MATURE_DAYS)]
    mature = mature.sort_values("store_id")
    if early is not None and len(mature) > MIN_ANALOGS:
        own = early[early["store_id"] == store_id]
        if own["date"].nunique() >= SIMILARITY_DAYS:
            key = own.set_index(["item_id", "date"])["units"]
            scores = []
            for sid in mature["store_id"]:
                other = early[early["store_id"] == sid].set_index(["item_id", "date"])["units"]
                joined = pd.concat([key, other], axis=1, join="inner").to_numpy(float)
                ok = len(joined) > 2 and joined[:, 0].std() > 0 and joined[:, 1].std() > 0
                scores.append((-(np.corrcoef(joined.T)[0, 1] if ok else -1.0), sid))
            chosen = [sid for _s, sid in sorted(scores)[: MIN_ANALOGS + 1]]
            return chosen, f"most similar early sales ({SIMILARITY_DAYS}+ own open days)"
    for rule, subset in (
        ("same region and climate zone",
         mature[(mature["region"] == me["region"]) & (mature["climate_zone"] == me["climate_zone"])]),
        ("same region", mature[mature["region"] == me["region"]]),
        ("every mature store", mature),
    ):
        if len(subset) >= MIN_ANALOGS or (rule == "every mature store" and len(subset)):
            return subset["store_id"].tolist(), rule
    return [], "no mature store to learn from"


def reference_frame(ref: pd.DataFrame, items: list[str], start: pd.Timestamp, last: pd.Timestamp,
                    chosen: list[str], rule: str) -> pd.DataFrame:
    """`ref` (item_id, date, analog_units: the analogs' mean on the days any was open) on every item x day
    from `start` to `last`, NaN where no analog was open, with the chosen stores and the rule on every row:
    the file a young item's models read (features/grid.py) and the bench's simulated openings build."""
    days = pd.date_range(start, last, freq="D")
    grid = pd.MultiIndex.from_product([items, days], names=["item_id", "date"])
    ref = ref.assign(date=pd.to_datetime(ref["date"]))
    out = ref.set_index(["item_id", "date"])[["analog_units"]].reindex(grid).reset_index()
    out["analog_stores"] = ",".join(chosen)
    out["analog_rule"] = rule
    return out


def analog_path(ref: np.ndarray, ref_start: int, own_y: np.ndarray, own_open: np.ndarray, origin: int,
                horizon: int) -> np.ndarray | None:
    """The analog forecast of `horizon` days from `origin` (an index into the store's own series).

    `ref`: the reference series (mean units of the analog stores, NaN where none was open) on consecutive days;
    `ref_start`: the index in the store's series of `ref[0]` (negative: the reference starts before the store's
    first day). Reads `ref` before the origin only, and `own_y` / `own_open` before it. None without a profile."""
    if horizon + 3 >= YEAR:
        raise ValueError("the analog forecast reads last year's shape: horizon must be under a year")

    def window(lo: int, hi: int) -> np.ndarray:
        """The reference on the store's days [lo, hi) (never later than the origin), NaN outside it."""
        assert hi <= origin
        idx = np.arange(lo, hi) - ref_start
        ok = (idx >= 0) & (idx < len(ref))
        out = np.full(hi - lo, np.nan)
        out[ok] = ref[idx[ok]]
        return out

    recent = window(origin - PROFILE_DAYS, origin)
    if not np.isfinite(recent).any():
        return None
    # weekday profile: index (origin + j) % 7 of the store's series is a weekday, the same for the reference
    profile = np.full(7, np.nan)
    for d in range(7):
        vals = recent[[i for i in range(PROFILE_DAYS) if (origin - PROFILE_DAYS + i) % 7 == d]]
        if np.isfinite(vals).any():
            profile[d] = np.nanmean(vals)
    fallback = np.nanmean(recent)
    profile = np.where(np.isfinite(profile), profile, fallback)
    base = profile[(origin + np.arange(horizon)) % 7]
    # the pooled yearly shape: last year's week around each forecast day against last year's four weeks
    ly_before = window(origin - YEAR - PROFILE_DAYS, origin - YEAR)
    ly_ahead = window(origin - YEAR - 3, origin - YEAR + horizon + 3)
    factor = np.ones(horizon)
    if np.isfinite(ly_before).sum() >= 14 and np.nanmean(ly_before) > 0:
        weekly = pd.Series(ly_ahead).rolling(7, center=True, min_periods=4).mean().to_numpy()[3:3 + horizon]
        factor = np.clip(np.where(np.isfinite(weekly), weekly / np.nanmean(ly_before), 1.0), 0.5, 2.0)
    # the store's own level against the reference on the days it was open, shrunk toward the analogs' while few
    lo = max(origin - LEVEL_DAYS, 0)
    idx = np.arange(lo, origin)
    known = idx < len(own_y)  # a store with no sales yet has no own series at all
    own = np.full(len(idx), np.nan)
    own[known] = own_y[idx[known]]
    mask = known & np.isfinite(own)
    mask[known] &= own_open[idx[known]].astype(bool)
    ref_same = window(lo, origin)
    mask &= np.isfinite(ref_same)
    n = int(mask.sum())
    ratio = 1.0
    if n and ref_same[mask].sum() > 0:
        raw = own[mask].sum() / ref_same[mask].sum()
        w = n / (n + LEVEL_PRIOR_DAYS)
        ratio = w * raw + (1 - w) * 1.0
    return np.clip(base * factor * ratio, 0, None)
