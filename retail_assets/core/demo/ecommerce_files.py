"""Writer of the demo e-commerce files: one JSON-lines file of order lines per UTC day.

Orders carry UTC timestamps and local prices; the writer injects the e-commerce defects (truncated
JSON, unknown fulfilling stores, unparseable timestamps, resent files) and counts each in the ground
truth. One module per landing source keeps each writer small and its defects in one place.
"""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import numpy as np

from retail_assets.core.atomic import atomic_write_text
from retail_assets.core.demo.files import choose, split_lines
from retail_assets.core.demo.world import UTC


def write_ecommerce(root, cfg, stores, items, ecom_units, fx_lookup, promo_for, defects, rng, truth, say) -> None:
    cell, qty = split_lines(ecom_units, rng)
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
        chosen = choose(rng, pool, defects[f"ecom_{reason}"])
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
    resent = set(choose(rng, np.arange(len(days)), defects["ecom_resent_files"]).tolist())
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
