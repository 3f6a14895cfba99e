"""The store device's runner: verify a bundle and forecast with onnxruntime alone.

Imports only the standard library, numpy and onnxruntime (no Prophet, Stan, pandas or network). A bundle is
a zip read in memory, never extracted, and trusted only as far as its signed manifest says, in the spirit of
TUF: the zip's directory is checked before anything is inflated (known names only, no duplicates, bounded
sizes); the manifest must carry a valid Ed25519 signature from the platform's key, be for this device's store,
not be expired, and not be older (by its per-store `sequence`) than a bundle this device already served; every
file must match its SHA-256 in the manifest; forecasts are only given inside the horizon the bundle carries a
calendar for.

    python -m retail_assets.edge.runner verify BUNDLE.zip --public-key KEY [--store ID]
    python -m retail_assets.edge.runner predict BUNDLE.zip --store ID [--start DATE] [--horizon H]
        [--format csv|json] [--state FILE] [--telemetry FILE | --no-telemetry] [--weather FILE]

A store application calls `serve_once(...)`: it loads, verifies and forecasts, and appends one telemetry record
(retail_assets/edge/telemetry.py) whatever the outcome.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import sys
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retail_assets.edge import telemetry as tel
from retail_assets.edge.ed25519 import verify as ed25519_verify

SIGNED = ("manifest.json", "manifest.sig")  # read (bounded) before the signature is checked
REQUIRED = ("model.onnx", "calendar.json")  # must be listed in the signed manifest
PUBLIC_KEY_ENV = "RETAIL_EDGE_PUBLIC_KEY"
STORE_ENV = "RETAIL_EDGE_STORE_ID"
STATE_ENV = "RETAIL_EDGE_STATE"
# Bounds on what a bundle may inflate to, checked on the zip directory before reading and again on the bytes read.
MAX_MANIFEST_BYTES = 4 * 2**20
MAX_SIGNATURE_BYTES = 1024
MAX_MEMBER_BYTES = 64 * 2**20
MAX_TOTAL_BYTES = 128 * 2**20
# The platform's store id pattern (retail_assets/core/ids.py), repeated because the device imports no platform
# code: the id names the device's state file.
STORE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")  # fullmatch: no trailing newline either


class BundleError(Exception):
    """The bundle cannot be trusted or used; the message says why."""


@dataclass
class Bundle:
    manifest: dict
    calendar: dict
    session: object
    path: str
    manifest_sha256: str = ""  # of the manifest bytes as signed: what telemetry reports

    @property
    def dates(self) -> list[str]:
        return self.calendar["dates"]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def read_public_key(path: str | os.PathLike | None) -> bytes:
    """A 32-byte Ed25519 public key, hex in a text file. Default: $RETAIL_EDGE_PUBLIC_KEY, then
    <RETAIL_DATA_DIR or ./data>/keys/edge_signing.pub (the embedded default's dev key)."""
    if path is None:
        path = os.environ.get(PUBLIC_KEY_ENV) or str(tel.data_dir() / "keys" / "edge_signing.pub")
    p = Path(path)
    if not p.is_file():
        raise BundleError(f"no public key at {p}: pass --public-key or set {PUBLIC_KEY_ENV}")
    try:
        key = bytes.fromhex(p.read_text().strip())
    except ValueError as exc:
        raise BundleError(f"{p} is not a hex Ed25519 public key") from exc
    if len(key) != 32:
        raise BundleError(f"{p} holds {len(key)} bytes; an Ed25519 public key has 32")
    return key


def device_store(store_id: str | None) -> str:
    """This device's store: the argument, else $RETAIL_EDGE_STORE_ID. Required to serve, so that a bundle
    for another store is refused rather than served under this store's name."""
    store = store_id or os.environ.get(STORE_ENV)
    if not store:
        raise BundleError(f"this device's store is not known: pass --store ID (or set {STORE_ENV})")
    if not STORE_ID_PATTERN.fullmatch(store):
        raise BundleError(f"store id {store!r} is not valid: use 1-32 letters, digits, '_' or '-'")
    return store


def _directory(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The zip's central directory, refused before anything is inflated if a name repeats (another zip
    reader could see the other copy) or the declared sizes pass the bounds."""
    infos = zf.infolist()
    by_name: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.filename in by_name:
            raise BundleError(f"bundle holds {info.filename} twice: refused (another reader could see the "
                              "other copy); republish it")
        by_name[info.filename] = info
        limit = _limit(info.filename)
        if info.file_size > limit:
            raise BundleError(f"{info.filename} would inflate to {info.file_size:,} bytes, over the {limit:,}-byte "
                              "limit: refused")
    total = sum(i.file_size for i in infos)
    if total > MAX_TOTAL_BYTES:
        raise BundleError(f"bundle would inflate to {total:,} bytes, over the {MAX_TOTAL_BYTES:,}-byte limit: refused")
    return by_name


def _limit(name: str) -> int:
    return {"manifest.json": MAX_MANIFEST_BYTES, "manifest.sig": MAX_SIGNATURE_BYTES}.get(name, MAX_MEMBER_BYTES)


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """One member's bytes, never more than its bound even if the directory lies about its size."""
    limit = _limit(info.filename)
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
        raise BundleError(f"{info.filename} cannot be read from the zip ({exc}): refused") from exc
    if len(data) > limit:
        raise BundleError(f"{info.filename} inflates past the {limit:,}-byte limit: refused")
    return data


def _clock(now: dt.datetime | None) -> dt.datetime:
    """The device clock: `now` (naive means UTC) or the system's."""
    if now is None:
        return utc_now()
    return now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)


