"""A data root on object storage, worked on through a local copy: pulled before a run reads it, pushed after the
run wrote it. The object store is the truth; the local copy is a cache any machine can lose. Pure: no Dagster.

Why a copy and not every read through fsspec: the platform's writers rely on POSIX guarantees an object store does
not give (a rename that replaces a file atomically, an append under `flock`, DuckDB's own file). Here they keep them
on local disk, and the one place that crosses to the object store is this module, which uses what the store does
give (core/storage.py):
- **A file changed by a run is put only if the object is still what this copy pulled** (`If-Match` on the ETag the
  pull recorded; `If-None-Match: *` for a new file). Two machines that changed the same file from the same state:
  the first put wins; the second gets a conflict instead of silently overwriting it.
- **Append-only files (`*.jsonl`: registries, audit trails, telemetry) merge**: on a conflict the object's lines
  and this copy's new lines are joined (the object's first, then the lines it lacks) and put again from the new
  ETag, so two machines' appends never lose each other's lines.
- **Pointers after what they name, append-only files last** (`live.json`, `latest.json`, then `*.jsonl`): a
  reader never sees a pointer to an object not yet there. Any other conflict holds back the pointers and
  append-only files of the same store partition (`store=<id>`): the loser's new version folder is on the store,
  unreferenced; its pointer and registry lines are not (one winner, a registry that names only it). The loser's
  copy then takes the store's state for the conflicting file and what was held back, so nothing of a version that
  did not go live is pushed later. `MirrorConflict` names the files.
- **A pull brings what changed on the store since this copy last saw it** and keeps what changed here and is not
  pushed yet (the copy is a write-back cache: runs on one machine share it, and a run killed before its push
  leaves complete files, core/atomic.py, that the next push puts). Where both changed, an append-only file merges
  now; any other file stays as it is here and its push will conflict. Files the store no longer has are removed
  here (only those the copy had seen on the store and not changed since); files removed here since the copy saw
  them are removed from the store at the next push (the platform removes some: a matured store's analog file), so
  a machine deletes its whole copy (and its index with it), never part of it.

Never synced: the DuckDB warehouse (local to the machine that writes it; a new machine rebuilds it from the landing
files with `retail run`, whose ingest loads every file its warehouse has not loaded), the Dagster home, lock files,
the temp files of atomic writes (core/atomic.py) and the copy's own index (`.mirror/`). Never copied here: the
warehouse's marts (`marts/`), which the warehouse writes to the store and other machines read there (core/marts.py).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import fcntl
import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from retail_assets.core.atomic import atomic_write_bytes, atomic_write_text
from retail_assets.core.marts import MARTS_DIR
from retail_assets.core.storage import FIT_INPUTS_DIR, filesystem, is_url, lost_race

INDEX_DIR = ".mirror"
INDEX_FILE = "index.json"
# never leave the machine: the warehouse and Dagster's home are local by design, the rest is per process
LOCAL_ONLY_TOP = ("warehouse.duckdb", "warehouse.duckdb.wal", "dagster_home", INDEX_DIR)
# never copied here: the warehouse's marts are read on the store in place (core/marts.py), a Dask fit's inputs
# by its workers (core/fitting/pool.py)
UNSYNCED_TOP = (*LOCAL_ONLY_TOP, MARTS_DIR, FIT_INPUTS_DIR)
_TEMP = re.compile(r"^\..+\.tmp$")
POINTER_NAMES = ("live.json", "latest.json")  # what other files are found through: pushed after them
APPEND_SUFFIX = ".jsonl"
MERGE_RETRIES = 8
TRANSFERS = 16  # puts at once: one at a time, a demo zone's 6,400 landing files took 35 s to upload
FETCH_BATCH = 256  # objects fetched by one concurrent `cat` (s3fs gathers them): 2.5 ms a file, 6.3 one by one


class MirrorPathError(RuntimeError):
    """A synced file's folder in the local copy leads outside it (a symbolic link): nothing is written there."""


class MirrorConflict(RuntimeError):
    """Another machine changed these files since this copy pulled them; nothing of this push that depends on
    them (pointers, registries) was written."""

    def __init__(self, paths: list[str]):
        self.paths = paths
        super().__init__(f"changed on the object store by another writer since this copy pulled them: "
                         f"{', '.join(paths[:5])}{' ...' if len(paths) > 5 else ''}; pull and run again")


