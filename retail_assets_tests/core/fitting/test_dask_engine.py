"""Per-item fits on a real local Dask cluster (2 worker processes x 1 thread) give the same models, byte
for byte, as the process pool; a worker that dies costs its item the Prophet model, never the store; an
unknown engine is refused with a message naming the choices."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import pandas as pd
import pytest

from retail_assets.core.fitting.champion import decide
from retail_assets.core.fitting.pool import FitPool, build_tasks, run_items
from retail_assets.core.fitting.train import train_store
from retail_assets.core.forecast.models import TrainConfig
from retail_assets_tests.helpers import FAST_WITHOUT_INDEX, small_store

distributed = pytest.importorskip("distributed")

@pytest.fixture(scope="module")
def cluster():
    """A real LocalCluster: 2 worker processes (nannies), 1 thread each; closed after the module."""
    import dask

    # a task whose worker dies is not retried on the next worker: KilledWorker at once (keeps the test short)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        lc = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address="127.0.0.1:0")
    try:
        yield lc
    finally:
        lc.close()
    assert lc.status.name == "closed"


def item_hashes(mv) -> dict[str, str]:
    return {item: hashlib.sha256((mv.path / info["file"]).read_bytes()).hexdigest()
            for item, info in sorted(mv.manifest["items"].items())}


def test_dask_cluster_gives_the_same_models_as_the_process_pool(tmp_path, cluster):
    store = small_store()
    said: dict[str, list[str]] = {"processes": [], "dask": []}
    pool_mv = train_store(store, tmp_path / "processes", "features-v1", FAST_WITHOUT_INDEX, workers=2, warm_start=False,
                          progress=said["processes"].append)
    dask_mv = train_store(store, tmp_path / "dask", "features-v1", FAST_WITHOUT_INDEX, workers=2, warm_start=False,
                          progress=said["dask"].append, engine="dask",
                          scheduler_address=cluster.scheduler_address)

    assert dask_mv.manifest["summary"]["fit_engine"] == "dask"
    assert pool_mv.manifest["summary"]["fit_engine"] == "processes"
    assert dask_mv.manifest["summary"]["fits"] == pool_mv.manifest["summary"]["fits"] == 4 * 6
    assert dask_mv.manifest["summary"]["items_fallback"] == 0
    # same per-item model JSON (SHA-256), same backtest file, same store model version
    assert item_hashes(dask_mv) == item_hashes(pool_mv)
    assert {i: d["sha256"] for i, d in dask_mv.manifest["items"].items()} == item_hashes(pool_mv)
    assert dask_mv.manifest["files"] == pool_mv.manifest["files"]
    assert dask_mv.version == pool_mv.version
    # the Prophet fits themselves agree (their fold forecasts are in the equal backtest file), whatever is served
    assert pd.read_parquet(dask_mv.path / "backtest.parquet")["prophet"].notna().all()
    # same progress lines (one per item, counted in arrival order, which may differ: its 5 fold fits), then the
    # served final fits, made once the champions are known (each item here is served by Prophet)
    for engine, lines in said.items():
        assert [line.split()[1] for line in lines[:-1]] == ["1/4", "2/4", "3/4", "4/4"]
        assert lines[-1].startswith("served final fits: Prophet 4 of 4 items, ")
    strip = lambda lines: sorted(" ".join(line.split(" fits in ")[0].split()[2:]) for line in lines[:-1])  # noqa: E731
    assert strip(said["dask"]) == strip(said["processes"]) == [f"SKU-{i:04d}: 5" for i in range(1, 5)]
    assert dask_mv.manifest["summary"]["prophet_final_fits"] == {"fitted": 4, "failed": 0, "not_served": 0}

    # the fits ran on the cluster, each worker initialised like a pool worker: its own cmdstan temp dir
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        tmpdirs = client.run(lambda: os.environ.get("TMPDIR", ""))
        plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert len(tmpdirs) == 2 and len(set(tmpdirs.values())) == 2
    assert all(os.path.basename(d).startswith("cmdstan-") for d in tmpdirs.values()), tmpdirs
    assert all("retail-cmdstan-tmpdir" in p for p in plugins.values()), plugins


def test_a_local_cluster_started_for_the_run_gives_the_same_models(tmp_path):
    """No scheduler address: a LocalCluster of `workers` processes for the run, shut down afterwards."""
    store = small_store(n_items=2, days=200)
    pool_mv = train_store(store, tmp_path / "processes", "features-v1", FAST_WITHOUT_INDEX, workers=2, warm_start=False)
    with FitPool("dask", workers=2) as pool:
        dask_mv = train_store(store, tmp_path / "dask", "features-v1", FAST_WITHOUT_INDEX, warm_start=False, pool=pool)
        cluster = pool._cluster
        assert len(cluster.workers) == 2
        assert all(spec["options"]["nthreads"] == 1 for spec in cluster.worker_spec.values())
    assert pool._client is None and cluster.status.name == "closed"
    assert dask_mv.version == pool_mv.version and item_hashes(dask_mv) == item_hashes(pool_mv)


@dataclasses.dataclass(frozen=True)
class DiesOffParent(TrainConfig):
    """A config whose seasonal-naive lag kills any process but the test's own: a worker crash mid-item."""

    parent_pid: int = 0

    @property
    def season(self) -> int:
        if os.getpid() != self.parent_pid:
            os._exit(3)
        return super().season


