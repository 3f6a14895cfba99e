"""Writer of the demo IoT files: hourly store temperatures and shelf-stock readings, one CSV per UTC day.

Readings follow each store's local clock (23- or 25-hour days when clocks change) and carry sensor
gaps and out-of-range temperature glitches, counted in the ground truth. One module per landing
source keeps each writer small and its defects in one place.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np

from retail_assets.core.demo.files import write_csv
from retail_assets.core.demo.world import SHELF_READ_HOURS, UTC


def write_iot(root, cfg, stores, items, temps, open_mask, stockout, units, stock, defects, rng, truth, say) -> None:
    """Hourly temperature per store and shelf-stock readings per item, in UTC, with sensor gaps. A shelf reading
    is the day's opening stock (`stock`, world.simulate_stock) less the share of the day's units sold by then."""
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
    rng.integers(5, 60, size=(n_s, len(items)))  # drawn as before, so a seeded zone's other readings stay put
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
                    sold = units[s, i, d] * (h - SHELF_READ_HOURS[0]) / (SHELF_READ_HOURS[-1] - SHELF_READ_HOURS[0])
                    level = 0 if stockout[s, i, d] else max(int(round(stock[s, i, d] - sold)), 0)
                    by_day.setdefault(utc.date(), []).append(
                        (utc, store.store_id, f"S{store.store_id}-{i + 1:04d}", item.sku, "shelf_units", str(level))
                    )
    truth.add("iot", "quarantine:temperature_out_of_range", glitches)
    files = rows = 0
    for day in sorted(by_day):
        recs = sorted(by_day[day])
        write_csv(
            root / "iot" / f"iot_{day:%Y%m%d}.csv",
            ["recorded_at_utc", "store_id", "device_id", "sku", "metric", "value"],
            [[u.strftime("%Y-%m-%dT%H:%M:%SZ"), sid, dev, sku, m, v] for u, sid, dev, sku, m, v in recs],
        )
        files += 1
        rows += len(recs)
    truth.add("iot", "files", files)
    truth.add("iot", "rows_written", rows)
    say(f"iot: {rows:,} readings in {files:,} files")
