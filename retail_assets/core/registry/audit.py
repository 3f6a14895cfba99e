"""`retail audit` and the `audit_report` asset: the questions an auditor or a head of data asks, answered from
the platform's own records, each answer naming the records it came from.

Measured, not asserted: the trace is run and timed on a sampled served forecast; the rollback is run and timed
on a scratch copy of one store (the real store is never touched). Pure: no Dagster (the caller passes what only
Dagster knows: which sensors and schedules run by default, where the instance stores its runs).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from retail_assets.core.registry import records as registry
from retail_assets.core.registry.versions import LIVE_POINTER, live_version
from retail_assets.settings import DataLayout


def _answer(question: str, answer: str, records: list[str], **figures) -> dict:
    return {"question": question, "answer": answer, "records": records, "figures": figures}


def trace_answer(layout: DataLayout, rng: random.Random) -> dict:
    """Trace one served forecast (a sampled store, item and day) from the shelf number to raw lines, timed."""
    from retail_assets.core.registry import trace as tracing

    q = "Can you trace a prediction to raw rows in under five minutes?"
    paths = sorted(layout.root.joinpath("forecasts").glob("store=*/forecast.parquet"))
    rng.shuffle(paths)  # one store's file read, not every store's
    path, f = next(((p, f) for p in paths if len(f := pd.read_parquet(p))), (None, None))
    if path is None:
        return _answer(q, "not measured: no published forecast yet", [])
    row = f.iloc[rng.randrange(len(f))]
    store, item, day = str(row["store_id"]), str(row["item_id"]), pd.Timestamp(row["date"]).date()
    t0 = time.perf_counter()
    t = tracing.trace(layout, store, item, day)
    seconds = time.perf_counter() - t0
    value = t["forecast"]["yhat"] if t["forecast"] else None
    return _answer(
        q, f"yes: store {store}, {item} on {day} ({value:.2f} units, model {t['model']['version']}, bundle "
           f"{(t['bundle'] or {}).get('bundle_version')}) traced to {len(t['raw_lines'])} of "
           f"{t['raw_lines_total']} raw lines in {seconds:.2f} s (`retail trace --store {store} --item {item} "
           f"--date {day}`)",
        [str(path.relative_to(layout.root)), f"models/store={store}/{LIVE_POINTER}",
         registry.recorded_path(layout.models, Path(t["model"]["file"])),
         f"features/store={store}/validation.json", "warehouse: fct_daily_demand, int_sales_lines, quarantine"],
        store_id=store, item_id=item, date=str(day), yhat=value, trace_seconds=round(seconds, 3),
        raw_lines_total=t["raw_lines_total"], model_version=t["model"]["version"])


def rollback_answer(layout: DataLayout, signing_key, prefer: str | None = None) -> dict:
    """Roll one store back to the version live before its current one, on a scratch copy, timed."""
    from retail_assets.core.edge.bundle import BundleVerificationError
    from retail_assets.core.registry.serve import serve_version

    q = "How long does it take to roll back only one store?"
    candidates = []
    for store in registry.stores(layout.models):
        live = live_version(layout.models, store)
        # the version live before the current one (the audit log's last change to it), else the newest other
        came_from = [e["from"] for e in registry.audit_log(layout.models, store) if e["to"] == live.version]
        earlier = [v for v in came_from[-1:] if v] or [
            e["version"] for e in registry.history(layout.models, store)
            if e["kind"] == "model" and e["version"] != live.version][-1:]
        earlier = [v for v in earlier if (layout.models / f"store={store}" / v).is_dir()]
        if earlier and layout.features_file(store).exists():
            candidates.append((store != prefer, store, live.version, earlier[-1]))
    if not candidates:
        return _answer(q, "not measured: no store has an earlier version to roll back to", [])
    refusals = []
    for _, store, frm, to in sorted(candidates):
        scratch = Path(tempfile.mkdtemp(prefix="retail_audit_rollback_"))
        try:
            copy = DataLayout(scratch / "data")
            for part in ("models", "features", "bundles"):
                src = layout.store_dir(part, store)
                if src.is_dir():
                    shutil.copytree(src, copy.store_dir(part, store), dirs_exist_ok=True)
            before = (layout.models / f"store={store}" / LIVE_POINTER).read_bytes()
            t0 = time.perf_counter()
            try:
                served = serve_version(copy, store, to, "rollback", "audit drill on a scratch copy", signing_key)
            except (ValueError, BundleVerificationError) as exc:  # a hash, the bundle, a path that ends too early
                refusals.append(f"store {store} to {to} refused in {time.perf_counter() - t0:.1f} s: {exc}")
                continue
            seconds = time.perf_counter() - t0
            untouched = (layout.models / f"store={store}" / LIVE_POINTER).read_bytes() == before
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        break
    else:
        return _answer(q, "not measured: every drill was refused (" + "; ".join(refusals) + "). A version older "
                       "than its stored horizon cannot serve today's days: retrain, or roll back to a newer one",
                       [f"models/store={c[1]}/registry.jsonl" for c in candidates], refusals=refusals)
    return _answer(
        q, f"{seconds:.1f} s: store {store} from {frm} back to {to} on a scratch copy (files verified against "
           f"their hashes, bundle {served.bundle_version} rebuilt, verified and signed, live pointer and audit "
           f"line written; the other stores are not read). The real store was "
           f"{'left untouched' if untouched else 'CHANGED (a defect)'}; by hand: `retail rollback --store {store} "
           f"--to {to}`",
        [f"models/store={store}/registry.jsonl", f"models/store={store}/{LIVE_POINTER}",
         f"models/store={store}/{to}/manifest.json"],
        store_id=store, from_version=frm, to_version=to, rollback_seconds=round(seconds, 3),
        real_store_untouched=untouched, max_rel_error=served.max_rel_error, refusals=refusals)


def last_peak_season(peaks: list[dict], today: dt.date) -> tuple[str, dt.date, dt.date] | None:
    """The most recent configured peak whose season (lead days before it to a week after) has begun."""
    from retail_assets.core.monitor.signals import seasonal_trigger_dates

    seasons = []
    for year in (today.year - 1, today.year):
        lead = {p["name"]: int(p["lead_days"]) for p in peaks}
        for start, name in seasonal_trigger_dates(year, peaks).items():
            first = dt.date.fromisoformat(start)
            seasons.append((first, name, first + dt.timedelta(days=lead[name] + 7)))
    begun = [s for s in seasons if s[0] <= today]
    if not begun:
        return None
    first, name, last = max(begun)
    return f"{name} {first.year}", first, last


def lag_answer(layout: DataLayout, peaks: list[dict], today: dt.date) -> dict:
    """Days from drift (or spike) detection to the retrained version going live, in the last peak season."""
    q = "How many days between drift detection and retrain in peak season?"
    rows = [r for r in registry.retrain_lag_rows(layout.models) if r["trigger"] in ("drift", "sales_spike")]
    season = last_peak_season(peaks, today)
    records = ["models/store=*/registry.jsonl (kind retrain)", "warehouse: retrain_lags"]
    if season is None:
        return _answer(q, "no peak season configured", records)
    name, first, last = season
    inside = [r for r in rows if r.get("detected_at")
              and first <= dt.datetime.fromisoformat(r["detected_at"]).date() <= last]

    def days(rs: list[dict]) -> list[float]:
        return [r["detection_to_live_hours"] / 24 for r in rs if r["detection_to_live_hours"] is not None]

    def describe(rs: list[dict]) -> str:
        d = days(rs)
        held = sum(r["outcome"] == "held back" for r in rs)
        med, top = statistics.median(d) if d else 0, max(d) if d else 0
        return (f"{len(rs)} retrains, {len(d)} went live: median {med:.2f} days ({med * 24:.1f} h), max "
                f"{top:.2f} days ({top * 24:.1f} h) from first detection to live" if d
                else f"{len(rs)} retrains, none went live") \
            + (f"; {held} held back by the promotion gate" if held else "")

    answer = (f"{name} ({first}..{last}): " + (describe(inside) if inside else "no drift or spike retrain "
              "recorded") + f". All drift and spike retrains on record: {describe(rows) if rows else 'none'}")
    return _answer(q, answer, records, season=name, season_first=str(first), season_last=str(last),
                   retrains_in_season=len(inside), lag_days_in_season=days(inside), retrains_total=len(rows),
                   lag_days_all=days(rows))


def live_answer(layout: DataLayout, fleet: pd.DataFrame) -> dict:
    """Every store's live version by name, and what its devices report serving."""
    q = "How many versions are live right now, and can you name them?"
    rows = registry.live_rows(layout.models)
    by_store = {r["store_id"]: r for r in fleet.to_dict("records")} if len(fleet) else {}
    lines, mismatched = [], []
    for r in rows:
        f = by_store.get(r["store_id"], {})
        reported = f.get("serving_bundle")
        if reported and reported != r["bundle_version"]:
            mismatched.append(r["store_id"])
        lines.append({"store_id": r["store_id"], "live_version": r["live_version"], "bundle": r["bundle_version"],
                      "devices_report": reported or "nothing yet", "device_status": f.get("status", "never_seen")})
    distinct = sorted({r["live_version"] for r in rows})
    answer = (f"{len(rows)} stores serve {len(distinct)} distinct versions: "
              + ", ".join(f"{x['store_id']}={x['live_version']}" for x in lines)
              + (f"; devices of {', '.join(mismatched)} report a bundle other than the live one" if mismatched
                 else "; every reporting device serves its store's live bundle" if by_store else
                 "; no device has reported yet"))
    return _answer(q, answer, ["models/store=*/live.json", "models/store=*/registry.jsonl (kind bundle)",
                               "warehouse: fct_edge_forecasts (device telemetry)"],
                   stores=lines, distinct_live_versions=distinct)


