"""Temperature as a regressor, as-of: what a forecast made at an origin could know about each day's weather.

History rows use the temperature observed that day (the store's IoT sensor, `temperature_c` in its features).
A day on or after the origin uses the latest weather forecast issued before the origin for that day; beyond the
forecasts' reach, climatology: the mean temperature observed in the same ISO week of earlier years (the store's
own, else, for a young store, its climate zone's), else the median of the four weeks before the origin. A backtest
fold at an origin therefore never reads a forecast issued after it, nor the temperature observed on its own days.
Pure: no Dagster, no files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ISSUE_COLUMNS = ("forecast_date", "issued_at", "temperature_mean_c")
CLIMATE_GAP_DAYS = 180  # climatology reads earlier years only: days this far before the origin
RECENT_DAYS = 28  # climatology's fallback without an earlier year: the median of these days before the origin
GRID = 64  # temperatures on a 1/64 degC grid: exact in float32, so the edge's float32 trees split as LightGBM does


def weather_factor(slope: float, temperature, normal) -> np.ndarray:
    """exp(slope x (forecast temperature - climatology)): how far the weather moves a model that forecasts
    the season's normal weather (every model but the store's trees, which read the temperature themselves)."""
    return np.exp(slope * (np.asarray(temperature, dtype=float) - np.asarray(normal, dtype=float)))


def on_grid(values) -> np.ndarray:
    return np.round(np.asarray(values, dtype=float) * GRID) / GRID


@dataclass(frozen=True)
class StoreWeather:
    """A store's observed daily temperature (date -> degC) and its issued forecasts (`ISSUE_COLUMNS`)."""

    observed: pd.Series
    issues: pd.DataFrame
    zone: pd.Series | None = None  # a young store's climate zone's daily temperature (date -> degC), or None

    @classmethod
    def build(cls, dates, observed, issues: pd.DataFrame | None,
              zone: pd.DataFrame | None = None) -> "StoreWeather | None":
        """From the features' history dates and their observed temperature, and the store's issues; None when
        the store has neither (no temperature to learn from). `zone` (date, temperature_c): the climate zone's
        temperature a young store takes its normal from (features/grid.py `build_climate`)."""
        obs = pd.Series(np.asarray(observed, dtype=float), index=pd.DatetimeIndex(pd.to_datetime(dates))).sort_index()
        obs = obs[~obs.index.duplicated()]
        issues = issues if issues is not None else pd.DataFrame(columns=list(ISSUE_COLUMNS))
        if obs.isna().all() and issues.empty:
            return None
        iss = issues[list(ISSUE_COLUMNS)].copy()
        iss["forecast_date"] = pd.to_datetime(iss["forecast_date"])
        iss["issued_at"] = pd.to_datetime(iss["issued_at"], utc=True)
        zone_series = None
        if zone is not None and len(zone):
            zone_series = pd.Series(zone["temperature_c"].to_numpy(float),
                                    index=pd.DatetimeIndex(pd.to_datetime(zone["date"]))).sort_index()
        return cls(obs, iss.sort_values("issued_at").reset_index(drop=True), zone_series)

    def history(self, dates) -> np.ndarray:
        """Observed temperature on `dates` (days before an origin); a day the sensor missed takes the last day
        before it that was observed (never a later one: a fold's training rows read nothing after its origin;
        only a gap at the very start takes the first observation)."""
        filled = self.observed.ffill().bfill()
        if filled.isna().all():
            filled = filled.fillna(0.0)
        idx = pd.DatetimeIndex(pd.to_datetime(dates))
        out = filled.reindex(idx).to_numpy(float)
        return on_grid(np.where(np.isfinite(out), out, float(filled.mean())))

    def as_of(self, origin, dates) -> tuple[np.ndarray, np.ndarray]:
        """(temperature, source) for `dates` (on or after `origin`) as known before `origin`: the latest issue
        before the origin's midnight (UTC), else climatology (module docstring). `source` per date:
        'forecast' or 'climatology'."""
        origin = pd.Timestamp(origin)
        idx = pd.DatetimeIndex(pd.to_datetime(dates))
        cutoff = pd.Timestamp(origin.date(), tz="UTC")
        known = self.issues[(self.issues["issued_at"] < cutoff) & self.issues["forecast_date"].isin(idx)]
        latest = known.drop_duplicates("forecast_date", keep="last").set_index("forecast_date")["temperature_mean_c"]
        temp = latest.reindex(idx).to_numpy(float)
        source = np.where(np.isfinite(temp), "forecast", "climatology")
        if (~np.isfinite(temp)).any():
            temp = np.where(np.isfinite(temp), temp, self.climatology(origin, idx))
        return on_grid(temp), source

    def latest_issue(self, origin) -> str | None:
        """When the newest forecast issued before `origin` was issued (ISO 8601 UTC), or None."""
        cutoff = pd.Timestamp(pd.Timestamp(origin).date(), tz="UTC")
        before = self.issues.loc[self.issues["issued_at"] < cutoff, "issued_at"]
        return before.max().strftime("%Y-%m-%dT%H:%M:%SZ") if len(before) else None

    def climatology(self, origin: pd.Timestamp, dates: pd.DatetimeIndex) -> np.ndarray:
        """The mean observed temperature of each date's ISO week in earlier years (days at least
        CLIMATE_GAP_DAYS before the origin, so this year's weather, a cold snap included, is never its own
        normal); a week the store has no earlier year of takes its climate zone's (`zone`: a young store); else
        the median of the RECENT_DAYS before the origin (the weather a model that tracks the recent level assumes;
        the median, so the first days of a snap shorter than half of them do not make it its own normal)."""
        before = self.observed[self.observed.index < origin].dropna()
        if before.empty:
            return np.zeros(len(dates))
        recent = float(before.iloc[-RECENT_DAYS:].median())  # a snap shorter than half of it is not its own normal
        gap = origin - pd.Timedelta(days=CLIMATE_GAP_DAYS)
        before = before[before.index < gap]
        weekly = before.groupby(before.index.isocalendar().week.to_numpy()).mean()
        if self.zone is not None:  # weeks the store never saw in an earlier year: its climate zone's
            zone = self.zone[self.zone.index < gap].dropna()
            borrowed = zone.groupby(zone.index.isocalendar().week.to_numpy()).mean()
            weekly = weekly.combine_first(borrowed)
        weeks = dates.isocalendar().week.to_numpy()
        return np.array([float(weekly.get(w, recent)) for w in weeks])

    def normal(self, origin, dates) -> np.ndarray:
        """The season's normal temperature on `dates` as known at `origin` (the climatology `as_of` falls back
        to, on the same grid): what a model without the temperature implicitly forecasts."""
        origin = pd.Timestamp(origin)
        return on_grid(self.climatology(origin, pd.DatetimeIndex(pd.to_datetime(dates))))

    def column(self, dates, origin) -> tuple[np.ndarray, np.ndarray]:
        """(the regressor for `dates`: observed before `origin`, as-of from it on; the observed series on the
        same dates, for the level window's mean, which only ever reads days before an origin)."""
        idx = pd.DatetimeIndex(pd.to_datetime(dates))
        observed = self.history(idx)
        out = observed.copy()
        ahead = idx >= pd.Timestamp(origin)
        if ahead.any():
            out[ahead] = self.as_of(origin, idx[ahead])[0]
        return out, observed
