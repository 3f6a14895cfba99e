"""Where item fits run: a local process pool or a Dask cluster (`FitPool`); a crashed worker costs its item
the Prophet model, never the store. Workers die with their run and get their own scratch folder."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import multiprocessing as mp
import os
import re
import shutil
import tempfile
import uuid
from typing import Callable

import pandas as pd

from retail_assets.core import lifetime
from retail_assets.core.features.grid import promo_regressor
from retail_assets.core.forecast.backtest import (FinalClassic, FinalProphet, ItemResult, ItemTask, final_classic,
                                                 final_prophet, run_item)
from retail_assets.core.forecast.models import TrainConfig, quiet_prophet
from retail_assets.core.registry.versions import library_versions

# ---------------------------------------------------------------- tasks and the pool


def build_tasks(features: pd.DataFrame, cfg: TrainConfig, inits: dict[str, dict] | None = None,
                analog_reference: pd.DataFrame | None = None) -> list[ItemTask]:
    """One task per item; a young item (every item of a young store) carries its analog reference
    (core/forecast/analog.py)."""
    refs = dict(tuple(analog_reference.groupby("item_id", sort=True))) if analog_reference is not None else {}
    tasks = []
    for item_id, g in features.sort_values(["item_id", "date"]).groupby("item_id", sort=True):
        hist = g[~g["is_future"]]
        fut = g[g["is_future"]].head(cfg.horizon)
        rows = pd.concat([hist, fut])
        ref = refs.get(item_id)
        if ref is not None:
            ref = ref.sort_values("date")
        tasks.append(ItemTask(
            store_id=str(g["store_id"].iloc[0]), item_id=str(item_id),
            dates=rows["date"].dt.strftime("%Y-%m-%d").tolist(),
            y=[None if pd.isna(v) else float(v) for v in rows["units"]],
            open_day=[bool(v) for v in rows["is_open_day"]],
            promo=promo_regressor(rows).tolist(),
            holiday=[None if pd.isna(v) else str(v) for v in rows["holiday_name"]],
            n_history=len(hist), cfg=cfg, init=(inits or {}).get(str(item_id)),
            analog_start=None if ref is None else int((ref["date"].iloc[0] - rows["date"].iloc[0]).days),
            analog_y=None if ref is None else [None if pd.isna(v) else float(v) for v in ref["analog_units"]],
            analog_stores=None if ref is None else str(ref["analog_stores"].iloc[0]),
            analog_rule=None if ref is None else str(ref["analog_rule"].iloc[0]),
        ))
    return tasks


FIT_ENGINES = ("processes", "dask")
# folds a training refits in its own process before it hands the remaining items to the pool: a fold's fits take
# ~0.1-0.4 s here, a pool of two spawned workers ~3 s to import Prophet and statsforecast before its first fit
IN_PROCESS_REFITS = 6
# served Prophet fits (FitPool.run_final_prophet) made in this process while no worker runs: one costs ~0.1-0.2 s
# here, against ~3 s for two spawned workers to import Prophet before the first
IN_PROCESS_FINAL_FITS = 24


def validate_fit_engine(engine: str, scheduler_address: str | None = None) -> str:
    """The engine name, checked: `processes` (a local process pool) or `dask` (Dask distributed)."""
    if engine not in FIT_ENGINES:
        raise ValueError(f"unknown fit engine {engine!r}: choose one of {', '.join(map(repr, FIT_ENGINES))} "
                         "(setting fit_engine)")
    if scheduler_address and engine != "dask":
        raise ValueError(f"dask_scheduler_address {scheduler_address!r} is set but fit_engine is {engine!r}: "
                         "set fit_engine to 'dask' to fit on that cluster, or drop the address")
    return engine


def _worker_init() -> None:
    """Each worker dies with the run that started it, and gets its own temp dir (cmdstan's files never collide,
    prophet PR #2160), named after the worker so the next pool removes it if the worker is killed."""
    lifetime.die_with_parent()
    os.environ["TMPDIR"] = str(lifetime.scratch_dir("cmdstan-"))
    tempfile.tempdir = None
    quiet_prophet()


ITEM_LINE = re.compile(r"item (\d+)/(\d+) ")  # how a progress display finds the lines below in a run's log


def _say_item(say: Callable[[str], None], r: ItemResult, done: int, total: int) -> None:
    """One line per finished item, counted, for the run's logs and the CLI's progress bar alike."""
    say(f"item {done}/{total} {r.item_id}: {r.fits} fits in {r.fit_seconds:.2f}s"
        + (f", prophet failed: {r.prophet_error}" if r.prophet_error else ""))


def _fallback(t: ItemTask, exc: BaseException, where: str = "worker") -> ItemResult:
    """The item's worker (or its connection, or its fit in this process) failed: keep the item, on its
    baselines, with the reason."""
    r = run_item(dataclasses.replace(t, fit_prophet=False))
    r.prophet_error = f"{where} failed: {type(exc).__name__}: {exc}"[:300]
    return r


_DASK_PLUGIN = "retail-cmdstan-tmpdir"


@functools.cache
def _dask_worker_plugin_class():
    """A distributed WorkerPlugin doing `_worker_init` on every worker, including workers that join or are
    restarted later. Built on first use so `distributed` stays an optional import (the `cluster` extra)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class CmdstanTempDir(WorkerPlugin):
        idempotent = True  # registered by every run: kept once per worker, never swapped under a running fit

        def setup(self, worker) -> None:
            _worker_init()
            self.tmpdir = os.environ["TMPDIR"]

        def teardown(self, worker) -> None:
            if getattr(self, "tmpdir", None):
                shutil.rmtree(self.tmpdir, ignore_errors=True)

    return CmdstanTempDir


def _worker_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        own = version("retail_assets")
    except PackageNotFoundError:
        own = "0+unknown"
    return {"retail_assets": own, **library_versions()}


class FitPool:
    """Where the per-item fits run: a local process pool (`processes`) or a Dask cluster (`dask`: a
    LocalCluster of `workers` single-threaded worker processes, or the scheduler at `scheduler_address`).

    Started on first use and reusable across stores (a batched retrain pays the start-up once); close it,
    or use it as a context manager. Same results, order and failure rule whatever the engine."""

    connect_timeout_s = 30.0  # an external scheduler must answer within this
    worker_wait_s = 120.0  # ...and have at least one worker within this

    def __init__(self, engine: str = "processes", workers: int = 2, scheduler_address: str | None = None,
                 inputs_root: str | None = None):
        """`inputs_root` (an object-store data root, with the `dask` engine): the items' histories go to the root
        once, as one content-addressed object, and each task carries only its item's name and settings; the
        workers read the histories there (`run_item_from_root`), so nothing large travels through the scheduler."""
        from retail_assets.core.storage import is_url

        if inputs_root is not None and (engine != "dask" or not is_url(inputs_root)):
            raise ValueError("fit inputs through the data root need the dask engine and an object-store data root "
                             f"(got engine {engine!r}, root {inputs_root!r})")
        self.inputs_root = inputs_root
        # items whose fit task was sent without its history, for the worker to read it from the root (all runs of
        # this pool); the served final fits after the decisions carry their item's history
        self.items_read_from_root = 0
        self.engine = validate_fit_engine(engine, scheduler_address)
        self.workers = max(int(workers), 1)
        self.scheduler_address = scheduler_address or None
        self._executor: cf.ProcessPoolExecutor | None = None
        self._client = None
        self._cluster = None

    def __enter__(self) -> "FitPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
            lifetime.sweep_scratch()  # the workers are gone: so are their cmdstan files
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    @property
    def started(self) -> bool:
        """Workers (or a Dask client) are up: the next fits pay no start."""
        return self._executor is not None or self._client is not None

    def describe(self) -> str:
        if self.engine == "processes":
            return f"process pool of {self.workers}" if self.workers > 1 else "in process, one at a time"
        return f"dask scheduler {self.scheduler_address}" if self.scheduler_address \
            else f"dask LocalCluster of {self.workers} x 1 thread"

    def run(self, tasks: list[ItemTask], progress: Callable[[str], None] | None = None) -> list[ItemResult]:
        say = progress or (lambda _m: None)
        done = 0

        def report(r: ItemResult) -> None:
            nonlocal done
            done += 1
            _say_item(say, r, done, len(tasks))

        in_process = self.engine == "processes" and self.workers <= 1
        out: list[ItemResult] = []
        # An item whose folds come from the fold cache needs only its final fits, which cost less in this process
        # than a worker's start (Prophet's and statsforecast's imports): a retrain after a new day runs here, and so
        # does one where a late row or a resent file moved a few folds. Once more than IN_PROCESS_REFITS folds had
        # to be refitted (a weekly re-backtest, a changed configuration), or an item has no cache, the rest go to
        # the pool.
        refitted = 0
        for t in tasks:
            if not (in_process or t.fold_cache):
                break
            try:
                out.append(run_item(t))
            except Exception as exc:  # noqa: BLE001 - as in a worker: the item keeps its baseline, the store goes on
                out.append(_fallback(t, exc, "fit in process"))
            out[-1].fitted_here = True
            report(out[-1])
            refitted += len(out[-1].folds) - out[-1].cached_folds
            if not in_process and (not out[-1].folds or refitted > IN_PROCESS_REFITS):
                break
        rest = tasks[len(out):]
        if rest:
            out += self._run_dask(rest, report) if self.engine == "dask" else self._run_processes(rest, report)
        return out

    def run_final_prophet(self, jobs: list[tuple[ItemTask, dict, dict | None]]) -> list[FinalProphet]:
        """The deferred served Prophet fits (backtest.final_prophet) of (task, specification, start) jobs, in job
        order (`run_finals`). A worker that dies costs its item the Prophet model (the error is returned), never
        the store."""
        return self.run_finals(final_prophet, jobs, lambda error: FinalProphet(error=error))

    def run_final_classic(self, jobs: list[tuple[ItemTask, bool, list[str]]]) -> list[FinalClassic]:
        """The deferred served classic fits (backtest.final_classic) of (task, intermittent, models) jobs, in job
        order (`run_finals`). A worker that dies costs its item those models, never the store."""
        return self.run_finals(final_classic, jobs, lambda error: FinalClassic(error=error))

    def run_finals(self, fn: Callable, jobs: list[tuple], failed: Callable[[str], object]) -> list:
        """`fn(*job)` for each job, in job order: in this process when the pool has no worker running yet and there
        are at most IN_PROCESS_FINAL_FITS of them (a retrain, whose folds came from the cache), else on the pool's
        workers; `failed(reason)` is the result of a job whose worker died."""
        light = [(dataclasses.replace(job[0], fold_cache=None, analog_y=None), *job[1:]) for job in jobs]
        idle = not self.started
        if (self.engine == "processes" and self.workers <= 1) or (idle and len(jobs) <= IN_PROCESS_FINAL_FITS):
            return [fn(*job) for job in light]
        if self.engine == "dask":
            client = self._connect()
            run = uuid.uuid4().hex[:12]
            futures = [client.submit(fn, *job, key=f"retail-final-{fn.__name__}-{job[0].store_id}-{job[0].item_id}-{run}")
                       for job in light]
            out = []
            for fut in futures:
                try:
                    out.append(fut.result())
                except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - the worker was lost
                    out.append(failed(f"worker failed: {type(exc).__name__}: {exc}"[:300]))
                fut.release()
            return out
        self._start_processes()
        futures = [self._executor.submit(fn, *job) for job in light]
        out, broken = [], False
        for fut in futures:
            try:
                out.append(fut.result())
            except Exception as exc:  # noqa: BLE001 - the worker died
                broken = broken or isinstance(exc, cf.process.BrokenProcessPool)
                out.append(failed(f"worker failed: {type(exc).__name__}: {exc}"[:300]))
        if broken:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        return out

    # -- processes

    def _start_processes(self) -> None:
        """The spawned workers, started on first use and kept until `close` (or a dead worker breaks them)."""
        if self._executor is None:
            lifetime.sweep_scratch()  # what killed runs' workers left behind
            self._executor = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                                    initializer=_worker_init)

    def _run_processes(self, tasks, report) -> list[ItemResult]:
        self._start_processes()
        results: dict[str, ItemResult] = {}
        futures = {self._executor.submit(run_item, t): t for t in tasks}
        broken = False
        for fut in cf.as_completed(futures):
            t = futures[fut]
            try:
                r = fut.result()
            except Exception as exc:  # the worker died: keep the item, on its baseline
                broken = broken or isinstance(exc, cf.process.BrokenProcessPool)
                r = _fallback(t, exc)
            results[t.item_id] = r
            report(r)
        if broken:  # a dead worker breaks the whole pool: the next store gets a fresh one
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        return [results[t.item_id] for t in tasks]

    # -- dask

    def _connect(self):
        if self._client is not None:
            return self._client
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise RuntimeError("fit_engine 'dask' needs dask and distributed: pip install 'retail_assets[cluster]'"
                               ) from exc
        if self.scheduler_address:
            try:
                client = Client(self.scheduler_address, timeout=self.connect_timeout_s, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise RuntimeError(f"cannot reach the Dask scheduler at {self.scheduler_address} "
                                   f"(setting dask_scheduler_address): {exc}") from exc
            try:  # a scheduler without workers would queue the fits forever
                client.wait_for_workers(1, timeout=self.worker_wait_s)
            except (OSError, TimeoutError) as exc:
                client.close()
                raise RuntimeError(f"the Dask scheduler at {self.scheduler_address} has no workers after "
                                   f"{self.worker_wait_s:g} s: "
                                   "start some (dask worker ADDRESS --nthreads 1)") from exc
        else:
            self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                         dashboard_address="127.0.0.1:0",  # no fixed port to clash
                                         silence_logs=logging.ERROR)
            client = Client(self._cluster, set_as_default=False)
        try:
            client.register_plugin(_dask_worker_plugin_class()(), name=_DASK_PLUGIN)
            mine = _worker_versions()
            differ = {w: {k: (v, mine.get(k)) for k, v in got.items() if mine.get(k) != v}
                      for w, got in client.run(_worker_versions).items()}
            differ = {w: d for w, d in differ.items() if d}
            if differ:  # a model must be what its manifest says: same code and libraries on every worker
                raise RuntimeError(f"Dask workers run other versions than this process (worker: {{name: "
                                   f"(theirs, ours)}}): {differ}")
        except BaseException:
            client.close()
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None
            raise
        self._client = client
        return client

    def _run_dask(self, tasks, report) -> list[ItemResult]:
        from distributed import as_completed

        client = self._connect()
        run = uuid.uuid4().hex[:12]
        sha = publish_fit_inputs(self.inputs_root, tasks) if self.inputs_root else None
        self.items_read_from_root += len(tasks) if sha else 0
        try:
            futures = {(client.submit(run_item_from_root, self.inputs_root, sha, _without_history(t),
                                      key=f"retail-fit-{t.store_id}-{t.item_id}-{run}") if sha else
                        client.submit(run_item, t, key=f"retail-fit-{t.store_id}-{t.item_id}-{run}")): t
                       for t in tasks}
            results: dict[str, ItemResult] = {}
            for fut in as_completed(list(futures), loop=client.loop):
                t = futures[fut]
                try:
                    r = fut.result()
                except (Exception, asyncio.CancelledError) as exc:  # worker lost (KilledWorker), or the task raised
                    r = _fallback(t, exc)
                results[t.item_id] = r
                report(r)
                fut.release()
        finally:
            if sha:
                remove_fit_inputs(self.inputs_root, sha)
        return [results[t.item_id] for t in tasks]


HISTORY_FIELDS = ("dates", "y", "open_day", "promo", "holiday", "analog_y")  # what an item's task carries in bulk


def _inputs_path(url: str, sha: str) -> tuple:
    from retail_assets.core.storage import FIT_INPUTS_DIR, filesystem

    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError(f"{sha!r} is not a SHA-256 of fit inputs")
    fs, base = filesystem(url)
    return fs, f"{base.rstrip('/')}/{FIT_INPUTS_DIR}/{sha}.json"


def publish_fit_inputs(url: str, tasks: list[ItemTask]) -> str:
    """Every task's history as one JSON object on the store, named by its SHA-256 (immutable: a put never races
    another with different bytes); returns the hash."""
    payload = json.dumps({t.item_id: {f: getattr(t, f) for f in HISTORY_FIELDS} for t in tasks},
                         sort_keys=True, separators=(",", ":")).encode()
    sha = hashlib.sha256(payload).hexdigest()
    fs, path = _inputs_path(url, sha)
    fs.pipe_file(path, payload)
    return sha


def remove_fit_inputs(url: str, sha: str) -> None:
    fs, path = _inputs_path(url, sha)
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(path)


@functools.lru_cache(maxsize=2)
def _fit_inputs(url: str, sha: str) -> dict:
    """The histories under `sha`, read once per worker process and checked against their hash."""
    fs, path = _inputs_path(url, sha)
    payload = fs.cat_file(path)
    if hashlib.sha256(payload).hexdigest() != sha:
        raise ValueError(f"{path} does not hash to its name: changed on the store after it was written")
    return json.loads(payload)


def _without_history(t: ItemTask) -> ItemTask:
    return dataclasses.replace(t, dates=[], y=[], open_day=[], promo=[], holiday=[], analog_y=None)


def run_item_from_root(url: str, sha: str, task: ItemTask) -> ItemResult:
    """A Dask worker's fit of one item whose history it reads from the data root (`FitPool(inputs_root=...)`)."""
    return run_item(dataclasses.replace(task, **_fit_inputs(url, sha)[task.item_id]))


_SHARED: list[FitPool] = []  # pools opened for every training of this process (`shared_pool`), innermost last


@contextlib.contextmanager
def shared_pool(pool: FitPool):
    """While open, every training in this process that is given no pool uses `pool`: `retail run` runs each store as
    its own Dagster run, all in one process, so its stores start the workers once, as a batch of stores does."""
    _SHARED.append(pool)
    try:
        yield pool
    finally:
        _SHARED.remove(pool)


def shared() -> FitPool | None:
    """The pool `shared_pool` opened for this process, if any."""
    return _SHARED[-1] if _SHARED else None


def run_items(tasks: list[ItemTask], workers: int, progress: Callable[[str], None] | None = None,
              engine: str = "processes", scheduler_address: str | None = None,
              pool: FitPool | None = None) -> list[ItemResult]:
    """Fit items in parallel; a crashed worker costs its item the Prophet model, never the store.
    Results in task order. `pool`: an open FitPool to reuse (then engine, workers and address are its own)."""
    if pool is not None:
        return pool.run(tasks, progress)
    with FitPool(engine, workers, scheduler_address) as own:
        return own.run(tasks, progress)
