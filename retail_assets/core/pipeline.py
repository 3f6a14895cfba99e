"""The per-store pipeline, written once: features -> gate -> model -> forecast -> inventory cover -> bundle.
Pure: no Dagster.

Every caller runs a store through these functions: the per-store assets (one step each), the batched retrain
job (`run_stores`, one fit pool for many stores), and through those `retail run`, the test fixtures and the
benchmarks. Each step returns a plain result (paths, versions, facts, outcomes); the Dagster layer only turns
results into materializations, check results and failures. An expected refusal is a `PipelineError` whose
message says what to do.

`settings` is anything with the `ForecastSettings` fields and its `train_config()`, `validation_config()`,
`cover_config()` and `fit_pool()` methods (the Dagster resource, or a test's plain object).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from retail_assets.core.quality import suites
from retail_assets.core.registry import records as registry
from retail_assets.core.atomic import atomic_write_bytes, atomic_write_text, sha256_file
from retail_assets.core.features.grid import (
    features_version,
    materialize_store_features,
    read_analog_reference,
    read_climate,
    read_weather_issues,
    summarize,
)
from retail_assets.core.ids import validate_store_id
from retail_assets.core.inventory import cover
from retail_assets.core.forecast.serving import forecast_store, servable_features
from retail_assets.core.fitting.pool import shared
from retail_assets.core.fitting.train import analog_slopes, chain_slope_estimates, train_store
from retail_assets.core.registry.versions import ModelVersion, live_version
from retail_assets.core.quality.gx import SuiteOutcome, validate_frame
from retail_assets.settings import COVER_FILE

Say = Callable[[str], None]


class PipelineError(RuntimeError):
    """A step that cannot run or publish; the message says why and what to do."""


def _quiet(_message: str) -> None:
    pass


# ---------------------------------------------------------------- results


@dataclass
class FeaturesResult:
    store_id: str
    path: Path
    data_version: str
    facts: dict
    dropped_items: tuple[str, ...]
    preview: pd.DataFrame

    @property
    def version(self) -> str:
        return self.data_version


@dataclass
class GateResult:
    store_id: str
    outcomes: list[SuiteOutcome]
    history_days: int
    longest_zero_sales_streak_days: int

    @property
    def failed(self) -> list[str]:
        return [o.label for suite in self.outcomes for o in suite.failed]

    @property
    def passed(self) -> bool:
        return not self.failed


@dataclass
class ModelResult:
    store_id: str
    mv: ModelVersion
    features: pd.DataFrame

    @property
    def version(self) -> str:
        return self.mv.version


@dataclass
class ForecastResult:
    store_id: str
    mv: ModelVersion
    frame: pd.DataFrame
    path: Path
    export_path: Path
    version: str


@dataclass
class CoverResult:
    store_id: str
    items: pd.DataFrame  # per item: on hand, daily forecast, weeks of cover, stock-out risk
    categories: pd.DataFrame  # per category: the same summed, and the over-stock flag
    flags: list[str]  # what a planner acts on, one line each
    path: Path
    version: str


@dataclass
class BundleResult:
    store_id: str
    mv: ModelVersion
    bundle: object  # core.edge_bundle.PublishedBundle

    @property
    def version(self) -> str:
        return self.bundle.bundle_version


@dataclass
class StoreOutcome:
    """What happened to one store: `ok`, `blocked` (by its gate) or `failed`, with each step's result."""

    store_id: str
    status: str = "failed"
    reason: str = ""
    results: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0

    def line(self) -> str:
        """One line a person reads in logs and the CLI: gate, version, accuracy, time."""
        if self.status == "blocked":
            return f"store {self.store_id}: blocked by its gate ({self.reason}) in {self.seconds:.1f}s"
        if self.status != "ok":
            return f"store {self.store_id}: failed: {self.reason} ({self.seconds:.1f}s)"
        return describe_store(self.results["demand_model"].mv, self.results.get("edge_bundle"), self.seconds)


def describe_store(mv: ModelVersion, bundle: BundleResult | None = None, seconds: float | None = None) -> str:
    s = mv.manifest["summary"]

    def f(x) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    return (f"store {mv.store_id}: gate passed, model {mv.version}{' (reused)' if mv.reused else ''}"
            + (f" ({promotion_line(mv.promotion)})" if mv.promotion and not mv.promotion["promote"] else "") + ", "
            f"held-out WAPE {f(s['heldout_weighted_wape_champion'])} vs seasonal naive "
            f"{f(s['heldout_weighted_wape_seasonal_naive'])}, coverage {f(s['heldout_coverage_calibrated'])}"
            + (f", folds from the cache {s['folds_cached']}/{s['folds_total']}" if s.get("folds_total") else "")
            + (f", bundle {bundle.version}" if bundle is not None else "")
            + (f" in {seconds:.1f}s" if seconds is not None else ""))


def promotion_line(decision: dict) -> str:
    """The promotion gate's decision in one phrase (core/registry/promotion.py)."""
    return ("live" if decision["promote"] else "HELD BACK as a challenger, the live version still serves") \
        + f" [{decision['rule']}]: {decision['reason']}"