def test_a_worker_that_dies_costs_its_item_prophet_not_the_store(cluster):
    store = small_store(n_items=3, days=200)
    tasks = build_tasks(store, FAST_WITHOUT_INDEX)
    deadly = DiesOffParent(**FAST_WITHOUT_INDEX.to_json(), parent_pid=os.getpid())
    tasks[1] = dataclasses.replace(tasks[1], cfg=deadly)
    said: list[str] = []
    results = run_items(tasks, workers=2, progress=said.append, engine="dask",
                        scheduler_address=cluster.scheduler_address)
    assert [r.item_id for r in results] == [t.item_id for t in tasks]  # task order, whatever finished first
    dead = results[1]
    assert dead.prophet_error.startswith("worker failed: KilledWorker"), dead.prophet_error
    assert dead.fits == 0 and dead.prophet_json is None and dead.future_yhat["seasonal_naive"]
    assert all(r.prophet_error is None and r.prophet_json for r in (results[0], results[2]))
    assert any("prophet failed: worker failed" in line for line in said)
    training = decide("0001", results, FAST_WITHOUT_INDEX)
    by_item = {d.item_id: d for d in training.decisions}
    assert by_item[dead.item_id].status == "fallback" and by_item[dead.item_id].champion != "prophet"
    assert training.summary["items_fallback"] == 1


def test_an_unknown_engine_is_refused_with_the_choices(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"unknown fit engine 'spark': choose one of 'processes', 'dask'"):
        FitPool("spark", workers=2)
    with pytest.raises(ValueError, match="unknown fit engine 'ray'"):
        train_store(small_store(n_items=1, days=120), tmp_path, "v1", FAST_WITHOUT_INDEX, engine="ray")
    assert not any(tmp_path.iterdir())  # refused before anything was fitted or written
    with pytest.raises(ValueError, match="set fit_engine to 'dask'"):
        FitPool("processes", scheduler_address="tcp://127.0.0.1:8786")

    from retail_assets.resources import SETTINGS_ENV, ForecastSettings, build_resources

    with pytest.raises(Exception, match="unknown fit engine 'Dask'"):
        ForecastSettings(fit_engine="Dask")
    with pytest.raises(Exception, match="fit_inputs_via_data_root is for Dask workers"):
        ForecastSettings(fit_inputs_via_data_root=True)
    with pytest.raises(ValueError, match="need the dask engine and an object-store data root"):
        FitPool("dask", inputs_root=str(tmp_path))  # a local root: nothing a worker elsewhere could read
    monkeypatch.setenv(SETTINGS_ENV, json.dumps({"fit_engine": "multiprocessing"}))
    with pytest.raises(Exception, match="unknown fit engine 'multiprocessing': choose one of"):
        build_resources(tmp_path)
    monkeypatch.setenv(SETTINGS_ENV, json.dumps({"fit_engine": "dask", "dask_scheduler_address": "tcp://h:8786"}))
    settings = build_resources(tmp_path)["settings"]
    assert (settings.fit_engine, settings.dask_scheduler_address) == ("dask", "tcp://h:8786")
    assert settings.fit_pool().describe() == "dask scheduler tcp://h:8786"


