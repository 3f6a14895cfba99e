"""Build, verify against Prophet, sign and publish a store's edge bundle (platform side).

A bundle is a zip: `model.onnx` (every item of the store in one graph), `calendar.json` (the dates, open days,
holidays and planned promotions of its horizon, so a device needs nobody), `manifest.json` (versions, hashes,
metrics, interval offsets, verification figures) and `manifest.sig` (Ed25519 over the manifest bytes).
It is published only when its forecast matches Prophet's `predict` for every item to 1e-6 relative error.
The signed manifest also carries the store, a per-store `sequence` that only grows (devices refuse one lower
than they served) and `expires_at` (devices refuse it after), so an old or another store's bundle is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import statistics
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from retail_assets.core.atomic import atomic_write_bytes, atomic_write_text
from retail_assets.core.edge.compile import compile_store
from retail_assets.core.features.grid import promo_regressor
from retail_assets.core.forecast import gbm
from retail_assets.core.forecast.calibration import CalibrationSet
from retail_assets.core.ids import validate_store_id
from retail_assets.core.forecast.serving import predict_item
from retail_assets.core.registry.versions import ModelVersion, read_booster_text
from retail_assets.edge import runner
from retail_assets.settings import store_partition

MAX_REL_ERROR = 1e-6
MAX_REL_ERROR_TREES = 1e-5  # items that serve the LightGBM trees, which onnxmltools writes in float32
VALIDITY_DAYS = 14  # devices refuse a bundle this long after signing: one held back from them cannot serve forever


class BundleVerificationError(RuntimeError):
    """The compiled bundle does not reproduce Prophet: it is not published."""


@dataclass
class PublishedBundle:
    store_id: str
    bundle_version: str
    path: Path
    manifest: dict
    size_bytes: int


def load_private_key(pem: bytes):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(pem, password=None)


def public_key_hex(private_key) -> str:
    from cryptography.hazmat.primitives import serialization

    return private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def _calendar(mv: ModelVersion, features: pd.DataFrame, horizon: int, holiday_columns: list, items: list[str]):
    fut = features[features["is_future"]].sort_values(["item_id", "date"])
    days = sorted(fut["date"].unique())[:horizon]
    by_day = fut[fut["date"].isin(days)].drop_duplicates("date").set_index("date").sort_index()
    promo = {}
    for item in items:
        g = fut[fut["item_id"] == item].set_index("date").reindex(days)
        promo[item] = [float(v) for v in promo_regressor(g)]  # absent dates (reindexed) are no promotion
    dates = [pd.Timestamp(d).strftime("%Y-%m-%d") for d in days]
    # holidays of the horizon and of the month before it: a holiday window reaches across the first day
    # (Boxing Day is Christmas + 1); those after the features' last day are unknown to every model alike
    near = features[features["date"] >= pd.Timestamp(days[0]) - pd.Timedelta(days=31)] if days else features
    by_holiday = near.drop_duplicates("date").set_index("date")["holiday_name"]
    holidays = {pd.Timestamp(d).strftime("%Y-%m-%d"): str(n) for d, n in by_holiday.items() if isinstance(n, str)}
    return {
        "store_id": mv.store_id,
        "dates": dates,
        "open": [int(bool(v)) for v in by_day["is_open_day"]],
        "holidays": holidays,
        "holiday_columns": [list(c) for c in holiday_columns],
        # per day, the store LightGBM model's calendar input (gbm.CALENDAR_INPUTS): computed here once, so a
        # device needs no calendar arithmetic of its own
        "calendar_inputs": gbm.calendar_inputs(dates, [d in holidays for d in dates]).tolist(),
        "promo": promo,
        **_temperature(mv, dates),
    }


def _temperature(mv: ModelVersion, dates: list[str]) -> dict:
    """The temperature per day the store's trees were served with (core/forecast/weather.py: the latest
    forecast issued before the horizon, climatology beyond it) and that issue's time; a device may feed a
    newer forecast instead (edge/runner.py `--weather`). Empty for a store whose trees use no temperature."""
    outlook = mv.manifest.get("summary", {}).get("temperature_outlook")
    if not outlook:
        return {}
    by_date = dict(zip(outlook["dates"], outlook["temperature_c"]))
    source = dict(zip(outlook["dates"], outlook["source"]))
    normal = dict(zip(outlook["dates"], outlook.get("normal_c", [])))
    return {"temperature": [by_date.get(d) for d in dates], "temperature_source": [source.get(d) for d in dates],
            "temperature_issued_at": outlook["issued_at"],
            # climatology per day: the weather factor of the items it moves is temperature against this
            **({"temperature_normal": [normal.get(d) for d in dates]} if normal else {})}


def _item_artifacts(mv: ModelVersion) -> tuple[dict, dict]:
    """Each item's artifact as compiled and the SHA-256 of exactly those bytes, refused if it is not the hash
    the model manifest recorded at training (a file changed since)."""
    items, hashes = {}, {}
    for item, info in mv.manifest["items"].items():
        raw = (mv.path / info["file"]).read_bytes()
        hashes[item] = hashlib.sha256(raw).hexdigest()
        if hashes[item] != info["sha256"]:
            raise BundleVerificationError(
                f"store {mv.store_id}: {mv.path / info['file']} has SHA-256 {hashes[item][:16]}..., the model "
                f"manifest records {str(info['sha256'])[:16]}...: the model file changed after training; retrain "
                "or restore it (not published)")
        items[item] = {"champion": info["champion"], "artifact": raw.decode("utf-8"),
                       "temperature_slope": info.get("temperature_slope") or 0.0}
    return items, hashes


def _booster_texts(mv: ModelVersion) -> dict[str, str]:
    """The version's LightGBM models by file (gbm.TREE_FILES), refused if one is not the bytes the manifest
    recorded."""
    files = mv.manifest.get("files", {})
    try:
        return {name: read_booster_text(mv.path, files[name], name) for name in gbm.TREE_FILES.values() if name in files}
    except ValueError as exc:
        raise BundleVerificationError(f"store {mv.store_id}: {exc} (not published)") from exc


def _next_sequence(store_dir: Path) -> int:
    """One more than the store's last published sequence (in its latest.json; 1 when there is none)."""
    latest = store_dir / "latest.json"
    if not latest.exists():
        return 1
    try:
        last = json.loads(latest.read_text()).get("sequence", 0)
    except (ValueError, AttributeError) as exc:
        raise BundleVerificationError(f"{latest} is unreadable ({exc}): fix it before publishing (devices refuse a "
                                      "bundle sequence lower than one they served)") from exc
    if not isinstance(last, int) or isinstance(last, bool) or last < 0:
        raise BundleVerificationError(f"{latest} records sequence {last!r}, not a count: fix it before publishing")
    return last + 1


