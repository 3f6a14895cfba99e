"""The simulated world behind the demo landing zone: configuration, constants and reference data.

Holds `GeneratorConfig`, the tunable constants (categories, climates, FX, defect rates), the `Store`,
`Item` and `Truth` records, and the seeded builders of stores, items, holidays, promotions, FX rates and
daily temperatures. Split out of `generator.py` so demand simulation and the file writers can share
these definitions without importing the orchestration. Every builder draws from the caller's
`numpy.random.Generator`, so call order decides the output.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

import holidays as holidays_lib
import numpy as np

from retail_assets.core.ingest.regions import (
    POS_CONVENTIONS,
    REGION_HOLIDAY_CALENDAR,
    REGION_STORE_SITES,
)

SCENARIOS = ("demo", "clean", "broken_store", "cold_snap")
COLD_SNAP_DAYS = 21  # cold_snap: the last days of history, three warmest stores
COLD_SNAP_DROP_C = 18.0
OUTAGE_DAYS = 21  # broken_store: one store's sales feed is silent this long
UTC = dt.timezone.utc
ABSURD_QTY = 5000  # far above any per-line cap the validation rules accept

# category: base daily units, weekly/yearly shape, temperature sensitivity (log-units per degC)
CATEGORIES: dict[str, dict[str, float]] = {
    "grocery": {"base": 9.0, "temp": 0.0, "summer": 0.0, "xmas": 0.35},
    "beverages": {"base": 7.0, "temp": 0.025, "summer": 0.10, "xmas": 0.20},
    "household": {"base": 4.0, "temp": 0.0, "summer": 0.0, "xmas": 0.10},
    "apparel": {"base": 2.5, "temp": 0.0, "summer": 0.05, "xmas": 0.40},
    "toys": {"base": 1.5, "temp": 0.0, "summer": -0.10, "xmas": 1.10},
    "ice_cream": {"base": 3.0, "temp": 0.07, "summer": 0.10, "xmas": 0.0},
    "patio": {"base": 1.2, "temp": 0.06, "summer": 0.60, "xmas": -0.30},
    "heating": {"base": 1.0, "temp": -0.08, "summer": -0.50, "xmas": 0.10},
}
COLORS = ("red", "blue", "green", "black", "white", "grey")
CLIMATE = {  # mean degC, seasonal amplitude, day-to-day noise
    "humid_continental": (11.0, 13.0, 3.0),
    "mediterranean": (18.0, 5.0, 2.0),
    "oceanic": (11.0, 6.5, 2.0),
    "continental": (10.0, 10.0, 2.8),
}
FX_BASE = {"USD": 1.0, "GBP": 1.27, "EUR": 1.09}  # USD per unit of currency
ECOM_SHARE = {"US": 0.12, "UK": 0.10, "DE": 0.08}
SHELF_READ_HOURS = (6, 12, 18, 23)  # local hours a shelf sensor reports
REORDER_WEEKS = 2  # weekly deliveries top a shelf up to this many weeks of its last four weeks' sales
WEATHER_HORIZON_DAYS = 10  # days ahead a weather forecast issue covers (that day included)
SEASON_ORDER_WEEKS = 4  # the summer pre-order of the weather-sensitive categories (lands with the cold snap)

# Rates of injected defects (share of rows or files) in the "demo" scenario.
DEMO_DEFECT_RATES = {
    "pos_negative_qty": 0.0005,
    "pos_absurd_qty": 0.0002,
    "pos_unknown_item": 0.0003,
    "pos_unknown_store": 0.0002,
    "pos_unparseable_timestamp": 0.0003,
    "pos_resent_files": 0.005,
    "pos_late_files": 0.01,
    "pos_dst_ambiguous_per_store": 3,
    "pos_renamed_column_files": 1,
    "ecom_invalid_json": 0.0005,
    "ecom_unknown_store": 0.0005,
    "ecom_unparseable_timestamp": 0.0005,
    "ecom_resent_files": 0.01,
    "iot_temperature_glitch": 0.0005,
    "iot_sensor_gap_days_per_year": 6,
    "weather_unknown_store": 0.0005,
    "weather_min_above_max": 0.0005,
    "weather_unparseable_value": 0.0005,
    "weather_resent_files": 0.005,
}


@dataclass(frozen=True)
class GeneratorConfig:
    stores: int = 8
    items: int = 30
    days: int = 1096
    start: dt.date = dt.date(2023, 1, 1)
    seed: int = 42
    scenario: str = "demo"
    channels: tuple[str, ...] = ("pos", "ecommerce", "iot", "weather")  # which landing sources to write

    def __post_init__(self) -> None:
        if self.stores < 1 or self.items < 1 or self.days < 14:
            raise ValueError("need at least 1 store, 1 item and 14 days of history")
        if self.stores > 9000 or self.items > 8999:
            raise ValueError("at most 9000 stores and 8999 items (ids are 4 digits)")
        if not set(self.channels) <= {"pos", "ecommerce", "iot", "weather"}:
            raise ValueError(f"unknown channels {self.channels}; choose from pos, ecommerce, iot, weather")
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; choose one of {SCENARIOS}")

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days - 1)


@dataclass
class Store:
    store_id: str
    region: str
    timezone: str
    currency: str
    opened_on: dt.date
    climate_zone: str
    closed_weekdays: str  # e.g. "Sun"; empty when open every day
    size: float
    growth: float


@dataclass
class Item:
    sku: str
    name: str
    category: str
    color: str
    unit_price_usd: float
    launched_on: dt.date
    base: float


@dataclass
class Truth:
    """What the generator injected, so ingest can be reconciled against it."""

    config: dict
    counts: dict = field(default_factory=dict)

    def add(self, source: str, key: str, n: int = 1) -> None:
        bucket = self.counts.setdefault(source, Counter())
        bucket[key] += n


def store_id(i: int) -> str:
    return f"{i + 1:04d}"


def sku_id(i: int) -> str:
    return f"SKU-{i + 1:04d}"


# --------------------------------------------------------------------------- reference data


def make_stores(cfg: GeneratorConfig, rng: np.random.Generator) -> list[Store]:
    regions = list(POS_CONVENTIONS)
    per_region: Counter = Counter()
    stores = []
    late_openers = {cfg.stores - 1: 0.45, cfg.stores - 2: 0.7} if cfg.stores >= 4 else {}
    for i in range(cfg.stores):
        region = regions[i % len(regions)]
        tz, climate = REGION_STORE_SITES[region][per_region[region] % len(REGION_STORE_SITES[region])]
        per_region[region] += 1
        if i in late_openers:
            opened = cfg.start + dt.timedelta(days=int(cfg.days * late_openers[i]))
        else:
            opened = cfg.start - dt.timedelta(days=int(rng.integers(400, 4000)))
        stores.append(
            Store(
                store_id=store_id(i),
                region=region,
                timezone=tz,
                currency=POS_CONVENTIONS[region].currency,
                opened_on=opened,
                climate_zone=climate,
                closed_weekdays="Sun" if region == "DE" else "",
                size=float(rng.lognormal(0.0, 0.35)),
                growth=float(rng.uniform(-0.03, 0.10)),
            )
        )
    return stores


def make_items(cfg: GeneratorConfig, rng: np.random.Generator) -> list[Item]:
    cats = list(CATEGORIES)
    items = []
    for i in range(cfg.items):
        cat = cats[i % len(cats)]
        base = CATEGORIES[cat]["base"] * float(rng.lognormal(0.0, 0.3))
        if i % 7 == 6:  # intermittent slow mover
            base = float(rng.uniform(0.15, 0.4))
        launched = cfg.start - dt.timedelta(days=365)
        if i % 11 == 10:  # launched mid-history
            launched = cfg.start + dt.timedelta(days=int(cfg.days * 0.3))
        items.append(
            Item(
                sku=sku_id(i),
                name=f"{cat.replace('_', ' ').title()} {i + 1:04d}",
                category=cat,
                color=COLORS[i % len(COLORS)],
                unit_price_usd=round(float(rng.uniform(1.5, 60.0)), 2),
                launched_on=launched,
                base=base,
            )
        )
    return items


def _black_friday(year: int) -> dt.date:
    nov1 = dt.date(year, 11, 1)
    first_thu = nov1 + dt.timedelta(days=(3 - nov1.weekday()) % 7)
    return first_thu + dt.timedelta(days=22)


def make_holidays(regions: Iterable[str], first: dt.date, last: dt.date) -> list[tuple]:
    """(date, region, name, store_closed) for each region's public holidays and retail events."""
    rows = []
    years = list(range(first.year, last.year + 1))
    for region in sorted(regions):
        country, subdiv = REGION_HOLIDAY_CALENDAR[region]
        cal = holidays_lib.country_holidays(country, subdiv=subdiv, years=years)
        days: dict[dt.date, tuple[str, bool]] = {}
        for day, name in sorted(cal.items()):
            closed = region == "DE" or name in (
                "Christmas Day",
                "Thanksgiving Day",
                "Thanksgiving",
            )
            days[day] = (name, closed)
        for year in years:
            days.setdefault(_black_friday(year), ("Black Friday", False))
            days.setdefault(dt.date(year, 12, 24), ("Christmas Eve", False))
            days.setdefault(dt.date(year, 12, 31), ("New Year's Eve", False))
            if region == "UK":  # large shops in England close on Easter Sunday
                from dateutil.easter import easter

                days[easter(year)] = ("Easter Sunday", True)
        for day in sorted(days):
            if first <= day <= last:
                name, closed = days[day]
                rows.append((day, region, name, closed))
    return rows


