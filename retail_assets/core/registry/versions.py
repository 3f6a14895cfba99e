"""The model store: a store's versioned, hashed model directories and the one live pointer. Readers of
"what is live" (registry, serving, edge bundle, monitoring, trace) import this, never the fitting code.

Layout: `<models>/store=<id>/<version>/` with `items/<item>.json` (the champion's artifact: Prophet's own JSON,
a baseline's state, a classic model's forecast path, the item's inputs to the store's LightGBM model, or a
combination's weights and parts; `<item>` is `ids.path_component(item_id)`, the manifest's
`items[item_id]["file"]` names it), `lightgbm.txt` (the store's LightGBM model in its own text format),
`manifest.json` (versions, data version, metrics, calibration, SHA-256 of every file) and `live.json` one level
up pointing at the served version.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from retail_assets.core.atomic import atomic_write_bytes, atomic_write_text, sha256_file
from retail_assets.core.canonical import dumps
from retail_assets.core.forecast.gbm import TREE_FILES
from retail_assets.core.forecast.models import MODELS
from retail_assets.core.ids import path_component, validate_store_id
from retail_assets.settings import REPO_DIR, store_partition

if TYPE_CHECKING:
    from retail_assets.core.fitting.champion import ItemDecision, StoreTraining
    from retail_assets.core.forecast.backtest import ItemResult

LIVE_POINTER = "live.json"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus the git commit when the code runs from a checkout. Read once per process: the
    commit whose code was imported, not whatever the checkout moved to while a long run went on.
    `$RETAIL_CODE_VERSION` names it instead (an install without git; comparing two builds of equal behaviour)."""
    from importlib.metadata import PackageNotFoundError, version

    if os.environ.get("RETAIL_CODE_VERSION"):
        return os.environ["RETAIL_CODE_VERSION"]

    try:
        pkg = version("retail_assets")
    except PackageNotFoundError:
        pkg = "0+unknown"
    try:
        sha = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{pkg}+{sha}" if sha else pkg


def library_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("prophet", "cmdstanpy", "statsforecast", "lightgbm", "pandas", "numpy")}

@dataclass
class ModelVersion:
    store_id: str
    version: str
    path: Path
    manifest: dict
    reused: bool = False
    promotion: dict | None = None  # the gate's decision (core/registry/promotion.py); None: reused as it was


BOOSTER_FILE = TREE_FILES["plain"]  # the store's LightGBM model in LightGBM's own text format, beside the items


