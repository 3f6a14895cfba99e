"""What is actually serving: the registry's live bundle per store against what the store's device reports.

Pure (no Dagster). Inputs are the per-store registry files (what we published, and since when) and the kept
telemetry records of `fct_edge_forecasts` (what devices ran). One row per store: the live and the serving
bundle, last seen, forecasts, failure rate and latency over a window, how long the store has served a
version that is not its live one, and a status a person can act on.

A store is stale when its latest successful forecast used a bundle that is not its live one. The stale
episode starts when the live bundle was first published for the current live period (a rollback starts a
new period; a republish does not), or at the first of the store's trailing non-live reports if that is later.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from retail_assets.core.registry import records as registry

UTC = dt.timezone.utc
# worst first: the order of the table a person reads at 3 a.m.
STATUS_ORDER = ("stale_overdue", "failing", "slow", "silent", "not_in_registry", "stale_within_grace", "ok",
                "never_seen")
ERROR_STATUSES = {"stale_overdue"}
WARN_STATUSES = {"failing", "slow", "silent", "not_in_registry"}


# the warehouse table's columns, typed even when a fleet has no telemetry yet (all-NULL columns)
TABLE_COLUMNS = {
    "store_id": "varchar", "status": "varchar", "problems": "varchar", "live_model": "varchar",
    "live_bundle": "varchar", "live_since": "timestamptz", "serving_bundle": "varchar", "serving_model": "varchar",
    "in_registry": "boolean", "last_seen": "timestamptz", "hours_since_seen": "double", "forecasts": "bigint",
    "failures": "bigint", "failure_rate": "double", "p50_ms": "double", "p99_ms": "double",
    "stale_hours": "double", "episode_start": "timestamptz", "hosts": "varchar",
}


@dataclass(frozen=True)
class FleetConfig:
    stale_grace_hours: float = 24.0
    window_hours: float = 24.0
    max_failure_rate: float = 0.05
    max_p99_latency_ms: float = 250.0
    silent_after_hours: float = 6.0
    min_forecasts: int = 10  # fewer forecasts in the window than this: no failure-rate or p99 verdict


@dataclass(frozen=True)
class LiveBundle:
    store_id: str
    model_version: str
    bundle_version: str | None
    manifest_sha256: str | None
    since: pd.Timestamp | None  # when this live bundle was first published in the current live period
    published: dict  # every bundle version this store ever published -> its model version


def _ts(text: str | None) -> pd.Timestamp | None:
    if not text:
        return None
    t = pd.Timestamp(text)
    return t.tz_convert(UTC) if t.tzinfo else t.tz_localize(UTC)


def live_bundles(models_root: Path) -> dict[str, LiveBundle]:
    """Per store with a live model: its live bundle and since when it is live."""
    out = {}
    for row in registry.live_rows(models_root):
        store = row["store_id"]
        entries = registry.history(models_root, store)
        bundles = [e for e in entries if e["kind"] == "bundle"]
        live_bv = row["bundle_version"]
        # a rollback (or any audited live change) to this model version starts a new live period
        period_start = max((_ts(a["when"]) for a in registry.audit_log(models_root, store)
                            if a.get("to") == row["live_version"]), default=None)
        # ... and so does any publication of another bundle: the live one is live since its first publication
        # after the last other one
        last_other = max((_ts(e["created_at"]) for e in bundles if e["bundle_version"] != live_bv), default=None)
        firsts = [_ts(e["created_at"]) for e in bundles if e["bundle_version"] == live_bv
                  and (last_other is None or _ts(e["created_at"]) >= last_other)
                  and (period_start is None or _ts(e["created_at"]) >= period_start - pd.Timedelta(minutes=5))]
        since = min(firsts) if firsts else None
        if since is None and live_bv is not None:  # published before the period started (rolled back to it)
            since = period_start
        sha = next((e.get("manifest_sha256") for e in reversed(bundles) if e["bundle_version"] == live_bv), None)
        out[store] = LiveBundle(store, row["live_version"], live_bv, sha, since,
                                {e["bundle_version"]: e["version"] for e in bundles})
    return out


def read_telemetry(con) -> pd.DataFrame:
    """Kept telemetry rows from the warehouse (an empty frame when the mart does not exist yet)."""
    exists = con.execute("select count(*) from information_schema.tables where table_name = 'fct_edge_forecasts'"
                         ).fetchone()[0]
    cols = ["store_id", "bundle_version", "manifest_sha256", "started_at_utc", "latency_ms", "outcome",
            "error_class", "host"]
    if not exists:
        return pd.DataFrame(columns=cols)
    df = con.execute(f"select {', '.join(cols)} from fct_edge_forecasts order by store_id, started_at_utc").df()
    df["started_at_utc"] = pd.to_datetime(df["started_at_utc"], utc=True)
    return df


def current_status(models_root: Path, warehouse: Path, as_of: pd.Timestamp, cfg: FleetConfig,
                   wait_seconds: float | None = None) -> pd.DataFrame:
    """The fleet as of `as_of`, from the registry files and the warehouse (opened read-only): what the asset,
    the republish sensor and `retail models` all show."""
    from retail_assets.core.warehouse import RUN_READER_WAIT_S, connect_readonly

    wait = RUN_READER_WAIT_S if wait_seconds is None else wait_seconds  # sensors pass 0: busy means next tick
    with connect_readonly(warehouse, wait) as con:
        tele = read_telemetry(con)
    return fleet_status(live_bundles(models_root), tele, as_of, cfg)


def _hours(delta: pd.Timedelta) -> float:
    return round(delta.total_seconds() / 3600.0, 2)


def fleet_status(live: dict[str, LiveBundle], telemetry: pd.DataFrame, as_of: pd.Timestamp,
                 cfg: FleetConfig) -> pd.DataFrame:
    """One row per store that has a live model or reports telemetry, worst first."""
    as_of = as_of.tz_convert(UTC) if as_of.tzinfo else as_of.tz_localize(UTC)
    tele = telemetry[telemetry["started_at_utc"] <= as_of] if len(telemetry) else telemetry
    tele = tele.sort_values("started_at_utc", kind="stable").reset_index(drop=True)  # time order within a store
    window_start = as_of - pd.Timedelta(hours=cfg.window_hours)
    rows = []
    for store in sorted(set(live) | set(tele["store_id"].unique() if len(tele) else [])):
        lb = live.get(store)
        recs = tele[tele["store_id"] == store] if len(tele) else tele
        row = {"store_id": store, "live_model": lb.model_version if lb else None,
               "live_bundle": lb.bundle_version if lb else None,
               "live_since": lb.since.isoformat() if lb and lb.since is not None else None,
               "serving_bundle": None, "serving_model": None, "in_registry": None, "last_seen": None,
               "hours_since_seen": None, "forecasts": 0, "failures": 0, "failure_rate": None, "p50_ms": None,
               "p99_ms": None, "stale_hours": None, "episode_start": None, "hosts": None}
        problems: list[str] = []
        if len(recs) == 0:
            row["status"], row["problems"] = "never_seen", "no telemetry from this store yet"
            rows.append(row)
            continue
        last = recs["started_at_utc"].max()
        row["last_seen"] = last.isoformat()
        row["hours_since_seen"] = _hours(as_of - last)
        known = lb.published if lb else {}
        judged = _judge_hosts(recs, lb, window_start)
        row["hosts"] = ", ".join(sorted(recs["host"].fillna("?").unique())[:5])
        stale_hosts = [j for j in judged if j[2] is not None]
        worst = min(stale_hosts, key=lambda j: j[2]) if stale_hosts else (judged[-1] if judged else None)
        serving = worst[1] if worst else None  # None: no successful forecast at all (failing says so)
        row["serving_bundle"] = serving
        row["serving_model"] = known.get(serving)
        row["in_registry"] = None if serving is None else serving in known
        win = recs[recs["started_at_utc"] > window_start]
        row["forecasts"] = int(len(win))
        row["failures"] = int((win["outcome"] != "ok").sum())
        if len(win):
            row["failure_rate"] = round(row["failures"] / len(win), 4)
        lat = win.loc[win["outcome"] == "ok", "latency_ms"].to_numpy(dtype=float)
        if len(lat):
            row["p50_ms"] = round(float(np.percentile(lat, 50)), 3)
            row["p99_ms"] = round(float(np.percentile(lat, 99)), 3)
        statuses = []
        if lb is None:
            statuses.append("not_in_registry")
            problems.append("reports forecasts but has no live model in the registry")
        elif stale_hosts:
            host, serving, start, _seen = worst
            row["episode_start"] = start.isoformat()
            row["stale_hours"] = max(0.0, _hours(as_of - start))
            overdue = row["stale_hours"] > cfg.stale_grace_hours
            statuses.append("stale_overdue" if overdue else "stale_within_grace")
            what = "a bundle the registry never published" if not row["in_registry"] else \
                f"an earlier bundle (model {row['serving_model']})"
            where = f"device {host} " if len(judged) > 1 else ""
            problems.append(f"{where}serves {serving}, {what}, not live {lb.bundle_version}, for "
                            f"{row['stale_hours']} h (grace {cfg.stale_grace_hours:g} h)")
        if len(win) >= cfg.min_forecasts and row["failure_rate"] > cfg.max_failure_rate:
            statuses.append("failing")
            classes = win.loc[win["outcome"] != "ok", "error_class"].fillna("?").value_counts().head(3)
            problems.append(f"{row['failures']}/{len(win)} forecasts failed in {cfg.window_hours:g} h "
                            f"({', '.join(f'{k} x{v}' for k, v in classes.items())})")
        if len(lat) >= cfg.min_forecasts and row["p99_ms"] > cfg.max_p99_latency_ms:
            statuses.append("slow")
            problems.append(f"p99 latency {row['p99_ms']:.0f} ms > {cfg.max_p99_latency_ms:g} ms")
        if row["hours_since_seen"] > cfg.silent_after_hours:
            statuses.append("silent")
            problems.append(f"last report {row['hours_since_seen']} h ago")
        row["status"] = min(statuses or ["ok"], key=STATUS_ORDER.index)
        row["problems"] = "; ".join(problems)
        rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        df["_rank"] = df["status"].map(STATUS_ORDER.index)
        df = df.sort_values(["_rank", "store_id"]).drop(columns="_rank").reset_index(drop=True)
    return df


def _judge_hosts(recs: pd.DataFrame, lb: LiveBundle | None, window_start: pd.Timestamp) -> list[tuple]:
    """Per device of a store: (host, bundle of its latest successful forecast, start of its stale episode or
    None, last seen), oldest-seen first. A store with two devices is as stale as its worst one; a device that
    has not reported within the window (retired, or the store is silent) only counts when no device has."""
    judged = []
    for host, h in recs.groupby(recs["host"].fillna("?"), sort=True):
        ok = h[h["outcome"] == "ok"]
        if not len(ok):
            continue
        serving, start = ok["bundle_version"].iloc[-1], None
        if lb is not None and lb.bundle_version is not None and serving != lb.bundle_version:
            hits = ok.index[ok["bundle_version"] == lb.bundle_version]
            start = (ok.loc[ok.index > hits.max()] if len(hits) else ok)["started_at_utc"].min()
            if lb.since is not None and lb.since > start:
                start = lb.since
        judged.append((host, serving, start, h["started_at_utc"].max()))
    active = [j for j in judged if j[3] > window_start]
    return sorted(active or judged, key=lambda j: j[3])


def stale_episodes(status: pd.DataFrame) -> list[dict]:
    """Stores past their grace on a non-live bundle, each with a key naming the episode (store, live bundle,
    episode start): the same episode keeps its key however often it is seen."""
    if not len(status):
        return []
    stale = status[status["status"] == "stale_overdue"]
    return [{"store_id": r.store_id, "live_bundle": r.live_bundle, "serving_bundle": r.serving_bundle,
             "episode_start": r.episode_start, "stale_hours": r.stale_hours,
             "key": f"{r.store_id}-{r.live_bundle}-{pd.Timestamp(r.episode_start).strftime('%Y%m%dT%H%M%S')}"}
            for r in stale.itertuples()]


def verdict(status: pd.DataFrame) -> tuple[str, list[str]]:
    """('error' | 'warn' | 'ok', the problem lines behind it)."""
    if not len(status):
        return "ok", []
    bad = status[status["status"].isin(ERROR_STATUSES | WARN_STATUSES)]
    lines = [f"{r.store_id} {r.status}: {r.problems}" for r in bad.itertuples()]
    if status["status"].isin(ERROR_STATUSES).any():
        return "error", lines
    return ("warn", lines) if len(bad) else ("ok", [])


def markdown(status: pd.DataFrame) -> str:
    """The table for the UI: one line per store, worst first, short versions."""
    if not len(status):
        return "No stores with a live model and no telemetry yet."
    head = ("| store | status | serving | live | last seen (UTC) | forecasts | failure rate | p50 ms | p99 ms "
            "| problem |\n|---|---|---|---|---|---|---|---|---|---|\n")

    def f(x, spec):
        return "" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)

    lines = []
    for r in status.itertuples():
        seen = "" if r.last_seen is None else pd.Timestamp(r.last_seen).strftime("%Y-%m-%d %H:%M")
        lines.append(f"| {r.store_id} | **{r.status}** | {r.serving_bundle or ''} | {r.live_bundle or ''} | {seen} "
                     f"| {r.forecasts} | {f(r.failure_rate, '.1%')} | {f(r.p50_ms, '.1f')} | {f(r.p99_ms, '.1f')} "
                     f"| {r.problems} |")
    return head + "\n".join(lines)


def parse_as_of(text: str | None) -> pd.Timestamp:
    return pd.Timestamp.now(tz=UTC) if not text else _ts(text)
