"""Seeded generator of a realistic landing zone (POS, e-commerce, IoT, reference files).

The demand signal has something real to find (trend, weekly and yearly seasonality, regional
holidays and closures, promotions, temperature-sensitive categories, stores opening mid-history,
count noise, intermittent slow movers) and the files carry defects at known rates. Every injected
defect is counted in a ground-truth sidecar (`_truth/defects.json`) so tests can reconcile what
ingest quarantined, de-duplicated or accepted against what was injected.

Same seed and arguments give byte-identical files: all randomness comes from one
`numpy.random.Generator`, nothing reads the clock, and every float is formatted explicitly.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

import holidays as holidays_lib
import numpy as np

from retail_assets.core.atomic import atomic_write_text
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
}


@dataclass(frozen=True)
class GeneratorConfig:
    stores: int = 8
    items: int = 30
    days: int = 1096
    start: dt.date = dt.date(2023, 1, 1)
    seed: int = 42
    scenario: str = "demo"
    channels: tuple[str, ...] = ("pos", "ecommerce", "iot")  # which landing sources to write

    def __post_init__(self) -> None:
        if self.stores < 1 or self.items < 1 or self.days < 14:
            raise ValueError("need at least 1 store, 1 item and 14 days of history")
        if self.stores > 9000 or self.items > 8999:
            raise ValueError("at most 9000 stores and 8999 items (ids are 4 digits)")
        if not set(self.channels) <= {"pos", "ecommerce", "iot"}:
            raise ValueError(f"unknown channels {self.channels}; choose from pos, ecommerce, iot")
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


# --------------------------------------------------------------------------- demand


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


def simulate_units(
    cfg: GeneratorConfig,
    stores: list[Store],
    items: list[Item],
    holidays: list[tuple],
    promos: list[tuple],
    temps: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Units sold per (store, item, day), the open mask, the promo mask and stockout mask."""
    n_s, n_i, n_d = len(stores), len(items), cfg.days
    dates = [cfg.start + dt.timedelta(days=d) for d in range(n_d)]
    dow = np.array([d.weekday() for d in dates])
    doy = np.array([d.timetuple().tm_yday for d in dates])
    t_years = np.arange(n_d) / 365.25
    day_index = {d: k for k, d in enumerate(dates)}

    open_mask = np.ones((n_s, n_d), dtype=bool)
    holiday_effect = np.zeros((n_s, n_i, n_d))
    hol_by_region: dict[str, list[tuple]] = {}
    for day, region, name, closed in holidays:
        hol_by_region.setdefault(region, []).append((day, name, closed))
    for s, store in enumerate(stores):
        open_mask[s, np.array(dates) < store.opened_on] = False
        if store.closed_weekdays == "Sun":
            open_mask[s, dow == 6] = False
        for day, name, closed in hol_by_region.get(store.region, []):
            k = day_index.get(day)
            if k is None:
                continue
            if closed:
                open_mask[s, k] = False
            elif name == "Black Friday":
                holiday_effect[s, :, k] += 0.9
            elif name == "Christmas Eve":
                holiday_effect[s, :, k] += 0.4
            else:
                holiday_effect[s, :, k] -= 0.25
        for i, item in enumerate(items):  # run-up to Christmas
            xmas = CATEGORIES[item.category]["xmas"]
            for year in range(cfg.start.year, cfg.end.year + 1):
                for offset in range(1, 25):
                    k = day_index.get(dt.date(year, 12, 25) - dt.timedelta(days=offset))
                    if k is not None:
                        holiday_effect[s, i, k] += xmas * (1 - offset / 25)

    promo_mask = np.zeros((n_s, n_i, n_d), dtype=bool)
    sku_index = {it.sku: i for i, it in enumerate(items)}
    region_stores: dict[str, list[int]] = {}
    for s, store in enumerate(stores):
        region_stores.setdefault(store.region, []).append(s)
    promo_depth = np.zeros((n_s, n_i, n_d))
    for _code, region, sku, start, end, disc in promos:
        i = sku_index[sku]
        a = max(0, (start - cfg.start).days)
        b = min(n_d - 1, (end - cfg.start).days)
        if a > b:
            continue
        for s in region_stores.get(region, []):
            promo_mask[s, i, a : b + 1] = True
            promo_depth[s, i, a : b + 1] = disc / 100.0

    log_mu = np.zeros((n_s, n_i, n_d))
    weekly = {
        "US": np.array([-0.10, -0.12, -0.08, -0.02, 0.08, 0.25, 0.15]),
        "UK": np.array([-0.08, -0.10, -0.08, 0.0, 0.10, 0.22, 0.05]),
        "DE": np.array([-0.05, -0.08, -0.05, 0.02, 0.15, 0.35, 0.0]),
    }
    summer_wave = np.cos(2 * np.pi * (doy - 190) / 365.25)
    for s, store in enumerate(stores):
        for i, item in enumerate(items):
            cat = CATEGORIES[item.category]
            log_mu[s, i] = (
                math.log(item.base * store.size)
                + store.growth * t_years
                + weekly[store.region][dow]
                + cat["summer"] * summer_wave
                + cat["temp"] * (temps[s] - 15.0)
            )
    log_mu += holiday_effect + 2.2 * promo_depth
    mu = np.exp(log_mu)
    dispersion = 6.0
    noisy = mu * rng.gamma(dispersion, 1.0 / dispersion, size=mu.shape)
    units = rng.poisson(noisy)

    stockout = rng.random(units.shape) < 0.006
    launched = np.array([[d >= it.launched_on for d in dates] for it in items])  # items x days
    units = np.where(stockout, 0, units)
    units = units * open_mask[:, None, :] * launched[None, :, :]
    return units.astype(np.int64), open_mask, promo_mask, stockout & open_mask[:, None, :]