# the build's latency figure: timed runs until this budget has passed (at least LATENCY_MIN_RUNS, at most the
# caller's `latency_runs`); 200 runs took ~0.7-1.9 s of each store's 1.5-4 s publication on the demo's stores
LATENCY_BUDGET_SECONDS = 0.1
LATENCY_MIN_RUNS = 20


def build_bundle(mv: ModelVersion, features: pd.DataFrame, horizon: int, private_key, out_root: Path,
                 code_version: str, latency_runs: int = 200,
                 validity_days: float = VALIDITY_DAYS) -> PublishedBundle:
    """Compile, verify, sign and publish. The manifest's `expires_at` is `validity_days` after signing, not the
    horizon's end: devices refuse dates outside the horizon anyway, and a bundle of past dates (a demo, a
    backfill) would otherwise be born expired."""
    store_id = validate_store_id(mv.store_id)
    items, item_hashes = _item_artifacts(mv)
    compiled = compile_store(items, _booster_texts(mv))
    calendar = _calendar(mv, features, horizon, compiled.holidays, compiled.items)
    calendar_bytes = json.dumps(calendar, sort_keys=True, indent=1).encode()
    calibration = CalibrationSet.from_json(mv.manifest["calibration"])
    verification = verify_against_reference(mv, compiled, calendar)
    if verification["over_limit"]:
        raise BundleVerificationError(
            f"store {store_id}: bundle differs from the served models beyond its limit on "
            f"{', '.join(verification['over_limit'][:5])} (worst relative error {verification['max_rel_error']:.2e}; "
            f"limits {MAX_REL_ERROR:.0e}, {MAX_REL_ERROR_TREES:.0e} where the trees serve): not published")
    files = {"model.onnx": compiled.onnx_bytes, "calendar.json": calendar_bytes}
    hashes = {n: hashlib.sha256(b).hexdigest() for n, b in sorted(files.items())}
    bundle_version = "b" + hashlib.sha256(json.dumps(
        {"model_version": mv.version, "files": hashes}, sort_keys=True).encode()).hexdigest()[:12]
    store_dir = store_partition(out_root, store_id)
    sequence = _next_sequence(store_dir)
    created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    manifest = {
        "store_id": store_id,
        "bundle_version": bundle_version,
        "sequence": sequence,
        "model_version": mv.version,
        "features_data_version": mv.manifest["features_data_version"],
        "code_version": code_version,
        "created_at": created.isoformat(),
        "expires_at": (created + dt.timedelta(days=validity_days)).isoformat(),
        "horizon": {"first": calendar["dates"][0], "last": calendar["dates"][-1], "days": len(calendar["dates"])},
        "items_order": compiled.items,
        "items": {i: {"champion": compiled.champions[i], "model_version": mv.version,
                      "model_sha256": item_hashes[i], "scale": mv.manifest["items"][i]["scale"],
                      "level": mv.manifest["items"][i]["level"],
                      # the item's own conformal pool (its model and volume class), as the platform serves it
                      "interval": calibration.for_item(compiled.champions[i], mv.manifest["items"][i]["level"])
                      .to_json()} for i in compiled.items},
        "intervals": mv.manifest["calibration"],
        "metrics": mv.manifest["summary"],
        "verification": verification,
        "files": hashes,
        "public_key": public_key_hex(private_key),
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, indent=1).encode()
    signature = private_key.sign(manifest_bytes)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), files[name])
        zf.writestr(zipfile.ZipInfo("manifest.json", date_time=(2020, 1, 1, 0, 0, 0)), manifest_bytes)
        zf.writestr(zipfile.ZipInfo("manifest.sig", date_time=(2020, 1, 1, 0, 0, 0)), signature.hex() + "\n")
    path = store_dir / f"bundle_{bundle_version}.zip"
    atomic_write_bytes(path, buf.getvalue())  # the zip appears whole or not at all
    pub = bytes.fromhex(manifest["public_key"])
    bundle = runner.load_bundle(path, pub, expected_store=store_id)  # the device's own check, before anyone is told
    manifest["latency_ms"] = measure_latency(bundle, latency_runs)
    atomic_write_text(path.parent / "latest.json", json.dumps(
        {"bundle_version": bundle_version, "file": path.name, "model_version": mv.version, "sequence": sequence,
         "sha256": hashlib.sha256(buf.getvalue()).hexdigest()}, sort_keys=True, indent=1))
    return PublishedBundle(store_id, bundle_version, path, manifest, len(buf.getvalue()))