def make_promotions(
    cfg: GeneratorConfig, items: list[Item], regions: list[str], rng: np.random.Generator, last: dt.date
) -> list[tuple]:
    """(promo_code, region, sku, start, end, discount) planned in advance, into the forecast horizon."""
    promos = []
    n = 0
    span = (last - cfg.start).days
    for region in regions:
        for item in items:
            k = max(1, int(rng.poisson(span / 365.25 * 5)))
            starts = np.sort(rng.choice(span - 14, size=min(k, span - 14), replace=False))
            prev_end = cfg.start - dt.timedelta(days=1)
            for s in starts:
                start = cfg.start + dt.timedelta(days=int(s))
                if start <= prev_end:
                    continue
                end = start + dt.timedelta(days=int(rng.integers(6, 14)))
                n += 1
                promos.append(
                    (f"P{region}{n:05d}", region, item.sku, start, end, int(rng.choice([10, 15, 20, 25, 30])))
                )
                prev_end = end
    return promos


def make_fx(cfg: GeneratorConfig, rng: np.random.Generator, last: dt.date) -> list[tuple]:
    rows = []
    n = (last - cfg.start).days + 1
    for cur in sorted(FX_BASE):
        if cur == "USD":
            path = np.ones(n)
        else:
            path = FX_BASE[cur] * np.exp(np.cumsum(rng.normal(0, 0.003, n)))
        for d in range(n):
            rows.append((cfg.start + dt.timedelta(days=d), cur, float(path[d])))
    return rows