def _trusted_manifest(raw: bytes, expected_store: str | None, now: dt.datetime | None, min_sequence: int) -> dict:
    """The signed manifest, refused unless it says its store, sequence and expiry, and they fit this device:
    its store, its clock, and the newest sequence it has served."""
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise BundleError("signed manifest is not JSON: refused") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise BundleError("signed manifest lists no files: refused (republish the bundle)")
    store, seq = manifest.get("store_id"), manifest.get("sequence")
    try:
        expires = dt.datetime.fromisoformat(manifest.get("expires_at"))
    except (TypeError, ValueError):
        expires = None
    if not isinstance(store, str) or not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 \
            or expires is None or expires.tzinfo is None:
        raise BundleError("signed manifest lacks store_id, sequence or expires_at: refused (a bundle from before "
                          "rollback protection; republish it)")
    if expected_store is not None and store != expected_store:
        raise BundleError(f"bundle is for store {store}, this device is store {expected_store}: refused "
                          "(install this store's bundle)")
    if _clock(now) > expires:
        raise BundleError(f"bundle expired at {manifest['expires_at']}: refused (install a newer bundle)")
    if seq < min_sequence:
        raise BundleError(f"bundle sequence {seq} is older than sequence {min_sequence} this device already "
                          "served: refused (a replayed old bundle; install the newest one)")
    return manifest


