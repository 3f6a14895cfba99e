"""Configurable resources: storage is configuration (DESIGN.md decision 5)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import dagster as dg
import pydantic
from dagster_duckdb import DuckDBResource

from retail_assets.core.monitor.fleet import FleetConfig
from retail_assets.dbt import dbt_cli
from retail_assets.settings import DataLayout, data_root_setting, export_data_root, local_data_dir


def _env_encodings() -> dict[str, str]:
    raw = os.environ.get("RETAIL_LANDING_ENCODINGS", "").strip()
    if not raw:
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("RETAIL_LANDING_ENCODINGS must be a JSON object such as {\"pos_de\": \"cp1252\"}")
    return {str(k): str(v) for k, v in value.items()}


class WarehouseResource(DuckDBResource):
    """DuckDB's resource, but a second writer waits in line (a cross-process lock) instead of failing: two
    ingests, or an ingest and another run's dbt build, then follow each other."""

    lock_timeout_s: float = 900.0

    @contextlib.contextmanager
    def get_connection(self):
        with self.writer(), super().get_connection() as con:
            yield con

    @contextlib.contextmanager
    def writer(self):
        """The lock alone, for a writer that opens the file itself (dbt)."""
        from retail_assets.core.warehouse import write_lock

        with write_lock(Path(self.database), self.lock_timeout_s, say=dg.get_dagster_logger().info):
            yield


class RetailDataRoot(dg.ConfigurableResource):
    """The data root (`RETAIL_DATA_DIR`) on a local (or mounted) file system: landing zone, warehouse and
    per-store artifacts. An object-store URL takes `ObjectStoreDataRoot` (`data_root_resource` chooses)."""

    data_dir: str = pydantic.Field(default_factory=data_root_setting)  # read when built, not at import
    # per-source text encoding of landing files, e.g. {"pos_de": "cp1252"}; UTF-8 (with or without BOM)
    # by default; from $RETAIL_LANDING_ENCODINGS (JSON) when not configured
    landing_encodings: dict[str, str] = pydantic.Field(default_factory=lambda: _env_encodings())

    @pydantic.model_validator(mode="after")
    def _local_unless_synced(self):
        from retail_assets.core.storage import is_url

        if is_url(self.data_dir) and not isinstance(self, ObjectStoreDataRoot):
            raise ValueError(f"{self.data_dir} is an object-store URL: use ObjectStoreDataRoot (or "
                             "build_resources), which pulls and pushes this machine's copy of it")
        return self

    def encodings(self) -> dict[str, str]:
        from retail_assets.core.ingest.sources import validate_encodings

        return validate_encodings(self.landing_encodings)

    @property
    def layout(self) -> DataLayout:
        return DataLayout(local_data_dir(self.data_dir))

    def export_env(self) -> None:
        """dbt's profile reads the warehouse folder from the environment: keep it absolute and in sync."""
        export_data_root(self.data_dir)


def _without_landing_env() -> str:
    from retail_assets.core.mirror import WITHOUT_LANDING_ENV

    return WITHOUT_LANDING_ENV


class ObjectStoreDataRoot(RetailDataRoot):
    """The data root on object storage (`s3://bucket/prefix`): a run works on this machine's copy of it
    (core/mirror.py), pulled when the resource is set up and pushed when it is torn down, each logged with what
    it moved. A sensor or test that builds its context by hand opens it with `with`."""

    # False on a machine that never ingests (`retail run --no-ingest` sets RETAIL_COPY_WITHOUT_LANDING=1): its
    # copy leaves the landing files on the store
    sync_landing: bool = pydantic.Field(default_factory=lambda: os.environ.get(_without_landing_env()) != "1")

    def mirror(self):
        from retail_assets.core.mirror import RootMirror

        return RootMirror(self.data_dir, self.layout.root, skip=() if self.sync_landing else ("landing",))

    def setup_for_execution(self, context) -> None:
        copy = self.mirror()
        dg.get_dagster_logger().info(f"pulled {copy.url} into {copy.local}: {copy.pull().describe()}")

    def teardown_after_execution(self, context) -> None:
        copy = self.mirror()
        dg.get_dagster_logger().info(f"pushed {copy.local} to {copy.url}: {copy.push().describe()}")


