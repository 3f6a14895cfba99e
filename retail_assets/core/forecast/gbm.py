"""One LightGBM model per store over all its items: direct multi-horizon, so neither the edge nor the served
forecast needs a lagged value the horizon has not seen. Pure: no Dagster, no files.

Each row is an item-day. Features: the item (a categorical feature), the calendar (day of week and year, week,
month, year, days to Christmas and from Thanksgiving: fixed retail dates known from the date alone), the
holiday flag, the promotion, the item's level: its mean open-day demand over `window` periods
ending `lag` periods earlier, where `lag` is the forecast horizon, so every forecast day's level lies in the
history at the origin; and its demand around the same day a year earlier over that level (the item's own
yearly shape, also in the history for every forecast day). The target is demand over (level + 1), weighted by (level + 1): the trees
learn shapes, the level carries trend, and squared errors count in units. The `calendar` variant (VARIANTS)
fixes the level at 0: units straight from item x calendar x year. Stored in LightGBM's own text format.

Where the store has temperature data (observed in history, as known at the origin ahead:
core/forecast/weather.py), each item's demand gets a log-linear response (`temperature_slopes`, a Poisson GLM by
statsmodels on day-to-day weather, 0 unless the data show it clearly), and the items with a slope get trees of
their own (core/fitting/store_models.py `_fit_trees`): those learn demand over (level + 1) x exp(slope x anomaly)
and also read the temperature and its anomaly, and every forecast multiplies the factor back, so a freak cold
snap, past the coldest day the trees saw (where their response is flat), moves the forecast as far as the slope
says. The items without a slope keep plain trees that never read the temperature: trees shared by all items split
on it for every item, and moved the forecasts of those the weather does not move (README, `bench/weather.py`).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

CALENDAR_FEATURES = ("day_of_week", "day_of_year", "week_of_year", "month", "day_of_month", "days_to_christmas",
                     "days_from_thanksgiving", "year")
TEMPERATURE = "temperature"  # the store's temperature, as-of (core/forecast/weather.py); the weather trees' feature
# the day's temperature against the mean over the item level's window (observed, before the origin): how much
# warmer or colder than the weeks the level was taken from, the same in every season (a cold July is not January)
TEMPERATURE_ANOMALY = "temperature_anomaly"
WINDOW_TEMPERATURE = "window_temperature"  # that window's mean: a helper column, not a feature
# every tree model's features; the weather trees (and a booster of session 11 or earlier, shared by every item)
# also read TEMPERATURE and TEMPERATURE_ANOMALY, last (`predict` and the edge graph take each booster's own list)
FEATURES = ("item_code", *CALENDAR_FEATURES, "is_holiday", "promo", "level", "last_year")
CALENDAR_INPUTS = (*CALENDAR_FEATURES, "is_holiday")  # the edge graph's `calendar` input, per day
# the store's trees, each in LightGBM's text format beside the items of a version: `plain` for the items without
# a temperature slope, `weather` (demand over the temperature's factor, reading the temperature) for those with one
TREE_FILES = {"plain": "lightgbm.txt", "weather": "lightgbm_weather.txt"}
PARAMS = {"objective": "regression", "learning_rate": 0.05, "num_leaves": 31,
          "feature_fraction": 0.9, "lambda_l2": 1.0, "seed": 7, "deterministic": True, "force_col_wise": True,
          "num_threads": 2, "verbosity": -1}


def _thanksgiving(year: int) -> dt.date:
    nov1 = dt.date(year, 11, 1)
    return nov1 + dt.timedelta(days=(3 - nov1.weekday()) % 7 + 21)  # the fourth Thursday of November


def calendar_matrix(dates) -> np.ndarray:
    """[n, len(CALENDAR_FEATURES)] from the dates alone: the same numbers in training, serving and the bundle."""
    ds = pd.DatetimeIndex(pd.to_datetime(dates))
    out = np.zeros((len(ds), len(CALENDAR_FEATURES)))
    if not len(ds):
        return out
    out[:, 0] = ds.dayofweek
    out[:, 1] = ds.dayofyear
    out[:, 2] = ds.isocalendar().week.to_numpy(dtype=float)
    out[:, 3] = ds.month
    out[:, 4] = ds.day
    days = ds.normalize().to_numpy(dtype="datetime64[D]")
    years = ds.year.to_numpy()
    xmas = np.array([np.datetime64(f"{y:04d}-12-25") for y in range(years.min(), years.max() + 2)])
    this = xmas[years - years.min()]
    to_xmas = np.where(days <= this, this - days, xmas[years - years.min() + 1] - days).astype(int)
    out[:, 5] = np.minimum(to_xmas, 60)
    thanks = {y: np.datetime64(_thanksgiving(int(y))) for y in np.unique(years)}
    since = (days - np.array([thanks[y] for y in years], dtype="datetime64[D]")).astype(int)
    out[:, 6] = np.clip(since, -60, 40).astype(float)
    out[:, 7] = ds.year  # the year's level: a year the trees never saw is treated as the latest they did
    return out


def calendar_inputs(dates, is_holiday) -> np.ndarray:
    """[n, len(CALENDAR_INPUTS)]: what the edge bundle stores per day for the store's LightGBM model."""
    return np.column_stack([calendar_matrix(dates), np.asarray(is_holiday, dtype=float)])


