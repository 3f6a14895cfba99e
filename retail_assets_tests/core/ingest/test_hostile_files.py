"""The landing loader under hostile and careless input: links, special files, bad bytes, odd spellings.

Unit tests run the pure loader on an in-memory DuckDB; one test runs a real Dagster ingest (dbt included) on a
copy of the small zone with every kind of bad file dropped in, and checks what a data engineer would look at:
the rejected files with their reasons, quarantine with the raw text, reconciliation and the failing check.
"""

from __future__ import annotations

import codecs
import os
import shutil

import duckdb
import pytest

from retail_assets.core.ingest import load, parse, sources
from retail_assets_tests.helpers import (
    US_HEADER,
    materialize_ingest,
    minimal_zone,
    us_line,
)


def _rows(con, table: str, file: str) -> list[tuple]:
    return con.execute(f"select * exclude (_file) from {table} where _file = ? order by _line", [file]).fetchall()


def _rejected(con) -> dict[str, str]:
    return dict(con.execute("select file, reason from _rejected_files").fetchall())


@pytest.fixture()
def zone(tmp_path):
    landing = minimal_zone(tmp_path)
    con = duckdb.connect()
    yield landing, con
    con.close()


def test_links_and_special_files_are_refused_and_never_read(zone, tmp_path):
    landing, con = zone
    secret = tmp_path / "edge_signing.pem"
    secret.write_text("-----BEGIN PRIVATE KEY-----\nTOPSECRET\n")
    pos = landing / "pos" / "region=US"
    (pos / "good.csv").write_text(f"{US_HEADER}\n{us_line('A-1')}\n")
    os.symlink(secret, pos / "key.csv")
    os.symlink("/etc/passwd", pos / "passwd.csv")
    os.mkfifo(pos / "pipe.csv")  # opening it for reading would block forever
    (pos / "folder.csv").mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.jsonl").write_text('{"a": 1}\n')
    (landing / "telemetry").mkdir()
    os.symlink(outside, landing / "telemetry" / "linked_dir")
    os.symlink(outside, landing / "ecommerce")  # a whole source folder that is a link

    report = load.load_landing_zone(con, landing)

    rejected = _rejected(con)
    assert report.files_loaded == 1 and len(_rows(con, "raw_pos_us", "pos/region=US/good.csv")) == 1
    assert "symbolic link" in rejected["pos/region=US/key.csv"]
    assert "symbolic link" in rejected["pos/region=US/passwd.csv"]
    assert "FIFO" in rejected["pos/region=US/pipe.csv"]
    assert "directory" in rejected["pos/region=US/folder.csv"]
    assert "symbolic link" in rejected["telemetry/linked_dir"]
    assert "symbolic link" in rejected["ecommerce"]
    tables = [t for (t,) in con.execute("select table_name from information_schema.tables").fetchall()]
    everything = repr([con.execute(f'select * from "{t}"').fetchall() for t in tables])
    assert "TOPSECRET" not in everything and "root:" not in everything


@pytest.mark.parametrize("name, content, reason", [
    ("empty.csv", b"", "empty file"),
    ("blankhead.csv", b"\n" + f"{us_line('A-1')}\n".encode(), "no header"),
    ("latin1.csv", f"{US_HEADER}\n".encode() + us_line("A-1", promo="CAF\u00c9").encode("latin-1") + b"\n",
     "not valid utf-8"),
    ("longline.csv", f"{US_HEADER}\n{us_line('A-1')}\n".encode() + b"x" * (parse.MAX_LINE_CHARS + 1) + b"\n",
     "over the limit"),
    ("badheader.csv", b"txn id,store_id\nA,1\n", "not a plain identifier"),
    ("dupheader.csv", b"txn_id,txn_id\nA,1\n", "repeats a column"),
])
def test_unreadable_files_are_rejected_with_a_reason_and_the_others_load(zone, name, content, reason):
    landing, con = zone
    pos = landing / "pos" / "region=US"
    (pos / name).write_bytes(content)
    (pos / "good.csv").write_text(f"{US_HEADER}\n{us_line('A-1')}\n")
    report = load.load_landing_zone(con, landing)
    assert report.files_loaded == 1 and report.files_rejected == 1
    assert reason in _rejected(con)[f"pos/region=US/{name}"]
    assert not _rows(con, "raw_pos_us", f"pos/region=US/{name}")


def test_a_file_name_that_is_not_utf8_is_rejected_by_a_readable_name(zone):
    landing, con = zone
    pos = landing / "pos" / "region=US"
    with open(os.path.join(os.fsencode(pos), b"caf\xe9.csv"), "w") as fh:
        fh.write(f"{US_HEADER}\n{us_line('A-1')}\n")
    load.load_landing_zone(con, landing)
    assert _rejected(con) == {"pos/region=US/caf\\xe9.csv": "file name is not valid UTF-8: rename the file"}


