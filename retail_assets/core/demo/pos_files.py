"""Writer of the demo POS files: one CSV per region and business day, in the region's conventions.

Splits simulated store units into till lines with local times and injects the POS defects (bad
quantities, unknown items and stores, unparseable timestamps, DST-ambiguous times, late and resent
files, a renamed column), counting each in the ground truth. Split out of `generator.py` because it
is the largest writer.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from retail_assets.core.demo.files import choose, split_lines, write_csv
from retail_assets.core.demo.world import ABSURD_QTY
from retail_assets.core.ingest.regions import POS_CONVENTIONS


def _fmt_num(x: float, decimal: str) -> str:
    s = f"{x:.2f}"
    return s.replace(".", ",") if decimal == "," else s


def _fallback_sunday(year: int, month: int, last_sunday: bool) -> dt.date:
    """The day clocks go back: last Sunday of October (EU) or first Sunday of November (US)."""
    if last_sunday:
        d = dt.date(year, month + 1, 1) - dt.timedelta(days=1)
        return d - dt.timedelta(days=(d.weekday() - 6) % 7)
    d = dt.date(year, month, 1)
    return d + dt.timedelta(days=(6 - d.weekday()) % 7)


def write_pos(root, cfg, stores, items, pos_units, fx_lookup, promo_for, defects, rng, truth, say) -> None:
    n_s, n_i, n_d = pos_units.shape
    cell, qty = split_lines(pos_units, rng)
    s_idx, i_idx, d_idx = np.unravel_index(cell, pos_units.shape)
    n = len(cell)
    hour = np.clip(rng.normal(14.5, 3.2, n), 7, 21.99)
    secs = (hour * 3600).astype(np.int64) + rng.integers(0, 60, n)
    # per-row labels: "" valid, otherwise the quarantine reason the row must get
    label = np.array([""] * n, dtype=object)
    pool = np.arange(n)
    for reason in ("negative_qty", "absurd_qty", "unknown_item", "unknown_store", "unparseable_timestamp"):
        chosen = choose(rng, pool, defects[f"pos_{reason}"])
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
        late_days = choose(rng, days_by_region[region][2:], defects["pos_late_files"])
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
        resent = set(choose(rng, np.array([d for d in file_days if d not in renamed]), defects["pos_resent_files"]).tolist())
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
            write_csv(region_dir / f"{stem}.csv", header, rows, conv.separator)
            files += 1
            rows_written += len(rows)
            for lab, q in zip(labels, true_qty):
                if lab:
                    truth.add("pos", f"quarantine:{lab}")
                    truth.add("pos", "units_lost_to_quarantine", q)
            if k in resent:  # the same file sent again a day later
                write_csv(region_dir / f"{stem}_resent.csv", header, rows, conv.separator)
                files += 1
                rows_written += len(rows)
                for lab in labels:
                    truth.add("pos", f"quarantine:{lab}" if lab else "duplicate")
    truth.add("pos", "files", files)
    truth.add("pos", "rows_written", rows_written)
    say(f"pos: {rows_written:,} rows in {files:,} files")