# --------------------------------------------------------------------------- writers


def _fmt_num(x: float, decimal: str) -> str:
    s = f"{x:.2f}"
    return s.replace(".", ",") if decimal == "," else s


def _write_csv(path: Path, header: list[str], rows: list[list[str]], sep: str = ",") -> None:
    lines = [sep.join(header)] + [sep.join(r) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _choose(rng: np.random.Generator, pool: np.ndarray, rate: float) -> np.ndarray:
    k = max(1, int(round(len(pool) * rate))) if rate > 0 else 0  # a rate > 0 always injects one
    if k == 0 or len(pool) == 0:
        return np.array([], dtype=np.int64)
    return rng.choice(pool, size=min(k, len(pool)), replace=False)


def _split_lines(units: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split each cell's units into basket lines of 1-3 units: (cell index per line, qty per line)."""
    cells = np.flatnonzero(units > 0)
    u = units.ravel()[cells]
    per_line = rng.integers(1, 4, size=len(cells))
    n_lines = -(-u // per_line)
    cell_of_line = np.repeat(cells, n_lines)
    first = np.repeat(np.cumsum(n_lines) - n_lines, n_lines)
    pos = np.arange(len(cell_of_line)) - first
    q = np.repeat(per_line, n_lines)
    last = pos == np.repeat(n_lines - 1, n_lines)
    qty = np.where(last, np.repeat(u, n_lines) - q * (np.repeat(n_lines, n_lines) - 1), q)
    return cell_of_line, qty


def _fallback_sunday(year: int, month: int, last_sunday: bool) -> dt.date:
    """The day clocks go back: last Sunday of October (EU) or first Sunday of November (US)."""
    if last_sunday:
        d = dt.date(year, month + 1, 1) - dt.timedelta(days=1)
        return d - dt.timedelta(days=(d.weekday() - 6) % 7)
    d = dt.date(year, month, 1)
    return d + dt.timedelta(days=(6 - d.weekday()) % 7)


def generate_landing_zone(
    root: str | os.PathLike,
    cfg: GeneratorConfig = GeneratorConfig(),
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write a complete landing zone under `root` (replacing it) and return the truth sidecar."""
    say = progress or (lambda _msg: None)
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    rng = np.random.default_rng(cfg.seed)
    defects = DEMO_DEFECT_RATES if cfg.scenario != "clean" else {k: 0 for k in DEMO_DEFECT_RATES}
    cfg_dict = {k: (v.isoformat() if isinstance(v, dt.date) else list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(cfg).items()}
    truth = Truth(config=cfg_dict)

    stores = make_stores(cfg, rng)
    items = make_items(cfg, rng)
    regions = sorted({s.region for s in stores})
    future_end = cfg.end + dt.timedelta(days=400)
    hols = make_holidays(regions, cfg.start - dt.timedelta(days=366), future_end)
    promos = make_promotions(cfg, items, regions, rng, cfg.end + dt.timedelta(days=120))
    fx = make_fx(cfg, rng, cfg.end)
    say(f"reference data: {len(stores)} stores, {len(items)} items, {len(hols)} holidays, {len(promos)} promotions")

    ref = root / "reference"
    _write_csv(
        ref / "stores.csv",
        ["store_id", "region", "timezone", "currency", "opened_on", "climate_zone", "closed_weekdays"],
        [
            [s.store_id, s.region, s.timezone, s.currency, s.opened_on.isoformat(), s.climate_zone, s.closed_weekdays]
            for s in stores
        ],
    )
    _write_csv(
        ref / "items.csv",
        ["sku", "item_name", "category", "color", "list_price_usd", "launched_on"],
        [[i.sku, i.name, i.category, i.color, f"{i.unit_price_usd:.2f}", i.launched_on.isoformat()] for i in items],
    )
    _write_csv(
        ref / "holidays.csv",
        ["date", "region", "holiday_name", "store_closed"],
        [[d.isoformat(), r, n, "true" if c else "false"] for d, r, n, c in hols],
    )
    _write_csv(
        ref / "promotions.csv",
        ["promo_code", "region", "sku", "start_date", "end_date", "discount_pct"],
        [[c, r, s, a.isoformat(), b.isoformat(), str(p)] for c, r, s, a, b, p in promos],
    )
    _write_csv(
        ref / "fx_rates.csv",
        ["date", "currency", "usd_per_unit"],
        [[d.isoformat(), c, f"{v:.6f}"] for d, c, v in fx],
    )

    temps = daily_temperatures(cfg, stores, rng)
    if cfg.scenario == "cold_snap":  # a sudden, lasting cold in the three warmest ("southern") stores
        warm = sorted(range(len(stores)), key=lambda s: (-CLIMATE[stores[s].climate_zone][0], s))[:3]
        temps[warm, -COLD_SNAP_DAYS:] -= COLD_SNAP_DROP_C
        truth.counts["cold_snap"] = {
            "stores": ",".join(sorted(stores[s].store_id for s in warm)),
            "first_day": (cfg.end - dt.timedelta(days=COLD_SNAP_DAYS - 1)).isoformat(), "days": COLD_SNAP_DAYS,
        }
    units, open_mask, promo_mask, stockout = simulate_units(cfg, stores, items, hols, promos, temps, rng)
    if cfg.scenario == "broken_store":  # the till feed of one store goes silent mid-history
        broken = 1 % len(stores)
        first = cfg.days // 2
        units[broken, :, first : first + OUTAGE_DAYS] = 0
        truth.counts["feed_outage"] = dict(
            {"store_id": stores[broken].store_id, "first_day": (cfg.start + dt.timedelta(days=first)).isoformat(),
             "days": OUTAGE_DAYS}
        )
    say(f"simulated demand: {int(units.sum()):,} units over {cfg.days} days")

    # channel split
    share = np.array([ECOM_SHARE[s.region] for s in stores])[:, None, None]
    ecom_units = rng.binomial(units, np.broadcast_to(share, units.shape))
    pos_units = units - ecom_units
    truth.add("demand", "pos_units", int(pos_units.sum()))
    truth.add("demand", "ecommerce_units", int(ecom_units.sum()))
    truth.add("demand", "stockout_item_days", int(stockout.sum()))

    fx_lookup = {(d, c): v for d, c, v in fx}
    promo_code_at = {}
    for code, region, sku, a, b, disc in promos:
        promo_code_at[(region, sku)] = promo_code_at.get((region, sku), []) + [(a, b, code, disc)]

    def promo_for(region: str, sku: str, day: dt.date) -> tuple[str, int]:
        for a, b, code, disc in promo_code_at.get((region, sku), []):
            if a <= day <= b:
                return code, disc
        return "", 0

    if "pos" in cfg.channels:
        _write_pos(root, cfg, stores, items, pos_units, fx_lookup, promo_for, defects, rng, truth, say)
    if "ecommerce" in cfg.channels:
        _write_ecommerce(root, cfg, stores, items, ecom_units, fx_lookup, promo_for, defects, rng, truth, say)
    if "iot" in cfg.channels:
        _write_iot(root, cfg, stores, items, temps, open_mask, stockout, defects, rng, truth, say)

    sidecar = {
        "config": truth.config,
        "counts": {src: dict(sorted(c.items())) for src, c in sorted(truth.counts.items())},
        "outcomes": {
            "quarantine": "rows the staging rules reject, by reason, in the `quarantine` table",
            "duplicate": "rows removed as resent duplicates (ingest_reconciliation.rows_duplicate)",
            "late_rows": "valid rows delivered in a later day's file; accepted on their own business date",
            "dst_ambiguous": "valid POS rows whose local time is ambiguous (clocks going back); accepted, flagged",
        },
    }
    atomic_write_text(root / "_truth" / "defects.json", json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return sidecar


def _write_pos(root, cfg, stores, items, pos_units, fx_lookup, promo_for, defects, rng, truth, say) -> None:
    n_s, n_i, n_d = pos_units.shape
    cell, qty = _split_lines(pos_units, rng)
    s_idx, i_idx, d_idx = np.unravel_index(cell, pos_units.shape)
    n = len(cell)
    hour = np.clip(rng.normal(14.5, 3.2, n), 7, 21.99)
    secs = (hour * 3600).astype(np.int64) + rng.integers(0, 60, n)
    # per-row labels: "" valid, otherwise the quarantine reason the row must get
    label = np.array([""] * n, dtype=object)
    pool = np.arange(n)
    for reason in ("negative_qty", "absurd_qty", "unknown_item", "unknown_store", "unparseable_timestamp"):
        chosen = _choose(rng, pool, defects[f"pos_{reason}"])
        label[chosen] = reason
        pool = np.setdiff1d(pool, chosen)

    # DST-ambiguous local times: valid sales rung up in the repeated hour when clocks go back
    dst_rows = []
    if defects["pos_dst_ambiguous_per_store"]:
        for s, store in enumerate(stores):
            if store.region == "DE":  # closed on Sundays
                continue
            us = store.region == "US"
            for year in range(cfg.start.year, cfg.end.year + 1):
                day = _fallback_sunday(year, 11 if us else 10, last_sunday=not us)
                k = (day - cfg.start).days
                if not 0 <= k < n_d:
                    continue
                cand = np.flatnonzero((s_idx == s) & (d_idx == k) & (label == ""))
                if len(cand) == 0:
                    continue
                take = rng.choice(cand, size=min(len(cand), defects["pos_dst_ambiguous_per_store"]), replace=False)
                secs[take] = 3600 + rng.integers(0, 3599, len(take))
                dst_rows.extend(take.tolist())
    is_dst = np.zeros(n, dtype=bool)
    is_dst[dst_rows] = True
    truth.add("pos", "dst_ambiguous", int(is_dst.sum()))

    # Order rows by region, day, store, time so files are stable and sorted
    region_of = np.array([stores[s].region for s in range(n_s)])
    order = np.lexsort((secs, s_idx, d_idx))
    seq = np.zeros(n, dtype=np.int64)  # per store-day sequence number for txn ids
    key = s_idx[order] * n_d + d_idx[order]
    starts = np.r_[0, np.flatnonzero(np.diff(key)) + 1]
    counts = np.diff(np.r_[starts, len(key)])
    seq[order] = np.arange(len(key)) - np.repeat(starts, counts) + 1

    # Late files: some (region, day) files also carry valid rows of D-1 and D-2
    file_day = d_idx.copy()
    days_by_region = {r: np.arange(n_d) for r in POS_CONVENTIONS}
    late_total = 0
    for region in sorted(set(region_of)):
        late_days = _choose(rng, days_by_region[region][2:], defects["pos_late_files"])
        in_region = region_of[s_idx] == region
        for k in sorted(late_days.tolist()):
            for back in (1, 2):
                cand = np.flatnonzero(in_region & (d_idx == k - back) & (label == "") & ~is_dst & (file_day == k - back))
                if len(cand) == 0:
                    continue
                take = rng.choice(cand, size=min(len(cand), int(rng.integers(1, 6))), replace=False)
                file_day[take] = k
                late_total += len(take)
    truth.add("pos", "late_rows", late_total)

    sku_of = np.array([it.sku for it in items], dtype=object)
    sid_of = np.array([st.store_id for st in stores], dtype=object)
    dates = [cfg.start + dt.timedelta(days=d) for d in range(n_d)]
    rows_written = 0
    files = 0
    for region, conv in POS_CONVENTIONS.items():
        in_region = np.flatnonzero(region_of[s_idx] == region)
        if len(in_region) == 0:
            continue
        region_dir = root / "pos" / f"region={region}"
        by_file: dict[int, list[int]] = {}
        for r in in_region[np.lexsort((secs[in_region], s_idx[in_region], d_idx[in_region], file_day[in_region]))]:
            by_file.setdefault(int(file_day[r]), []).append(int(r))
        file_days = sorted(by_file)
        renamed: set[int] = set()
        if defects["pos_renamed_column_files"] and region == "UK" and len(file_days) > 10:
            renamed = {file_days[len(file_days) // 2]}
        resent = set(_choose(rng, np.array([d for d in file_days if d not in renamed]), defects["pos_resent_files"]).tolist())
        for k in file_days:
            rows = []
            labels = []
            true_qty = []
            for r in by_file[k]:
                s, i, d = int(s_idx[r]), int(i_idx[r]), int(d_idx[r])
                store = stores[s]
                day = dates[d]
                code, disc = promo_for(region, items[i].sku, day)
                price_local = items[i].unit_price_usd * (1 - disc / 100) / fx_lookup[(day, store.currency)]
                ts = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=int(secs[r]))
                sold_at = ts.strftime(conv.timestamp_format)
                q = int(qty[r])
                sid = store.store_id
                sku = sku_of[i]
                lab = label[r]
                if lab == "negative_qty":
                    q = -q
                elif lab == "absurd_qty":
                    q = ABSURD_QTY + q
                elif lab == "unknown_item":
                    sku = f"SKU-{9000 + int(rng.integers(0, 999)):04d}"
                elif lab == "unknown_store":
                    sid = f"{9900 + int(rng.integers(0, 99)):04d}"
                elif lab == "unparseable_timestamp":
                    sold_at = ("N/A", "31/02/2024 10:00", "2024-13-45 25:61:00", "yesterday")[int(rng.integers(0, 4))]
                txn = f"{region}{sid_of[s]}-{day:%Y%m%d}-{seq[r]:05d}"
                rows.append(
                    [
                        txn,
                        sid,
                        sku,
                        sold_at,
                        str(q),
                        _fmt_num(price_local, conv.decimal),
                        store.currency,
                        code,
                        items[i].color,
                    ]
                )
                labels.append(lab)
                true_qty.append(int(qty[r]))
            header = list(conv.columns)
            stem = f"pos_{region}_{dates[k]:%Y%m%d}"
            if k in renamed:
                header[4] = "qty_sold"  # a till upgrade renamed the quantity column
                labels = ["missing_required_column"] * len(labels)
            _write_csv(region_dir / f"{stem}.csv", header, rows, conv.separator)
            files += 1
            rows_written += len(rows)
            for lab, q in zip(labels, true_qty):
                if lab:
                    truth.add("pos", f"quarantine:{lab}")
                    truth.add("pos", "units_lost_to_quarantine", q)
            if k in resent:  # the same file sent again a day later
                _write_csv(region_dir / f"{stem}_resent.csv", header, rows, conv.separator)
                files += 1
                rows_written += len(rows)
                for lab in labels:
                    truth.add("pos", f"quarantine:{lab}" if lab else "duplicate")
    truth.add("pos", "files", files)
    truth.add("pos", "rows_written", rows_written)
    say(f"pos: {rows_written:,} rows in {files:,} files")


def _write_ecommerce(root, cfg, stores, items, ecom_units, fx_lookup, promo_for, defects, rng, truth, say) -> None:
    cell, qty = _split_lines(ecom_units, rng)
    s_idx, i_idx, d_idx = np.unravel_index(cell, ecom_units.shape)
    n = len(cell)
    # evening-heavy local order times, some past midnight of the business day's clock
    hour = np.mod(rng.normal(20.5, 3.0, n), 24.0)
    secs = (hour * 3600).astype(np.int64)
    dates = [cfg.start + dt.timedelta(days=d) for d in range(ecom_units.shape[2])]
    zones = {s.timezone: ZoneInfo(s.timezone) for s in stores}
    label = np.array([""] * n, dtype=object)
    pool = np.arange(n)
    for reason in ("invalid_json", "unknown_store", "unparseable_timestamp"):
        chosen = _choose(rng, pool, defects[f"ecom_{reason}"])
        label[chosen] = reason
        pool = np.setdiff1d(pool, chosen)
    by_day: dict[dt.date, list[tuple]] = {}
    for r in range(n):
        s, i, d = int(s_idx[r]), int(i_idx[r]), int(d_idx[r])
        store = stores[s]
        local = dt.datetime.combine(dates[d], dt.time(), tzinfo=zones[store.timezone]) + dt.timedelta(
            seconds=int(secs[r])
        )
        utc = local.astimezone(UTC)
        code, disc = promo_for(store.region, items[i].sku, dates[d])
        price = items[i].unit_price_usd * (1 - disc / 100) / fx_lookup[(dates[d], store.currency)]
        record = {
            "order_id": f"EC{r + 1:09d}",
            "line": 1,
            "ordered_at": utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "fulfilling_store": store.store_id,
            "sku": items[i].sku,
            "quantity": int(qty[r]),
            "unit_price": round(price, 2),
            "currency": store.currency,
            "promo_code": code or None,
        }
        lab = label[r]
        if lab == "unknown_store":
            record["fulfilling_store"] = f"{9900 + int(rng.integers(0, 99)):04d}"
        elif lab == "unparseable_timestamp":
            record["ordered_at"] = "not-a-time"
        line = json.dumps(record, sort_keys=True)
        if lab == "invalid_json":
            line = line[: len(line) // 2]  # truncated by a crashed exporter
        by_day.setdefault(utc.date(), []).append((utc, r, line, lab))
    files = rows = 0
    out = root / "ecommerce"
    days = sorted(by_day)
    resent = set(_choose(rng, np.arange(len(days)), defects["ecom_resent_files"]).tolist())
    for k, day in enumerate(days):
        recs = sorted(by_day[day])
        text = "\n".join(line for _u, _r, line, _l in recs) + "\n"
        atomic_write_text(out / f"orders_{day:%Y%m%d}.jsonl", text)
        files += 1
        rows += len(recs)
        for _u, r, _line, lab in recs:
            if lab:
                truth.add("ecommerce", f"quarantine:{lab}")
                truth.add("ecommerce", "units_lost_to_quarantine", int(qty[r]))
        if k in resent:
            atomic_write_text(out / f"orders_{day:%Y%m%d}_resent.jsonl", text)
            files += 1
            rows += len(recs)
            for *_x, lab in recs:
                truth.add("ecommerce", f"quarantine:{lab}" if lab else "duplicate")
    truth.add("ecommerce", "files", files)
    truth.add("ecommerce", "rows_written", rows)
    say(f"ecommerce: {rows:,} order lines in {files:,} files")


def _write_iot(root, cfg, stores, items, temps, open_mask, stockout, defects, rng, truth, say) -> None:
    """Hourly temperature per store and shelf-stock readings per item, in UTC, with sensor gaps."""
    n_s, n_d = temps.shape
    gap = np.zeros((n_s, n_d), dtype=bool)  # whole-day sensor outages
    gap_days = defects["iot_sensor_gap_days_per_year"]
    if gap_days:
        for s in range(n_s):
            n_gaps = max(1, int(round(n_d / 365.25 * gap_days / 2)))
            for a in rng.choice(n_d - 3, size=n_gaps, replace=False):
                gap[s, a : a + int(rng.integers(1, 3))] = True
    truth.add("iot", "sensor_gap_store_days", int(gap.sum()))
    dates = [cfg.start + dt.timedelta(days=d) for d in range(n_d)]
    by_day: dict[dt.date, list[tuple]] = {}
    glitch_rate = defects["iot_temperature_glitch"]
    glitches = 0
    stock_level = rng.integers(5, 60, size=(n_s, len(items)))
    for s, store in enumerate(stores):
        tz = ZoneInfo(store.timezone)
        opened = store.opened_on
        for d, day in enumerate(dates):
            if gap[s, d] or day < opened:
                continue
            base = dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(UTC)  # local midnight
            next_base = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(UTC)
            n_hours = int((next_base - base).total_seconds() // 3600)  # 23 or 25 when clocks change
            hourly = temps[s, d] + 3.0 * np.sin(2 * np.pi * (np.arange(n_hours) - 9) / 24) + rng.normal(0, 0.4, n_hours)
            for h in range(n_hours):
                value = float(hourly[h])
                if glitch_rate and rng.random() < glitch_rate:
                    value = -99.9
                    glitches += 1
                utc = base + dt.timedelta(hours=h)
                by_day.setdefault(utc.date(), []).append(
                    (utc, store.store_id, f"T{store.store_id}", "", "temperature_c", f"{value:.1f}")
                )
            if not open_mask[s, d]:
                continue
            for h in SHELF_READ_HOURS:
                utc = base + dt.timedelta(hours=h)
                for i, item in enumerate(items):
                    if day < item.launched_on:
                        continue
                    level = 0 if stockout[s, i, d] else int(stock_level[s, i] + (h % 7))
                    by_day.setdefault(utc.date(), []).append(
                        (utc, store.store_id, f"S{store.store_id}-{i + 1:04d}", item.sku, "shelf_units", str(level))
                    )
    truth.add("iot", "quarantine:temperature_out_of_range", glitches)
    files = rows = 0
    for day in sorted(by_day):
        recs = sorted(by_day[day])
        _write_csv(
            root / "iot" / f"iot_{day:%Y%m%d}.csv",
            ["recorded_at_utc", "store_id", "device_id", "sku", "metric", "value"],
            [[u.strftime("%Y-%m-%dT%H:%M:%SZ"), sid, dev, sku, m, v] for u, sid, dev, sku, m, v in recs],
        )
        files += 1
        rows += len(recs)
    truth.add("iot", "files", files)
    truth.add("iot", "rows_written", rows)
    say(f"iot: {rows:,} readings in {files:,} files")
