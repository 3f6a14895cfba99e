"""What a store device reports back: one JSON line per forecast, in a local file that rotates by size.

Standard library only (it runs beside the runner on the device). Writing telemetry never blocks or fails a
forecast: every error here is swallowed and counted in `TelemetryWriter.dropped`, and one warning goes to
stderr per process. Each line is appended with a single `os.write` on an `O_APPEND` descriptor, so lines from
concurrent forecasts never interleave. When the file would pass `max_bytes` it is renamed to
`<stem>-<UTC time>.jsonl` and a new file starts; only the newest `keep` rotated files are kept.

The platform loads these files from `landing/telemetry/` (README, "Edge telemetry"): a shipper copies the
rotated files (and, if it likes, the current one) there. Record schema 1:

    record_id, schema, store_id, bundle_version, model_versions, manifest_sha256, verified, started_at (UTC ISO),
    latency_ms (load + verify + predict), predict_ms, outcome (ok | refused | error), error_class, error,
    items, horizon, host, runner
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import sys
import uuid
from pathlib import Path

SCHEMA = 1
RUNNER = "retail-edge/1"
TELEMETRY_ENV = "RETAIL_EDGE_TELEMETRY"
OUTCOMES = ("ok", "refused", "error")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def host_name() -> str:
    try:
        return socket.gethostname() or "unknown-host"
    except OSError:
        return "unknown-host"


def data_dir() -> Path:
    """<RETAIL_DATA_DIR or ./data>: the folder the device defaults below live in; for a data root on object
    storage, this machine's copy of it (a device itself keeps local files)."""
    from retail_assets.core.storage import is_url

    root = os.environ.get("RETAIL_DATA_DIR", "data")
    if is_url(root):
        from retail_assets.core.mirror import local_copy_dir

        return local_copy_dir(root)
    return Path(root)


def default_path() -> Path:
    """$RETAIL_EDGE_TELEMETRY, else the embedded default's landing zone (device and platform on one machine):
    <RETAIL_DATA_DIR or ./data>/landing/telemetry/<host>/telemetry.jsonl."""
    env = os.environ.get(TELEMETRY_ENV)
    if env:
        return Path(env)
    host = _UNSAFE.sub("_", host_name())[:64] or "unknown-host"
    return data_dir() / "landing" / "telemetry" / host / "telemetry.jsonl"


def utc_now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_record(*, store_id: str | None, bundle_version: str | None, model_versions: list[str],
                manifest_sha256: str | None, verified: bool, started_at: str, latency_ms: float,
                predict_ms: float | None, outcome: str, error: BaseException | None = None,
                items: int | None = None, horizon: int | None = None, host: str | None = None) -> dict:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not one of {OUTCOMES}")
    return {
        "record_id": uuid.uuid4().hex, "schema": SCHEMA, "store_id": store_id, "bundle_version": bundle_version,
        "model_versions": sorted(set(model_versions)), "manifest_sha256": manifest_sha256, "verified": verified,
        "started_at": started_at, "latency_ms": round(float(latency_ms), 4),
        "predict_ms": None if predict_ms is None else round(float(predict_ms), 4), "outcome": outcome,
        "error_class": None if error is None else type(error).__name__,
        "error": None if error is None else str(error)[:300],
        "items": items, "horizon": horizon, "host": host or host_name(), "runner": RUNNER,
    }


class TelemetryWriter:
    """Append-only JSONL telemetry with size rotation; `write` never raises."""

    def __init__(self, path: str | os.PathLike | None = None, max_bytes: int = 5_000_000, keep: int = 10,
                 enabled: bool = True):
        self.path = Path(path) if path is not None else default_path()
        self.enabled = enabled
        self.max_bytes = max_bytes
        self.keep = keep
        self.written = 0
        self.dropped = 0
        self._warned = False

    def write(self, record: dict) -> bool:
        """True when the line reached the file; False (counted, warned once) when it could not, or when this
        writer is disabled (`--no-telemetry`)."""
        if not self.enabled:
            return False
        try:
            line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._rotate_if_needed(len(line))
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":  # a line torn by a power cut stays alone
                    line = b"\n" + line
                os.write(fd, line)
            finally:
                os.close(fd)
            self.written += 1
            return True
        except Exception as exc:  # noqa: BLE001 - telemetry must never fail a forecast
            self.dropped += 1
            if not self._warned:
                self._warned = True
                print(f"warning: telemetry not written to {self.path} ({type(exc).__name__}: {exc}); "
                      "forecasts go on", file=sys.stderr)
            return False

    def rotated(self) -> list[Path]:
        return sorted(self.path.parent.glob(f"{self.path.stem}-*{self.path.suffix}"))

    def _rotate_if_needed(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0 or size + incoming <= self.max_bytes:
            return
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.path.with_name(f"{self.path.stem}-{stamp}{self.path.suffix}")
        try:
            os.replace(self.path, target)
        except FileNotFoundError:  # another process rotated it first
            return
        for old in self.rotated()[: -self.keep] if self.keep > 0 else self.rotated():
            try:
                old.unlink()
            except OSError:
                pass


def read_records(path: str | os.PathLike) -> list[dict]:
    """The records of one telemetry file (for tests and the device's own diagnostics)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