def daily_temperatures(cfg: GeneratorConfig, stores: list[Store], rng: np.random.Generator) -> np.ndarray:
    """Daily mean temperature per store (stores x days), seasonal with AR(1) weather."""
    days = np.arange(cfg.days)
    doy = np.array([(cfg.start + dt.timedelta(days=int(d))).timetuple().tm_yday for d in days])
    out = np.zeros((len(stores), cfg.days))
    for s, store in enumerate(stores):
        mean, amp, noise = CLIMATE[store.climate_zone]
        seasonal = mean - amp * np.cos(2 * np.pi * (doy - 15) / 365.25)
        weather = np.zeros(cfg.days)
        shocks = rng.normal(0, noise, cfg.days)
        for d in range(1, cfg.days):
            weather[d] = 0.75 * weather[d - 1] + shocks[d]
        out[s] = seasonal + weather
    return out


def simulate_stock(units: np.ndarray, stockout: np.ndarray, open_mask: np.ndarray, season_order: np.ndarray | None,
                   season_day: int | None) -> np.ndarray:
    """On-hand units at the start of each day (stores x items x days): a weekly delivery (on each store's own
    weekday) tops the shelf up to REORDER_WEEKS of the item's trailing four-week sales; a stocked-out day is an
    empty shelf. `season_order` (stores x items, in weeks) adds a one-off delivery on `season_day`: what the
    stores ordered for a summer that the cold snap stalls. Deterministic: no draws, so the other files of a
    seeded zone stay as they were."""
    n_s, n_i, n_d = units.shape
    start = np.zeros((n_s, n_i, n_d))
    on_hand = np.zeros((n_s, n_i))
    sold = units.astype(float)
    for d in range(n_d):
        trailing = sold[:, :, max(0, d - 28):d].mean(axis=2) if d else sold[:, :, 0]
        deliver = (d % 7) == (np.arange(n_s) % 7)
        target = REORDER_WEEKS * 7 * trailing
        on_hand = np.where(deliver[:, None], np.maximum(on_hand, target), on_hand)
        if season_order is not None and d == season_day:
            on_hand = on_hand + season_order * 7 * trailing
        on_hand = np.where(stockout[:, :, d], 0.0, on_hand)
        start[:, :, d] = on_hand
        on_hand = np.maximum(on_hand - sold[:, :, d] * open_mask[:, None, d], 0.0)
    return start
