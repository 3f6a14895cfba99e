"""Backtest folds cached by what made them, so a retrain costs what changed: a fold's forecasts are kept under
the SHA-256 of everything its fits read (the item's rows up to the fold's end, actuals only before its origin,
the holidays, the Prophet specification, whether Prophet still runs) salted with the code version, the
libraries' versions and the training configuration. The same key gives the same forecasts, so a hit is the
fit it replaces, not an approximation: a retrain after a new day refits the final models, and a fold again
only when its inputs moved (daily folds end on the last Sunday, `TrainConfig.anchor_folds`, so they move once
a week: the weekly full re-backtest), a late row changed its window, or code, libraries or configuration
changed.

One JSON file per store (`<models>/store=<id>/fold_cache.json`), rewritten atomically after each training with
the entries that training used or made: its size follows the store, not its history of retrains. Pure
hashing and file IO; no Dagster."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from retail_assets.core.atomic import atomic_write_text
from retail_assets.settings import store_partition

CACHE_FILE = "fold_cache.json"
FORMAT = 1  # bump when an entry's meaning changes


def digest(obj) -> str:
    """SHA-256 of plain JSON (lists, floats, strings): not core/canonical.dumps, which walks every value in
    Python; a key covers an item's whole history and is made for every fold of every retrain."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def salt(code_version: str, libraries: dict[str, str], config: dict) -> str:
    """What every key of a training shares: a change of code, library or configuration misses them all."""
    return digest({"format": FORMAT, "code": code_version, "libraries": libraries, "config": config})


def cache_path(models_root: Path, store_id: str) -> Path:
    return store_partition(models_root, store_id) / CACHE_FILE


def load(path: Path, expected_salt: str) -> dict:
    """{"items": {item: {key: entry}}, "store": {key: entry}}; empty when the file is missing, unreadable or
    written under another salt (everything is refitted then, which is always correct)."""
    empty = {"items": {}, "store": {}}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return empty
    if not isinstance(data, dict) or data.get("salt") != expected_salt:
        return empty
    return {"items": data.get("items") or {}, "store": data.get("store") or {}}


def save(path: Path, cache_salt: str, items: dict[str, dict], store: dict) -> None:
    atomic_write_text(path, json.dumps({"salt": cache_salt, "items": items, "store": store},
                                       separators=(",", ":")))