def test_bom_crlf_and_a_configured_encoding_are_read(zone):
    landing, con = zone
    pos = landing / "pos" / "region=US"
    (pos / "bom_crlf.csv").write_bytes(codecs.BOM_UTF8 + f"{US_HEADER}\r\n{us_line('A-1')}\r\n".encode())
    load.load_landing_zone(con, landing)
    cafe = us_line("A-2", promo="CAF\u00c9")
    (pos / "cp1252.csv").write_bytes(f"{US_HEADER}\n{cafe}\n".encode("cp1252"))
    load.load_landing_zone(con, landing, encodings={"pos_us": "cp1252"})  # a sender that writes Windows-1252
    assert _rows(con, "raw_pos_us", "pos/region=US/bom_crlf.csv")[0][:2] == ("A-1", "0001")
    assert _rows(con, "raw_pos_us", "pos/region=US/cp1252.csv")[0][7] == "CAF\u00c9"
    with pytest.raises(sources.LandingZoneError, match="unknown encoding"):
        load.load_landing_zone(con, landing, encodings={"pos_us": "klingon"})


def test_values_arrive_as_sent_and_lines_are_physical(zone):
    landing, con = zone
    body = "\n".join([
        US_HEADER,
        us_line("A-1", promo="NA"),                         # line 2: 'NA' is a promo code, not NULL
        "",                                               # line 3: blank
        us_line("A-2", promo="NULL"),                       # line 4
        'A-3,0001,SKU-0001,2023-12-01 10:00:00,2,3.50,USD,"multi\nline",red',  # lines 5-6
        us_line("A-4", qty="nan"),                          # line 7
        'A-5,0001,SKU-0001,"2023-12-01 10:00:00,2,3.50,USD,,red',  # line 8: a quote that never closes
        us_line("A-6"),                                     # line 9: not swallowed by line 8
        us_line("A-7") + ",extra",                          # line 10: one field too many
        us_line("A-8", qty=""),                             # line 11: empty is the only NULL
    ]) + "\n"
    (landing / "pos" / "region=US" / "odd.csv").write_text(body)
    report = load.load_landing_zone(con, landing)
    rows = {r[0]: r for r in con.execute(
        "select txn_id, _line, qty, promo_code from raw_pos_us where _file = 'pos/region=US/odd.csv'").fetchall()}
    assert rows == {
        "A-1": ("A-1", 2, "2", "NA"), "A-2": ("A-2", 4, "2", "NULL"), "A-3": ("A-3", 5, "2", "multi\nline"),
        "A-4": ("A-4", 7, "nan", None), "A-6": ("A-6", 9, "2", None), "A-8": ("A-8", 11, None, None)}
    assert con.execute("select _line, _raw from raw_malformed order by 1").fetchall() == [
        (8, 'A-5,0001,SKU-0001,"2023-12-01 10:00:00,2,3.50,USD,,red'), (10, us_line("A-7") + ",extra")]
    assert con.execute("select rows_read, malformed_rows from _ingest_files where file like '%odd.csv'"
                       ).fetchone() == (8, 2) and report.malformed_rows == 2


def test_unknown_region_folder_is_rejected_and_the_rest_loads(zone):
    landing, con = zone
    (landing / "pos" / "region=FR").mkdir()
    (landing / "pos" / "region=FR" / "ventes.csv").write_text(f"{US_HEADER}\n{us_line('F-1')}\n")
    (landing / "pos" / "region=US" / "good.csv").write_text(f"{US_HEADER}\n{us_line('A-1')}\n")
    report = load.load_landing_zone(con, landing)
    assert report.files_loaded == 1
    assert "unknown POS folder region=FR" in _rejected(con)["pos/region=FR/ventes.csv"]


def test_a_changed_file_that_fails_keeps_its_old_rows_and_record(zone, monkeypatch):
    landing, con = zone
    f = landing / "pos" / "region=US" / "day.csv"
    v1 = f"{US_HEADER}\n{us_line('A-1')}\n{us_line('A-2')}\n"
    f.write_text(v1)
    load.load_landing_zone(con, landing)
    old_sha = con.execute("select sha256 from _ingest_files where file = 'pos/region=US/day.csv'").fetchone()[0]

    # 1. the corrected file cannot be decoded: refused, the old rows stay
    f.write_bytes(v1.encode() + us_line("A-3", promo="\u00e9").encode("latin-1") + b"\n")
    load.load_landing_zone(con, landing)
    assert len(_rows(con, "raw_pos_us", "pos/region=US/day.csv")) == 2
    assert "not valid utf-8" in _rejected(con)["pos/region=US/day.csv"]

    # 2. the warehouse fails half-way through loading the new version (a crash, a full disk)
    f.write_text(v1 + us_line("A-3") + "\n")
    real_insert = load._insert

    def failing_insert(con_, table, batch):
        real_insert(con_, table, batch)  # the rows are written, then the load dies
        raise duckdb.IOException("disk full (injected)")

    monkeypatch.setattr(load, "_insert", failing_insert)
    report = load.load_landing_zone(con, landing)
    monkeypatch.setattr(load, "_insert", real_insert)
    assert [r[0] for r in _rows(con, "raw_pos_us", "pos/region=US/day.csv")] == ["A-1", "A-2"]
    assert con.execute("select sha256 from _ingest_files where file = 'pos/region=US/day.csv'").fetchone()[0] == old_sha
    assert "disk full" in _rejected(con)["pos/region=US/day.csv"] and report.files_loaded == 0

    # 3. the next ingest loads it, and the refusal is cleared
    load.load_landing_zone(con, landing)
    assert [r[0] for r in _rows(con, "raw_pos_us", "pos/region=US/day.csv")] == ["A-1", "A-2", "A-3"]
    assert _rejected(con) == {}


