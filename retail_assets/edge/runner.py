"""The store device's runner: verify a bundle and forecast with onnxruntime alone.

Imports only the standard library, numpy and onnxruntime (no Prophet, Stan, pandas or network). A bundle is
a zip read in memory, never extracted: its manifest must carry a valid Ed25519 signature from the platform's
key, every file must match its SHA-256 in the manifest, and forecasts are only given inside the horizon the
bundle carries a calendar for.

    python -m retail_assets.edge.runner verify BUNDLE.zip --public-key KEY
    python -m retail_assets.edge.runner predict BUNDLE.zip [--start DATE] [--horizon H] [--format csv|json]
        [--telemetry FILE | --no-telemetry] [--store ID]

A store application calls `serve_once(...)`: it loads, verifies and forecasts, and appends one telemetry record
(retail_assets/edge/telemetry.py) whatever the outcome.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retail_assets.edge import telemetry as tel
from retail_assets.edge.ed25519 import verify as ed25519_verify

REQUIRED = ("manifest.json", "manifest.sig", "model.onnx", "calendar.json")
PUBLIC_KEY_ENV = "RETAIL_EDGE_PUBLIC_KEY"


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


def read_public_key(path: str | os.PathLike | None) -> bytes:
    """A 32-byte Ed25519 public key, hex in a text file. Default: $RETAIL_EDGE_PUBLIC_KEY, then
    <RETAIL_DATA_DIR or ./data>/keys/edge_signing.pub (the embedded default's dev key)."""
    if path is None:
        path = os.environ.get(PUBLIC_KEY_ENV) or str(
            Path(os.environ.get("RETAIL_DATA_DIR", "data")) / "keys" / "edge_signing.pub")
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


def load_bundle(path: str | os.PathLike, public_key: bytes) -> Bundle:
    """Open, authenticate and check a bundle entirely in memory; refuse it whole on any doubt."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"no bundle at {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [n for n in REQUIRED if n not in names]
            if missing:
                raise BundleError(f"bundle is missing {', '.join(missing)}: refused")
            files = {n: zf.read(n) for n in names}
    except zipfile.BadZipFile as exc:
        raise BundleError(f"{path.name} is not a readable zip ({exc}): refused") from exc
    try:
        signature = bytes.fromhex(files["manifest.sig"].decode().strip())
    except ValueError as exc:
        raise BundleError("manifest.sig is not a hex signature: refused") from exc
    if not ed25519_verify(public_key, files["manifest.json"], signature):
        raise BundleError("signature does not match the manifest and this public key: refused "
                          "(tampered manifest, or a bundle signed with another key)")
    manifest = json.loads(files["manifest.json"])
    for name, digest in manifest["files"].items():
        if name not in files:
            raise BundleError(f"bundle is missing {name}, listed in its manifest: refused")
        if hashlib.sha256(files[name]).hexdigest() != digest:
            raise BundleError(f"{name} does not match its SHA-256 in the signed manifest: refused")
    extra = names - set(manifest["files"]) - {"manifest.json", "manifest.sig"}
    if extra:
        raise BundleError(f"bundle carries unlisted files {sorted(extra)}: refused")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(files["model.onnx"], options, providers=["CPUExecutionProvider"])
    return Bundle(manifest, json.loads(files["calendar.json"]), session, str(path),
                  hashlib.sha256(files["manifest.json"]).hexdigest())


def _days_since_epoch(day: str) -> float:
    return float((dt.date.fromisoformat(day) - dt.date(1970, 1, 1)).days)


def inputs_for(bundle: Bundle, start: str | None = None, horizon: int | None = None) -> tuple[dict, int, int]:
    """Model inputs for [start, start + horizon) from the bundle's own calendar and promotion plan."""
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
    return feeds, first, n


def predict(bundle: Bundle, start: str | None = None, horizon: int | None = None) -> list[dict]:
    """Point forecast and calibrated interval per item and day."""
    feeds, first, n = inputs_for(bundle, start, horizon)
    (yhat,) = bundle.session.run(["yhat"], feeds)
    cal = bundle.manifest["intervals"]
    lower_q, upper_q, bucket_days = np.array(cal["lower"]), np.array(cal["upper"]), cal["bucket_days"]
    h = np.arange(first, first + n)
    b = np.minimum(h // bucket_days, len(lower_q) - 1)
    open_day = feeds["open"] > 0
    rows = []
    for i, item in enumerate(bundle.manifest["items_order"]):
        info = bundle.manifest["items"][item]
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
    """The manifest as the bundle claims it, unverified, and its SHA-256: only to say in telemetry what
    was refused."""
    try:
        with zipfile.ZipFile(path) as zf:
            raw = zf.read("manifest.json")
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
               telemetry: tel.TelemetryWriter | None = None, store_id: str | None = None) -> list[dict]:
    """Load, verify and forecast once, and record how it went. Raises what `load_bundle`/`predict` raise
    (BundleError when the bundle or the key is refused) after the telemetry record is written; telemetry itself
    never raises. `public_key`: the key's bytes, a key file, or None for the default key file. `store_id` is
    the device's own store, reported when a refused bundle cannot be trusted to say it."""
    writer = telemetry if telemetry is not None else _default_writer()
    started_at, t0 = tel.utc_now_iso(), time.perf_counter()
    bundle, predict_ms, rows, error = None, None, [], None
    try:
        key = public_key if isinstance(public_key, bytes) else read_public_key(public_key)
        bundle = load_bundle(bundle_path, key)
        t1 = time.perf_counter()
        rows = predict(bundle, start, horizon)
        predict_ms = (time.perf_counter() - t1) * 1000.0
    except Exception as exc:  # noqa: BLE001 - recorded, then raised again
        error = exc
    latency_ms = (time.perf_counter() - t0) * 1000.0
    try:
        writer.write(_record(bundle, bundle_path, store_id, started_at, latency_ms, predict_ms, rows, horizon,
                             error))
    except Exception:  # noqa: BLE001 - a record that cannot even be built never costs the forecast
        writer.dropped += 1
    if error is not None:
        raise error
    return rows


def _record(bundle, bundle_path, store_id, started_at, latency_ms, predict_ms, rows, horizon, error) -> dict:
    """The telemetry record; for a refused bundle, what its unverified manifest claims (only if well formed)."""
    manifest, manifest_sha256 = ((bundle.manifest, bundle.manifest_sha256) if bundle is not None
                                 else _peek_manifest(bundle_path))
    items = manifest.get("items") if isinstance(manifest.get("items"), dict) else {}
    order = manifest.get("items_order") if isinstance(manifest.get("items_order"), list) else []
    claimed = lambda k: manifest.get(k) if isinstance(manifest.get(k), str) else None  # noqa: E731
    return tel.make_record(
        store_id=store_id or claimed("store_id"), bundle_version=claimed("bundle_version"),
        model_versions=[str(i.get("model_version")) for i in items.values() if isinstance(i, dict)],
        manifest_sha256=manifest_sha256, verified=bundle is not None, started_at=started_at,
        latency_ms=latency_ms, predict_ms=predict_ms,
        outcome="ok" if error is None else ("refused" if isinstance(error, BundleError) else "error"),
        error=error, items=len(order) or None, horizon=len({r["date"] for r in rows}) or horizon)


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
    v = sub.add_parser("verify", help="check signature, file hashes and the graph")
    v.add_argument("bundle")
    v.add_argument("--public-key", default=None)
    p = sub.add_parser("predict", help="forecast from the bundle's calendar")
    p.add_argument("bundle")
    p.add_argument("--public-key", default=None)
    p.add_argument("--start", default=None, help="first date (YYYY-MM-DD), default the bundle's first day")
    p.add_argument("--horizon", type=int, default=None, help="days, default to the end of the bundle")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--telemetry", default=None, help=f"telemetry JSONL file (default ${tel.TELEMETRY_ENV}, "
                   "else <data>/landing/telemetry/<host>/telemetry.jsonl)")
    p.add_argument("--no-telemetry", action="store_true", help="do not record this forecast")
    p.add_argument("--store", default=None, help="this device's store id, reported if the bundle is refused")
    args = parser.parse_args(argv)
    try:
        if args.command == "predict":
            writer = tel.TelemetryWriter(args.telemetry or None, enabled=not args.no_telemetry)
            rows = serve_once(args.bundle, args.public_key, args.start, args.horizon,
                              telemetry=writer, store_id=args.store)  # a bad key is refused and recorded
            _write(rows, args.format, sys.stdout)
            return 0
        bundle = load_bundle(args.bundle, read_public_key(args.public_key))
        if args.command == "verify":
            m = bundle.manifest
            print(f"ok: store {m['store_id']} bundle {m['bundle_version']} ({len(m['items_order'])} items, "
                  f"horizon {bundle.dates[0]}..{bundle.dates[-1]}), signature and {len(m['files'])} file hashes "
                  f"verified; max relative error vs Prophet at publish {m['verification']['max_rel_error']:.2e}")
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
