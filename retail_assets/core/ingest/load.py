"""Incremental raw loading of the landing zone into DuckDB: the warehouse side of ingest.

Every landing file is copied as text (all columns VARCHAR) into a `raw_*` table with its file and physical
line number, so the dbt staging models can type, validate and quarantine rows with their raw values, and a
trace can point at the exact line a number came from. A file is loaded once: `_ingest_files` records the
SHA-256 of the bytes read; the same file again changes nothing, a changed file replaces its own rows in the
same transaction that loads the new ones, a new file adds only its rows. A file that cannot be read is
recorded in `_rejected_files` with its reason and the other files load; a previously loaded version of it
keeps its rows until a readable version replaces them. Which entries are read is scan.py's; how a file is
decoded and split is parse.py's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import duckdb
import pyarrow as pa

from retail_assets.core.ingest.parse import read_csv_text, read_jsonl_text
from retail_assets.core.ingest.regions import POS_CONVENTIONS
from retail_assets.core.ingest.scan import read_landing_bytes, scan_landing
from retail_assets.core.ingest.sources import (
    DEFAULT_ENCODING,
    REFERENCE_FILES,
    FileRejected,
    LandingZoneError,
    LoadReport,
    Rejection,
    Source,
    discover_sources,
    validate_encodings,
)

BATCH_ROWS = 2_000_000


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        create table if not exists _ingest_files (
            source varchar, file varchar primary key, sha256 varchar, bytes bigint,
            rows_read bigint, malformed_rows bigint, header varchar, ingested_at timestamp
        )"""
    )
    con.execute(
        "create table if not exists _rejected_files (source varchar, file varchar primary key, sha256 varchar,"
        " bytes bigint, reason varchar, rejected_at timestamp)"
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
    con.execute(
        "create table if not exists raw_weather (issued_at varchar, store_id varchar, region varchar, date varchar,"
        " temperature_min_c varchar, temperature_max_c varchar, temperature_mean_c varchar,"
        " precipitation_mm varchar, _file varchar, _line bigint)"
    )


def _insert(con: duckdb.DuckDBPyConnection, table: str, batch: pa.Table) -> None:
    existing = {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_name = ?", [table]
    ).fetchall()}
    for col in batch.column_names:
        if col not in existing:  # schema drift is kept, not dropped: staging decides what it means
            con.execute(f'alter table {table} add column "{col}" varchar')  # col matched parse._COLUMN
    con.register("_batch", batch)
    try:
        con.execute(f"insert into {table} by name select * from _batch")
    finally:
        con.unregister("_batch")


def _batches(tables: list[pa.Table], limit: int) -> Iterator[pa.Table]:
    buf, n = [], 0
    for t in tables:
        buf.append(t)
        n += t.num_rows
        if n >= limit:
            yield pa.concat_tables(buf, promote_options="default")
            buf, n = [], 0
    if buf:
        yield pa.concat_tables(buf, promote_options="default")


def _header_of(table: pa.Table) -> str:
    """The file's own column names, comma separated: staging tells a renamed column from an empty one."""
    return ",".join(c for c in table.column_names if not c.startswith("_"))


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_name = ?", [name]).fetchone()[0])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _record(con, source: str, entries: list[tuple[str, str, int, int, int, str]]) -> None:
    """Log loaded files (file, sha256, bytes, rows_read, malformed_rows, header) in one statement."""
    log = pa.table({
        "source": pa.repeat(pa.scalar(source), len(entries)),
        "file": [e[0] for e in entries],
        "sha256": [e[1] for e in entries],
        "bytes": pa.array([e[2] for e in entries], pa.int64()),
        "rows_read": pa.array([e[3] for e in entries], pa.int64()),
        "malformed_rows": pa.array([e[4] for e in entries], pa.int64()),
        "header": [e[5] for e in entries],
        "ingested_at": pa.repeat(pa.scalar(_now(), pa.timestamp("us")), len(entries)),
    })
    con.register("_log", log)
    try:
        con.execute("delete from _ingest_files where file in (select file from _log)")
        con.execute("delete from _rejected_files where file in (select file from _log)")
        con.execute("insert into _ingest_files by name select * from _log")
    finally:
        con.unregister("_log")


def _record_rejections(con, rejected: list[Rejection]) -> None:
    """Keep one row per file currently refused; a file fixed or removed since leaves the list."""
    con.execute("begin transaction")
    try:
        current = {f: sha for f, sha in con.execute("select file, sha256 from _rejected_files").fetchall()}
        for r in rejected:
            if r.file in current and current[r.file] == r.sha256:
                continue  # the same refusal as last time: keep when it was first seen
            con.execute("delete from _rejected_files where file = ?", [r.file])
            con.execute("insert into _rejected_files values (?, ?, ?, ?, ?, ?)",
                        [r.source, r.file, r.sha256, r.bytes, r.reason, _now()])
        still = {r.file for r in rejected}
        for f in current:
            if f not in still:
                con.execute("delete from _rejected_files where file = ?", [f])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


@dataclass
class _Parsed:
    rel: str
    digest: str
    size: int
    table: pa.Table
    bad: list[tuple[int, str]]
    replaces: bool


def _parse(source: Source, rel: str, path: Path, encoding: str, known: dict[str, str]) -> _Parsed | Rejection | None:
    """Read one file; None when it is unchanged since it was loaded."""
    try:
        data = read_landing_bytes(path)
    except FileRejected as exc:
        return Rejection(source.name, rel, str(exc))
    digest = hashlib.sha256(data).hexdigest()
    if known.get(rel) == digest:
        return None
    try:
        if source.fmt == "csv":
            table, bad = read_csv_text(data, encoding, source.separator)
        else:
            table, bad = read_jsonl_text(data, encoding), []
    except FileRejected as exc:
        return Rejection(source.name, rel, str(exc), digest, len(data))
    table = table.append_column("_file", pa.repeat(pa.scalar(rel), table.num_rows))
    return _Parsed(rel, digest, len(data), table, bad, rel in known)


