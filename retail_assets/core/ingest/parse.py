"""Decoding a landing file and splitting it into text rows with their physical lines, never raising on data.

A file that cannot be read as a whole (empty, undecodable in its source's encoding, a line over
`MAX_LINE_CHARS`, a bad header) raises FileRejected with its reason. Values arrive as text, exactly as sent:
only an empty field is NULL (`NA`, `NULL`, `nan` stay strings). A line the CSV parser cannot split (wrong
field count, an unbalanced quote) is returned as malformed with its raw text, and the lines after it are
read on their own; blank lines are skipped but counted, so `_line` is always the physical line.
"""

from __future__ import annotations

import codecs
import csv
import io
import re

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from retail_assets.core.ingest.sources import FileRejected

MAX_LINE_CHARS = 1 << 20  # a line longer than this is not a till's line: the file is rejected
MAX_RECORD_LINES = 20  # a quoted field may span lines; a quote still open after this many is unbalanced
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


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
