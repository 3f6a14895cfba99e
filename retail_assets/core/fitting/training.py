"""Train one store: per-item fits in a process pool or on a Dask cluster (`FitPool`), store-level champion
choice and calibration, and a versioned, hashed model directory. Pure: no Dagster.

Layout: `<models>/store=<id>/<version>/` with `items/<item>.json` (Prophet's own JSON for Prophet
champions, a small JSON state for baseline champions; `<item>` is `ids.path_component(item_id)`, the manifest's
`items[item_id]["file"]` names it), `manifest.json` (versions, data version,
metrics, calibration, SHA-256 of every file) and `live.json` one level up pointing at the served version.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from retail_assets.core.forecast import forecasting as fc
from retail_assets.core import lifetime
from retail_assets.core.atomic import atomic_write_bytes, atomic_write_text, sha256_file
from retail_assets.core.ids import path_component, validate_store_id
from retail_assets.settings import REPO_DIR

LIVE_POINTER = "live.json"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus the git commit when the code runs from a checkout. Read once per process: the
    commit whose code was imported, not whatever the checkout moved to while a long run went on.
    `$RETAIL_CODE_VERSION` names it instead (an install without git; comparing two builds of equal behaviour)."""
    from importlib.metadata import PackageNotFoundError, version

    if os.environ.get("RETAIL_CODE_VERSION"):
        return os.environ["RETAIL_CODE_VERSION"]

    try:
        pkg = version("retail_assets")
    except PackageNotFoundError:
        pkg = "0+unknown"
    try:
        sha = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{pkg}+{sha}" if sha else pkg


def library_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("prophet", "cmdstanpy", "pandas", "numpy")}


# ---------------------------------------------------------------- tasks and the pool


def build_tasks(features: pd.DataFrame, cfg: fc.TrainConfig, inits: dict[str, dict] | None = None) -> list[fc.ItemTask]:
    tasks = []
    for item_id, g in features.sort_values(["item_id", "date"]).groupby("item_id", sort=True):
        hist = g[~g["is_future"]]
        fut = g[g["is_future"]].head(cfg.horizon)
        rows = pd.concat([hist, fut])
        tasks.append(fc.ItemTask(
            store_id=str(g["store_id"].iloc[0]), item_id=str(item_id),
            dates=rows["date"].dt.strftime("%Y-%m-%d").tolist(),
            y=[None if pd.isna(v) else float(v) for v in rows["units"]],
            open_day=[bool(v) for v in rows["is_open_day"]],
            promo=[int(bool(v)) for v in rows["promo_planned"]],
            holiday=[None if pd.isna(v) else str(v) for v in rows["holiday_name"]],
            n_history=len(hist), cfg=cfg, init=(inits or {}).get(str(item_id)),
        ))
    return tasks


FIT_ENGINES = ("processes", "dask")


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
    fc.quiet_prophet()


def _say_item(say: Callable[[str], None], r: fc.ItemResult) -> None:
    say(f"item {r.item_id}: {r.fits} fits in {r.fit_seconds:.2f}s"
        + (f", prophet failed: {r.prophet_error}" if r.prophet_error else ""))


def _fallback(t: fc.ItemTask, exc: BaseException) -> fc.ItemResult:
    """The item's worker (or its connection) failed: keep the item, on its baselines, with the reason."""
    r = fc.run_item(dataclasses.replace(t, fit_prophet=False))
    r.prophet_error = f"worker failed: {type(exc).__name__}: {exc}"[:300]
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

    def __init__(self, engine: str = "processes", workers: int = 2, scheduler_address: str | None = None):
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

    def describe(self) -> str:
        if self.engine == "processes":
            return f"process pool of {self.workers}" if self.workers > 1 else "in process, one at a time"
        return f"dask scheduler {self.scheduler_address}" if self.scheduler_address \
            else f"dask LocalCluster of {self.workers} x 1 thread"

    def run(self, tasks: list[fc.ItemTask], progress: Callable[[str], None] | None = None) -> list[fc.ItemResult]:
        say = progress or (lambda _m: None)
        if self.engine == "dask":
            return self._run_dask(tasks, say)
        if self.workers <= 1:
            out = []
            for t in tasks:
                out.append(fc.run_item(t))
                say(f"item {t.item_id}: {out[-1].fits} fits" + (f", prophet failed: {out[-1].prophet_error}"
                                                                if out[-1].prophet_error else ""))
            return out
        return self._run_processes(tasks, say)

    # -- processes

    def _run_processes(self, tasks, say) -> list[fc.ItemResult]:
        if self._executor is None:
            lifetime.sweep_scratch()  # what killed runs' workers left behind
            self._executor = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                                    initializer=_worker_init)
        results: dict[str, fc.ItemResult] = {}
        futures = {self._executor.submit(fc.run_item, t): t for t in tasks}
        broken = False
        for fut in cf.as_completed(futures):
            t = futures[fut]
            try:
                r = fut.result()
            except Exception as exc:  # the worker died: keep the item, on its baseline
                broken = broken or isinstance(exc, cf.process.BrokenProcessPool)
                r = _fallback(t, exc)
            results[t.item_id] = r
            _say_item(say, r)
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

    def _run_dask(self, tasks, say) -> list[fc.ItemResult]:
        from distributed import as_completed

        client = self._connect()
        run = uuid.uuid4().hex[:12]
        futures = {client.submit(fc.run_item, t, key=f"retail-fit-{t.store_id}-{t.item_id}-{run}"): t
                   for t in tasks}
        results: dict[str, fc.ItemResult] = {}
        for fut in as_completed(list(futures), loop=client.loop):
            t = futures[fut]
            try:
                r = fut.result()
            except (Exception, asyncio.CancelledError) as exc:  # worker lost (KilledWorker), or the task raised
                r = _fallback(t, exc)
            results[t.item_id] = r
            _say_item(say, r)
            fut.release()
        return [results[t.item_id] for t in tasks]


