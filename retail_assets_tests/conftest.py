"""Shared fixtures: one small generated landing zone, ingested once by a real Dagster run."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from retail_assets.core.demo.generator import generate_landing_zone
from retail_assets.core.demo.world import GeneratorConfig
from retail_assets.dbt import dbt_project, prepare_manifest

# Three stores (US, UK, DE), both autumn clock changes (29 Oct UK/DE, 5 Nov US), one late opener.
SMALL = GeneratorConfig(stores=4, items=6, days=75, start=dt.date(2023, 10, 1), seed=7)


def pytest_configure(config):
    if not dbt_project().manifest_path.exists():
        prepare_manifest()


def materialize_ingest(data_dir: Path) -> dg.ExecuteInProcessResult:
    """A real run of the landing and dbt assets, and the warehouse checks, against `data_dir`."""
    from retail_assets.defs.harmonize.assets import dbt_models
    harmonized = dbt_models()
    from retail_assets.defs.ingest.assets import raw_landing
    from retail_assets.defs.harmonize.checks import warehouse_checks
    gx_demand_checks, gx_quarantine_rate = warehouse_checks()
    from retail_assets.resources import build_resources

    os.environ["RETAIL_DATA_DIR"] = str(data_dir)
    return dg.materialize([raw_landing, harmonized, gx_demand_checks, gx_quarantine_rate],
                          resources=build_resources(data_dir))


@pytest.fixture(scope="session")
def small_zone(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("retail") / "data"
    truth = generate_landing_zone(root / "landing", SMALL)
    return root, truth


@pytest.fixture(scope="session")
def ingested(small_zone) -> tuple[Path, dict, dg.ExecuteInProcessResult]:
    root, truth = small_zone
    result = materialize_ingest(root)
    assert result.success
    return root, truth, result


@pytest.fixture()
def warehouse(ingested):
    root, _truth, _result = ingested
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    yield con
    con.close()


def load_truth(landing: Path) -> dict:
    return json.loads((landing / "_truth" / "defects.json").read_text())


# short folds so the 75-day demo history still gets two backtest folds
FAST_SETTINGS = {"min_history_days": 20, "fold_days": 14, "backtest_folds": 2, "min_train_days": 28}


def run_store_pipeline(data_dir: Path, instance: dg.DagsterInstance, only: list[str] | None = None,
                       **settings) -> dict:
    """Register the stores of dim_store as partitions, run the per-store assets once per store (features,
    their blocking gate, model, forecast, edge bundle), then publish the forecasts view."""
    from retail_assets.defs.edge.bundles import edge_bundle
    from retail_assets.defs.forecasting.assets import demand_forecast, demand_model, forecasts_view
    from retail_assets.defs.stores.assets import store_assets
    store_registry = store_assets()[0]
    from retail_assets.definitions import build_definitions
    from retail_assets.resources import build_resources

    resources = build_resources(data_dir, **{**FAST_SETTINGS, **settings})
    assert dg.materialize([store_registry], instance=instance, resources=resources,
                          selection=[store_registry]).success
    store_pipeline = build_definitions(resources).resolve_job_def("store_pipeline")  # the real job
    results = {}
    for store in only or instance.get_dynamic_partitions("stores"):
        results[store] = store_pipeline.execute_in_process(instance=instance, partition_key=store,
                                                            raise_on_error=False)
    if any(r.success for r in results.values()):
        from retail_assets.defs.governance.assets import model_registry

        assert dg.materialize([forecasts_view, model_registry, demand_forecast, demand_model, edge_bundle],
                              instance=instance, resources=resources,
                              selection=[forecasts_view, model_registry]).success
    return results


@pytest.fixture(scope="session")
def stores_run(ingested):
    """The small zone's stores trained once, in a real (ephemeral) Dagster instance."""
    root, _truth, _ = ingested
    instance = dg.DagsterInstance.ephemeral()
    results = run_store_pipeline(root, instance)
    return root, instance, results
