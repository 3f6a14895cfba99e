"""Realistic edge telemetry for the demo fleet, written into the landing zone like a shipper would.

Telemetry names the bundles a store actually runs, and bundle versions are content hashes that exist only
after training, so this part of the generator runs after the first publish (`retail generate-telemetry`;
`retail run` does it once for a generated demo zone). Seeded: the same registry, seed and `now` give
byte-identical files. Every device forecasts every `every_minutes` (with jitter) over the last `hours`:

- healthy stores serve their live bundle, ~15 ms per forecast (load, verify, predict), rare failures;
- one store is stuck on an old bundle (its previous publication, or the pre-platform bundle it came with);
- one store fails a quarter of its forecasts (onnxruntime errors and refusals of an expired horizon);
- one slow device answers in ~400 ms;
- with six or more stores, one device went silent 30 hours ago;
- a few malformed lines (a power cut mid-line, bad and infinite latencies, an unknown outcome, a path as store
  id, a newer schema, a time without its offset) and one file shipped twice (duplicate records). Their counts go to `_truth/telemetry.json`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np

from retail_assets.core.atomic import atomic_write_text
from retail_assets.core.monitor.fleet import live_bundles
from retail_assets.edge.telemetry import RUNNER, SCHEMA

HEALTHY_MEDIAN_MS, SLOW_MEDIAN_MS = 15.0, 400.0  # 15 ms: the real runner on a demo bundle (README)
FAILING_RATE, HEALTHY_FAILURE_RATE = 0.25, 0.002
SILENT_FOR_HOURS = 30
POWER_CUT_LINE = '{"record_id": "cut-by-power-loss", "schema": 1, "store_id": "{store}", "started_'


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _legacy(store: str) -> str:
    return "b" + hashlib.sha256(f"pre-platform-{store}".encode()).hexdigest()[:12]


def generate_fleet_telemetry(landing: Path, models_root: Path, now: dt.datetime, seed: int = 42,
                             hours: int = 72, every_minutes: int = 20) -> dict:
    """Write telemetry for every store with a live bundle; return (and write) the truth sidecar."""
    landing, now = Path(landing), now.astimezone(dt.timezone.utc)
    live = {s: lb for s, lb in sorted(live_bundles(models_root).items()) if lb.bundle_version}
    if not live:
        raise ValueError(f"no store in {models_root} has a published bundle: run the pipeline first")
    stores = list(live)
    roles = {s: "healthy" for s in stores}
    for role, s in zip(("stale", "failing", "slow"), stores[1:] + stores[:1] if len(stores) >= 4 else stores):
        roles[s] = role
    if len(stores) >= 6:
        roles[stores[5]] = "silent"
    rng = np.random.default_rng(seed)
    truth = {"now": _iso(now), "hours": hours, "roles": roles, "records": 0, "duplicates": 0,
             "malformed": {}, "files": []}
    for store in stores:
        lb, role = live[store], roles[store]
        host = f"pos-{store}-edge01"
        bundle, manifest_sha = lb.bundle_version, lb.manifest_sha256
        if role == "stale":
            older = [b for b in lb.published if b != lb.bundle_version]
            bundle = older[-1] if older else _legacy(store)
            manifest_sha = hashlib.sha256(f"manifest-{bundle}".encode()).hexdigest()
        start = now - dt.timedelta(hours=hours)
        end = now - dt.timedelta(hours=SILENT_FOR_HOURS) if role == "silent" else now
        n = max(0, int((end - start).total_seconds() // (every_minutes * 60)))
        offsets = np.arange(1, n + 1) * every_minutes * 60 - rng.uniform(0, 120, n)
        median = SLOW_MEDIAN_MS if role == "slow" else HEALTHY_MEDIAN_MS
        latency = median * np.exp(rng.normal(0, 0.5 if role == "slow" else 0.25, n))
        fail_p = FAILING_RATE if role == "failing" else HEALTHY_FAILURE_RATE
        fails = rng.uniform(size=n) < fail_p
        refused = rng.uniform(size=n) < 0.4
        by_day: dict[str, list[str]] = {}
        for k in range(n):
            t = start + dt.timedelta(seconds=float(offsets[k]))
            rec = {"record_id": rng.bytes(16).hex(), "schema": SCHEMA, "store_id": store, "bundle_version": bundle,
                   "model_versions": [lb.published.get(bundle, "v-unknown")], "manifest_sha256": manifest_sha,
                   "verified": True, "started_at": _iso(t), "latency_ms": round(float(latency[k]), 3),
                   "predict_ms": round(float(latency[k]) * 0.02, 4), "outcome": "ok", "error_class": None,
                   "error": None, "items": None, "horizon": 28, "host": host, "runner": RUNNER}
            if fails[k]:
                if refused[k]:
                    rec.update(outcome="refused", error_class="BundleError", verified=False, predict_ms=None,
                               error="horizon 28 from today runs past this bundle's last day: expired horizon")
                else:
                    rec.update(outcome="error", error_class="Fail", predict_ms=None,
                               error="[ONNXRuntimeError] : 1 : FAIL : bad allocation")
            by_day.setdefault(t.strftime("%Y%m%d"), []).append(json.dumps(rec, separators=(",", ":")))
        truth["records"] += n
        if role == "failing" and by_day:  # what a real fleet sends now and then
            day = max(by_day)
            good = json.loads(by_day[day][-1])
            bad = [  # (the reason the platform must give, the line as it arrived)
                ("not_json_object", POWER_CUT_LINE.replace("{store}", store)),
                ("invalid_latency", {**good, "latency_ms": "fast"}),
                ("invalid_latency", {**good, "latency_ms": "Infinity"}),  # parses as a double, not finite
                ("unknown_outcome", {**good, "outcome": "timeout"}),
                ("invalid_store_id", {**good, "store_id": "../../etc/passwd"}),
                ("unsupported_schema", {**good, "schema": 2}),
                ("unparseable_timestamp", {**good, "started_at": good["started_at"].rstrip("Z")}),  # no offset
            ]
            for k, (reason, line) in enumerate(bad):
                by_day[day].append(line if isinstance(line, str) else
                                   json.dumps({**line, "record_id": f"x{k}" + good["record_id"][2:]}))
                truth["malformed"][reason] = truth["malformed"].get(reason, 0) + 1
        for day, lines in sorted(by_day.items()):
            rel = Path("telemetry") / f"store={store}" / f"{host}-{day}.jsonl"
            atomic_write_text(landing / rel, "\n".join(lines) + "\n")
            truth["files"].append(rel.as_posix())
        if role == "healthy" and truth["duplicates"] == 0 and by_day:  # the shipper retried: a file twice
            day = min(by_day)
            rel = Path("telemetry") / f"store={store}" / f"{host}-{day}.retry.jsonl"
            atomic_write_text(landing / rel, "\n".join(by_day[day]) + "\n")
            truth["files"].append(rel.as_posix())
            truth["duplicates"] = len(by_day[day])
    truth["lines"] = truth["records"] + truth["duplicates"] + sum(truth["malformed"].values())
    atomic_write_text(landing / "_truth" / "telemetry.json", json.dumps(truth, indent=1, sort_keys=True))
    return truth