def run_items(tasks: list[fc.ItemTask], workers: int, progress: Callable[[str], None] | None = None,
              engine: str = "processes", scheduler_address: str | None = None,
              pool: FitPool | None = None) -> list[fc.ItemResult]:
    """Fit items in parallel; a crashed worker costs its item the Prophet model, never the store.
    Results in task order. `pool`: an open FitPool to reuse (then engine, workers and address are its own)."""
    if pool is not None:
        return pool.run(tasks, progress)
    with FitPool(engine, workers, scheduler_address) as own:
        return own.run(tasks, progress)


# ---------------------------------------------------------------- store-level decisions


@dataclass
class ItemDecision:
    item_id: str
    champion: str
    reason: str
    backtest: dict[str, dict]  # model -> metrics on all folds
    heldout_champion: str  # chosen on the earlier folds only
    heldout: dict[str, dict]  # model -> metrics on the last fold
    status: str  # ok | fallback
    error: str | None


@dataclass
class StoreTraining:
    store_id: str
    cfg: fc.TrainConfig
    results: list[fc.ItemResult]
    decisions: list[ItemDecision]
    calibration: fc.Calibration  # served: calibrated on every fold
    summary: dict = field(default_factory=dict)


def decide(store_id: str, results: list[fc.ItemResult], cfg: fc.TrainConfig) -> StoreTraining:
    decisions = []
    for r in results:
        folds = fc.recent(r.folds)
        champion, reason, scores = fc.choose_champion(r, folds)
        earlier, last = folds[:-1], folds[-1:]
        sel, _why, _s = fc.choose_champion(r, earlier)
        heldout = {m: fc.fold_metrics(r, m, last) for m in (sel, fc.BASELINE)}
        decisions.append(ItemDecision(
            item_id=r.item_id, champion=champion, reason=reason, backtest=scores, heldout_champion=sel,
            heldout=heldout, status="fallback" if r.prophet_error else "ok", error=r.prophet_error,
        ))
    served_pairs = [(f, d.champion) for r, d in zip(results, decisions)
                    for f in fc.recent(r.folds) + fc.seasonal(r.folds, "seasonal_serving") if d.champion in f.yhat]
    calibration = fc.calibrate(served_pairs, cfg)
    # honest figures: choose and calibrate on the earlier folds (and the season a year before), score on the last
    early_pairs = [(f, d.heldout_champion) for r, d in zip(results, decisions)
                   for f in fc.recent(r.folds)[:-1] + fc.seasonal(r.folds, "seasonal_heldout")
                   if d.heldout_champion in f.yhat]
    last_pairs = [(f, d.heldout_champion) for r, d in zip(results, decisions) for f in fc.recent(r.folds)[-1:]
                  if d.heldout_champion in f.yhat]
    heldout_cal = fc.calibrate(early_pairs, cfg)
    training = StoreTraining(store_id, cfg, results, decisions, calibration)
    training.summary = summarize(training, heldout_cal, last_pairs)
    return training


