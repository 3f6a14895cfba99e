"""The model registry: what was trained and published, what is live per store, rollback, and the audit log.

Files per store (`models/store=<id>/registry.jsonl`, `audit.jsonl`: append-only, one locked write per line;
`live.json`: rewritten atomically), so parallel store partitions never write the same file and concurrent
writers to one store (a run and a `retail rollback`) never lose each other's lines. Pure: no Dagster.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Callable

from retail_assets.core.atomic import append_line, read_lines, sha256_file
from retail_assets.core.ids import validate_store_id
from retail_assets.core.registry.versions import LIVE_POINTER, ModelVersion, live_version, write_live_pointer
from retail_assets.settings import store_partition

REGISTRY = "registry.jsonl"
AUDIT = "audit.jsonl"


class RegistryError(ValueError):
    """A registry request that cannot be honoured; the message says why."""


def utc_now() -> str:
    """The registry's timestamps (audit lines, retrain lags, run tags): UTC, ISO 8601 to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _append(path: Path, entry: dict, unless: Callable[[list[dict]], bool] | None = None) -> bool:
    """One JSON line; skipped (False) when `unless(entries already there)` holds, decided under the file lock."""
    check = (lambda lines: unless([json.loads(line) for line in lines])) if unless else None
    return append_line(path, json.dumps(entry, sort_keys=True), unless=check)


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in read_lines(path)]


def store_dir(models_root: Path, store_id: str) -> Path:
    return store_partition(models_root, store_id)


def record_model(models_root: Path, mv: ModelVersion) -> None:
    """One line per trained version (a reused version is not recorded twice)."""
    path = store_dir(models_root, mv.store_id) / REGISTRY
    s = mv.manifest["summary"]
    _append(path, {
        "kind": "model", "store_id": mv.store_id, "version": mv.version, "created_at": mv.manifest["created_at"],
        "features_data_version": mv.manifest["features_data_version"], "code_version": mv.manifest["code_version"],
        "manifest_sha256": sha256_file(mv.path / "manifest.json"), "champion_mix": s["champion_mix"],
        "heldout_weighted_wape_champion": s["heldout_weighted_wape_champion"],
        "heldout_weighted_wape_seasonal_naive": s["heldout_weighted_wape_seasonal_naive"],
        "heldout_coverage_calibrated": s["heldout_coverage_calibrated"], "items": s["items"],
        # the promotion gate's decision (core/registry/promotion.py): live, or a challenger with the reason
        **({"live": mv.promotion["promote"], "promotion": mv.promotion} if mv.promotion else {}),
    }, unless=lambda entries: any(e["kind"] == "model" and e["version"] == mv.version for e in entries))


def record_retrain(models_root: Path, mv: ModelVersion, trigger: dict, started_at: str, decided_at: str) -> dict:
    """One line per triggered retrain (drift, sales spike, schedule): when the trigger was first detected, when
    the retrain started, when its version went live, or that it was held back or reused (the live version's
    inputs were unchanged): the lags an auditor asks for, from the records themselves."""
    outcome = "reused" if mv.promotion is None else ("live" if mv.promotion["promote"] else "held back")
    entry = {"kind": "retrain", "store_id": mv.store_id, "version": mv.version, "created_at": decided_at,
             "trigger": trigger.get("kind", "manual"), "detected_at": trigger.get("detected_at"),
             "trigger_detail": trigger.get("detail"), "retrain_started_at": started_at, "decided_at": decided_at,
             "live_at": decided_at if outcome == "live" else None, "outcome": outcome,
             "reason": mv.promotion["reason"] if mv.promotion else "inputs unchanged: the live version serves"}
    _append(store_dir(models_root, mv.store_id) / REGISTRY, entry)
    return entry


def record_bundle(models_root: Path, store_id: str, manifest: dict, path: Path, zip_sha256: str) -> None:
    """One line per publication (a republish of the same bundle is a new line: it is a new push)."""
    with zipfile.ZipFile(path) as zf:  # the signed bytes a device reports the hash of
        manifest_sha256 = hashlib.sha256(zf.read("manifest.json")).hexdigest()
    _append(store_dir(models_root, store_id) / REGISTRY, {
        "kind": "bundle", "store_id": store_id, "bundle_version": manifest["bundle_version"],
        "version": manifest["model_version"], "created_at": manifest["created_at"],
        "file": recorded_path(models_root, path),
        "zip_sha256": zip_sha256, "manifest_sha256": manifest_sha256, "files": manifest["files"],
        "verification_max_rel_error": manifest["verification"]["max_rel_error"],
    })


