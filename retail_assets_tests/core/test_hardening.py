"""Hostile identifiers on paths, concurrent writers of the registry and of the dev signing key, and a
`retail trace` that meets an ingest holding the warehouse."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time
from pathlib import Path, PurePosixPath

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retail_assets.core.atomic import append_line, atomic_write_text, read_lines
from retail_assets.core.edge.keys import SigningKeyError, ensure_dev_keys, public_hex_of
from retail_assets.core.fitting.train import train_store
from retail_assets.core.forecast.fold_cache import CACHE_FILE
from retail_assets.core.ids import SAFE_COMPONENT, path_component
from retail_assets.core.registry import records as registry
from retail_assets.core.registry.versions import ModelVersion, item_file
from retail_assets_tests import _race_workers as workers
from retail_assets_tests.helpers import FAST, noisy_weekly, synthetic_store

HOSTILE_IDS = [
    "../../x", "a/b", "a\\b", "..", ".", "", " ", "a\x00b", "x" * 300, "Bäckerei-☕", "\ud800", "CON", "con.txt",
    "nul", "-rf", ".hidden", "a.", "a\n", "~abc", "SKU-1", "sku-1", "SKU-1.json", "../../../../tmp/x/pwn",
]


def assert_single_safe_segment(name: str) -> None:
    assert name not in ("", ".", "..")
    assert PurePosixPath(name).parts == (name,) and os.path.basename(name) == name
    assert not set(name) & {"/", "\\", "\x00", "\n", "\r"}
    assert not name.startswith((".", "-")) and len(name.encode()) <= 255


# --- A. identifiers on paths -----------------------------------------------------------------------------

def test_hostile_ids_become_distinct_files_inside_the_version_dir(tmp_path):
    vdir = tmp_path / "store=0001" / "v1"
    for item in HOSTILE_IDS:
        name = path_component(item)
        assert_single_safe_segment(name)
        atomic_write_text(vdir / item_file(item), json.dumps({"item_id": item}))
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == len(HOSTILE_IDS)  # nothing overwrote anything
    assert all(p.parent == vdir / "items" for p in files)  # nothing escaped, no subdirectories
    assert sorted(json.loads(p.read_text())["item_id"] for p in files) == sorted(HOSTILE_IDS)  # the real id inside
    assert path_component("SKU-1") == "SKU-1" and path_component("sku-1") == "sku-1"  # plain ids stay readable


ids = st.one_of(st.text(max_size=80), st.from_regex(SAFE_COMPONENT, fullmatch=True), st.sampled_from(HOSTILE_IDS),
                st.sampled_from(HOSTILE_IDS).map(lambda s: "~" + s))


@settings(max_examples=500, deadline=None)
@given(ids, ids)
def test_distinct_ids_get_distinct_single_segment_names(a, b):
    na, nb = path_component(a), path_component(b)
    assert (na == nb) == (a == b)
    assert_single_safe_segment(na)
    assert_single_safe_segment(nb)


@settings(max_examples=500, deadline=None)
@given(ids)
def test_a_name_is_the_id_itself_only_when_the_id_is_safe(item):
    name = path_component(item)
    assert name == path_component(item)  # deterministic
    if name == item:
        assert SAFE_COMPONENT.fullmatch(item)
    else:  # an encoded name can never be mistaken for (or collide with) a plain one
        assert name.startswith("~") and not SAFE_COMPONENT.fullmatch(name) and len(name) == 65


# a sku that climbs 6 levels from items/ lands in <base>/a/escaped/ on the old code; one that climbs back into
# items/ overwrites SKU-A's file
HOSTILE_SKUS = ["../../../../../../escaped/pwn", "sub/../SKU-A", "SKU-A"]


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory):
    """One store with hostile skus, trained for real (Prophet and baselines, one worker)."""
    base = tmp_path_factory.mktemp("hostile")
    root = base / "a" / "b" / "data"
    features = synthetic_store({sku: noisy_weekly(120, 20 + 10 * k, k) for k, sku in enumerate(HOSTILE_SKUS)})
    mv = train_store(features, root / "models", "features-v1", FAST, workers=1)
    return base, root, features, mv


def _files_outside(base: Path, inside: Path) -> list[Path]:
    return [p for p in base.rglob("*") if p.is_file() and not p.resolve().is_relative_to(inside.resolve())]


def test_training_a_store_with_hostile_skus_writes_only_inside_its_version_dir(hostile_store):
    base, root, _features, mv = hostile_store
    store_dir = root / "models" / "store=0001"
    assert _files_outside(base, store_dir) == []
    assert {p.name for p in store_dir.iterdir() if p.is_file()} <= {"live.json", CACHE_FILE}  # fixed names
    items = mv.manifest["items"]
    assert set(items) == set(HOSTILE_SKUS)  # the manifest keeps the real ids
    paths = {sku: mv.path / info["file"] for sku, info in items.items()}
    assert len(set(paths.values())) == len(HOSTILE_SKUS)
    for sku, path in paths.items():
        assert path.parent == mv.path / "items"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == items[sku]["sha256"] == mv.manifest["files"][items[sku]["file"]]
    assert items["SKU-A"]["file"] == "items/SKU-A.json"


def test_plots_of_hostile_skus_stay_in_the_version_dir(hostile_store):
    from retail_assets.defs.forecasting.assets import _plots

    base, root, features, mv = hostile_store
    out = _plots(mv, features, FAST.horizon)
    plots = sorted((mv.path / "plots").iterdir())
    assert len([p for p in plots if p.name.startswith("forecast_")]) == len(HOSTILE_SKUS)
    assert len(plots) == len(HOSTILE_SKUS) + ("plot_components" in out)
    assert all(p.is_file() for p in plots)
    assert _files_outside(base, root / "models" / "store=0001") == []


# --- B. concurrent writers ---------------------------------------------------------------------------------

def _spawn(target, args_list) -> list[mp.Process]:
    procs = [mp.get_context("spawn").Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    return procs


def _join(procs: list[mp.Process]) -> None:
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0


def test_two_processes_appending_300_lines_each_keep_all_600(tmp_path):
    path = tmp_path / "store=0001" / registry.REGISTRY
    barrier = mp.get_context("spawn").Barrier(2)
    procs = _spawn(workers.append_lines, [(str(path), tag, 300, barrier) for tag in ("a", "b")])
    seen = 0
    while any(p.is_alive() for p in procs):  # a reader meanwhile: never a torn line, never a line lost
        entries = registry._read(path)
        assert len(entries) >= seen
        seen = len(entries)
        time.sleep(0.005)
    _join(procs)
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    entries = [json.loads(line) for line in raw.decode().splitlines()]
    assert len(entries) == 600
    assert sorted((e["writer"], e["n"]) for e in entries) == sorted((w, n) for w in "ab" for n in range(300))


def test_an_unterminated_last_line_is_ignored_then_cut_off(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text('{"n": 1}\n{"n": 2, "half')  # a writer killed mid-line
    assert read_lines(path) == ['{"n": 1}']
    assert append_line(path, '{"n": 3}')
    assert path.read_text() == '{"n": 1}\n{"n": 3}\n'
    with pytest.raises(ValueError):
        append_line(path, '{"n": 4}\n{"n": 5}')


def _model_version(models_root: Path, version: str = "v0123456789ab") -> ModelVersion:
    vdir = models_root / "store=0001" / version
    vdir.mkdir(parents=True)
    manifest = {"created_at": "2024-01-01T00:00:00+00:00", "features_data_version": "f1", "code_version": "c1",
                "summary": {"champion_mix": {"prophet": 1}, "heldout_weighted_wape_champion": 0.2,
                            "heldout_weighted_wape_seasonal_naive": 0.3, "heldout_coverage_calibrated": 0.8,
                            "items": 1}}
    (vdir / "manifest.json").write_text(json.dumps(manifest))
    return ModelVersion("0001", version, vdir, manifest)


def test_a_version_recorded_by_three_processes_at_once_is_recorded_once(tmp_path):
    trials = [(str(tmp_path / f"t{k}"), _model_version(tmp_path / f"t{k}")) for k in range(15)]
    barrier = mp.get_context("spawn").Barrier(3)
    _join(_spawn(workers.record_same_model, [(trials, barrier)] * 3))
    for root, mv in trials:
        models = [e for e in registry.history(Path(root), "0001") if e["kind"] == "model"]
        assert [e["version"] for e in models] == [mv.version]


def test_two_processes_creating_the_dev_keys_at_once_agree(tmp_path):
    dirs = [str(tmp_path / f"k{k}" / "keys") for k in range(40)]
    barrier = mp.get_context("spawn").Barrier(2)
    _join(_spawn(workers.create_keys, [(dirs, barrier)] * 2))
    for d in map(Path, dirs):
        priv, pub = d / "edge_signing.pem", d / "edge_signing.pub"
        assert pub.read_text() == public_hex_of(priv) + "\n"
        assert priv.stat().st_mode & 0o777 == 0o600
        assert sorted(p.name for p in d.iterdir()) == ["edge_signing.pem", "edge_signing.pub"]  # no temp left


def test_the_public_key_is_repaired_from_the_private_key(tmp_path):
    priv, pub = ensure_dev_keys(tmp_path / "keys")
    key = priv.read_bytes()
    pub.write_text("00" * 32 + "\n")  # left by a creator that lost the race
    assert ensure_dev_keys(tmp_path / "keys") == (priv, pub)
    assert priv.read_bytes() == key  # created once: never replaced
    assert pub.read_text() == public_hex_of(priv) + "\n"
    priv.write_text("not a key")
    with pytest.raises(SigningKeyError, match="edge_signing.pem"):
        ensure_dev_keys(tmp_path / "keys")


# --- C. `retail trace` while an ingest holds the warehouse ----------------------------------------------------

def _retail(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("retail")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "retail_assets.cli"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=180)


@pytest.fixture()
def traced_store(hostile_store):
    """The trained store's features and an (empty) warehouse with the tables trace reads."""
    _base, root, features, _mv = hostile_store
    fdir = root / "features" / "store=0001"
    fdir.mkdir(parents=True, exist_ok=True)
    features.to_parquet(fdir / "features.parquet", index=False)
    warehouse = root / "warehouse.duckdb"
    warehouse.unlink(missing_ok=True)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create table fct_daily_demand (store_id varchar, item_id varchar, business_date date, "
                    "units_pos int, units_ecommerce int, units_total int, promo_planned bool, is_open_day bool)")
        con.execute("create table int_sales_lines (store_id varchar, item_id varchar, business_date date, "
                    "channel varchar, source_file varchar, source_line int, record_key varchar, time_text varchar, "
                    "qty int, is_duplicate bool, quarantine_reason varchar)")
        con.execute("create table quarantine (store_id varchar, item_id varchar, source_file varchar, "
                    "source_line int, reason varchar, raw_values varchar)")
    return root, warehouse


