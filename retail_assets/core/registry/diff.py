"""`retail diff`: what differs between two versions of one store, from their manifests and their forecasts.

Data versions, configuration, library and code versions, the held-out figures, per-item champions and held-out
WAPE, and the items whose forecast over the store's next days moved most (both versions served on the same
feature rows: the store's current features). Pure: no Dagster.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from retail_assets.core.registry.versions import ModelVersion

SUMMARY_FIGURES = ("heldout_weighted_wape_champion", "heldout_weighted_wape_seasonal_naive",
                   "heldout_coverage_calibrated", "items", "history_end")


def _changed(a: dict, b: dict) -> dict:
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _heldout_wape(info: dict) -> float | None:
    scored = (info.get("heldout") or {}).get(info.get("heldout_champion") or "", {})
    w = scored.get("wape")
    return None if w is None or not np.isfinite(w) else float(w)


def _forecast_totals(mv: ModelVersion, features: pd.DataFrame, horizon: int) -> dict[str, float | None]:
    """Each item's forecast total over the first `horizon` future days; None where the version cannot
    serve those days (a path or weather outlook that ends earlier: an older version)."""
    from retail_assets.core.forecast.serving import future_frame, predict_item

    out = {}
    future = features[features["is_future"]].sort_values(["item_id", "date"])
    for item_id, g in future.groupby("item_id", sort=True):
        if item_id not in mv.manifest["items"]:
            continue
        try:
            out[item_id] = float(predict_item(mv, item_id, future_frame(g.head(horizon))).sum())
        except ValueError:
            out[item_id] = None
    return out


def diff_versions(a: ModelVersion, b: ModelVersion, features: pd.DataFrame, top: int = 5) -> dict:
    """Everything that differs between versions `a` (older) and `b` of one store."""
    ma, mb = a.manifest, b.manifest
    horizon = int(mb["config"]["horizon"])
    items = sorted(set(ma["items"]) | set(mb["items"]))
    per_item = []
    for i in items:
        ia, ib = ma["items"].get(i, {}), mb["items"].get(i, {})
        per_item.append({"item_id": i, "champion": [ia.get("champion"), ib.get("champion")],
                         "heldout_wape": [_heldout_wape(ia), _heldout_wape(ib)]})
    fa, fb = _forecast_totals(a, features, horizon), _forecast_totals(b, features, horizon)
    moved = [{"item_id": i, "forecast_total": [fa[i], fb[i]], "change": fb[i] - fa[i],
              "relative": (fb[i] - fa[i]) / fa[i] if fa[i] else None}
             for i in sorted(set(fa) & set(fb)) if fa[i] is not None and fb[i] is not None]
    moved.sort(key=lambda r: -abs(r["change"]))
    return {
        "store_id": b.store_id, "versions": [a.version, b.version],
        "created_at": [ma["created_at"], mb["created_at"]],
        "features_data_version": [ma["features_data_version"], mb["features_data_version"]],
        "code_version": [ma["code_version"], mb["code_version"]],
        "config_changed": _changed(ma["config"], mb["config"]),
        "libraries_changed": _changed(ma.get("libraries", {}), mb.get("libraries", {})),
        "summary": {k: [ma["summary"].get(k), mb["summary"].get(k)] for k in SUMMARY_FIGURES},
        "champions_changed": [r for r in per_item if r["champion"][0] != r["champion"][1]],
        "items": per_item,
        "forecast_horizon_days": horizon,
        "forecast_not_comparable": sorted(i for i in set(fa) | set(fb) if fa.get(i) is None or fb.get(i) is None),
        "forecast_moved_most": moved[:top],
    }


def render(d: dict) -> str:
    """The diff as a person reads it."""
    a, b = d["versions"]

    def pair(x) -> str:
        fmt = (lambda v: "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v))
        return f"{fmt(x[0])} -> {fmt(x[1])}" if x[0] != x[1] else f"{fmt(x[0])} (same)"

    lines = [f"store {d['store_id']}: {a} -> {b}",
             f"  created             {pair(d['created_at'])}",
             f"  features data       {pair([v[:16] for v in d['features_data_version']])}",
             f"  code                {pair(d['code_version'])}",
             "  configuration       " + (", ".join(f"{k}: {v[0]} -> {v[1]}" for k, v in d["config_changed"].items())
                                         or "same"),
             "  libraries           " + (", ".join(f"{k} {v[0]} -> {v[1]}" for k, v in d["libraries_changed"].items())
                                         or "same")]
    lines += [f"  {k:<38} {pair(v)}" for k, v in d["summary"].items()]
    lines.append(f"  champions changed on {len(d['champions_changed'])} of {len(d['items'])} items:")
    lines += [f"    {r['item_id']:<14} {r['champion'][0]} -> {r['champion'][1]}  (held-out WAPE "
              f"{pair(r['heldout_wape'])})" for r in d["champions_changed"]]
    lines.append(f"  forecast moved most (next {d['forecast_horizon_days']} days, units):")
    lines += [f"    {r['item_id']:<14} {r['forecast_total'][0]:.1f} -> {r['forecast_total'][1]:.1f} ({r['change']:+.1f}"
              + (f", {r['relative']:+.0%})" if r["relative"] is not None else ")") for r in d["forecast_moved_most"]]
    if d["forecast_not_comparable"]:
        lines.append(f"  not comparable over these days (a version's horizon ends earlier): "
                     f"{', '.join(d['forecast_not_comparable'][:10])}")
    return "\n".join(lines)