def edge_answer(fleet: pd.DataFrame, window_hours: float) -> dict:
    """Edge latency and failures per store, from the devices' telemetry."""
    q = "How is edge inference monitored?"
    records = ["landing/telemetry/ -> warehouse: fct_edge_forecasts", "asset edge_fleet_status, check "
               "edge_fleet_healthy, sensor stale_bundle_sensor"]
    seen = fleet[fleet["status"] != "never_seen"] if len(fleet) else fleet
    if not len(seen):
        return _answer(q, "devices report every forecast (bundle, latency, outcome) as telemetry; none received yet",
                       records)
    forecasts, failures = int(seen["forecasts"].sum()), int(seen["failures"].sum())
    p50 = seen["p50_ms"].dropna()
    p99 = seen["p99_ms"].dropna()
    bad = seen[seen["status"] != "ok"]
    answer = (f"from device telemetry over the last {window_hours:g} h: {forecasts} forecasts, {failures} failed "
              f"({failures / forecasts:.1%})" if forecasts else "no forecast in the window") \
        + (f"; latency p50 {p50.median():.2f} ms (median over stores), worst p99 {p99.max():.2f} ms" if len(p99) else "") \
        + (f"; stores needing action: {', '.join(f'{r.store_id} ({r.status})' for r in bad.itertuples())}"
           if len(bad) else "; every reporting store ok") \
        + "; a stale or failing store is flagged by edge_fleet_healthy and republished by stale_bundle_sensor"
    return _answer(q, answer, records, forecasts=forecasts, failures=failures,
                   p50_ms_median=float(p50.median()) if len(p50) else None,
                   p99_ms_max=float(p99.max()) if len(p99) else None, stores_not_ok=bad["store_id"].tolist())


