"""Where things live: one data root (`RETAIL_DATA_DIR`, default `./data`) and the code's own folders.

Pure (no Dagster imports) so the CLI, the resources and the tests agree on every path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
DBT_PROJECT_DIR = REPO_DIR / "dbt_project"


def local_data_dir(data_dir: str | os.PathLike) -> Path:
    """The local folder the code reads and writes for a data root: the root itself, or for an object-store URL
    (`s3://bucket/prefix`) this machine's copy of it (core/mirror.py: pulled before a run, pushed after)."""
    from retail_assets.core.storage import is_url

    if is_url(data_dir):
        from retail_assets.core.mirror import local_copy_dir

        return local_copy_dir(str(data_dir))
    return Path(data_dir).resolve()


def data_root_setting(data_dir: str | os.PathLike | None = None) -> str:
    """The data root as configured (`data_dir`, else RETAIL_DATA_DIR, else ./data): an object-store URL as it
    is, a local path made absolute."""
    from retail_assets.core.storage import is_url

    raw = str(data_dir) if data_dir else os.environ.get("RETAIL_DATA_DIR", "data")
    return raw.rstrip("/") if is_url(raw) else str(Path(raw).resolve())


def default_data_dir() -> Path:
    return local_data_dir(data_root_setting())


def export_data_root(data_dir: str) -> Path:
    """Export the data root for what this process starts or reads later (dbt's profile reads
    RETAIL_WAREHOUSE_DIR; RETAIL_DATA_DIR keeps an object-store URL as it is); returns the local folder."""
    local = local_data_dir(data_dir)
    os.environ["RETAIL_DATA_DIR"] = data_root_setting(data_dir)
    os.environ["RETAIL_WAREHOUSE_DIR"] = str(local)
    return local


FEATURES_FILE = "features.parquet"
CLIMATE_FILE = "climate.parquet"  # a young store's climate zone's daily temperature: its normal (core/forecast/weather.py)
WEATHER_FILE = "weather.parquet"  # a store's issued weather forecasts, beside its features (core/forecast/weather.py)
COVER_FILE = "cover.parquet"  # a store's inventory cover per category (core/inventory/cover.py)
ANALOG_FILE = "analog.parquet"  # a young store's analog reference, beside its features (core/forecast/analog.py)


def store_partition(folder: Path, store_id: str) -> Path:
    """`<folder>/store=<id>/` for a validated store id (never a path escape): the one place the partition
    folder is named, for a layout's folders and for a models or bundles root handed to the core."""
    from retail_assets.core.ids import validate_store_id

    return Path(folder) / f"store={validate_store_id(store_id)}"


@dataclass(frozen=True)
class DataLayout:
    """The documented layout under the data root."""

    root: Path

    @classmethod
    def from_env(cls) -> "DataLayout":
        return cls(default_data_dir())

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def forecasts(self) -> Path:
        return self.root / "forecasts"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def bundles(self) -> Path:
        return self.root / "bundles"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    def store_dir(self, kind: str, store_id: str) -> Path:
        """`<root>/<kind>/store=<id>/` for a validated store id (never a path escape)."""
        return store_partition(self.root / kind, store_id)

    def features_file(self, store_id: str) -> Path:
        return self.store_dir("features", store_id) / FEATURES_FILE
