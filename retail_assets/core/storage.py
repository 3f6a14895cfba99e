"""The data root on object storage: immutable content-addressed objects and pointers swapped by a conditional
put, for stores without an atomic rename (S3 and S3-compatible servers). Pure: no Dagster.

A pointer (a store's live version, its latest bundle) cannot be published with `os.replace` on S3. Instead the
things it points at are written once under their SHA-256 (`put_immutable`: create-only, so an object never changes
after a reader saw its name), and the pointer itself is replaced only if it still holds what the writer read
(`swap_pointer`: `If-Match` on its ETag, or `If-None-Match: *` for the first one). Two writers racing from the same
pointer leave exactly one winner; the loser gets `PointerConflict` and can re-read and decide again. A registry on
object storage is a prefix of immutable event objects (`append_event`), never an appended file, so concurrent
writers cannot lose each other's lines.

Connection settings come from the environment: `RETAIL_S3_ENDPOINT_URL` (or `AWS_ENDPOINT_URL`) for an
S3-compatible server, credentials as boto3 reads them (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), region
`AWS_DEFAULT_REGION` (default us-east-1). Nothing here downloads anything; DuckDB reads and writes `s3://` paths
through the same filesystem registered with the connection (`duckdb_connect`), never through its httpfs extension.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import os
import uuid
from dataclasses import dataclass

PRECONDITION_FAILED = "At least one of the pre-conditions you specified did not hold"


class PointerConflict(RuntimeError):
    """Another writer changed (or created) the pointer since this writer read it."""


@dataclass(frozen=True)
class Pointer:
    """A pointer's content and the ETag to swap it from (None: no pointer yet)."""

    data: dict | None
    etag: str | None


def is_url(root: str | os.PathLike) -> bool:
    """True for an object-store URL (`s3://bucket/prefix`); a local path is not one."""
    return "://" in str(root) and not str(root).startswith("file://")


def s3_options() -> dict:
    """s3fs options from the environment (module docstring)."""
    endpoint = os.environ.get("RETAIL_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict = {"client_kwargs": {"region_name": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")},
                     "use_listings_cache": False, "skip_instance_cache": True}
    if endpoint:
        options["endpoint_url"] = endpoint
    return options


def filesystem(url: str):
    """(fsspec filesystem, path without the protocol) for an object-store URL."""
    from fsspec.core import url_to_fs

    if not is_url(url):
        raise ValueError(f"{url!r} is not an object-store URL (s3://bucket/prefix)")
    return url_to_fs(url, **(s3_options() if url.startswith("s3://") else {}))


def _lost(exc: BaseException) -> bool:
    """Whether a failed put lost a race (412): s3fs raises FileExistsError when the server names the failed
    condition, else OSError(EINVAL) with the precondition message (SeaweedFS names none)."""
    if isinstance(exc, FileExistsError):
        return True
    return isinstance(exc, OSError) and exc.errno == errno.EINVAL and PRECONDITION_FAILED in str(exc)


def put_immutable(fs, prefix: str, data: bytes, suffix: str = "") -> str:
    """Write `data` once under its SHA-256 below `prefix`; returns its path. Create-only: a second writer of the
    same bytes finds the object there (same name, same bytes) and leaves it."""
    path = f"{prefix.rstrip('/')}/{hashlib.sha256(data).hexdigest()}{suffix}"
    try:
        fs.pipe_file(path, data, mode="create")
    except OSError as exc:
        if not _lost(exc):
            raise
        if hashlib.sha256(fs.cat_file(path)).digest() != hashlib.sha256(data).digest():
            raise RuntimeError(f"{path}: an object under this hash holds other bytes") from exc
    return path


def read_pointer(fs, path: str) -> Pointer:
    """The pointer's JSON and ETag, or Pointer(None, None) when there is none yet."""
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return Pointer(None, None)
    return Pointer(json.loads(fs.cat_file(path)), info["ETag"])


