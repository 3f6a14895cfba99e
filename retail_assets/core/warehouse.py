"""Read-only access to the warehouse: every reader but dbt and the raw loader opens it this way,
so parallel store partitions never contend for DuckDB's single write lock.

DuckDB lets no reader in while another process holds the file for writing (an ingest, a dbt build): that
is said in one sentence (`WarehouseBusy`), never as DuckDB's own traceback.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import time
from pathlib import Path
from typing import Callable

import duckdb


class WarehouseError(Exception):
    """The warehouse cannot be read now; the message says why and what to do."""


class WarehouseMissing(WarehouseError, FileNotFoundError):
    """No warehouse file yet (still a FileNotFoundError for callers that catch that)."""


class WarehouseBusy(WarehouseError, RuntimeError):
    """Another process holds the warehouse's write lock."""


_LOCK_HOLDER = re.compile(r"\(PID (\d+)\)")


RUN_READER_WAIT_S = 900.0  # a run's reader waits for a writer this long; sensors pass 0 and skip a tick


@contextlib.contextmanager
def connect_readonly(warehouse: Path, wait_seconds: float = RUN_READER_WAIT_S):
    """A read-only connection for the `with` block.

    It takes the shared side of the platform's writer lock, so it waits while an ingest or a dbt build of
    this platform writes (and such a writer waits for it: DuckDB would refuse a writer while a reader has the
    file open); it also retries while any other process holds DuckDB's own lock. After `wait_seconds` it
    refuses in one sentence (`WarehouseBusy`).
    A machine without the warehouse, working on a copy of an object-store root whose warehouse machine published
    its marts there, reads those in place instead (core/marts.py): the same tables, as of the last build."""
    if not Path(warehouse).exists():
        published = _published_marts(Path(warehouse).parent)
        if published is None:
            raise WarehouseMissing(f"no warehouse at {warehouse}: materialize the ingest assets first (`retail run`)")
        from retail_assets.core import marts

        con = marts.connect(*published)
        try:
            yield con
        finally:
            con.close()
        return
    deadline = time.monotonic() + wait_seconds
    with _lock(Path(warehouse), shared=True, deadline=deadline):
        con = _open_readonly(Path(warehouse), deadline)
        try:
            yield con
        finally:
            con.close()


def _published_marts(root: Path) -> tuple[str, dict] | None:
    """(url, pointer) of the marts published for the object-store root `root` is a copy of; None otherwise."""
    from retail_assets.core.marts import current
    from retail_assets.core.mirror import copy_url

    url = copy_url(root)
    pointer = current(url) if url else None
    return (url, pointer) if pointer else None


def _open_readonly(warehouse: Path, deadline: float) -> duckdb.DuckDBPyConnection:
    while True:
        try:
            return duckdb.connect(str(warehouse), read_only=True)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                holder = _LOCK_HOLDER.search(str(exc))
                who = f"another process (pid {holder.group(1)})" if holder else "another process"
                raise WarehouseBusy(f"the warehouse {warehouse} is being written by {who}; "
                                    "retry when the ingest finishes") from exc
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


# ---------------------------------------------------------------- one writer at a time, waiting in line

_held: dict[str, list] = {}  # lock path -> [fd, depth]: re-entrant within a process (the dbt asset reads after)


def write_lock(warehouse: Path, timeout_s: float = 900.0, say: Callable[[str], None] | None = None):
    """Hold the warehouse's writer lock (`<warehouse>.writer.lock`, exclusive flock) for a `with` block.

    DuckDB refuses a second writing process instead of queueing it, so two ingests (or an ingest and a dbt
    build started by another run) would fail each other half-way; with this lock the second waits, says who
    it waits for, and gives up after `timeout_s` with one sentence (`WarehouseBusy`). Readers take the shared
    side (`connect_readonly`)."""
    return _lock(Path(warehouse), shared=False, deadline=time.monotonic() + timeout_s, say=say)


@contextlib.contextmanager
def _lock(warehouse: Path, shared: bool, deadline: float, say: Callable[[str], None] | None = None):
    path = str(warehouse) + ".writer.lock"
    if path in _held:  # this process already holds it (a writer reading its own work)
        _held[path][1] += 1
        try:
            yield
        finally:
            _held[path][1] -= 1
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "readers of this platform"
                if time.monotonic() >= deadline:
                    raise WarehouseBusy(
                        f"the warehouse {warehouse} is being written by {holder}; retry when it finishes" if shared
                        else f"the warehouse {warehouse} is being used by {holder}: nothing was written by this "
                             "run; rerun it when that run finishes") from None
                if not told and say:
                    say(f"waiting for the warehouse: {holder} is using it")
                    told = True
                time.sleep(0.2)
        if not shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} (writing)".encode(), 0)
        _held[path] = [fd, 1]
        try:
            yield
        finally:
            del _held[path]
            if not shared:
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