# ---------------------------------------------------------------- the steps


def features_path(layout, store_id: str) -> Path:
    return layout.features_file(store_id)


def read_features(layout, store_id: str) -> pd.DataFrame:
    path = features_path(layout, store_id)
    if not path.exists():
        raise PipelineError(f"store {store_id} has no features yet: materialize store_features for it first")
    return pd.read_parquet(path)


def build_features(layout, settings, store_id: str, say: Say = _quiet) -> FeaturesResult:
    """Build and write one store's features from the warehouse."""
    store_id = validate_store_id(store_id)
    fs = materialize_store_features(layout.warehouse, layout.store_dir("features", store_id), store_id,
                                    settings.horizon_days)
    facts = summarize(fs.frame)
    say(f"store {store_id}: {facts['items']} items, {facts['history_days']} history days, "
        f"{facts['future_rows']} future rows, data version {fs.data_version[:12]}")
    preview = fs.frame.head(8).copy()
    preview["date"] = preview["date"].dt.date
    return FeaturesResult(store_id, fs.path, fs.data_version, facts, fs.dropped_items, preview)


def check_gate(layout, settings, store_id: str) -> GateResult:
    """Run the blocking store_features suites; keep the verdict beside the features for `retail trace`."""
    store_id = validate_store_id(store_id)
    path = features_path(layout, store_id)
    features = read_features(layout, store_id)
    cfg = settings.validation_config()
    frames = suites.features_frames(features, cfg)
    outcomes = [validate_frame(frames[name], suite) for name, suite in suites.features_suites(cfg).items()]
    store_row = frames["store"].iloc[0]
    gate = GateResult(store_id, outcomes, int(store_row["history_days"]),
                      int(store_row["longest_zero_sales_streak_days"]))
    atomic_write_text(path.parent / "validation.json", json.dumps({
        "data_version": features_version(path), "passed": gate.passed, "failed": gate.failed,
        "expectations_run": sum(len(suite.outcomes) for suite in outcomes),
        "checked_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}, indent=1))
    return gate


def train_model(layout, settings, store_id: str, say: Say = _quiet, pool=None,
                trigger: dict | None = None) -> ModelResult:
    """Train (or reuse) one store's models and record the version. `pool`: a `FitPool` shared by a batch.
    `trigger` (kind, detected_at, detail: what asked for this retrain, from the run's tags): recorded with the
    retrain's lags (`registry.record_retrain`)."""
    store_id = validate_store_id(store_id)
    started = registry.utc_now()
    path = features_path(layout, store_id)
    features = read_features(layout, store_id)
    analog = read_analog_reference(path)
    with contextlib.ExitStack() as stack:
        if pool is None and shared() is None and getattr(settings, "fit_inputs_via_data_root", False):
            pool = stack.enter_context(settings.fit_pool())  # the settings' pool knows where the inputs go
        mv = train_store(features, layout.models, features_version(path), settings.train_config(),
                         workers=settings.fit_workers, warm_start=settings.warm_start, progress=say,
                         engine=settings.fit_engine, scheduler_address=settings.dask_scheduler_address, pool=pool,
                         analog_reference=analog, weather_issues=read_weather_issues(path),
                         climate=read_climate(path), borrowed_slopes=analog_slopes(layout.models, analog, features),
                         pooled_estimates=(chain_slope_estimates(layout.models, store_id)
                                           if "temperature_c" in features.columns else None),
                         gate=settings.promotion_policy())
    registry.record_model(layout.models, mv)
    if trigger:
        registry.record_retrain(layout.models, mv, trigger, started, registry.utc_now())
    say(f"store {store_id}: version {mv.version}" + (" (reused: inputs unchanged)" if mv.reused else "")
        + (f": {promotion_line(mv.promotion)}" if mv.promotion else ""))
    return ModelResult(store_id, mv, features)


def _live(layout, store_id: str) -> ModelVersion:
    mv = live_version(layout.models, store_id)
    if mv is None:
        raise PipelineError(f"store {store_id} has no live model: materialize demand_model for it first")
    return mv


def publish_forecast(layout, settings, store_id: str, run_id: str) -> ForecastResult:
    """Forecast one store from its live model: Parquet for the view, a planner CSV per run."""
    store_id = validate_store_id(store_id)
    mv = _live(layout, store_id)
    features = servable_features(mv, read_features(layout, store_id))  # a held-back challenger: fewer days
    fcst = forecast_store(mv, features, settings.horizon_days)
    if fcst.empty:
        raise PipelineError(f"store {store_id}: live version {mv.version} has no day left to serve (its horizon "
                            "ended): retrain, or promote its challenger (`retail models --all`)")
    if (fcst["yhat_lower"] > fcst["yhat"] + 1e-9).any() or (fcst["yhat"] > fcst["yhat_upper"] + 1e-9).any() \
            or (fcst["yhat_lower"] < 0).any():
        raise PipelineError("forecast intervals are inconsistent (lower <= yhat <= upper, >= 0): not published")
    buf = io.BytesIO()
    fcst.to_parquet(buf, index=False)
    path = layout.store_dir("forecasts", store_id) / "forecast.parquet"
    atomic_write_bytes(path, buf.getvalue())
    export = fcst.rename(columns={"yhat": "forecast_units", "yhat_lower": "lower_units",
                                  "yhat_upper": "upper_units"})[
        ["store_id", "item_id", "date", "fiscal_year", "fiscal_week", "forecast_units", "lower_units",
         "upper_units", "model_version", "history_stage"]].copy()
    export = export.merge(cover.export_columns(*cover.store_cover(features, fcst, settings.cover_config())),
                          on="item_id", how="left")
    export["date"] = pd.to_datetime(export["date"]).dt.strftime("%Y-%m-%d")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    csv_path = layout.exports / f"forecast_store={store_id}_{mv.version}_{stamp}_{run_id[:8]}.csv"
    atomic_write_text(csv_path, export.round(3).to_csv(index=False))
    return ForecastResult(store_id, mv, fcst, path, csv_path, f"{mv.version}-{sha256_file(path)[:12]}")


def publish_cover(layout, settings, store_id: str) -> CoverResult:
    """The store's inventory cover from its shelf stock (in its features) and its published forecast."""
    store_id = validate_store_id(store_id)
    path = layout.store_dir("forecasts", store_id) / "forecast.parquet"
    if not path.exists():
        raise PipelineError(f"store {store_id} has no published forecast: materialize demand_forecast first")
    cfg = settings.cover_config()
    items, categories = cover.store_cover(read_features(layout, store_id), pd.read_parquet(path), cfg)
    buf = io.BytesIO()
    categories.assign(store_id=store_id).to_parquet(buf, index=False)
    out = layout.store_dir("inventory", store_id) / COVER_FILE
    atomic_write_bytes(out, buf.getvalue())
    return CoverResult(store_id, items, categories, cover.flags(items, categories, cfg), out, sha256_file(out)[:16])


def publish_bundle(layout, settings, signing_key, store_id: str, say: Say = _quiet) -> BundleResult:
    """Compile, verify, sign and publish one store's bundle from its live model, and record it."""
    from retail_assets.core.edge.bundle import BundleVerificationError, build_bundle
    from retail_assets.core.registry.versions import code_version

    store_id = validate_store_id(store_id)
    mv = _live(layout, store_id)
    try:
        bundle = build_bundle(mv, servable_features(mv, read_features(layout, store_id)), settings.horizon_days,
                              signing_key, layout.bundles, code_version())
    except BundleVerificationError as exc:
        raise PipelineError(str(exc)) from exc
    registry.record_bundle(layout.models, store_id, bundle.manifest, bundle.path, sha256_file(bundle.path))
    v, lat = bundle.manifest["verification"], bundle.manifest["latency_ms"]
    say(f"store {store_id}: bundle {bundle.bundle_version}, {bundle.size_bytes:,} bytes, "
        f"max rel error {v['max_rel_error']:.1e}, p50 {lat['p50']:.3f} ms")
    return BundleResult(store_id, mv, bundle)


# ---------------------------------------------------------------- the order, once


def run_store(layout, settings, signing_key, store_id: str, *, run_id: str, pool=None, say: Say = _quiet,
              on_step: Callable[[str, str, object], None] | None = None, trigger: dict | None = None) -> StoreOutcome:
    """Features, gate, model, forecast, inventory cover and bundle for one store; a failed gate stops the store
    before training. `on_step(step, store, result)` sees each result as it comes (the batch job records it)."""
    out, t0 = StoreOutcome(store_id), time.perf_counter()
    emit = on_step or (lambda _s, _id, _r: None)

    def step(name: str, fn: Callable[[], object]) -> object:
        out.results[name] = result = fn()
        emit(name, store_id, result)
        return result

    try:
        step("store_features", lambda: build_features(layout, settings, store_id, say))
        gate = step("gx_store_features", lambda: check_gate(layout, settings, store_id))
        if not gate.passed:
            out.status, out.reason = "blocked", "gx_store_features: " + ", ".join(gate.failed[:3])
        else:
            step("demand_model", lambda: train_model(layout, settings, store_id, say, pool, trigger))
            step("demand_forecast", lambda: publish_forecast(layout, settings, store_id, run_id))
            step("store_inventory_cover", lambda: publish_cover(layout, settings, store_id))
            step("edge_bundle", lambda: publish_bundle(layout, settings, signing_key, store_id, say))
            out.status = "ok"
    except Exception as exc:  # one store's failure is its own, never its batch's
        out.status, out.reason = "failed", f"{type(exc).__name__}: {exc}"[:300]
    out.seconds = time.perf_counter() - t0
    say(out.line())
    return out


def run_stores(layout, settings, signing_key, store_ids: list[str], *, run_id: str, say: Say = _quiet,
               on_step: Callable[[str, str, object], None] | None = None,
               trigger: dict | None = None) -> list[StoreOutcome]:
    """`run_store` for each store in turn, sharing one fit pool (its workers start once per batch)."""
    with settings.fit_pool() as pool:
        return [run_store(layout, settings, signing_key, s, run_id=run_id, pool=pool, say=say, on_step=on_step,
                          trigger=trigger) for s in store_ids]
