"""Read-only access to the warehouse: every reader but dbt and the raw loader opens it this way,
so parallel store partitions never contend for DuckDB's single write lock."""

from __future__ import annotations

from pathlib import Path

import duckdb


def connect_readonly(warehouse: Path) -> duckdb.DuckDBPyConnection:
    if not Path(warehouse).exists():
        raise FileNotFoundError(f"no warehouse at {warehouse}: materialize the ingest assets first (`retail run`)")
    return duckdb.connect(str(warehouse), read_only=True)