def verify_against_reference(mv: ModelVersion, compiled, calendar: dict) -> dict:
    """Run the graph on the bundle's calendar and compare with each item's served model (Prophet's predict)."""
    import onnxruntime as ort

    session = ort.InferenceSession(compiled.onnx_bytes, providers=["CPUExecutionProvider"])
    fake = runner.Bundle({"items_order": compiled.items}, calendar, session, "memory")
    feeds, _first, n = runner.inputs_for(fake)
    (yhat,) = session.run(["yhat"], feeds)
    worst_rel, worst_abs, worst_item, over = 0.0, 0.0, None, []
    for i, item in enumerate(compiled.items):
        future = pd.DataFrame({"ds": pd.to_datetime(calendar["dates"]), "promo": calendar["promo"][item],
                               "is_holiday": [d in calendar["holidays"] for d in calendar["dates"]],
                               "is_open_day": [bool(v) for v in calendar["open"]]})
        ref = predict_item(mv, item, future)
        if n and not (np.isfinite(yhat[i]).all() and np.isfinite(ref).all()):
            abs_err = rel_err = math.inf  # NaN compares false to everything: a non-finite value never passes
        else:
            abs_err = float(np.max(np.abs(yhat[i] - ref))) if n else 0.0
            rel_err = float(np.max(np.abs(yhat[i] - ref) / np.maximum(np.abs(ref), 1.0))) if n else 0.0
        limit = MAX_REL_ERROR_TREES if item in compiled.tree_items else MAX_REL_ERROR
        if not rel_err <= limit:  # NaN and infinity fail too
            over.append(item)
        if rel_err >= worst_rel:
            worst_rel, worst_abs, worst_item = rel_err, max(worst_abs, abs_err), item
        worst_abs = max(worst_abs, abs_err)
    return {"max_rel_error": worst_rel, "max_abs_error": worst_abs, "worst_item": worst_item,
            "items_checked": len(compiled.items), "days_checked": n, "over_limit": over,
            "rule": "max |onnx - reference| / max(|reference|, 1 unit) over every item and day (any NaN or infinity "
                    "on either side: infinite); reference = each item's served model through its own library "
                    "(serving.predict_item: Prophet.predict, LightGBM's Booster.predict, the stored paths and "
                    "weights), clipped at 0, 0 on closed days"}


def measure_latency(bundle, runs: int, budget_seconds: float = LATENCY_BUDGET_SECONDS) -> dict:
    """One whole-store forecast (all items, whole horizon) through the device runner's session: up to `runs` timed
    runs after three untimed ones, stopping once `budget_seconds` have passed and at least LATENCY_MIN_RUNS are
    timed (a publication's build-machine figure, not the device's: telemetry has those). p99 is the run at
    the 99th percentile's rank, the slowest when fewer than 100 runs were timed."""
    feeds, _first, _n = runner.inputs_for(bundle)
    for _ in range(3):
        bundle.session.run(["yhat"], feeds)
    times = []
    start = time.perf_counter()
    while len(times) < runs and (len(times) < LATENCY_MIN_RUNS or time.perf_counter() - start < budget_seconds):
        t0 = time.perf_counter()
        bundle.session.run(["yhat"], feeds)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"p50": statistics.median(times), "p99": times[min(len(times) - 1, int(0.99 * len(times)))],
            "runs": len(times)}