def test_an_unreachable_or_empty_scheduler_fails_the_store_with_a_message(tmp_path, monkeypatch):
    monkeypatch.setattr(FitPool, "connect_timeout_s", 2.0)
    monkeypatch.setattr(FitPool, "worker_wait_s", 2.0)
    store = small_store(n_items=1, days=120)
    with pytest.raises(RuntimeError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        train_store(store, tmp_path, "v1", FAST_WITHOUT_INDEX, engine="dask", scheduler_address="tcp://127.0.0.1:9")
    with distributed.LocalCluster(n_workers=0, processes=True, dashboard_address="127.0.0.1:0") as empty:
        with pytest.raises(RuntimeError, match="has no workers after 2 s"):
            train_store(store, tmp_path, "v1", FAST_WITHOUT_INDEX, engine="dask", scheduler_address=empty.scheduler_address)
    assert not (tmp_path / "store=0001").exists()  # nothing written


def test_dask_workers_read_the_histories_from_the_object_store_root_and_fit_the_same_models(s3_env, tmp_path):
    """`FitPool(inputs_root=...)`: the histories go to the root as one object named by its SHA-256, each task carries
    no history, and the worker processes (started after the S3 settings are in the environment, as on a worker
    machine) read them there: the same models as the process pool; the object is gone after the run; an object
    whose bytes no longer hash to its name is refused."""
    from retail_assets.core.fitting import pool as fit_pool
    from retail_assets.core.storage import FIT_INPUTS_DIR, filesystem
    from retail_assets_tests.s3server import BUCKET

    url = f"s3://{BUCKET}/dask-inputs"
    store = small_store()
    pool_mv = train_store(store, tmp_path / "processes", "features-v1", FAST_WITHOUT_INDEX, workers=2,
                          warm_start=False)
    submitted = []
    real_submit = distributed.Client.submit

    def spy(self, fn, *args, **kwargs):
        submitted.append(args)
        return real_submit(self, fn, *args, **kwargs)
    distributed.Client.submit = spy
    try:
        with FitPool("dask", workers=2, inputs_root=url) as fits:
            dask_mv = train_store(store, tmp_path / "dask", "features-v1", FAST_WITHOUT_INDEX, warm_start=False,
                                  pool=fits)
    finally:
        distributed.Client.submit = real_submit
    assert item_hashes(dask_mv) == item_hashes(pool_mv) and dask_mv.manifest["files"] == pool_mv.manifest["files"]
    assert dask_mv.manifest["summary"]["items_read_from_root"] == 4 and pool_mv.manifest["summary"]["items_read_from_root"] == 0
    tasks = [a[2] for a in submitted if len(a) == 3 and a[0] == url]
    assert len(tasks) == 4 and all(t.dates == [] and t.y == [] for t in tasks)  # no history through the scheduler
    fs, base = filesystem(url)
    assert not [p for p in fs.find(f"{base}/{FIT_INPUTS_DIR}") if p.endswith(".json")]  # removed after the run

    tasks = build_tasks(store, FAST_WITHOUT_INDEX)
    sha = fit_pool.publish_fit_inputs(url, tasks)
    fs.pipe_file(f"{base}/{FIT_INPUTS_DIR}/{sha}.json", b"{}")  # changed on the store after it was written
    fit_pool._fit_inputs.cache_clear()
    with pytest.raises(ValueError, match="does not hash to its name"):
        fit_pool.run_item_from_root(url, sha, fit_pool._without_history(tasks[0]))
    with pytest.raises(ValueError, match="not a SHA-256"):
        fit_pool.run_item_from_root(url, "../../models/x", tasks[0])