def load_bundle(path: str | os.PathLike, public_key: bytes, expected_store: str | None = None,
                now: dt.datetime | None = None, min_sequence: int = 0) -> Bundle:
    """Open, authenticate and check a bundle entirely in memory; refuse it whole on any doubt.

    `expected_store`: this device's store (None only for platform-side checks and `verify`); `now`: the
    device clock (default the system's), against the manifest's `expires_at`; `min_sequence`: the highest
    sequence this device has served (see `served_sequence`), so an older bundle replayed is refused."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"no bundle at {path}")
    if path.stat().st_size > MAX_TOTAL_BYTES:
        raise BundleError(f"{path.name} is {path.stat().st_size:,} bytes, over the {MAX_TOTAL_BYTES:,}-byte limit: "
                          "refused")
    try:
        with zipfile.ZipFile(path) as zf:
            members = _directory(zf)
            missing = [n for n in SIGNED if n not in members]
            if missing:
                raise BundleError(f"bundle is missing {', '.join(missing)}: refused")
            raw, sig = _read(zf, members["manifest.json"]), _read(zf, members["manifest.sig"])
            try:
                signature = bytes.fromhex(sig.decode().strip())
            except ValueError as exc:
                raise BundleError("manifest.sig is not a hex signature: refused") from exc
            if not ed25519_verify(public_key, raw, signature):
                raise BundleError("signature does not match the manifest and this public key: refused "
                                  "(tampered manifest, or a bundle signed with another key)")
            manifest = _trusted_manifest(raw, expected_store, now, min_sequence)
            listed = manifest["files"]
            unlisted = [n for n in REQUIRED if n not in listed]
            if unlisted:
                raise BundleError(f"signed manifest does not list {', '.join(unlisted)}: refused")
            extra = set(members) - set(listed) - set(SIGNED)
            if extra:
                raise BundleError(f"bundle carries unlisted files {sorted(extra)}: refused")
            missing = [n for n in listed if n not in members]
            if missing:
                raise BundleError(f"bundle is missing {', '.join(missing)}, listed in its manifest: refused")
            files = {}
            for name, digest in listed.items():
                files[name] = _read(zf, members[name])
                if hashlib.sha256(files[name]).hexdigest() != digest:
                    raise BundleError(f"{name} does not match its SHA-256 in the signed manifest: refused")
    except zipfile.BadZipFile as exc:
        raise BundleError(f"{path.name} is not a readable zip ({exc}): refused") from exc
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(files["model.onnx"], options, providers=["CPUExecutionProvider"])
    return Bundle(manifest, json.loads(files["calendar.json"]), session, str(path), hashlib.sha256(raw).hexdigest())


def state_path(store_id: str, path: str | os.PathLike | None = None) -> Path:
    """Where this device records the highest sequence it served: `path`, else $RETAIL_EDGE_STATE, else
    <RETAIL_DATA_DIR or ./data>/edge_state/<store>.json."""
    if path is None:
        path = os.environ.get(STATE_ENV) or tel.data_dir() / "edge_state" / f"{store_id}.json"
    return Path(path)


def served_sequence(path: Path, store_id: str) -> int:
    """The highest sequence served for this store, 0 if none yet. An unreadable state file is refused rather
    than forgotten: forgetting it would let any old bundle in again."""
    if not path.exists():
        return 0
    try:
        state = json.loads(path.read_text())
        owner, seq = state["store_id"], state["sequence"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"device state {path} is unreadable ({exc}): fix or remove it, or pass --state") from exc
    if owner != store_id or not isinstance(seq, int) or isinstance(seq, bool):
        raise BundleError(f"device state {path} holds no sequence for store {store_id}: pass this store's --state")
    return seq


def record_served(path: Path, bundle: Bundle) -> None:
    """Remember the bundle's sequence once it has served, atomically (temp file + rename in the same folder),
    never lowering it."""
    store, seq = bundle.manifest["store_id"], bundle.manifest["sequence"]
    if seq <= served_sequence(path, store):
        return
    state = {"store_id": store, "sequence": seq, "bundle_version": bundle.manifest.get("bundle_version"),
             "manifest_sha256": bundle.manifest_sha256, "served_at": utc_now().isoformat(timespec="seconds")}
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
            tmp = f.name
            json.dump(state, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        raise BundleError(f"cannot record the served sequence in {path} ({exc}): fix --state or "
                          f"{STATE_ENV}") from exc


def _days_since_epoch(day: str) -> float:
    return float((dt.date.fromisoformat(day) - dt.date(1970, 1, 1)).days)


TEMPERATURE_GRID = 64  # as core/forecast/weather.py: exact in float32, the trees' thresholds see what training saw


def read_weather(path: str | os.PathLike, store_id: str, now: dt.datetime | None = None) -> dict:
    """A newer local weather forecast (the landing layout's weather CSV: issued_at, store_id, region, date,
    temperature_mean_c, ...): per date, this store's latest forecast issued by `now`. Returns {"issued_at":
    the newest issue used, "temperature": {date: degC}}; rows of other stores, unparseable or later rows are
    skipped."""
    import csv

    cutoff = _clock(now).astimezone(dt.timezone.utc)
    best: dict[str, tuple[dt.datetime, float]] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            try:
                if row.get("store_id") != store_id:
                    continue
                issued = dt.datetime.fromisoformat(row["issued_at"].replace("Z", "+00:00"))
                day = dt.date.fromisoformat(row["date"]).isoformat()
                value = float(row["temperature_mean_c"])
            except (KeyError, TypeError, ValueError):
                continue
            if issued.tzinfo is None or issued > cutoff or not np.isfinite(value):
                continue
            if day not in best or issued > best[day][0]:
                best[day] = (issued, value)
    if not best:
        raise BundleError(f"{path}: no usable weather forecast for store {store_id} issued by {cutoff:%Y-%m-%dT%H:%MZ}")
    return {"issued_at": max(i for i, _v in best.values()).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "temperature": {d: v for d, (_i, v) in best.items()}}


def inputs_for(bundle: Bundle, start: str | None = None, horizon: int | None = None,
               weather: dict | None = None) -> tuple[dict, int, int]:
    """Model inputs for [start, start + horizon) from the bundle's own calendar and promotion plan. `start`
    None means the bundle's first day: for the platform's checks over the whole horizon; a device passes
    its date (`predict` does). `weather` (`read_weather`): a newer forecast's temperatures replace the bundle's
    on the days it covers."""
    dates = bundle.dates
    if start and start not in dates:
        raise BundleError(f"{start} is outside this bundle's horizon {dates[0]}..{dates[-1]}: "
                          "expired or not yet covered, install a newer bundle")
    first = dates.index(start) if start else 0
    n = len(dates) - first if horizon is None else horizon
    if n < 1 or first + n > len(dates):
        raise BundleError(f"horizon {n} from {dates[first]} runs past this bundle's last day {dates[-1]}: "
                          "expired horizon, install a newer bundle")
    span = slice(first, first + n)
    cal = bundle.calendar
    columns = cal["holiday_columns"]  # [name, offset]: 1 on the day `offset` days after that holiday
    hol = np.zeros((n, len(columns)))
    for row, day in enumerate(dates[span]):
        for col, (name, offset) in enumerate(columns):
            if cal["holidays"].get((dt.date.fromisoformat(day) - dt.timedelta(days=offset)).isoformat()) == name:
                hol[row, col] = 1.0
    promo = np.array([cal["promo"][item][span] for item in bundle.manifest["items_order"]], dtype=np.float64)
    feeds = {
        "t_days": np.array([_days_since_epoch(d) for d in dates[span]]),
        "holiday": hol,
        "promo": promo.reshape(len(bundle.manifest["items_order"]), n),
        "open": np.array(cal["open"][span], dtype=np.float64),
    }
    graph_inputs = {i.name for i in bundle.session.get_inputs()}
    if "calendar" in graph_inputs:  # the store's trees: their calendar inputs
        feeds["calendar"] = np.array(cal["calendar_inputs"][span], dtype=np.float64).reshape(n, -1)
    if "temperature" in graph_inputs:  # the trees' temperature: the bundle's, or a newer local forecast's
        newer = (weather or {}).get("temperature", {})
        temps = [newer.get(day, cal["temperature"][first + j]) for j, day in enumerate(dates[span])]
        feeds["temperature"] = np.round(np.array(temps, dtype=np.float64) * TEMPERATURE_GRID) / TEMPERATURE_GRID
    if "temperature_normal" in graph_inputs:  # climatology: the weather factor's reference, from the bundle
        feeds["temperature_normal"] = np.array(cal["temperature_normal"][span], dtype=np.float64)
    return feeds, first, n


def predict(bundle: Bundle, start: str | None = None, horizon: int | None = None,
            now: dt.datetime | None = None, weather: dict | None = None) -> list[dict]:
    """Point forecast and calibrated interval per item and day, from `start` (default: the device's local
    date at `now`, default the system clock, since the calendar's dates are the store's own days); a date
    outside the bundle's horizon is refused, never served from the bundle's first day."""
    if start is None:
        start = _clock(now).astimezone().date().isoformat()
    feeds, first, n = inputs_for(bundle, start, horizon, weather)
    (yhat,) = bundle.session.run(["yhat"], feeds)
    h = np.arange(first, first + n)
    open_day = feeds["open"] > 0
    rows = []
    for i, item in enumerate(bundle.manifest["items_order"]):
        info = bundle.manifest["items"][item]
        cal = info.get("interval", bundle.manifest["intervals"])  # the item's own pool; the store's in older bundles
        lower_q, upper_q, bucket_days = np.array(cal["lower"]), np.array(cal["upper"]), cal["bucket_days"]
        b = np.minimum(h // bucket_days, len(lower_q) - 1)
        y = yhat[i]
        s = info["scale"] * np.sqrt((np.clip(y, 0, None) + 1.0) / (max(info["level"], 0.0) + 1.0))
        lo = np.minimum(np.clip(y + lower_q[b] * s, 0, None), y)
        hi = np.maximum(y + upper_q[b] * s, y)
        lo, hi = np.where(open_day, lo, 0.0), np.where(open_day, hi, 0.0)
        for j in range(n):
            rows.append({"store_id": bundle.manifest["store_id"], "item_id": item,
                         "date": bundle.dates[first + j], "yhat": float(y[j]), "yhat_lower": float(lo[j]),
                         "yhat_upper": float(hi[j]), "model_version": info["model_version"],
                         "bundle_version": bundle.manifest["bundle_version"]})
    return rows


def _peek_manifest(path: str | os.PathLike) -> tuple[dict, str | None]:
    """The manifest as the bundle claims it, unverified (read within the same bounds), and its SHA-256: only
    to say in telemetry what was refused."""
    try:
        with zipfile.ZipFile(path) as zf:
            raw = _read(zf, zf.getinfo("manifest.json"))
        manifest = json.loads(raw)
        return (manifest if isinstance(manifest, dict) else {}), hashlib.sha256(raw).hexdigest()
    except Exception:  # noqa: BLE001 - a refused bundle may be anything
        return {}, None


_DEFAULT_WRITERS: dict[str, tel.TelemetryWriter] = {}


def _default_writer() -> tel.TelemetryWriter:
    """One writer per telemetry path and process: its drop count and its one warning are per process."""
    path = str(tel.default_path())
    return _DEFAULT_WRITERS.setdefault(path, tel.TelemetryWriter(path))


def serve_once(bundle_path: str | os.PathLike, public_key: bytes | str | os.PathLike | None = None,
               start: str | None = None, horizon: int | None = None,
               telemetry: tel.TelemetryWriter | None = None, store_id: str | None = None,
               state: str | os.PathLike | None = None, now: dt.datetime | None = None,
               weather: str | os.PathLike | None = None) -> list[dict]:
    """Load, verify and forecast once, and record how it went. Raises what `load_bundle`/`predict` raise
    (BundleError when the bundle, the key or the device's store is refused) after the telemetry record is
    written; telemetry itself never raises. `public_key`: the key's bytes, a key file, or None for the default
    key file. `store_id`: the device's own store (else $RETAIL_EDGE_STORE_ID; required). `state`: the device
    state file (`state_path`); its sequence is raised only after a forecast succeeded. `now`: the device
    clock, for expiry and the default `start`. `weather`: a newer local weather forecast file (`read_weather`);
    telemetry records which issue the forecast used."""
    writer = telemetry if telemetry is not None else _default_writer()
    started_at, t0 = tel.utc_now_iso(), time.perf_counter()
    bundle, predict_ms, rows, error, newer = None, None, [], None, None
    store = store_id  # reported even if refused
    try:
        store = device_store(store_id)
        key = public_key if isinstance(public_key, bytes) else read_public_key(public_key)
        state_file = state_path(store, state)
        bundle = load_bundle(bundle_path, key, expected_store=store, now=now,
                             min_sequence=served_sequence(state_file, store))
        newer = read_weather(weather, store, now) if weather else None
        t1 = time.perf_counter()
        rows = predict(bundle, start, horizon, now=now, weather=newer)
        predict_ms = (time.perf_counter() - t1) * 1000.0
        record_served(state_file, bundle)
    except Exception as exc:  # noqa: BLE001 - recorded, then raised again
        error = exc
    latency_ms = (time.perf_counter() - t0) * 1000.0
    try:
        record = _record(bundle, bundle_path, store, started_at, latency_ms, predict_ms, rows, horizon, error)
        if bundle is not None and "temperature" in bundle.calendar:  # which weather issue the forecast used
            record["weather_issued_at"] = newer["issued_at"] if newer else bundle.calendar["temperature_issued_at"]
            record["weather_source"] = "device file" if newer else "bundle"
        writer.write(record)
    except Exception:  # noqa: BLE001 - a record that cannot even be built never costs the forecast
        writer.dropped += 1
    if error is not None:
        raise error
    return rows


def _record(bundle, bundle_path, store_id, started_at, latency_ms, predict_ms, rows, horizon, error) -> dict:
    """The telemetry record: the verified store and sequence, or for a refused bundle the device's store and
    what its unverified manifest claims (only if well formed)."""
    manifest, manifest_sha256 = ((bundle.manifest, bundle.manifest_sha256) if bundle is not None
                                 else _peek_manifest(bundle_path))
    items = manifest.get("items") if isinstance(manifest.get("items"), dict) else {}
    order = manifest.get("items_order") if isinstance(manifest.get("items_order"), list) else []
    claimed = lambda k: manifest.get(k) if isinstance(manifest.get(k), str) else None  # noqa: E731
    record = tel.make_record(
        store_id=manifest["store_id"] if bundle is not None else (store_id or claimed("store_id")),
        bundle_version=claimed("bundle_version"),
        model_versions=[str(i.get("model_version")) for i in items.values() if isinstance(i, dict)],
        manifest_sha256=manifest_sha256, verified=bundle is not None, started_at=started_at,
        latency_ms=latency_ms, predict_ms=predict_ms,
        outcome="ok" if error is None else ("refused" if isinstance(error, BundleError) else "error"),
        error=error, items=len(order) or None, horizon=len({r["date"] for r in rows}) or horizon)
    record["bundle_sequence"] = manifest["sequence"] if bundle is not None else None  # extra key: dbt ignores it
    return record


def _write(rows: list[dict], fmt: str, out) -> None:
    if fmt == "json":
        json.dump(rows, out, indent=1)
        out.write("\n")
        return
    cols = ["store_id", "item_id", "date", "yhat", "yhat_lower", "yhat_upper", "model_version", "bundle_version"]
    out.write(",".join(cols) + "\n")
    for r in rows:
        out.write(",".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retail edge", description="Verify and run a store's edge bundle.")
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="check signature, expiry, file hashes and the graph")
    v.add_argument("bundle")
    v.add_argument("--public-key", default=None)
    v.add_argument("--store", default=None, help=f"refuse a bundle for another store (default ${STORE_ENV}) "
                   "or older than the one this device served")
    v.add_argument("--state", default=None, help=f"device state file (default ${STATE_ENV}, else "
                   "<data>/edge_state/<store>.json)")
    p = sub.add_parser("predict", help="forecast from the bundle's calendar")
    p.add_argument("bundle")
    p.add_argument("--public-key", default=None)
    p.add_argument("--store", default=None, help=f"this device's store id (required, or ${STORE_ENV})")
    p.add_argument("--start", default=None, help="first date (YYYY-MM-DD), default today (the device's local "
                   "date); refused outside the bundle's horizon")
    p.add_argument("--horizon", type=int, default=None, help="days, default to the end of the bundle")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--state", default=None, help=f"device state file (default ${STATE_ENV}, else "
                   "<data>/edge_state/<store>.json)")
    p.add_argument("--telemetry", default=None, help=f"telemetry JSONL file (default ${tel.TELEMETRY_ENV}, "
                   "else <data>/landing/telemetry/<host>/telemetry.jsonl)")
    p.add_argument("--no-telemetry", action="store_true", help="do not record this forecast")
    p.add_argument("--weather", default=None, help="a newer weather forecast CSV (landing layout: issued_at, "
                   "store_id, region, date, temperature_mean_c, ...): its temperatures replace the bundle's")
    args = parser.parse_args(argv)
    try:
        if args.command == "predict":
            writer = tel.TelemetryWriter(args.telemetry or None, enabled=not args.no_telemetry)
            rows = serve_once(args.bundle, args.public_key, args.start, args.horizon, telemetry=writer,
                              store_id=args.store, state=args.state,  # a bad key or store is refused and recorded
                              weather=args.weather)
            _write(rows, args.format, sys.stdout)
            return 0
        store = device_store(args.store) if args.store or os.environ.get(STORE_ENV) else None
        minimum = served_sequence(state_path(store, args.state), store) if store else 0
        bundle = load_bundle(args.bundle, read_public_key(args.public_key), expected_store=store,
                             min_sequence=minimum)
        m = bundle.manifest
        print(f"ok: store {m['store_id']} bundle {m['bundle_version']} sequence {m['sequence']} "
              f"({len(m['items_order'])} items, horizon {bundle.dates[0]}..{bundle.dates[-1]}, expires "
              f"{m['expires_at']}), signature and {len(m['files'])} file hashes verified"
              f"{'' if store else ' (no --store given: store and sequence not checked against this device)'}; "
              f"max relative error vs Prophet at publish {m['verification']['max_rel_error']:.2e}")
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
