"""Property tests of the landing loader over generated files: bytes, encodings, quoting, line endings, sizes.

`RETAIL_FUZZ_EXAMPLES` scales the number of cases (CI default below; a longer local run sets e.g. 20000).
"""

from __future__ import annotations

import codecs
import csv
import io
import os

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retail_assets.core.ingest import load, parse, sources
from retail_assets_tests.helpers import minimal_zone

EXAMPLES = int(os.environ.get("RETAIL_FUZZ_EXAMPLES", "300"))
HEADER = ["txn_id", "store_id", "sku", "qty"]
# what tills really send, and what breaks naive parsers: separators, quotes, newlines, NA-likes, odd numbers
FIELD = st.one_of(
    st.sampled_from(["", "NA", "NULL", "nan", "2.5", "0x10", "1_000", "1e2", " 3", "-1", "\u00e9t\u00e9", '"', ",",
                     ";", "a\nb", "\u2028", "\x00"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=12),
)
ROWS = st.lists(st.lists(FIELD, min_size=len(HEADER), max_size=len(HEADER)), max_size=25)


def _serialize(rows, separator, crlf, blanks_before) -> tuple[str, list[int]]:
    """CSV text as a careful writer makes it, blank lines sprinkled between records, and each record's line."""
    out, lines, line = [], [], 1
    nl = "\r\n" if crlf else "\n"
    buf = io.StringIO()
    csv.writer(buf, delimiter=separator, lineterminator=nl).writerow(HEADER)
    out.append(buf.getvalue())
    line += 1
    for row, blanks in zip(rows, blanks_before):
        out.append(nl * blanks)
        line += blanks
        buf = io.StringIO()
        csv.writer(buf, delimiter=separator, lineterminator=nl).writerow(row)
        text = buf.getvalue()
        lines.append(line)
        out.append(text)
        line += text.count("\n")
    return "".join(out), lines


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS, separator=st.sampled_from([",", ";"]), crlf=st.booleans(), bom=st.booleans(),
       blanks=st.lists(st.integers(0, 2), min_size=25, max_size=25))
def test_well_formed_csv_reads_back_exactly_with_physical_lines(rows, separator, crlf, bom, blanks):
    text, starts = _serialize(rows, separator, crlf, blanks)
    data = (codecs.BOM_UTF8 if bom else b"") + text.encode("utf-8")
    table, bad = parse.read_csv_text(data, "utf-8", separator)
    assert bad == []
    assert table.column("_line").to_pylist() == starts
    got = [[table.column(c)[i].as_py() for c in HEADER] for i in range(table.num_rows)]
    assert got == [[v if v != "" else None for v in row] for row in rows]


MUTATION = st.tuples(st.integers(0, 10_000), st.binary(min_size=0, max_size=6), st.integers(0, 6))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS, crlf=st.booleans(), blanks=st.lists(st.integers(0, 2), min_size=25, max_size=25),
       mutations=st.lists(MUTATION, max_size=4), encoding=st.sampled_from(["utf-8", "latin-1", "utf-16"]))
def test_any_bytes_parse_without_raising_and_every_row_lands_once(rows, crlf, blanks, mutations, encoding):
    text, _starts = _serialize(rows, ",", crlf, blanks)
    data = bytearray(text.encode("utf-8"))
    for pos, insert, delete in mutations:  # splice random bytes in: stray quotes, bad UTF-8, NULs, CRs
        at = pos % (len(data) + 1)
        data[at:at + delete] = insert
    try:
        table, bad = parse.read_csv_text(bytes(data), encoding, ",")
    except sources.FileRejected as exc:
        assert str(exc)  # a refusal always carries its reason
        return
    lines = table.column("_line").to_pylist() + [n for n, _ in bad]
    assert len(lines) == len(set(lines))  # a physical line starts at most one row or malformed line
    nlines = len(parse.physical_lines(parse.decode(bytes(data), encoding)))
    assert all(2 <= n <= nlines for n in lines)
    assert table.num_columns == len(parse._header(parse.physical_lines(parse.decode(bytes(data), encoding)), ",")) + 1


@settings(max_examples=max(20, EXAMPLES // 10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.lists(st.tuples(ROWS, st.lists(MUTATION, max_size=3)), min_size=1, max_size=4))
def test_the_loader_never_raises_and_counts_reconcile(tmp_path_factory, files):
    landing = minimal_zone(tmp_path_factory.mktemp("fuzz"))
    for k, (rows, mutations) in enumerate(files):
        text, _ = _serialize(rows, ",", False, [0] * 25)
        text = text.replace(",".join(HEADER), "txn_id,store_id,sku,sold_at,qty,unit_price,currency,promo_code,color")
        data = bytearray(text.encode("utf-8"))
        for pos, insert, delete in mutations:
            at = pos % (len(data) + 1)
            data[at:at + delete] = insert
        (landing / "pos" / "region=US" / f"f{k}.csv").write_bytes(bytes(data))
        (landing / "ecommerce").mkdir(exist_ok=True)
        (landing / "ecommerce" / f"e{k}.jsonl").write_bytes(bytes(data))
    with duckdb.connect() as con:
        report = load.load_landing_zone(con, landing)
        loaded = dict(con.execute("select file, rows_read from _ingest_files where source <> 'reference'").fetchall())
        rejected = {f for (f,) in con.execute("select file from _rejected_files").fetchall()}
        assert not (set(loaded) & rejected) and len(loaded) + len(rejected) == 2 * len(files)
        assert report.files_loaded == len(loaded) and report.files_rejected == len(rejected)
        for file, rows_read in loaded.items():
            table = "raw_pos_us" if file.startswith("pos/") else "raw_ecommerce"
            kept = con.execute(f"select count(*) from {table} where _file = ?", [file]).fetchone()[0]
            malformed = con.execute("select count(*) from raw_malformed where _file = ?", [file]).fetchone()[0]
            assert kept + malformed == rows_read
        again = load.load_landing_zone(con, landing)  # the same files again change nothing
        assert again.files_loaded == 0 and again.files_unchanged == len(loaded)