VARIANTS = ("level", "calendar")
"""How the trees see an item's scale. `level`: demand over the item's lagged level (+ its year-ago ratio), so
the trees learn shapes and the level carries trend: strong on daily data with moving levels. `calendar`: units
directly from item x calendar x year (level fixed at 0, no year-ago ratio), so the trees memorise each item's
week of year at this year's level: strong on weekly data with large yearly peaks. Each store uses the variant
that scored better on folds ended before the forecast (core/fitting/store_models.py)."""

LEVEL_GRID = 64  # levels on a 1/64-unit grid: exact in float32, so the edge's float32 trees split them as LightGBM does


def window_means(observed: np.ndarray, lag: int, window: int) -> np.ndarray:
    """Per period t: the mean observed temperature over the level's window [t - lag - window + 1, t - lag]
    (in the history at every origin, like the level), on the 1/64 grid; the first value where too early."""
    s = pd.Series(np.asarray(observed, dtype=float))
    out = s.shift(lag).rolling(window, min_periods=1).mean().bfill().fillna(0.0).to_numpy()
    return np.round(out * LEVEL_GRID) / LEVEL_GRID


def with_temperature(rows: pd.DataFrame, temperature) -> pd.DataFrame:
    """`rows` with the day's temperature replaced (an as-of forecast) and its anomaly recomputed."""
    temps = np.asarray(temperature, dtype=float)
    return rows.assign(**{TEMPERATURE: temps, TEMPERATURE_ANOMALY: temps - rows[WINDOW_TEMPERATURE].to_numpy()})