@dataclass
class SyncStats:
    """What one pull or push moved, for logs and metadata."""

    files: int = 0  # files moved (downloaded or uploaded)
    bytes: int = 0
    deleted: int = 0
    merged: list[str] = field(default_factory=list)  # append-only files joined with another writer's lines
    unchanged: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, files: int = 0, nbytes: int = 0, deleted: int = 0, unchanged: int = 0) -> None:
        """Count from any transfer thread."""
        with self._lock:
            self.files += files
            self.bytes += nbytes
            self.deleted += deleted
            self.unchanged += unchanged

    def describe(self) -> str:
        merged = f", {len(self.merged)} merged with another writer's lines" if self.merged else ""
        return (f"{self.files} files ({self.bytes / 1e6:.1f} MB), {self.deleted} deleted, {self.unchanged} "
                f"unchanged{merged} in {self.seconds:.1f}s")


def local_copy_dir(url: str) -> Path:
    """Where this machine keeps its copy of `url`: `$RETAIL_LOCAL_COPY_DIR/<hash of the url>` (default
    `~/.cache/retail_assets/roots`). Each url gets its own folder, so two roots never mix."""
    base = Path(os.environ.get("RETAIL_LOCAL_COPY_DIR") or Path.home() / ".cache" / "retail_assets" / "roots")
    return (base / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]).resolve()


def _synced(rel: str) -> bool:
    """Whether a relative path is synced: never a path with empty, `.` or `..` parts (an object key may hold them:
    it would land outside the copy), nothing local-only, no lock or temp file."""
    parts = rel.split("/")
    if parts[0] in UNSYNCED_TOP or any(p in ("", ".", "..") for p in parts):
        return False
    name = parts[-1]
    return not (name.endswith(".lock") or _TEMP.match(name))


def _push_rank(rel: str) -> int:
    """Push order: plain files, then pointers, then append-only files (module docstring)."""
    name = rel.rsplit("/", 1)[-1]
    return 2 if name.endswith(APPEND_SUFFIX) else 1 if name in POINTER_NAMES else 0


def merge_lines(theirs: bytes, ours: bytes) -> bytes:
    """The object's complete lines, then this copy's lines the object lacks (in their order)."""
    have = theirs.split(b"\n")
    if have and have[-1] == b"":
        have.pop()
    seen = set(have)
    extra = [line for line in ours.split(b"\n") if line and line not in seen]
    return b"".join(line + b"\n" for line in have + extra)


def copy_url(local: str | os.PathLike) -> str | None:
    """The object-store URL whose copy `local` is (from its index), or None for a root of its own."""
    try:
        return json.loads((Path(local) / INDEX_DIR / INDEX_FILE).read_text()).get("url")
    except (OSError, ValueError):
        return None


WITHOUT_LANDING_ENV = "RETAIL_COPY_WITHOUT_LANDING"  # "1": this machine's copy leaves `landing/` on the store