def summarize(t: StoreTraining, heldout_cal: fc.Calibration, last_pairs) -> dict:
    champ = [d.heldout[d.heldout_champion]["wape"] for d in t.decisions
             if d.heldout.get(d.heldout_champion, {}).get("n")]
    base = [d.heldout[fc.BASELINE]["wape"] for d in t.decisions if d.heldout.get(fc.BASELINE, {}).get("n")]
    finite = lambda xs: [x for x in xs if np.isfinite(x)]  # noqa: E731
    ys, yc, yb = [], [], []
    for (f, model) in last_pairs:
        mask = np.array(f.open_day, bool)
        ys.append(np.array(f.y)[mask])
        yc.append(np.array(f.yhat[model])[mask])
        yb.append(np.array(f.yhat[fc.BASELINE])[mask])
    y = np.concatenate(ys) if ys else np.array([])
    last_fold = t.cfg.folds - 1
    mix: dict[str, int] = {}
    for d in t.decisions:
        mix[d.champion] = mix.get(d.champion, 0) + 1
    return {
        "items": len(t.decisions),
        "items_fallback": sum(d.status == "fallback" for d in t.decisions),
        "champion_mix": dict(sorted(mix.items())),
        "heldout_fold": "last of %d folds x %d %s" % (t.cfg.folds, t.cfg.fold_horizon,
                                                      "days" if t.cfg.freq == "D" else "weeks"),
        "heldout_median_wape_champion": statistics.median(finite(champ)) if finite(champ) else None,
        "heldout_median_wape_seasonal_naive": statistics.median(finite(base)) if finite(base) else None,
        "heldout_weighted_wape_champion": fc.wape(y, np.concatenate(yc)) if len(y) else None,
        "heldout_weighted_wape_seasonal_naive": fc.wape(y, np.concatenate(yb)) if len(y) else None,
        "heldout_share_champion_beats_naive": float(np.mean(
            [d.heldout[d.heldout_champion]["wape"] < d.heldout[fc.BASELINE]["wape"] for d in t.decisions
             if d.heldout_champion != fc.BASELINE])) if any(d.heldout_champion != fc.BASELINE for d in t.decisions)
        else 0.0,
        "nominal_coverage": t.cfg.interval,
        "heldout_coverage_calibrated": fc.interval_coverage(last_pairs, heldout_cal) if last_pairs else None,
        "heldout_coverage_prophet_raw": fc.raw_prophet_coverage(t.results, last_fold),
        "fit_seconds_total": float(sum(r.fit_seconds for r in t.results)),
        "fits": int(sum(r.fits for r in t.results)),
        "warm_started_items": int(sum(r.warm_started for r in t.results)),
    }


# ---------------------------------------------------------------- storage


@dataclass
class ModelVersion:
    store_id: str
    version: str
    path: Path
    manifest: dict
    reused: bool = False


def item_artifact(r: fc.ItemResult, d: ItemDecision) -> str:
    if d.champion == "prophet":
        return r.prophet_json  # Prophet's own serializer (no pickle)
    return fc.dumps({"model": d.champion, **r.baseline_state})


def backtest_parquet(t: StoreTraining) -> bytes:
    """Every fold forecast (all models, Prophet's raw bounds) for plots and audits."""
    import io

    rows = []
    for r in t.results:
        for f in r.folds:
            for h, day in enumerate(f.dates):
                row = {"item_id": r.item_id, "fold": f.fold, "kind": f.kind, "date": day, "horizon_day": h + 1, "y": f.y[h],
                       "is_open_day": f.open_day[h], "scale": f.scale, "level": f.level,
                       "prophet_raw_lower": f.raw_lower[h] if f.raw_lower else None,
                       "prophet_raw_upper": f.raw_upper[h] if f.raw_upper else None}
                for m in fc.MODELS:
                    row[m] = f.yhat[m][h] if m in f.yhat else None
                rows.append(row)
    columns = ["item_id", "fold", "kind", "date", "horizon_day", "y", "is_open_day", "scale", "level",
               "prophet_raw_lower", "prophet_raw_upper", *fc.MODELS]
    frame = pd.DataFrame(rows, columns=columns)
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def item_file(item_id: str) -> str:
    """An item's artifact, relative to its version directory: a sku from a landing file never picks the path."""
    return f"items/{path_component(item_id)}.json"


