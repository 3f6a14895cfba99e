"""Seeded generator of a realistic landing zone (POS, e-commerce, IoT, reference files).

The demand signal has something real to find (trend, weekly and yearly seasonality, regional
holidays and closures, promotions, temperature-sensitive categories, stores opening mid-history,
count noise, intermittent slow movers) and the files carry defects at known rates. Every injected
defect is counted in a ground-truth sidecar (`_truth/defects.json`) so tests can reconcile what
ingest quarantined, de-duplicated or accepted against what was injected.

Same seed and arguments give byte-identical files: all randomness comes from one
`numpy.random.Generator`, nothing reads the clock, and every float is formatted explicitly.

This module is the entry point and orchestration (`generate_landing_zone`); the world and reference
data live in `world.py`, demand in `demand.py`, and the per-source writers in `pos_files.py`,
`ecommerce_files.py` and `iot_files.py` (shared helpers in `files.py`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from retail_assets.core.atomic import atomic_write_text
from retail_assets.core.demo.demand import simulate_units
from retail_assets.core.demo.ecommerce_files import write_ecommerce
from retail_assets.core.demo.files import write_csv
from retail_assets.core.demo.iot_files import write_iot
from retail_assets.core.demo.pos_files import write_pos
from retail_assets.core.demo.weather_files import write_weather
from retail_assets.core.demo.world import (
    CATEGORIES,
    CLIMATE,
    COLD_SNAP_DAYS,
    COLD_SNAP_DROP_C,
    DEMO_DEFECT_RATES,
    ECOM_SHARE,
    OUTAGE_DAYS,
    SEASON_ORDER_WEEKS,
    GeneratorConfig,
    Truth,
    daily_temperatures,
    make_fx,
    make_holidays,
    make_items,
    make_promotions,
    make_stores,
    simulate_stock,
)


def sales_files_by_day(landing: str | os.PathLike) -> dict[str, list[Path]]:
    """The POS and e-commerce files of a generated zone by the day in their names (pos_US_20231001.csv,
    orders_20231001_resent.jsonl): how benches and tests hold days back and let them arrive later."""
    out: dict[str, list[Path]] = {}
    landing = Path(landing)
    for f in sorted([*landing.glob("pos/region=*/*.csv"), *landing.glob("ecommerce/*.jsonl")]):
        if found := re.search(r"\d{8}", f.name):
            out.setdefault(found.group(0), []).append(f)
    return out


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
    write_csv(
        ref / "stores.csv",
        ["store_id", "region", "timezone", "currency", "opened_on", "climate_zone", "closed_weekdays"],
        [
            [s.store_id, s.region, s.timezone, s.currency, s.opened_on.isoformat(), s.climate_zone, s.closed_weekdays]
            for s in stores
        ],
    )
    write_csv(
        ref / "items.csv",
        ["sku", "item_name", "category", "color", "list_price_usd", "launched_on"],
        [[i.sku, i.name, i.category, i.color, f"{i.unit_price_usd:.2f}", i.launched_on.isoformat()] for i in items],
    )
    write_csv(
        ref / "holidays.csv",
        ["date", "region", "holiday_name", "store_closed"],
        [[d.isoformat(), r, n, "true" if c else "false"] for d, r, n, c in hols],
    )
    write_csv(
        ref / "promotions.csv",
        ["promo_code", "region", "sku", "start_date", "end_date", "discount_pct"],
        [[c, r, s, a.isoformat(), b.isoformat(), str(p)] for c, r, s, a, b, p in promos],
    )
    write_csv(
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
        write_pos(root, cfg, stores, items, pos_units, fx_lookup, promo_for, defects, rng, truth, say)
    if "ecommerce" in cfg.channels:
        write_ecommerce(root, cfg, stores, items, ecom_units, fx_lookup, promo_for, defects, rng, truth, say)
    if "iot" in cfg.channels:
        season = None
        if cfg.scenario == "cold_snap":  # every store's summer pre-order of the weather-sensitive categories
            season = np.array([[SEASON_ORDER_WEEKS if CATEGORIES[it.category]["temp"] > 0 else 0.0 for it in items]
                               for _s in stores])
        stock = simulate_stock(units, stockout, open_mask, season, cfg.days - COLD_SNAP_DAYS if season is not None
                               else None)
        write_iot(root, cfg, stores, items, temps, open_mask, stockout, units, stock, defects, rng, truth, say)
    if "weather" in cfg.channels:
        surprise = (warm, cfg.days - COLD_SNAP_DAYS, COLD_SNAP_DROP_C) if cfg.scenario == "cold_snap" else None
        write_weather(root, cfg, stores, temps, defects, truth, say, surprise)

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