class RootMirror:
    """The local copy of an object-store data root (`s3://bucket/prefix`). `skip`: top-level folders this copy
    leaves alone on the store, neither pulled nor pushed nor deleted (`landing` on a machine that never ingests:
    `retail run --no-ingest` trains on the marts and needs no history)."""

    def __init__(self, url: str, local: str | os.PathLike | None = None, skip: tuple[str, ...] = ()):
        if not is_url(url) or not url.startswith("s3://") or not url[len("s3://"):].split("/")[0]:
            raise ValueError(f"{url!r} is not an s3://bucket/prefix URL (S3 or an S3-compatible server: the one "
                             "object store this is tested on)")
        self.url = url.rstrip("/")
        self.fs, self.base = filesystem(self.url)
        self.base = self.base.rstrip("/")
        self.local = Path(local) if local is not None else local_copy_dir(self.url)
        self.local.mkdir(parents=True, exist_ok=True)
        self._index_path = self.local / INDEX_DIR / INDEX_FILE
        self.skip = tuple(skip)

    def _mine(self, rel: str) -> bool:
        """Whether this copy syncs `rel` (synced at all, and not under a skipped folder)."""
        return _synced(rel) and rel.split("/", 1)[0] not in self.skip

    # -- the index: what each synced file was on the store when this copy last saw it

    def _read_index(self) -> dict:
        try:
            data = json.loads(self._index_path.read_text())
        except (OSError, ValueError):
            return {}
        return data.get("objects", {}) if data.get("url") == self.url else {}

    def _write_index(self, objects: dict) -> None:
        atomic_write_text(self._index_path, json.dumps({"url": self.url, "objects": objects}, sort_keys=True))

    @contextlib.contextmanager
    def _locked(self):
        """One pull or push at a time per copy (runs on one machine share it)."""
        path = self.local / INDEX_DIR / "sync.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _remote(self) -> dict[str, dict]:
        """rel path -> object info, for every synced object below the root."""
        try:
            found = self.fs.find(self.base, detail=True)
        except FileNotFoundError:
            return {}
        out = {}
        for path, info in found.items():
            if info.get("type") == "directory":
                continue
            rel = path[len(self.base) + 1:] if path.startswith(self.base + "/") else None
            if rel and self._mine(rel):
                out[rel] = info
        return out

    def _local_files(self) -> dict[str, os.stat_result]:
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.local):
            rel_dir = os.path.relpath(dirpath, self.local)
            if rel_dir == ".":
                dirnames[:] = [d for d in dirnames if d not in UNSYNCED_TOP and d not in self.skip]
            for name in filenames:
                rel = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
                p = Path(dirpath) / name
                if _synced(rel) and p.is_file() and not p.is_symlink():
                    out[rel] = p.stat()
        return out

    # -- pull

    def pull(self) -> SyncStats:
        """Bring what changed on the store since this copy last saw it (module docstring)."""
        t0, stats = time.perf_counter(), SyncStats()
        with self._locked():
            index = self._read_index()
            remote = self._remote()
            todo = [rel for rel in sorted(remote)
                    if not (index.get(rel) and index[rel]["etag"] == remote[rel].get("ETag"))]
            stats.add(unchanged=len(remote) - len(todo))  # the store has not changed them: what is here stands
            for start in range(0, len(todo), FETCH_BATCH):
                chunk = todo[start:start + FETCH_BATCH]
                got = self.fs.cat([f"{self.base}/{rel}" for rel in chunk], on_error="return")
                for rel in chunk:
                    data = got.get(f"{self.base}/{rel}", FileNotFoundError(rel))
                    if isinstance(data, FileNotFoundError):  # deleted since the listing: the next pull sees it
                        continue
                    if isinstance(data, BaseException):
                        raise data
                    self._pulled(rel, remote[rel].get("ETag"), data, index, stats)
            # gone from the store: gone here, unless changed here (a skipped folder's entries stay as they were)
            for rel in sorted(r for r in set(index) - set(remote) if self._mine(r)):
                target = self.local / rel
                if not self._inside(target) or (target.is_file() and not _same_stat(index[rel], target.stat())):
                    continue  # a folder now linked out of the copy is never written through, nor deleted through
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
                del index[rel]
                stats.add(deleted=1)
            self._write_index(index)
        stats.seconds = time.perf_counter() - t0
        return stats

    def _pulled(self, rel: str, etag: str | None, data: bytes, index: dict, stats: SyncStats) -> None:
        """Take one object the store changed since this copy saw it, unless it changed here too."""
        known, target = index.get(rel), self.local / rel
        if not self._inside(target):
            raise MirrorPathError(f"{target}: its folder leads outside the local copy {self.local} (a symbolic link); "
                                  "remove the link and pull again")
        changed_here = target.is_file() and not (known and _same_stat(known, target.stat()))
        if changed_here:
            ours = target.read_bytes()
            if ours == data:
                index[rel] = _entry(etag, data, target.stat())
            elif rel.endswith(APPEND_SUFFIX):  # both appended: join now, the push puts the joined lines
                atomic_write_bytes(target, merge_lines(data, ours))
                index[rel] = {**_entry(etag, data, target.stat()), "size": -1}
                stats.merged.append(rel)
            return  # any other file changed on both sides: kept, and its push conflicts
        atomic_write_bytes(target, data)
        index[rel] = _entry(etag, data, target.stat())
        stats.add(files=1, nbytes=len(data))

    def _take_theirs(self, rel: str, index: dict) -> None:
        """Replace the local file by the store's (or remove it where the store has none)."""
        path, target = f"{self.base}/{rel}", self.local / rel
        if not self._inside(target):
            return
        try:
            data, etag = self.fs.cat_file(path), self.fs.info(path)["ETag"]
        except FileNotFoundError:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            index.pop(rel, None)
            return
        atomic_write_bytes(target, data)
        index[rel] = _entry(etag, data, target.stat())

    def _inside(self, target: Path) -> bool:
        """Whether `target`'s folder resolves inside the copy (no symbolic link leads a write elsewhere)."""
        return target.parent.resolve().is_relative_to(self.local.resolve())

    # -- push

    def push(self) -> SyncStats:
        """Put what changed here since the pull, pointers and append-only files last (module docstring);
        `MirrorConflict` when another writer got there first."""
        t0, stats = time.perf_counter(), SyncStats()
        with self._locked():
            index = self._read_index()
            files = self._local_files()
            changed = []
            for rel, st in files.items():
                known = index.get(rel)
                if known and _same_stat(known, st):
                    stats.add(unchanged=1)
                    continue
                changed.append(rel)
            conflicts: list[str] = []
            try:
                for rank in (0, 1, 2):
                    lost = {_partition(r) for r in conflicts}

                    def push_one(rel: str) -> None:
                        if rank and _partition(rel) in lost:  # held back: it points at or records what lost
                            self._take_theirs(rel, index)
                        elif self._put(rel, index, stats) == "conflict":
                            conflicts.append(rel)
                    _each(push_one, sorted(r for r in changed if _push_rank(r) == rank))
                for rel in conflicts:
                    self._take_theirs(rel, index)
                if not conflicts:
                    for rel in sorted(r for r in set(index) - set(files) if self._mine(r)):  # removed here since
                        with contextlib.suppress(FileNotFoundError):
                            self.fs.rm_file(f"{self.base}/{rel}")
                        del index[rel]
                        stats.add(deleted=1)
            finally:
                self._write_index(index)
        stats.seconds = time.perf_counter() - t0
        if conflicts:
            raise MirrorConflict(conflicts)
        return stats

    def _put(self, rel: str, index: dict, stats: SyncStats) -> str:
        """Put one changed file from the state this copy knew; 'put', 'same' (its bytes were there already),
        'merged' or 'conflict'."""
        path, target = f"{self.base}/{rel}", self.local / rel
        data = target.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        known = index.get(rel)
        if known and known.get("sha256") == sha:  # touched, not changed
            index[rel] = {**known, "size": len(data), "mtime_ns": target.stat().st_mtime_ns}
            stats.add(unchanged=1)
            return "same"
        etag = known["etag"] if known else None
        for _ in range(MERGE_RETRIES):
            try:
                out = (self.fs.pipe_file(path, data, IfMatch=etag) if etag
                       else self.fs.pipe_file(path, data, mode="create"))
            except OSError as exc:
                if not (lost_race(exc) or isinstance(exc, FileNotFoundError)):
                    raise
                try:
                    theirs = self.fs.cat_file(path)
                    etag = self.fs.info(path)["ETag"]
                except FileNotFoundError:  # deleted by another writer: create it again
                    etag = None
                    continue
                if hashlib.sha256(theirs).hexdigest() == sha:
                    index[rel] = _entry(etag, data, target.stat())
                    stats.add(unchanged=1)
                    return "same"
                if not rel.endswith(APPEND_SUFFIX):
                    return "conflict"
                data = merge_lines(theirs, data)
                sha = hashlib.sha256(data).hexdigest()
                atomic_write_bytes(target, data)
                stats.merged.append(rel)
                continue
            new_etag = out.get("ETag") if isinstance(out, dict) else None
            index[rel] = _entry(new_etag or self.fs.info(path)["ETag"], data, target.stat())
            stats.add(files=1, nbytes=len(data))
            return "merged" if rel in stats.merged else "put"
        return "conflict"


def _each(fn, rels: list[str]) -> None:
    """`fn` on every path, TRANSFERS at a time (s3fs's calls are thread-safe: each runs on its event loop); the
    first error is raised once all have finished."""
    if len(rels) <= 1:
        for rel in rels:
            fn(rel)
        return
    with cf.ThreadPoolExecutor(max_workers=TRANSFERS) as pool:
        for fut in [pool.submit(fn, rel) for rel in rels]:
            fut.result()


def _partition(rel: str) -> str:
    """The store partition a file belongs to (`store=<id>`), else its top folder."""
    parts = rel.split("/")
    return next((p for p in parts if p.startswith("store=")), parts[0])


def _entry(etag: str | None, data: bytes, st: os.stat_result) -> dict:
    return {"etag": etag, "sha256": hashlib.sha256(data).hexdigest(), "size": st.st_size,
            "mtime_ns": st.st_mtime_ns}


def _same_stat(known: dict, st: os.stat_result) -> bool:
    return known.get("size") == st.st_size and known.get("mtime_ns") == st.st_mtime_ns

