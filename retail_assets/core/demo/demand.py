"""Demand simulation for the demo landing zone: units sold per store, item and day.

`simulate_units` turns the reference data of `world.py` (stores, items, holidays, promotions,
temperatures) into daily unit counts with trend, weekly and yearly seasonality, holiday and promotion
effects, temperature sensitivity, count noise and stockouts. Kept apart from the file writers: it
decides what was sold, not how the files record it.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from retail_assets.core.demo.world import CATEGORIES, GeneratorConfig, Item, Store


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