def read_booster_text(version_dir: Path, sha256: str, name: str = BOOSTER_FILE) -> str:
    """One of the version's LightGBM models (gbm.TREE_FILES), refused unless its bytes have `sha256` (what the
    manifest and the items that use it record): a model changed after training is never served or compiled."""
    if name not in TREE_FILES.values():
        raise ValueError(f"booster file {name!r} is none of {sorted(TREE_FILES.values())}")
    data = (version_dir / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{version_dir / name} is not the LightGBM model this version records (SHA-256 "
                         f"{sha256[:16]}...): it changed after training; retrain or restore it")
    return data.decode()


def model_artifact(model: str, r: ItemResult, booster_sha256: dict[str, str]) -> str:
    """The served artifact of `model` for one item: Prophet's own JSON; a baseline's state; a classic model's
    forecast path from the anchor date; the item's inputs to the store's LightGBM model that serves it (stored
    once per version, named here with its SHA-256: `booster_sha256` by file); a combination's weights and each
    part's artifact."""
    anchor = r.baseline_state["anchor_date"]
    if model == "prophet":
        return r.prophet_json  # Prophet's own serializer (no pickle)
    if model in ("seasonal_naive", "moving_average"):
        return dumps({"model": model, **r.baseline_state})
    if model == "lightgbm":
        name = r.gbm_state.get("booster_file", BOOSTER_FILE)
        return dumps({"model": model, "anchor_date": anchor, **r.gbm_state, "booster_file": name,
                      "booster_sha256": booster_sha256.get(name)})
    if model == "combination":
        return dumps({"model": model, "weights": r.weights,
                      "parts": {m: model_artifact(m, r, booster_sha256) for m in sorted(r.weights)}})
    return dumps({"model": model, "anchor_date": anchor, "path": r.future_paths[model]})


def item_artifact(r: ItemResult, d: ItemDecision, booster_sha256: dict[str, str] | None = None) -> str:
    return model_artifact(d.champion, r, booster_sha256 or {})


def backtest_parquet(t: StoreTraining) -> bytes:
    """Every fold forecast (all models, Prophet's raw bounds) for plots and audits."""
    import io

    rows = []
    for r in t.results:
        for f in r.folds:
            for h, day in enumerate(f.dates):
                row = {"item_id": r.item_id, "fold": f.fold, "kind": f.kind, "date": day, "horizon_day": h + 1, "y": f.y[h],
                       "is_open_day": f.open_day[h], "scale": f.scale, "level": f.level,
                       "prophet_raw_lower": f.raw_lower[h] if f.raw_lower else None,
                       "prophet_raw_upper": f.raw_upper[h] if f.raw_upper else None}
                for m in MODELS:
                    row[m] = f.yhat[m][h] if m in f.yhat else None
                rows.append(row)
    columns = ["item_id", "fold", "kind", "date", "horizon_day", "y", "is_open_day", "scale", "level",
               "prophet_raw_lower", "prophet_raw_upper", *MODELS]
    frame = pd.DataFrame(rows, columns=columns)
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def item_file(item_id: str) -> str:
    """An item's artifact, relative to its version directory: a sku from a landing file never picks the path."""
    return f"items/{path_component(item_id)}.json"


def write_version(models_root: Path, t: StoreTraining, features_version: str,
                  warm_started_from: str | None = None, go_live: bool = True) -> ModelVersion:
    """Write every item artifact and the manifest into a new version directory, then (`go_live`) flip
    `live.json`; the promotion gate (core/registry/promotion.py) writes without flipping and decides."""
    store_id = validate_store_id(t.store_id)
    store_dir = store_partition(models_root, store_id)
    boosters = {name: text.encode() for name, text in sorted(t.gbm_texts.items())}
    booster_shas = {name: hashlib.sha256(data).hexdigest() for name, data in boosters.items()}
    artifacts = {d.item_id: item_artifact(r, d, booster_shas) for r, d in zip(t.results, t.decisions)}
    item_hashes = {i: hashlib.sha256(a.encode()).hexdigest() for i, a in sorted(artifacts.items())}
    code = code_version()
    # the weather factor's slopes decide the served forecast but live in the manifest, not in an artifact
    weather = {r.item_id: r.temperature_slope for r in t.results if r.temperature_slope}
    identity = dumps({"features": features_version, "code": code, "config": t.cfg.to_json(),
                      "items": item_hashes, "calibration": t.calibration.to_json(),
                      "booster": booster_shas.get(BOOSTER_FILE),
                      **({"boosters": booster_shas} if set(booster_shas) - {BOOSTER_FILE} else {}),
                      **({"temperature_slopes": weather} if weather else {})})
    version = "v" + hashlib.sha256(identity.encode()).hexdigest()[:12]
    vdir = store_dir / version
    files = {i: item_file(i) for i in artifacts}
    for item_id, text in artifacts.items():
        atomic_write_text(vdir / files[item_id], text)
    for name, data in boosters.items():
        atomic_write_bytes(vdir / name, data)
    decisions = {
        d.item_id: {"champion": d.champion, "reason": d.reason, "status": d.status, "error": d.error,
                    "backtest": d.backtest, "heldout": d.heldout, "heldout_champion": d.heldout_champion,
                    "scale": r.scale, "level": r.level, "sha256": item_hashes[d.item_id], "file": files[d.item_id],
                    "fit_seconds": round(r.fit_seconds, 4), "warm_started": r.warm_started,
                    "prophet_fit_starts": dict(sorted(r.fit_starts.items())),
                    "prophet_fit_optimizers": dict(sorted(r.fit_optimizers.items())), "prophet_spec": r.spec,
                    "intermittent": r.intermittent, "combination_weights": r.weights,
                    "history_stage": r.stage, "analog_stores": r.analog_stores, "analog_rule": r.analog_rule,
                    "temperature_slope": r.temperature_slope,
                    "interval_pool": t.calibration.key(d.champion, r.level)}
        for r, d in zip(t.results, t.decisions)
    }
    manifest = {
        "store_id": store_id,
        "version": version,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "features_data_version": features_version,
        "code_version": code,
        "libraries": library_versions(),
        "config": t.cfg.to_json(),
        "calibration": t.calibration.to_json(),
        "summary": t.summary,
        "warm_started_from": warm_started_from,
        "items": decisions,
        "files": {files[i]: h for i, h in item_hashes.items()},
    }
    manifest["files"].update(booster_shas)
    backtest_bytes = backtest_parquet(t)
    atomic_write_bytes(vdir / "backtest.parquet", backtest_bytes)
    manifest["files"]["backtest.parquet"] = hashlib.sha256(backtest_bytes).hexdigest()
    atomic_write_text(vdir / "manifest.json", dumps(manifest))
    mv = ModelVersion(store_id, version, vdir, manifest)
    if go_live:
        write_live_pointer(mv)
    return mv


def write_live_pointer(mv: ModelVersion) -> None:
    """Flip the store's one live pointer to `mv` (a new training, or a rollback)."""
    atomic_write_text(mv.path.parent / LIVE_POINTER, dumps({
        "version": mv.version, "manifest_sha256": sha256_file(mv.path / "manifest.json"),
        "features_data_version": mv.manifest["features_data_version"], "code_version": mv.manifest["code_version"],
    }))


def read_version(models_root: Path, store_id: str, version: str) -> ModelVersion | None:
    """A stored version by name (no hash check: `records.verify_version` does that before serving one)."""
    vdir = store_partition(models_root, store_id) / version
    if not version.startswith("v") or not version[1:].isalnum() or not (vdir / "manifest.json").exists():
        return None
    return ModelVersion(store_id, version, vdir, json.loads((vdir / "manifest.json").read_text()))


def live_version(models_root: Path, store_id: str) -> ModelVersion | None:
    store_dir = store_partition(models_root, store_id)
    pointer = store_dir / LIVE_POINTER
    if not pointer.exists():
        return None
    version = json.loads(pointer.read_text())["version"]
    vdir = store_dir / version
    return ModelVersion(store_id, version, vdir, json.loads((vdir / "manifest.json").read_text()))