def swap_pointer(fs, path: str, data: dict, expected: Pointer) -> Pointer:
    """Replace the pointer with `data` only if it still is `expected` (create it only if there was none);
    `PointerConflict` when another writer got there first. Returns the new pointer."""
    body = json.dumps(data, sort_keys=True).encode()
    try:
        if expected.etag is None:
            out = fs.pipe_file(path, body, mode="create")
        else:
            out = fs.pipe_file(path, body, IfMatch=expected.etag)
    except OSError as exc:
        # a pointer deleted since it was read: AWS answers If-Match with 404, SeaweedFS with 412
        if _lost(exc) or (isinstance(exc, FileNotFoundError) and expected.etag is not None):
            raise PointerConflict(f"{path}: changed by another writer since it was read") from exc
        raise
    etag = out.get("ETag") if isinstance(out, dict) else None
    return Pointer(data, etag or fs.info(path)["ETag"])


def append_event(fs, prefix: str, event: dict) -> str:
    """One registry event as its own immutable object (time-ordered name, then its hash): a listing of `prefix`
    is the registry, and concurrent writers never overwrite each other."""
    body = json.dumps(event, sort_keys=True).encode()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"{prefix.rstrip('/')}/{stamp}-{hashlib.sha256(body).hexdigest()[:16]}-{uuid.uuid4().hex[:8]}.json"
    fs.pipe_file(name, body, mode="create")
    return name


def read_events(fs, prefix: str) -> list[dict]:
    """Every event below `prefix`, in time order."""
    try:
        names = sorted(p for p in fs.ls(prefix, detail=False) if p.endswith(".json"))
    except FileNotFoundError:
        return []
    return [json.loads(fs.cat_file(p)) for p in names]


def duckdb_connect(fs=None, database: str = ":memory:", **kwargs):
    """A DuckDB connection that reads and writes `s3://` through `fs` (registered with it) and never loads or
    installs an extension on its own (a missed registration fails at once instead of downloading httpfs)."""
    import duckdb

    config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False, **kwargs.pop("config", {})}
    con = duckdb.connect(database, config=config, **kwargs)
    if fs is not None:
        con.register_filesystem(fs)
    return con


def publish_version(fs, store_prefix: str, version: str, manifest: dict, expected: Pointer) -> tuple[bool, Pointer]:
    """A store's new model version on object storage: its manifest as an immutable object, a registry event,
    then the live pointer swapped from `expected` (what the writer read before training). Returns (went live,
    the pointer now): a writer that lost the race records that in the registry and leaves the winner live."""
    body = json.dumps(manifest, sort_keys=True).encode()
    manifest_path = put_immutable(fs, f"{store_prefix}/manifests", body, ".json")
    sha = hashlib.sha256(body).hexdigest()
    try:
        now = swap_pointer(fs, f"{store_prefix}/live.json",
                           {"version": version, "manifest": manifest_path, "manifest_sha256": sha}, expected)
    except PointerConflict as exc:
        append_event(fs, f"{store_prefix}/registry", {"event": "held_back", "version": version,
                                                      "manifest_sha256": sha, "reason": str(exc)})
        return False, read_pointer(fs, f"{store_prefix}/live.json")
    append_event(fs, f"{store_prefix}/registry", {"event": "live", "version": version, "manifest_sha256": sha,
                                                  "replaced": (expected.data or {}).get("version")})
    return True, now


def read_live(fs, store_prefix: str) -> tuple[str, dict] | None:
    """(version, manifest) the store's live pointer names, the manifest checked against its recorded SHA-256;
    None when the store has none."""
    pointer = read_pointer(fs, f"{store_prefix}/live.json")
    if pointer.data is None:
        return None
    body = fs.cat_file(pointer.data["manifest"])
    if hashlib.sha256(body).hexdigest() != pointer.data["manifest_sha256"]:
        raise RuntimeError(f"{store_prefix}: the live manifest does not match its recorded SHA-256")
    return pointer.data["version"], json.loads(body)