def write_version(models_root: Path, t: StoreTraining, features_version: str,
                  warm_started_from: str | None = None) -> ModelVersion:
    """Write every item artifact and the manifest into a new version directory, then flip `live.json`."""
    store_id = validate_store_id(t.store_id)
    store_dir = models_root / f"store={store_id}"
    artifacts = {d.item_id: item_artifact(r, d) for r, d in zip(t.results, t.decisions)}
    item_hashes = {i: hashlib.sha256(a.encode()).hexdigest() for i, a in sorted(artifacts.items())}
    code = code_version()
    identity = fc.dumps({"features": features_version, "code": code, "config": t.cfg.to_json(),
                         "items": item_hashes, "calibration": t.calibration.to_json()})
    version = "v" + hashlib.sha256(identity.encode()).hexdigest()[:12]
    vdir = store_dir / version
    files = {i: item_file(i) for i in artifacts}
    for item_id, text in artifacts.items():
        atomic_write_text(vdir / files[item_id], text)
    decisions = {
        d.item_id: {"champion": d.champion, "reason": d.reason, "status": d.status, "error": d.error,
                    "backtest": d.backtest, "heldout": d.heldout, "heldout_champion": d.heldout_champion,
                    "scale": r.scale, "level": r.level, "sha256": item_hashes[d.item_id], "file": files[d.item_id],
                    "fit_seconds": round(r.fit_seconds, 4), "warm_started": r.warm_started}
        for r, d in zip(t.results, t.decisions)
    }
    manifest = {
        "store_id": store_id,
        "version": version,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "features_data_version": features_version,
        "code_version": code,
        "libraries": library_versions(),
        "config": t.cfg.to_json(),
        "calibration": t.calibration.to_json(),
        "summary": t.summary,
        "warm_started_from": warm_started_from,
        "items": decisions,
        "files": {files[i]: h for i, h in item_hashes.items()},
    }
    backtest_bytes = backtest_parquet(t)
    atomic_write_bytes(vdir / "backtest.parquet", backtest_bytes)
    manifest["files"]["backtest.parquet"] = hashlib.sha256(backtest_bytes).hexdigest()
    atomic_write_text(vdir / "manifest.json", fc.dumps(manifest))
    mv = ModelVersion(store_id, version, vdir, manifest)
    write_live_pointer(mv)
    return mv


def write_live_pointer(mv: ModelVersion) -> None:
    """Flip the store's one live pointer to `mv` (a new training, or a rollback)."""
    atomic_write_text(mv.path.parent / LIVE_POINTER, fc.dumps({
        "version": mv.version, "manifest_sha256": sha256_file(mv.path / "manifest.json"),
        "features_data_version": mv.manifest["features_data_version"], "code_version": mv.manifest["code_version"],
    }))


def live_version(models_root: Path, store_id: str) -> ModelVersion | None:
    store_dir = models_root / f"store={validate_store_id(store_id)}"
    pointer = store_dir / LIVE_POINTER
    if not pointer.exists():
        return None
    version = json.loads(pointer.read_text())["version"]
    vdir = store_dir / version
    return ModelVersion(store_id, version, vdir, json.loads((vdir / "manifest.json").read_text()))


def previous_inits(mv: ModelVersion | None) -> dict[str, dict]:
    """Prophet parameters of the live version's Prophet champions, to warm-start a retrain."""
    if mv is None:
        return {}
    inits = {}
    for item_id, info in mv.manifest["items"].items():
        if info["champion"] == "prophet":
            params = json.loads((mv.path / info["file"]).read_text())["params"]
            params = {k: json.loads(v) if isinstance(v, str) else v for k, v in params.items()}
            inits[item_id] = {
                "k": float(np.ravel(params["k"])[0]), "m": float(np.ravel(params["m"])[0]),
                "sigma_obs": float(np.ravel(params["sigma_obs"])[0]),
                "delta": [float(v) for v in np.asarray(params["delta"])[0]],
                "beta": [float(v) for v in np.asarray(params["beta"])[0]],
            }
    return inits


def train_store(features: pd.DataFrame, models_root: Path, features_version: str, cfg: fc.TrainConfig,
                workers: int = 2, warm_start: bool = True, progress: Callable[[str], None] | None = None,
                engine: str = "processes", scheduler_address: str | None = None, pool: FitPool | None = None
                ) -> ModelVersion:
    """Train (or reuse) the store's models. Same features, code and config as the live version: reused.
    Where the fits run (`engine`, `scheduler_address`, or an open `pool`) never changes the models."""
    store_id = validate_store_id(str(features["store_id"].iloc[0]))
    if pool is None:
        validate_fit_engine(engine, scheduler_address)
    live = live_version(models_root, store_id)
    if live and live.manifest["features_data_version"] == features_version \
            and live.manifest["code_version"] == code_version() and live.manifest["config"] == cfg.to_json():
        live.reused = True
        return live
    inits = previous_inits(live) if warm_start else {}
    t0 = time.perf_counter()
    tasks = build_tasks(features, cfg, inits)
    t1 = time.perf_counter()
    results = run_items(tasks, workers, progress, engine, scheduler_address, pool)
    t2 = time.perf_counter()
    training = decide(store_id, results, cfg)
    # where the time went (not part of the version: the same models whatever the engine or the machine)
    training.summary["fit_engine"] = pool.engine if pool is not None else engine
    training.summary["fit_wall_seconds"] = t2 - t1  # the fitting stage: pool start (unless reused) to last item
    training.summary["wall_seconds"] = time.perf_counter() - t0
    return write_version(models_root, training, features_version, live.version if (live and inits) else None)
