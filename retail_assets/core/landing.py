"""Incremental raw loading of the landing zone into DuckDB.

Every landing file is copied as text (all columns VARCHAR) into a `raw_*` table with its file
and line number, so the dbt staging models can type, validate and quarantine rows with their
raw values, and a trace can point at the exact line a number came from. A file is loaded once:
`_ingest_files` records its SHA-256; the same file again changes nothing, a changed file
replaces its own rows, a new file adds only its rows. Rows the CSV parser cannot split land in
`raw_malformed` so they reach quarantine instead of vanishing.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from retail_assets.core.atomic import sha256_file
from retail_assets.core.regions import POS_CONVENTIONS

REFERENCE_FILES = ("stores", "items", "holidays", "promotions", "fx_rates")
BATCH_ROWS = 2_000_000
_REGION_DIR = re.compile(r"^region=([A-Z]{2})$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class LandingZoneError(ValueError):
    """The landing zone does not follow the documented layout."""


@dataclass(frozen=True)
class Source:
    """One kind of landing file and the raw table it loads into."""

    name: str
    table: str
    pattern: str  # glob below the landing root
    fmt: str  # "csv" or "jsonl"
    separator: str = ","


@dataclass
class LoadReport:
    files_seen: int = 0
    files_loaded: int = 0
    files_replaced: int = 0
    files_unchanged: int = 0
    rows_loaded: dict[str, int] = field(default_factory=dict)
    malformed_rows: int = 0

    @property
    def total_rows(self) -> int:
        return sum(self.rows_loaded.values())


def discover_sources(landing: Path) -> list[Source]:
    """The sources present in a landing zone, validated against the documented layout."""
    if not landing.is_dir():
        raise LandingZoneError(f"landing zone {landing} does not exist; run `retail generate` or copy files there")
    sources = []
    pos_root = landing / "pos"
    if pos_root.is_dir():
        for child in sorted(pos_root.iterdir()):
            if not child.is_dir():
                continue
            m = _REGION_DIR.match(child.name)
            if not m or m.group(1) not in POS_CONVENTIONS:
                known = ", ".join(f"region={r}" for r in POS_CONVENTIONS)
                raise LandingZoneError(f"unknown POS folder {child}: expected one of {known}")
            conv = POS_CONVENTIONS[m.group(1)]
            sources.append(
                Source(f"pos_{conv.region.lower()}", f"raw_pos_{conv.region.lower()}",
                       f"pos/{child.name}/*.csv", "csv", conv.separator)
            )
    sources.append(Source("ecommerce", "raw_ecommerce", "ecommerce/*.jsonl", "jsonl"))
    sources.append(Source("iot", "raw_iot", "iot/*.csv", "csv"))
    # edge devices' telemetry, one record per forecast, any folder depth (a shipper may group by store or host)
    sources.append(Source("telemetry", "raw_edge_telemetry", "telemetry/**/*.jsonl", "jsonl"))
    return sources


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        create table if not exists _ingest_files (
            source varchar, file varchar primary key, sha256 varchar, bytes bigint,
            rows_read bigint, malformed_rows bigint, header varchar, ingested_at timestamp
        )"""
    )
    con.execute(
        "create table if not exists raw_malformed (source varchar, _file varchar, _line bigint, _raw varchar)"
    )
    for pos in POS_CONVENTIONS.values():  # every region has a table, empty when it sends nothing
        cols = ", ".join(f'"{c}" varchar' for c in pos.columns)
        con.execute(f"create table if not exists raw_pos_{pos.region.lower()} ({cols}, _file varchar, _line bigint)")
    con.execute("create table if not exists raw_ecommerce (_raw varchar, _file varchar, _line bigint)")
    con.execute("create table if not exists raw_edge_telemetry (_raw varchar, _file varchar, _line bigint)")
    con.execute(
        "create table if not exists raw_iot (recorded_at_utc varchar, store_id varchar, device_id varchar,"
        " sku varchar, metric varchar, value varchar, _file varchar, _line bigint)"
    )


def _read_csv(path: Path, separator: str) -> tuple[pa.Table, list[tuple[int, str]]]:
    with open(path, encoding="utf-8", newline="") as fh:
        header = fh.readline().rstrip("\r\n").split(separator)
    for col in header:
        if not _COLUMN.match(col):
            raise LandingZoneError(f"{path}: column name {col!r} is not a plain identifier")
    bad: list[tuple[int, str]] = []

    def on_invalid(row) -> str:
        bad.append((row.number or -1, row.text))
        return "skip"

    def read(threads: bool) -> pa.Table:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=threads),
            parse_options=pacsv.ParseOptions(delimiter=separator, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in header}, strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )

    table = read(threads=True)
    if bad:  # only a single-threaded parse knows the line numbers of the rows it skipped
        bad.clear()
        table = read(threads=False)
    lines = np.arange(2, table.num_rows + len(bad) + 2, dtype=np.int64)  # line 1 is the header
    if bad:
        lines = np.setdiff1d(lines, np.array([n for n, _ in bad], dtype=np.int64))
    return table.append_column("_line", pa.array(lines[: table.num_rows])), bad


def _read_jsonl(path: Path) -> pa.Table:
    text = path.read_text(encoding="utf-8")
    raws, lines = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            raws.append(line)
            lines.append(n)
    return pa.table({"_raw": pa.array(raws, pa.string()), "_line": pa.array(lines, pa.int64())})