def data_root_resource(data_dir: str | os.PathLike | None = None) -> RetailDataRoot:
    """The data root resource for `data_dir` (else RETAIL_DATA_DIR): local, or synced with an object store."""
    from retail_assets.core.storage import is_url

    configured = data_root_setting(data_dir)
    return (ObjectStoreDataRoot if is_url(configured) else RetailDataRoot)(data_dir=configured)


class ForecastSettings(dg.ConfigurableResource):
    """Knobs planners and data engineers tune without code changes."""

    horizon_days: int = 28
    # a short history does not block: a young store is served through its analog stores (core/forecast/analog.py)
    min_history_days: int = 1
    max_store_zero_streak_days: int = 7
    max_file_quarantine_rate: float = 0.05
    backtest_folds: int = 3
    fold_days: int = 28
    interval: float = 0.8
    fit_workers: int = os.cpu_count() or 2
    fit_timeout_s: float = 60.0
    max_iter: int = 2000
    warm_start: bool = True
    min_train_days: int = 56
    # where the per-item fits run (never changes the models): "processes" = a local pool of fit_workers;
    # "dask" = Dask distributed, on the scheduler at dask_scheduler_address (tcp://host:8786) or, with no
    # address, on a LocalCluster of fit_workers single-threaded worker processes started for the run
    fit_engine: str = "processes"
    dask_scheduler_address: str | None = None
    # with fit_engine "dask" and the data root on an object store: the items' histories go to the root once per
    # store and each Dask worker reads them there (its machine needs the S3 settings), instead of each task
    # carrying its item's history through the scheduler
    fit_inputs_via_data_root: bool = False
    # inventory cover (core/inventory/cover.py): a seasonal category holding more weeks of forecast demand than
    # overstock_weeks is over-stocked; an item whose upper forecast over the lead time exceeds its stock may run out
    overstock_weeks: float = 6.0
    seasonal_categories: list[str] = ["patio", "ice_cream", "heating", "toys", "apparel"]
    replenishment_lead_days: int = 3
    # the promotion gate (core/registry/promotion.py): a new version goes live only if, on the same held-out
    # days, its WAPE is within promotion_tolerance (relative) of the live version's and it beats seasonal naive;
    # fewer shared days than promotion_min_compare_days, or a live version with fewer than
    # promotion_min_serving_days left to serve: it must beat seasonal naive; the stores listed in
    # approval_required_stores never promote by themselves (`retail promote`)
    promotion_tolerance: float = 0.05
    promotion_min_compare_days: int = 7
    promotion_min_serving_days: int = 7
    approval_required_stores: list[str] = []

    @pydantic.model_validator(mode="after")
    def _known_fit_engine(self):
        from retail_assets.core.fitting.pool import validate_fit_engine

        validate_fit_engine(self.fit_engine, self.dask_scheduler_address)
        if self.fit_inputs_via_data_root and self.fit_engine != "dask":
            raise ValueError("fit_inputs_via_data_root is for Dask workers: set fit_engine to 'dask' (the process "
                             "pool's workers read their tasks, not the root)")
        return self

    def fit_pool(self):
        """An unstarted pool for this engine; open it around several stores to start the workers once."""
        from retail_assets.core.fitting.pool import FitPool

        return FitPool(self.fit_engine, self.fit_workers, self.dask_scheduler_address,
                       inputs_root=data_root_setting() if self.fit_inputs_via_data_root else None)

    def train_config(self):
        from retail_assets.core.forecast.models import TrainConfig

        return TrainConfig(horizon=self.horizon_days, folds=self.backtest_folds, fold_horizon=self.fold_days,
                           interval=self.interval, fit_timeout_s=self.fit_timeout_s, max_iter=self.max_iter,
                           min_train_days=self.min_train_days)

    def promotion_policy(self):
        from retail_assets.core.registry.promotion import PromotionPolicy

        return PromotionPolicy(tolerance=self.promotion_tolerance, min_compare_days=self.promotion_min_compare_days,
                               min_serving_days=self.promotion_min_serving_days,
                               approval_stores=tuple(self.approval_required_stores))

    def cover_config(self):
        from retail_assets.core.inventory.cover import CoverConfig

        return CoverConfig(overstock_weeks=self.overstock_weeks, seasonal_categories=tuple(self.seasonal_categories),
                           replenishment_lead_days=self.replenishment_lead_days)

    def validation_config(self):
        from retail_assets.core.quality.suites import ValidationConfig

        return ValidationConfig(
            min_history_days=self.min_history_days,
            horizon_days=self.horizon_days,
            max_store_zero_streak_days=self.max_store_zero_streak_days,
            max_file_quarantine_rate=self.max_file_quarantine_rate,
        )


