"""Incremental raw loading of the landing zone into DuckDB.

Every landing file is copied as text (all columns VARCHAR) into a `raw_*` table with its file and physical
line number, so the dbt staging models can type, validate and quarantine rows with their raw values, and a
trace can point at the exact line a number came from. A file is loaded once: `_ingest_files` records the
SHA-256 of the bytes read; the same file again changes nothing, a changed file replaces its own rows in the
same transaction that loads the new ones, a new file adds only its rows.

Nothing is lost and nothing escapes:
- the scan reads regular files inside the landing root only: symbolic links, directories named like files,
  FIFOs and devices are never opened but recorded in `_rejected_files` with the reason;
- a file that cannot be read as a whole (empty, undecodable in its source's encoding, a line over
  `MAX_LINE_CHARS`, a bad header, a file name that is not UTF-8) is rejected with its reason, and the other
  files load; a previously loaded version of it keeps its rows until a readable version replaces them;
- values arrive as text, exactly as sent: only an empty field is NULL (`NA`, `NULL`, `nan` stay strings);
- a line the CSV parser cannot split (wrong field count, an unbalanced quote) lands in `raw_malformed`
  with its raw text, and the lines after it are read on their own; blank lines are skipped but counted, so
  `_line` is always the physical line.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from retail_assets.core.ingest.regions import POS_CONVENTIONS

REFERENCE_FILES = ("stores", "items", "holidays", "promotions", "fx_rates")
BATCH_ROWS = 2_000_000
MAX_LINE_CHARS = 1 << 20  # a line longer than this is not a till's line: the file is rejected
MAX_RECORD_LINES = 20  # a quoted field may span lines; a quote still open after this many is unbalanced
DEFAULT_ENCODING = "utf-8"
_REGION_DIR = re.compile(r"^region=([A-Z]{2})$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class LandingZoneError(ValueError):
    """The landing zone cannot be loaded at all (no landing folder, no usable reference file)."""


class FileRejected(Exception):
    """One landing file cannot be read as a whole; the message is the reason recorded for it."""


@dataclass(frozen=True)
class Source:
    """One kind of landing file and the raw table it loads into."""

    name: str
    table: str
    folder: str  # below the landing root
    suffix: str  # ".csv" or ".jsonl"
    recursive: bool = False  # files in sub-folders of `folder` too
    separator: str = ","

    @property
    def fmt(self) -> str:
        return self.suffix.lstrip(".")

    @property
    def pattern(self) -> str:
        return f"{self.folder}/{'**/' if self.recursive else ''}*{self.suffix}"


@dataclass(frozen=True)
class Rejection:
    source: str
    file: str
    reason: str
    sha256: str | None = None
    bytes: int | None = None


@dataclass
class LoadReport:
    files_seen: int = 0
    files_loaded: int = 0
    files_replaced: int = 0
    files_unchanged: int = 0
    rows_loaded: dict[str, int] = field(default_factory=dict)
    malformed_rows: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def files_rejected(self) -> int:
        return len(self.rejected)


SOURCE_NAMES = tuple(f"pos_{r.lower()}" for r in POS_CONVENTIONS) + ("ecommerce", "iot", "telemetry", "reference")


def validate_encodings(encodings: Mapping[str, str] | None) -> dict[str, str]:
    """Per-source text encodings (e.g. {"pos_de": "cp1252"}); unknown sources or codecs are refused."""
    out = {}
    for source, name in (encodings or {}).items():
        if source not in SOURCE_NAMES:
            raise LandingZoneError(f"encoding set for unknown source {source!r}; sources: {', '.join(SOURCE_NAMES)}")
        try:
            out[source] = codecs.lookup(name).name
        except LookupError as exc:
            raise LandingZoneError(f"unknown encoding {name!r} for source {source}") from exc
    return out


def discover_sources(landing: Path) -> list[Source]:
    """Every documented source (a POS table per known region, empty when it sends nothing)."""
    if not landing.is_dir():
        raise LandingZoneError(f"landing zone {landing} does not exist; run `retail generate` or copy files there")
    sources = [Source(f"pos_{c.region.lower()}", f"raw_pos_{c.region.lower()}", f"pos/region={c.region}", ".csv",
                      separator=c.separator) for c in POS_CONVENTIONS.values()]
    sources.append(Source("ecommerce", "raw_ecommerce", "ecommerce", ".jsonl"))
    sources.append(Source("iot", "raw_iot", "iot", ".csv"))
    # edge devices' telemetry, one record per forecast, any folder depth (a shipper may group by store or host)
    sources.append(Source("telemetry", "raw_edge_telemetry", "telemetry", ".jsonl", recursive=True))
    return sources


# ---------------------------------------------------------------- the scan: regular files inside the root


def display_name(rel: str) -> str:
    """A relative path as text DuckDB and people can read, even when the file system's bytes are not UTF-8."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _scan(landing: Path, folder: str, suffix: str, recursive: bool, source: str) -> Iterator[tuple[str, Path] | Rejection]:
    """Regular files named `*suffix` in `landing/folder` (and below when recursive), never through a link.

    Yields (relative path, path) for a file to read, or a Rejection for what looks like one but is not."""
    base = landing / folder
    try:
        st = os.lstat(base)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        yield Rejection(source, display_name(folder), "symbolic link: the landing scan does not follow links")
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    stack = [base]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = Path(entry.path).relative_to(landing).as_posix()
            mode = entry.stat(follow_symlinks=False).st_mode
            looks_like_file = entry.name.endswith(suffix)
            if stat.S_ISLNK(mode):
                if looks_like_file or recursive:
                    yield Rejection(source, display_name(rel), "symbolic link: the landing scan does not follow links")
            elif stat.S_ISDIR(mode) and recursive:
                stack.append(Path(entry.path))
            elif not looks_like_file:
                continue
            elif not stat.S_ISREG(mode):
                yield Rejection(source, display_name(rel), f"{_kind(mode)}, not a regular file: not read")
            else:
                try:
                    rel.encode("utf-8")
                except UnicodeEncodeError:
                    yield Rejection(source, display_name(rel), "file name is not valid UTF-8: rename the file")
                    continue
                yield rel, Path(entry.path)