def recorded_path(models_root: Path, path: Path) -> str:
    """A path as the registry records it: relative to the data root (the parent of `models/`), so a moved or
    remounted data root keeps a readable registry."""
    return Path(path).resolve().relative_to(Path(models_root).resolve().parent).as_posix()


def recorded_file(models_root: Path, recorded: str) -> Path:
    """The file a registry entry names, under this data root (entries written before paths were relative
    are absolute and kept as they are). A relative entry that would leave the data root is refused."""
    root = Path(models_root).parent
    path = root / recorded
    if not Path(recorded).is_absolute() and not path.resolve().is_relative_to(root.resolve()):
        raise RegistryError(f"registry entry {recorded!r} points outside the data root: refusing it")
    return path


def history(models_root: Path, store_id: str) -> list[dict]:
    return _read(store_dir(models_root, store_id) / REGISTRY)


def audit_log(models_root: Path, store_id: str) -> list[dict]:
    return _read(store_dir(models_root, store_id) / AUDIT)


def stores(models_root: Path) -> list[str]:
    return sorted(p.name.split("=", 1)[1] for p in Path(models_root).glob("store=*") if (p / LIVE_POINTER).exists())


def live_rows(models_root: Path, store: str | None = None) -> list[dict]:
    """One row per store: the live version with its champion mix and held-out accuracy."""
    rows = []
    for s in ([validate_store_id(store)] if store else stores(models_root)):
        mv = live_version(models_root, s)
        if mv is None:
            continue
        sm = mv.manifest["summary"]
        bundles = [e for e in history(models_root, s) if e["kind"] == "bundle" and e["version"] == mv.version]
        rows.append({
            "store_id": s, "live_version": mv.version, "created_at": mv.manifest["created_at"],
            "features_data_version": mv.manifest["features_data_version"][:16],
            "code_version": mv.manifest["code_version"], "champion_mix": sm["champion_mix"],
            "heldout_wape_champion": sm["heldout_weighted_wape_champion"],
            "heldout_wape_naive": sm["heldout_weighted_wape_seasonal_naive"],
            "coverage": sm["heldout_coverage_calibrated"],
            "bundle_version": bundles[-1]["bundle_version"] if bundles else None,
        })
    return rows


def verify_version(models_root: Path, store_id: str, version: str) -> ModelVersion:
    """A stored version whose every file still matches the SHA-256 in its manifest, or a RegistryError."""
    if not version.startswith("v") or not version[1:].isalnum():
        raise RegistryError(f"{version!r} is not a model version (they look like v1a2b3c4d5e6f)")
    vdir = store_dir(models_root, store_id) / version
    manifest_path = vdir / "manifest.json"
    if not manifest_path.exists():
        known = [e["version"] for e in history(models_root, store_id) if e["kind"] == "model"]
        raise RegistryError(f"store {store_id} has no model version {version}; known: {', '.join(known) or 'none'}")
    manifest = json.loads(manifest_path.read_text())
    for name, digest in manifest["files"].items():
        f = vdir / name
        if not f.exists() or hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            raise RegistryError(f"{version}/{name} is missing or does not match its SHA-256: refusing to serve it")
    return ModelVersion(store_id, version, vdir, manifest)


def set_live(models_root: Path, mv: ModelVersion, action: str, reason: str, previous: str | None,
             extra: dict | None = None) -> dict:
    """Point the store at `mv` and write who/when/why to its audit log (`action`: rollback, promote by hand,
    or gate when the promotion gate put a new training live)."""
    sdir = store_dir(models_root, mv.store_id)
    write_live_pointer(mv)
    entry = {"action": action, "store_id": mv.store_id, "from": previous, "to": mv.version, "reason": reason,
             "who": getpass.getuser(), "when": utc_now(),
             **(extra or {})}
    _append(sdir / AUDIT, entry)
    return entry


def challengers(models_root: Path, store_id: str) -> list[dict]:
    """The store's versions the promotion gate held back and that never went live since, newest last."""
    entries = history(models_root, store_id)
    went_live = {e["to"] for e in audit_log(models_root, store_id)}
    return [e for e in entries if e["kind"] == "model" and e.get("live") is False and e["version"] not in went_live]


def retrain_lag_rows(models_root: Path) -> list[dict]:
    """Every triggered retrain of every store, with the hours from first detection to live (None when held
    back, reused, or the trigger has no detection time)."""
    rows = []
    for s in stores(models_root):
        for e in history(models_root, s):
            if e["kind"] != "retrain":
                continue
            hours = None
            if e.get("detected_at") and e.get("live_at"):
                hours = (dt.datetime.fromisoformat(e["live_at"]) - dt.datetime.fromisoformat(e["detected_at"])
                         ).total_seconds() / 3600
            rows.append({**e, "detection_to_live_hours": hours})
    return rows