def _insert(con: duckdb.DuckDBPyConnection, table: str, batch: pa.Table) -> None:
    existing = {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_name = ?", [table]
    ).fetchall()}
    for col in batch.column_names:
        if col not in existing:  # schema drift is kept, not dropped: staging decides what it means
            con.execute(f'alter table {table} add column "{col}" varchar')
    con.register("_batch", batch)
    try:
        con.execute(f"insert into {table} by name select * from _batch")
    finally:
        con.unregister("_batch")


def _batches(items: list[tuple[str, pa.Table]], limit: int) -> Iterator[pa.Table]:
    buf, n = [], 0
    for _file, t in items:
        buf.append(t)
        n += t.num_rows
        if n >= limit:
            yield pa.concat_tables(buf, promote_options="default")
            buf, n = [], 0
    if buf:
        yield pa.concat_tables(buf, promote_options="default")


def load_reference(con: duckdb.DuckDBPyConnection, landing: Path) -> int:
    """Reload the small reference tables (stores, items, ...) from `reference/` when they changed."""
    ensure_schema(con)
    changed = 0
    for name in REFERENCE_FILES:
        path = landing / "reference" / f"{name}.csv"
        if not path.is_file():
            raise LandingZoneError(f"missing reference file {path}; see the README's landing-zone layout")
        rel = path.relative_to(landing).as_posix()
        digest = sha256_file(path)
        seen = con.execute("select sha256 from _ingest_files where file = ?", [rel]).fetchone()
        if seen and seen[0] == digest and _table_exists(con, f"raw_{name}"):
            continue
        table, bad = _read_csv(path, ",")
        if bad:
            raise LandingZoneError(f"{path}: {len(bad)} malformed rows (first at line {bad[0][0]}); fix the file")
        table = table.append_column("_file", pa.array([rel] * table.num_rows, pa.string()))
        con.execute(f"drop table if exists raw_{name}")
        con.register("_batch", table)
        con.execute(f"create table raw_{name} as select * from _batch")
        con.unregister("_batch")
        _record(con, "reference", [(rel, digest, path.stat().st_size, table.num_rows, 0, _header(table))])
        changed += 1
    return changed


def _header(table: pa.Table) -> str:
    """The file's own column names, comma separated: staging tells a renamed column from an empty one."""
    return ",".join(c for c in table.column_names if not c.startswith("_"))


def _table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_name = ?", [name]).fetchone()[0])


def _record(con, source: str, entries: list[tuple[str, str, int, int, int, str]]) -> None:
    """Log loaded files (file, sha256, bytes, rows_read, malformed_rows, header) in one statement."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    log = pa.table({
        "source": pa.repeat(pa.scalar(source), len(entries)),
        "file": [e[0] for e in entries],
        "sha256": [e[1] for e in entries],
        "bytes": pa.array([e[2] for e in entries], pa.int64()),
        "rows_read": pa.array([e[3] for e in entries], pa.int64()),
        "malformed_rows": pa.array([e[4] for e in entries], pa.int64()),
        "header": [e[5] for e in entries],
        "ingested_at": pa.repeat(pa.scalar(now, pa.timestamp("us")), len(entries)),
    })
    con.register("_log", log)
    try:
        con.execute("delete from _ingest_files where file in (select file from _log)")
        con.execute("insert into _ingest_files by name select * from _log")
    finally:
        con.unregister("_log")


def load_landing_zone(
    con: duckdb.DuckDBPyConnection,
    landing: str | os.PathLike,
    progress: Callable[[str], None] | None = None,
) -> LoadReport:
    """Load every new or changed landing file into its raw table; return what was loaded."""
    say = progress or (lambda _m: None)
    landing = Path(landing).resolve()
    ensure_schema(con)
    report = LoadReport()
    sources = discover_sources(landing)  # refuse an undocumented layout before writing anything
    load_reference(con, landing)
    known = dict(con.execute("select file, sha256 from _ingest_files").fetchall())
    for source in sources:
        files = sorted(landing.glob(source.pattern))
        report.files_seen += len(files)
        pending: list[tuple[str, pa.Table]] = []
        malformed: list[tuple[str, int, str]] = []
        log_rows = []
        for path in files:
            rel = path.relative_to(landing).as_posix()
            digest = sha256_file(path)
            if known.get(rel) == digest:
                report.files_unchanged += 1
                continue
            if rel in known:  # a corrected file replaces its own rows
                con.execute(f"delete from {source.table} where _file = ?", [rel])
                con.execute("delete from raw_malformed where _file = ?", [rel])
                report.files_replaced += 1
            if source.fmt == "csv":
                table, bad = _read_csv(path, source.separator)
            else:
                table, bad = _read_jsonl(path), []
            table = table.append_column("_file", pa.repeat(pa.scalar(rel), table.num_rows))
            pending.append((rel, table))
            malformed.extend((rel, n, text) for n, text in bad)
            log_rows.append((rel, digest, path.stat().st_size, table.num_rows + len(bad), len(bad), _header(table)))
        if not pending:
            continue
        con.execute("begin transaction")
        try:
            for batch in _batches(pending, BATCH_ROWS):
                _insert(con, source.table, batch)
            if malformed:
                con.executemany(
                    "insert into raw_malformed values (?, ?, ?, ?)", [(source.name, *m) for m in malformed]
                )
            _record(con, source.name, log_rows)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        n = sum(t.num_rows for _f, t in pending)
        report.files_loaded += len(pending)
        report.rows_loaded[source.name] = n
        report.malformed_rows += len(malformed)
        say(f"{source.name}: loaded {len(pending):,} new files, {n:,} rows into {source.table}")
    return report