def scan_landing(landing: Path, sources: list[Source]) -> tuple[dict[str, list[tuple[str, Path]]], list[Rejection]]:
    """Every candidate file per source, plus what was refused (links, special files, unknown POS folders)."""
    found: dict[str, list[tuple[str, Path]]] = {s.name: [] for s in sources}
    rejected: list[Rejection] = []
    for s in sources:
        for hit in _scan(landing, s.folder, s.suffix, s.recursive, s.name):
            (rejected.append(hit) if isinstance(hit, Rejection) else found[s.name].append(hit))
    known = {s.folder.split("/", 1)[1] for s in sources if s.folder.startswith("pos/")}
    pos_root = landing / "pos"
    if pos_root.is_dir() and not pos_root.is_symlink():
        with os.scandir(pos_root) as it:
            for entry in sorted(it, key=lambda e: e.name):
                if entry.name in known:
                    continue
                rel = f"pos/{entry.name}"
                m = _REGION_DIR.match(entry.name)
                if entry.is_symlink():
                    rejected.append(Rejection("pos", display_name(rel), "symbolic link: the landing scan does not follow links"))
                elif entry.is_dir(follow_symlinks=False):
                    reason = (f"unknown POS folder {entry.name}: expected one of "
                              + ", ".join(sorted(known)) + (" (region not configured)" if m else ""))
                    for hit in _scan(landing, rel, ".csv", False, "pos"):
                        rejected.append(Rejection("pos", hit[0], reason) if isinstance(hit, tuple) else hit)
    return found, rejected


def read_landing_bytes(path: Path) -> bytes:
    """The bytes of a regular file, opened without following a link and without blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FileRejected(f"cannot open: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRejected(f"{_kind(st.st_mode)}, not a regular file: not read")
        chunks = []
        while chunk := os.read(fd, 1 << 22):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise FileRejected(f"cannot read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


# ---------------------------------------------------------------- decoding and parsing, never raising on data


def decode(data: bytes, encoding: str) -> str:
    """The file's text in its source's encoding; a UTF-8 byte-order mark is dropped."""
    if codecs.lookup(encoding).name == "utf-8" and data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FileRejected(
            f"not valid {encoding} (byte 0x{data[exc.start]:02x} on line {line}); if the sender uses another "
            "encoding, set it for this source in RETAIL_LANDING_ENCODINGS") from exc


def physical_lines(text: str) -> list[str]:
    """Lines split on LF only (CRLF accepted), so line numbers match `sed -n Np` and an editor."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    longest = max(map(len, lines), default=0)
    if longest > MAX_LINE_CHARS:
        n = next(i for i, ln in enumerate(lines, start=1) if len(ln) > MAX_LINE_CHARS)
        raise FileRejected(f"line {n} has {longest:,} characters, over the limit of {MAX_LINE_CHARS:,}")
    return lines


def _header(lines: list[str], separator: str) -> list[str]:
    if not lines or not lines[0].strip():
        raise FileRejected("empty file: no header line" if not lines else "first line is empty: no header")
    try:
        header = next(csv.reader([lines[0]], delimiter=separator, strict=True))
    except csv.Error as exc:
        raise FileRejected(f"header line cannot be split: {exc}") from exc
    for col in header:
        if not _COLUMN.match(col):
            raise FileRejected(f"header column {col!r} is not a plain identifier (letters, digits, '_')")
    if len(set(header)) != len(header):
        raise FileRejected(f"header repeats a column: {lines[0]!r}")
    return header


def _quoted_record(text: str, separator: str) -> list[str] | None:
    """One record with quoted fields (RFC 4180), or None when `text` is not exactly one well-formed record."""
    if text.count('"') % 2:
        return None
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=separator, strict=True))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 else None