def item_levels(y: np.ndarray, open_day: np.ndarray, lag: int, window: int) -> np.ndarray:
    """Per period t: the mean open-period demand over [t - lag - window + 1, t - lag]; NaN where that
    window holds fewer than a quarter of its periods. Rounded to LEVEL_GRID: every feature of the trees is
    then a value float32 holds exactly (onnxmltools writes float32 thresholds; a continuous double level
    would fall on the other side of a rounded threshold now and then)."""
    s = pd.Series(np.where(open_day & ~np.isnan(y), y, np.nan))
    level = s.shift(lag).rolling(window, min_periods=max(window // 4, 1)).mean().to_numpy()
    return np.round(level * LEVEL_GRID) / LEVEL_GRID


def last_year_ratio(y: np.ndarray, open_day: np.ndarray, level: np.ndarray, year: int) -> np.ndarray:
    """Per period t: the mean open demand over t - year +- 3 days (the week a year earlier; the period itself
    on weekly data) over (level + 1), on a 1/1024 grid (exact in float32, as the level); -1 where unknown."""
    half = 3 if year > 60 else 0
    s = pd.Series(np.where(open_day & ~np.isnan(y), y, np.nan))
    around = s.rolling(2 * half + 1, center=True, min_periods=1).mean().shift(year).to_numpy()
    ratio = np.round(around / (level + 1.0) * 1024) / 1024
    return np.where(np.isfinite(ratio), ratio, -1.0)


def store_frame(items: list[dict], lag: int, window: int, year: int, variant: str = "level",
                temperature=None) -> pd.DataFrame:
    """All items' rows with their features. `items`: dicts with item_id, dates, y (None ahead), open_day, promo,
    holiday (name or None), n_history; item codes follow the sorted item ids. `variant`: one of VARIANTS.
    `temperature`: dates -> (degC as the forecast may know it: observed in history, as-of ahead; the observed
    degC, which the level window's mean reads), or None: a store without temperature data trains without it."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown LightGBM variant {variant!r}; expected one of {VARIANTS}")
    frames = []
    for code, it in enumerate(sorted(items, key=lambda i: i["item_id"])):
        y = np.array([np.nan if v is None else v for v in it["y"]], dtype=float)
        open_day = np.array(it["open_day"], bool)
        frame = pd.DataFrame(calendar_matrix(it["dates"]), columns=list(CALENDAR_FEATURES))
        frame.insert(0, "item_code", float(code))
        frame["is_holiday"] = [0.0 if h is None else 1.0 for h in it["holiday"]]
        frame["promo"] = np.asarray(it["promo"], dtype=float)
        if variant == "level":
            frame["level"] = item_levels(y, open_day, lag, window)
            frame["last_year"] = last_year_ratio(y, open_day, frame["level"].to_numpy(), year)
        else:
            frame["level"], frame["last_year"] = 0.0, -1.0
        if temperature is not None:
            temps, observed = temperature(it["dates"])
            frame[TEMPERATURE] = temps
            frame[WINDOW_TEMPERATURE] = window_means(observed, lag, window)
            frame[TEMPERATURE_ANOMALY] = frame[TEMPERATURE] - frame[WINDOW_TEMPERATURE]
        frame["item_id"] = it["item_id"]
        frame["ds"] = pd.to_datetime(it["dates"])
        frame["y"] = y
        frame["open"] = open_day
        frame["history"] = np.arange(len(y)) < it["n_history"]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


SLOPE_MIN_Z = 3.0  # a slope the weather's day-to-day noise does not show this clearly is taken as 0
SLOPE_BOUND = 0.25  # log-units per degC either way: beyond it a slope is an artefact, not a response
SLOPE_SMOOTH_DAYS = 15  # the centred window that splits the weather (and demand) from the season
SLOPE_MIN_DAYS = 120  # open days with a temperature an item needs before its slope is estimated


def _weather_days(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """One item's days for `temperature_slopes`: (units, weather, mean units around, day of week) on its open
    days with a temperature; None when its history has gaps or is too short."""
    g = g.sort_values("ds")
    if len(g) < SLOPE_MIN_DAYS or (g["ds"].diff().dt.days.dropna() != 1).any():
        return None
    k = SLOPE_SMOOTH_DAYS
    temp, sold = g[TEMPERATURE].astype(float), g["y"].where(g["open"].astype(bool))

    def around(s: pd.Series) -> np.ndarray:
        """The centred mean of the k days around each day, the day itself left out (NaN when too few)."""
        total = s.fillna(0.0).rolling(k, center=True, min_periods=1).sum() - s.fillna(0.0)
        count = s.notna().astype(float).rolling(k, center=True, min_periods=1).sum() - s.notna()
        return (total / count.where(count >= k // 2)).to_numpy()
    weather, level = temp.to_numpy() - around(temp), around(sold)
    use = sold.notna().to_numpy() & np.isfinite(weather) & np.isfinite(level) & (level > 0)
    if use.sum() < SLOPE_MIN_DAYS:
        return None
    return sold.to_numpy()[use], weather[use], level[use], g["day_of_week"].to_numpy()[use].astype(int)


def pooled_slope(own: tuple[float, float] | None, others: list[tuple[float, float]]) -> dict | None:
    """A group's slope from its estimates in other stores: (slope, standard error) pairs, the store's `own`
    among them. A random-effects mean (DerSimonian-Laird: stores may respond differently, by tau^2 between them);
    when it is at least SLOPE_MIN_Z of its standard errors from 0, the store's own estimate shrunk toward it
    (empirical Bayes: the less its own days show, the more it takes from the chain), or the mean where the store
    has no estimate. None when the stores together do not show a slope either."""
    est = [(b, se) for b, se in ([own] if own else []) + list(others)
           if np.isfinite(b) and np.isfinite(se) and se > 0]
    if len(est) < 2:
        return None
    b = np.array([e[0] for e in est])
    v = np.array([e[1] for e in est]) ** 2
    w = 1.0 / v
    fixed = float((w * b).sum() / w.sum())
    c = float(w.sum() - (w ** 2).sum() / w.sum())
    tau2 = max(0.0, (float((w * (b - fixed) ** 2).sum()) - (len(b) - 1)) / c) if c > 0 else 0.0
    wr = 1.0 / (v + tau2)
    mean, se = float((wr * b).sum() / wr.sum()), float(wr.sum() ** -0.5)
    if abs(mean) < SLOPE_MIN_Z * se:
        return None
    if own is None or tau2 == 0.0:
        slope = mean
    else:
        slope = (own[0] / own[1] ** 2 + mean / tau2) / (1.0 / own[1] ** 2 + 1.0 / tau2)
    return {"slope": float(np.clip(slope, -SLOPE_BOUND, SLOPE_BOUND)), "pooled_mean": mean, "pooled_se": se,
            "tau": float(np.sqrt(tau2)), "stores": len(est)}


def temperature_slopes(frame: pd.DataFrame, cutoff: pd.Timestamp, groups: dict[float, str] | None = None,
                       borrowed: dict[str, float] | None = None,
                       estimates: dict | None = None, pool: dict[str, list[tuple[float, float]]] | None = None,
                       pooled: dict | None = None) -> dict[float, float]:
    """Per item code: d log(demand) / d degC, estimated on the history before `cutoff` from day-to-day weather
    only: a Poisson GLM (statsmodels) of the day's demand on the observed temperature minus its centred
    SLOPE_SMOOTH_DAYS mean, with the item's own centred mean demand (the day itself left out) as the offset and
    the day of week as factors, so the season, trend and level drop out and what is left is the weather's
    effect. The standard error allows for overdispersion (quasi-Poisson: scaled by Pearson's chi^2 over the
    degrees of freedom; promotions and day-to-day noise make retail counts far more variable than Poisson).
    `groups` (item code -> group, such as the category) pools the items of a group into one slope (a
    slow item alone rarely shows its response clearly); without it, one slope per item. A slope below
    SLOPE_MIN_Z standard errors is 0, or the group's `borrowed` slope (a young store's: its analog stores'), or,
    with `pool` (group -> the other stores' (slope, se) estimates), `pooled_slope` when the stores together show
    one (each group so decided is written to `pooled`); bounded by SLOPE_BOUND. Empty without temperature (daily
    data only: on weekly data the weather averages out). `estimates`, when given, receives every group's estimate
    and standard error, kept or not (what another store borrows or pools: the mean of raw estimates is
    unbiased, the mean of thresholded ones is not)."""
    if TEMPERATURE not in frame.columns:
        return {}
    import statsmodels.api as sm

    hist = frame[frame["history"] & (frame["ds"] < cutoff)]
    days: dict[str, list] = {}
    out: dict[float, float] = {}
    for code, g in hist.groupby("item_code", sort=True):
        out[float(code)] = float((borrowed or {}).get(groups.get(float(code)), 0.0)) if groups else 0.0
        got = _weather_days(g)
        if got is not None:
            days.setdefault(groups.get(float(code), str(code)) if groups else str(code), []).append((float(code), got))
    for group, members in days.items():
        sold, weather, level, dow = (np.concatenate([m[1][i] for m in members]) for i in range(4))
        if np.std(weather) < 0.5:
            continue
        dummies = pd.get_dummies(dow, prefix="d", drop_first=True, dtype=float).to_numpy()
        exog = np.column_stack([np.ones(len(sold)), dummies, weather])
        try:
            res = sm.GLM(sold, exog, family=sm.families.Poisson(), offset=np.log(level)).fit(scale="X2")
            slope, se = float(res.params[-1]), float(res.bse[-1])
        except (ValueError, np.linalg.LinAlgError):  # degenerate demand (constant): no slope
            continue
        if estimates is not None and np.isfinite(slope) and np.isfinite(se):
            estimates[group] = {"slope": float(np.clip(slope, -SLOPE_BOUND, SLOPE_BOUND)), "se": float(se)}
        valid = np.isfinite(slope) and np.isfinite(se) and se > 0
        if valid and abs(slope) >= SLOPE_MIN_Z * se:
            for code, _ in members:
                out[code] = float(np.clip(slope, -SLOPE_BOUND, SLOPE_BOUND))
        elif pool and groups and group not in (borrowed or {}) and (
                got := pooled_slope((slope, se) if valid else None, pool.get(group, []))) is not None:
            for code, _ in members:
                out[code] = got["slope"]
            if pooled is not None:
                pooled[group] = got
    return out


def temperature_factor(rows: pd.DataFrame, slopes: dict[float, float] | None) -> np.ndarray:
    """exp(slope x temperature anomaly) per row: 1 without slopes or temperature."""
    if not slopes or TEMPERATURE_ANOMALY not in rows.columns:
        return np.ones(len(rows))
    slope = rows["item_code"].map(lambda c: slopes.get(float(c), 0.0)).to_numpy(float)
    return np.exp(slope * rows[TEMPERATURE_ANOMALY].to_numpy(float))


def fit(frame: pd.DataFrame, cutoff: pd.Timestamp, rounds: int, slopes: dict[float, float] | None = None,
        temperature: bool = False):
    """A booster on the history before `cutoff` (open periods with a level); None with too few rows. With
    `slopes` (temperature_slopes at the same cutoff) the trees learn demand over the temperature's factor;
    `temperature`: they also read the day's temperature and its anomaly (the weather trees, which serve only
    the items with a slope), where the frame has them."""
    import lightgbm as lgb

    rows = frame[frame["history"] & (frame["ds"] < cutoff) & frame["open"] & frame["y"].notna()
                 & frame["level"].notna()]
    if len(rows) < 200:
        return None
    scale = (rows["level"].to_numpy() + 1.0) * temperature_factor(rows, slopes)
    names = frame_features(frame)
    if temperature and TEMPERATURE in frame.columns:
        names += [f for f in (TEMPERATURE, TEMPERATURE_ANOMALY) if f not in names]
    data = lgb.Dataset(rows[names].to_numpy(float), label=rows["y"].to_numpy() / scale, weight=scale,
                       feature_name=names, categorical_feature=["item_code"], free_raw_data=True)
    # leaves of 40 rows on a daily store's tens of thousands; down to 10 on a few thousand weekly rows, where
    # a series' holiday week occurs two or three times in all
    return lgb.train({**PARAMS, "min_data_in_leaf": int(np.clip(len(rows) // 200, 10, 40))}, data,
                     num_boost_round=rounds)


def frame_features(frame: pd.DataFrame) -> list[str]:
    """The FEATURES a frame has, in order."""
    return [f for f in FEATURES if f in frame.columns]


def predict(booster, rows: pd.DataFrame, slopes: dict[float, float] | None = None) -> np.ndarray:
    """Units for `rows` (features as in `store_frame`), never negative, 0 where closed or without a level;
    times the temperature's factor with the `slopes` the booster was fitted with."""
    if not len(rows):
        return np.zeros(0)
    # the booster's own feature list: a version trained before a feature was added still serves
    ratio = booster.predict(rows[booster.feature_name()].to_numpy(float), num_threads=1)
    yhat = np.clip(ratio, 0, None) * (rows["level"].to_numpy() + 1.0) * temperature_factor(rows, slopes)
    return np.where(rows["open"].to_numpy(bool) & np.isfinite(yhat), yhat, 0.0)


def booster_from_text(text: str):
    import lightgbm as lgb

    return lgb.Booster(model_str=text)