class EdgeSigning(dg.ConfigurableResource):
    """The Ed25519 key that signs edge bundles: a PEM file path, or the PEM itself in an env var.
    With neither, the embedded default creates a dev key pair once under `<data root>/keys/`."""

    private_key_path: str | None = None
    private_key_env: str = "RETAIL_EDGE_SIGNING_KEY"

    def load(self, data_root: "RetailDataRoot"):
        from retail_assets.core.edge.bundle import load_private_key
        from retail_assets.core.edge.keys import ensure_dev_keys

        pem = os.environ.get(self.private_key_env)
        if pem:
            return load_private_key(pem.encode())
        if self.private_key_path:
            return load_private_key(Path(self.private_key_path).read_bytes())
        priv, _pub = ensure_dev_keys(data_root.layout.keys)
        return load_private_key(priv.read_bytes())


class DriftSettings(dg.ConfigurableResource):
    """Drift and spike thresholds (configuration, not code)."""

    wape_ratio: float = 1.75
    max_abs_bias: float = 0.25
    max_psi: float = 0.25
    min_overlap_days: int = 5
    category_bias_ratio: float = 1.5
    spike_z: float = 6.0
    spike_min_excess_units: float = 25.0

    def drift(self):
        from retail_assets.core.monitor import signals as monitoring

        return monitoring.DriftThresholds(self.wape_ratio, self.max_abs_bias, self.max_psi, self.min_overlap_days,
                                          self.category_bias_ratio)

    def spikes(self):
        from retail_assets.core.monitor import signals as monitoring

        return monitoring.SpikeThresholds(self.spike_z, self.spike_min_excess_units)


class FleetSettings(dg.ConfigurableResource):
    """What the edge fleet check tolerates before it pages someone (issue 10)."""

    # defaults are FleetConfig's, so `retail models` (which has no resources) judges like the asset
    stale_grace_hours: float = FleetConfig.stale_grace_hours  # after the live bundle's publication
    window_hours: float = FleetConfig.window_hours  # forecasts, failure rate and latency are measured over it
    max_failure_rate: float = FleetConfig.max_failure_rate
    max_p99_latency_ms: float = FleetConfig.max_p99_latency_ms
    silent_after_hours: float = FleetConfig.silent_after_hours  # no report for this long: silent
    min_forecasts: int = FleetConfig.min_forecasts  # fewer in the window: no failure-rate or p99 verdict
    as_of: str | None = None  # ISO UTC time to judge against; default: now

    def fleet_config(self) -> FleetConfig:
        return FleetConfig(stale_grace_hours=self.stale_grace_hours, window_hours=self.window_hours,
                           max_failure_rate=self.max_failure_rate, max_p99_latency_ms=self.max_p99_latency_ms,
                           silent_after_hours=self.silent_after_hours, min_forecasts=self.min_forecasts)


SETTINGS_ENV = "RETAIL_FORECAST_SETTINGS"


def settings_from_env() -> dict:
    """`ForecastSettings` overrides as JSON in $RETAIL_FORECAST_SETTINGS, so a deployment (or a test's
    `dagster dev`) tunes the code location without code changes; unknown keys are an error, not ignored."""
    raw = os.environ.get(SETTINGS_ENV, "").strip()
    if not raw:
        return {}
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"${SETTINGS_ENV} is not JSON: {exc}") from exc
    unknown = sorted(set(values) - set(ForecastSettings.model_fields))
    if unknown:
        raise ValueError(f"${SETTINGS_ENV} names unknown settings {unknown}; known: "
                         f"{sorted(ForecastSettings.model_fields)}")
    return values


def build_resources(data_dir: str | os.PathLike | None = None, **settings) -> dict:
    data_root = data_root_resource(data_dir)
    root = data_root.layout
    settings = {**settings_from_env(), **settings}
    return {
        "data_root": data_root,
        "duckdb": WarehouseResource(database=str(root.warehouse)),
        "dbt": dbt_cli(),
        "settings": ForecastSettings(**settings),
        "edge_signing": EdgeSigning(),
        "fleet_settings": FleetSettings(),
        "drift_settings": DriftSettings(),
    }