def split_csv(lines: list[str], separator: str, ncols: int) -> tuple[list[int], list[list[str]], list[tuple[int, str]]]:
    """Data records of a CSV (after the header): (physical line of each, fields, malformed (line, raw text)).

    A line whose quotes are unbalanced may join the next lines (a quoted newline); if no join of at most
    MAX_RECORD_LINES lines gives one record of `ncols` fields, only the first line is malformed and the next
    line is read on its own, so one stray quote never swallows the rows after it."""
    numbers, records, bad = [], [], []
    i, n = 1, len(lines)
    while i < n:
        line = lines[i]
        if not line:
            i += 1
            continue
        if '"' not in line:
            fields = line.split(separator)
            if len(fields) == ncols:
                numbers.append(i + 1)
                records.append(fields)
            else:
                bad.append((i + 1, line))
            i += 1
            continue
        j, buf = i, line
        while buf.count('"') % 2 and j + 1 < n and j - i + 1 < MAX_RECORD_LINES:
            j += 1
            buf += "\n" + lines[j]
        fields = _quoted_record(buf, separator)
        if fields is not None and len(fields) == ncols:
            numbers.append(i + 1)
            records.append(fields)
            i = j + 1
        else:
            bad.append((i + 1, line))
            i += 1
    return numbers, records, bad


def _strings(values) -> pa.Array:
    """Text exactly as sent; only an empty field is NULL."""
    arr = pa.array(values, pa.string())
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def _fast_csv(data: bytes, header: list[str], separator: str, nlines: int) -> tuple[pa.Table, list[tuple[int, str]]] | None:
    """Arrow's parser for the common case (no quotes, no blank lines), where row k is physical line k + 2."""
    bad: list[tuple[int, str]] = []

    def on_invalid(row) -> str:
        bad.append((row.number or -1, row.text))
        return "skip"

    def read(threads: bool) -> pa.Table:
        return pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=threads, column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=separator, quote_char=False, ignore_empty_lines=False,
                                             invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in header},
                                                 null_values=[""], strings_can_be_null=True),
        )

    if nlines < 2:
        return None  # a header alone: nothing for Arrow to do
    try:
        table = read(threads=True)
        if bad:  # only a single-threaded parse numbers the rows it skipped
            bad.clear()
            table = read(threads=False)
    except pa.ArrowInvalid:
        return None  # anything Arrow will not split, the careful parser reads line by line
    good = sorted(set(range(2, nlines + 1)) - {n for n, _ in bad}) if bad else range(2, nlines + 1)
    if table.num_rows != len(good) or any(n < 2 for n, _ in bad):
        return None  # numbering cannot be proven: let the careful parser read it
    return table.append_column("_line", pa.array(good, pa.int64())), bad


def read_csv_text(data: bytes, encoding: str, separator: str) -> tuple[pa.Table, list[tuple[int, str]]]:
    """Every data row of a CSV file as text with its physical line, and the lines that cannot be split."""
    text = decode(data, encoding)
    lines = physical_lines(text)
    header = _header(lines, separator)
    if '"' not in text and "" not in lines[1:] and "\r" not in text.replace("\r\n", ""):
        utf8 = data if (codecs.lookup(encoding).name == "utf-8" and not data.startswith(codecs.BOM_UTF8)) \
            else text.encode("utf-8")
        fast = _fast_csv(utf8, header, separator, len(lines))
        if fast is not None:
            return fast
    numbers, records, bad = split_csv(lines, separator, len(header))
    columns = list(zip(*records)) if records else [[] for _ in header]
    table = pa.table({c: _strings(col) for c, col in zip(header, columns)} if header else {})
    return table.append_column("_line", pa.array(numbers, pa.int64())), bad


def read_jsonl_text(data: bytes, encoding: str) -> pa.Table:
    """Every non-blank line of a JSONL file, as sent, with its physical line; staging judges the JSON."""
    lines = physical_lines(decode(data, encoding))
    keep = [(n, ln) for n, ln in enumerate(lines, start=1) if ln.strip()]
    return pa.table({"_raw": pa.array([ln for _n, ln in keep], pa.string()),
                     "_line": pa.array([n for n, _ln in keep], pa.int64())})


# ---------------------------------------------------------------- the warehouse side


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


def _insert(con: duckdb.DuckDBPyConnection, table: str, batch: pa.Table) -> None:
    existing = {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_name = ?", [table]
    ).fetchall()}
    for col in batch.column_names:
        if col not in existing:  # schema drift is kept, not dropped: staging decides what it means
            con.execute(f'alter table {table} add column "{col}" varchar')  # col matched _COLUMN
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


def _table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
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
            if seen and seen[0] == digest and _table_exists(con, f"raw_{name}"):
                continue
            table, bad = read_csv_text(data, encoding, ",")
            if bad:
                raise FileRejected(f"{len(bad)} malformed rows (first at line {bad[0][0]}): a reference file "
                                   "is used whole or not at all")
        except FileRejected as exc:
            if not _table_exists(con, f"raw_{name}"):
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
