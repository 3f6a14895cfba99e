"""`retail trace`: how one forecast number reached the shelf, from the served value back to landing lines."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from retail_assets.core.ids import validate_store_id
from retail_assets.core.registry.records import RegistryError
from retail_assets.core.registry.versions import live_version
from retail_assets.core.warehouse import connect_readonly

HISTORY_DAYS = 28
WAREHOUSE_WAIT_SECONDS = 3.0  # a writer finishing now is waited for; an ingest in progress is refused


def trace(layout, store_id: str, item_id: str, day: dt.date, raw_limit: int = 50) -> dict:
    store_id = validate_store_id(store_id)
    mv = live_version(layout.models, store_id)
    if mv is None:
        raise RegistryError(f"store {store_id} has no live model")
    if item_id not in mv.manifest["items"]:
        raise RegistryError(f"item {item_id} is not modelled for store {store_id}")
    info = mv.manifest["items"][item_id]
    out: dict = {"store_id": store_id, "item_id": item_id, "date": day.isoformat()}
    fpath = layout.store_dir("forecasts", store_id) / "forecast.parquet"
    served = None
    if fpath.exists():
        f = pd.read_parquet(fpath)
        f = f[(f["item_id"] == item_id) & (pd.to_datetime(f["date"]).dt.date == day)]
        if len(f):
            r = f.iloc[0]
            served = {"yhat": float(r["yhat"]), "yhat_lower": float(r["yhat_lower"]),
                      "yhat_upper": float(r["yhat_upper"]), "champion": r["champion"],
                      "model_version": r["model_version"], "file": str(fpath)}
    out["forecast"] = served
    bundle_ptr = layout.store_dir("bundles", store_id) / "latest.json"
    out["bundle"] = json.loads(bundle_ptr.read_text()) if bundle_ptr.exists() else None
    out["model"] = {"version": mv.version, "champion": info["champion"], "reason": info["reason"],
                    "item_sha256": info["sha256"], "file": str(mv.path / info["file"]),
                    "libraries": mv.manifest["libraries"], "created_at": mv.manifest["created_at"]}
    out["features_data_version"] = mv.manifest["features_data_version"]
    out["code_version"] = mv.manifest["code_version"]
    vpath = layout.store_dir("features", store_id) / "validation.json"
    validation = json.loads(vpath.read_text()) if vpath.exists() else None
    if validation and validation.get("data_version") != mv.manifest["features_data_version"]:
        validation = {**validation, "note": "these results are for a newer features file than the live model's"}
    out["validation"] = validation
    trained_to = pd.read_parquet(layout.features_file(store_id),
                                 columns=["date", "is_future"])
    last = trained_to[~trained_to["is_future"]]["date"].max().date()
    first = last - dt.timedelta(days=HISTORY_DAYS - 1)
    with connect_readonly(layout.warehouse, WAREHOUSE_WAIT_SECONDS) as con:
        out["history"] = con.execute(
            "select business_date, units_pos, units_ecommerce, units_total, promo_planned, is_open_day "
            "from fct_daily_demand where store_id = ? and item_id = ? and business_date between ? and ? "
            "order by business_date", [store_id, item_id, first, last]).df().astype({"business_date": str}).to_dict("records")
        out["raw_lines"] = con.execute(
            "select business_date, channel, source_file, source_line, record_key, time_text, qty, is_duplicate "
            "from int_sales_lines where store_id = ? and item_id = ? and business_date between ? and ? "
            "and quarantine_reason is null order by business_date, source_file, source_line limit ?",
            [store_id, item_id, first, last, raw_limit]).df().astype({"business_date": str}).to_dict("records")
        out["raw_lines_total"] = con.execute(
            "select count(*) from int_sales_lines where store_id = ? and item_id = ? and business_date between ? and ?"
            " and quarantine_reason is null", [store_id, item_id, first, last]).fetchone()[0]
        out["quarantined"] = con.execute(
            "select source_file, source_line, reason, raw_values from quarantine where store_id = ? and item_id = ? "
            "order by source_file, source_line", [store_id, item_id]).df().to_dict("records")
    out["history_window"] = {"first": first.isoformat(), "last": last.isoformat()}
    return out


def render(t: dict) -> str:
    f = t["forecast"]
    lines = [f"store {t['store_id']}  item {t['item_id']}  date {t['date']}"]
    lines.append("forecast served: " + (f"{f['yhat']:.2f} [{f['yhat_lower']:.2f}, {f['yhat_upper']:.2f}] "
                                        f"by {f['champion']} ({f['file']})" if f else "none for that day"))
    b = t["bundle"]
    lines.append("edge bundle:     " + (f"{b['bundle_version']} (zip sha256 {b['sha256'][:16]}..., model "
                                        f"{b['model_version']})" if b else "none published"))
    m = t["model"]
    lines.append(f"model:           {m['version']} {m['champion']}: {m['reason']}")
    lines.append(f"                 item file sha256 {m['item_sha256'][:16]}..., libraries {m['libraries']}")
    lines.append(f"features data:   {t['features_data_version']}")
    v = t["validation"]
    lines.append("validation:      " + (f"{'passed' if v['passed'] else 'FAILED'} ({v['expectations_run']} "
                                        f"expectations; failed: {v['failed'] or 'none'})" if v else "not recorded"))
    lines.append(f"code version:    {t['code_version']}")
    lines.append(f"history {t['history_window']['first']}..{t['history_window']['last']} (fct_daily_demand):")
    for r in t["history"]:
        lines.append(f"  {r['business_date']}  units {int(r['units_total']):>4} (pos {int(r['units_pos'])}, "
                     f"ecom {int(r['units_ecommerce'])})  promo {r['promo_planned']}  open {r['is_open_day']}")
    lines.append(f"landing lines behind it ({t['raw_lines_total']}, first {len(t['raw_lines'])}):")
    for r in t["raw_lines"]:
        dup = "  (duplicate, not counted)" if r["is_duplicate"] else ""
        lines.append(f"  {r['business_date']}  {r['source_file']}:{r['source_line']}  {r['channel']}  "
                     f"qty {int(r['qty'])}  {r['time_text']}{dup}")
    lines.append(f"quarantined rows for this store and item: {len(t['quarantined'])}")
    for r in t["quarantined"]:
        lines.append(f"  {r['source_file']}:{r['source_line']}  {r['reason']}  {r['raw_values']}")
    return "\n".join(lines)