def _hold(warehouse: Path) -> tuple[subprocess.Popen, int]:
    holder = subprocess.Popen([sys.executable, workers.__file__, str(warehouse)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    return holder, json.loads(holder.stdout.readline())["holding"]


def test_trace_during_an_ingest_is_one_sentence_and_exit_2(traced_store):
    root, warehouse = traced_store
    holder, pid = _hold(warehouse)
    try:
        r = _retail("trace", "--data-dir", str(root), "--store", "0001", "--item", "SKU-A", "--date", "2024-05-01")
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"error: the warehouse {warehouse} is being written by another process (pid {pid})")
    assert "retry when the ingest finishes" in r.stderr


def test_a_reader_waits_for_a_writer_that_finishes_within_its_patience(traced_store):
    from retail_assets.core.warehouse import connect_readonly

    _root, warehouse = traced_store
    holder, _pid = _hold(warehouse)
    release = threading.Timer(1.0, holder.stdin.close)  # the ingest commits a second from now
    release.start()
    t0 = time.monotonic()
    try:
        with connect_readonly(warehouse, wait_seconds=60) as con:
            assert con.execute("select count(*) from ingest_in_progress").fetchone() == (1,)
    finally:
        release.join()
        holder.wait(timeout=60)
    assert time.monotonic() - t0 >= 0.9


def test_trace_of_a_hostile_sku_once_the_ingest_is_done(traced_store):
    root, _warehouse = traced_store
    r = _retail("trace", "--data-dir", str(root), "--store", "0001", "--item", HOSTILE_SKUS[0],
                "--date", "2024-05-01", "--format", "json")
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)
    assert t["item_id"] == HOSTILE_SKUS[0] and t["history"] == [] and t["raw_lines_total"] == 0
    assert Path(t["model"]["file"]).parent == root / "models" / "store=0001" / t["model"]["version"] / "items"


@pytest.mark.parametrize("store_id", ["0001\n", "../0001", "0001/..", "", " 0001", "0001;drop", "a" * 33, "-1"])
def test_store_ids_that_could_reach_a_path_or_query_are_refused(store_id):
    from retail_assets.core.ids import InvalidIdentifier, validate_store_id

    with pytest.raises(InvalidIdentifier, match="is not valid"):
        validate_store_id(store_id)