def _commit_files(con, source: Source, files: list[_Parsed]) -> None:
    """Replace the old rows of changed files and add the new ones in ONE transaction, with their log lines."""
    con.execute("begin transaction")
    try:
        for f in files:
            if f.replaces:
                con.execute(f"delete from {source.table} where _file = ?", [f.rel])
                con.execute("delete from raw_malformed where _file = ?", [f.rel])
        for batch in _batches([f.table for f in files], BATCH_ROWS):
            _insert(con, source.table, batch)
        malformed = [(source.name, f.rel, n, text) for f in files for n, text in f.bad]
        if malformed:
            con.executemany("insert into raw_malformed values (?, ?, ?, ?)", malformed)
        _record(con, source.name, [(f.rel, f.digest, f.size, f.table.num_rows + len(f.bad), len(f.bad),
                                    _header_of(f.table)) for f in files])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def load_reference(con: duckdb.DuckDBPyConnection, landing: Path, encoding: str = DEFAULT_ENCODING) -> list[Rejection]:
    """Reload the small reference tables (stores, items, ...) from `reference/` when they changed.

    A changed reference file that cannot be used whole is rejected and the previous table stays; with no
    previous table there is nothing to harmonize against, so that is a LandingZoneError."""
    ensure_schema(con)
    rejected = []
    for name in REFERENCE_FILES:
        rel = f"reference/{name}.csv"
        path = landing / rel
        if not os.path.lexists(path):
            raise LandingZoneError(f"missing reference file {path}; see the README's landing-zone layout")
        try:
            if os.path.islink(path):
                raise FileRejected("symbolic link: the landing scan does not follow links")
            data = read_landing_bytes(path)
            digest = hashlib.sha256(data).hexdigest()
            seen = con.execute("select sha256 from _ingest_files where file = ?", [rel]).fetchone()
            if seen and seen[0] == digest and table_exists(con, f"raw_{name}"):
                continue
            table, bad = read_csv_text(data, encoding, ",")
            if bad:
                raise FileRejected(f"{len(bad)} malformed rows (first at line {bad[0][0]}): a reference file "
                                   "is used whole or not at all")
        except FileRejected as exc:
            if not table_exists(con, f"raw_{name}"):
                raise LandingZoneError(f"{path}: {exc}; fix the file (there is no earlier version to keep)") from exc
            rejected.append(Rejection("reference", rel, f"{exc}; the previously loaded version stays in use"))
            continue
        table = table.append_column("_file", pa.repeat(pa.scalar(rel), table.num_rows))
        con.execute("begin transaction")
        try:
            con.execute(f"drop table if exists raw_{name}")
            con.register("_batch", table)
            con.execute(f"create table raw_{name} as select * from _batch")
            con.unregister("_batch")
            _record(con, "reference", [(rel, digest, len(data), table.num_rows, 0, _header_of(table))])
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    return rejected


def load_landing_zone(
    con: duckdb.DuckDBPyConnection,
    landing: str | os.PathLike,
    progress: Callable[[str], None] | None = None,
    encodings: Mapping[str, str] | None = None,
) -> LoadReport:
    """Load every new or changed landing file into its raw table; refuse, record and skip what cannot be read."""
    say = progress or (lambda _m: None)
    landing = Path(landing).resolve()
    enc = validate_encodings(encodings)
    sources = discover_sources(landing)
    ensure_schema(con)
    report = LoadReport()
    report.rejected.extend(load_reference(con, landing, enc.get("reference", DEFAULT_ENCODING)))
    found, rejected = scan_landing(landing, sources)
    report.rejected.extend(rejected)
    known = dict(con.execute("select file, sha256 from _ingest_files").fetchall())
    for source in sources:
        files = found[source.name]
        report.files_seen += len(files)
        encoding = enc.get(source.name, DEFAULT_ENCODING)
        parsed: list[_Parsed] = []
        for rel, path in files:
            out = _parse(source, rel, path, encoding, known)
            if out is None:
                report.files_unchanged += 1
            elif isinstance(out, Rejection):
                report.rejected.append(out)
                say(f"{source.name}: rejected {out.file}: {out.reason}")
            else:
                parsed.append(out)
        if not parsed:
            continue
        try:
            _commit_files(con, source, parsed)
            committed = parsed
        except duckdb.Error as exc:  # find the file the warehouse refuses; the others still load
            say(f"{source.name}: loading {len(parsed)} files together failed ({exc}); loading one by one")
            committed = []
            for f in parsed:
                try:
                    _commit_files(con, source, [f])
                    committed.append(f)
                except duckdb.Error as one:
                    report.rejected.append(Rejection(source.name, f.rel, f"the warehouse refused it: {one}",
                                                     f.digest, f.size))
        n = sum(f.table.num_rows for f in committed)
        report.files_loaded += len(committed)
        report.files_replaced += sum(f.replaces for f in committed)
        report.rows_loaded[source.name] = n
        report.malformed_rows += sum(len(f.bad) for f in committed)
        say(f"{source.name}: loaded {len(committed):,} new or changed files, {n:,} rows into {source.table}")
    _record_rejections(con, report.rejected)
    if report.rejected:
        say(f"{len(report.rejected)} files rejected (see _rejected_files and ingest_reconciliation)")
    return report