def test_bad_files_in_a_real_ingest_are_named_counted_and_quarantined(small_zone, tmp_path):
    """A real Dagster ingest with dbt: the bad files do not stop it; the check fails naming them."""
    root, _truth = small_zone
    data = tmp_path / "data"
    shutil.copytree(root / "landing", data / "landing")
    pos = data / "landing" / "pos" / "region=US"
    (pos / "zz_empty.csv").write_bytes(b"")
    (pos / "zz_latin1.csv").write_bytes(f"{US_HEADER}\n".encode() + us_line("Z-0", promo="\u00e9").encode("latin-1"))
    os.symlink("/etc/passwd", pos / "zz_passwd.csv")
    spellings = ["2.5", "0x10", "1_000", "1e2", " 3", "+4"]
    lines = [us_line(f"Z-{i}", qty=q) for i, q in enumerate(spellings, start=1)]
    lines.append(us_line("Z-9", promo="NA"))
    (pos / "zz_spellings.csv").write_text(US_HEADER + "\n\n" + "\n".join(lines) + "\n")  # a blank line 2

    result = materialize_ingest(data)
    assert result.success  # one bad file never stops the others
    check = {c.check_name: c for c in result.get_asset_check_evaluations()}["gx_quarantine_rate"]
    assert not check.passed
    assert "zz_empty.csv" in check.metadata["rejected_files"].value
    assert check.metadata["files_rejected"].value == 3
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        rejected = dict(con.execute("select source_file, rejected_reason from ingest_reconciliation"
                                    " where rejected_reason is not null").fetchall())
        assert set(rejected) == {f"pos/region=US/{n}" for n in ("zz_empty.csv", "zz_latin1.csv", "zz_passwd.csv")}
        quarantined = con.execute(
            "select source_line, reason, raw_values ->> 'qty' from quarantine"
            " where source_file = 'pos/region=US/zz_spellings.csv' order by 1").fetchall()
        assert quarantined == [(n, "unparseable_qty", q) for n, q in enumerate(spellings, start=3)]
        assert con.execute("select promo_code from int_sales_lines where record_key = 'Z-9'").fetchone() == ("NA",)
        assert con.execute("select bool_and(reconciled) from ingest_reconciliation"
                           " where rejected_reason is null").fetchone() == (True,)


def test_a_header_alone_without_a_newline_loads_no_rows(zone):
    """Found by the fuzz test: Arrow refused to skip the header of a one-line file."""
    landing, con = zone
    (landing / "pos" / "region=US" / "header_only.csv").write_text(US_HEADER)
    report = load.load_landing_zone(con, landing)
    assert report.files_loaded == 1 and report.files_rejected == 0
    assert con.execute("select rows_read from _ingest_files where file like '%header_only.csv'").fetchone() == (0,)


def test_two_ingests_at_once_follow_each_other_and_lose_nothing(small_zone, tmp_path):
    """Two real ingest runs (raw load + dbt) in two processes on one warehouse: the second waits for the
    first writer, says so, and both succeed; every file is loaded once and every row reconciles."""
    import subprocess
    import sys

    root, _truth = small_zone
    data = tmp_path / "data"
    shutil.copytree(root / "landing", data / "landing")
    code = ("import sys; from pathlib import Path; from retail_assets_tests.helpers import materialize_ingest; "
            "r = materialize_ingest(Path(sys.argv[1])); sys.exit(0 if r.success else 1)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(data)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    assert any("waiting for the warehouse" in o for o in outs)
    files = sum(1 for p in (data / "landing").rglob("*") if p.is_file() and "_truth" not in p.parts)
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*), count(distinct file) from _ingest_files").fetchone() == (files, files)
        assert con.execute("select bool_and(reconciled), count(*) from ingest_reconciliation").fetchone() == (True, files)
        assert con.execute("select count(*) from (select _file, _line from raw_pos_us group by all"
                           " having count(*) > 1)").fetchone() == (0,)