def automation_answer(layout: DataLayout, automation: dict[str, str]) -> dict:
    """The path from a new landing file to a live version, and whether any step needs a person."""
    q = "Can a data scientist deploy without a ticket (new data to a live version with no manual step)?"
    stopped = sorted(n for n, status in automation.items() if status != "RUNNING")
    actions: dict[str, int] = {}
    for store in registry.stores(layout.models):
        for e in registry.audit_log(layout.models, store):
            actions[e["action"]] = actions.get(e["action"], 0) + 1
    chain = ("landing_files_sensor -> ingest_and_harmonize (dbt, GX checks) -> new_stores_sensor / drift_sensor / "
             "sales_spike_sensor / weekly and seasonal schedules -> store_pipeline (gate, train, promotion gate) "
             "-> eager demand_forecast, store_inventory_cover, edge_bundle")
    answer = (f"{chain}. " + ("Every sensor and schedule on it starts running by default" if not stopped else
                              f"NOT without a manual step: {', '.join(stopped)} start stopped")
              + ". Live changes on record: " + (", ".join(f"{k} {v}" for k, v in sorted(actions.items())) or "none")
              + " (gate = promoted by the promotion gate with no person; promote/rollback = by hand, audited)")
    return _answer(q, answer, ["code location definitions (default status of each sensor and schedule)",
                               "models/store=*/audit.jsonl"], automation=automation, live_changes=actions)


def targets_answer(layout: DataLayout, targets: dict) -> dict:
    q = "Which storage and compute targets are configured?"
    answer = "; ".join(f"{k}: {v}" for k, v in targets.items())
    return _answer(q, answer, ["settings (ForecastSettings, RETAIL_DATA_DIR)", "DAGSTER_HOME/dagster.yaml"],
                   **targets)


def build_report(layout: DataLayout, *, signing_key, fleet: pd.DataFrame, fleet_window_hours: float,
                 peaks: list[dict], automation: dict[str, str], targets: dict, today: dt.date | None = None,
                 seed: int = 0) -> dict:
    """Every answer, in the order an auditor asks."""
    rng = random.Random(seed)
    today = today or dt.date.today()
    trace = trace_answer(layout, rng)
    answers = [trace, rollback_answer(layout, signing_key, prefer=trace["figures"].get("store_id")),
               lag_answer(layout, peaks, today), live_answer(layout, fleet), edge_answer(fleet, fleet_window_hours),
               automation_answer(layout, automation), targets_answer(layout, targets)]
    return {"generated_at": registry.utc_now(),
            "data_root": str(layout.root), "answers": answers}


def markdown(report: dict) -> str:
    out = [f"# Audit report\n\nGenerated {report['generated_at']} from the records under `{report['data_root']}`.\n"]
    for a in report["answers"]:
        out.append(f"## {a['question']}\n\n{a['answer']}\n\n*Records:* " + ", ".join(f"`{r}`" for r in a["records"])
                   + "\n")
    return "\n".join(out)


def to_json(report: dict) -> str:
    return json.dumps(report, indent=1, default=str)
