"""Read-only access to the warehouse: every reader but dbt and the raw loader opens it this way,
so parallel store partitions never contend for DuckDB's single write lock.

DuckDB lets no reader in while another process holds the file for writing (an ingest, a dbt build): that
is said in one sentence (`WarehouseBusy`), never as DuckDB's own traceback.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import duckdb


class WarehouseError(Exception):
    """The warehouse cannot be read now; the message says why and what to do."""


class WarehouseMissing(WarehouseError, FileNotFoundError):
    """No warehouse file yet (still a FileNotFoundError for callers that catch that)."""


class WarehouseBusy(WarehouseError, RuntimeError):
    """Another process holds the warehouse's write lock."""


_LOCK_HOLDER = re.compile(r"\(PID (\d+)\)")


def connect_readonly(warehouse: Path, wait_seconds: float = 0.0) -> duckdb.DuckDBPyConnection:
    """A read-only connection; while a writer holds the file, retry for up to `wait_seconds`, then refuse."""
    if not Path(warehouse).exists():
        raise WarehouseMissing(f"no warehouse at {warehouse}: materialize the ingest assets first (`retail run`)")
    deadline = time.monotonic() + wait_seconds
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
