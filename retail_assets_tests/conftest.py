"""Shared fixtures: one small generated landing zone, ingested once by a real Dagster run."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from retail_assets.core.demo.generator import generate_landing_zone
from retail_assets.dbt import dbt_project, prepare_manifest
from retail_assets_tests.helpers import SMALL, materialize_ingest, run_store_pipeline
from retail_assets_tests.s3server import seaweedfs


def pytest_configure(config):
    if not dbt_project().manifest_path.exists():
        prepare_manifest()


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


@pytest.fixture(scope="session")
def stores_run(ingested):
    """The small zone's stores trained once, in a real (ephemeral) Dagster instance."""
    root, _truth, _ = ingested
    instance = dg.DagsterInstance.ephemeral()
    results = run_store_pipeline(root, instance)
    return root, instance, results


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory):
    """A real S3-compatible server (SeaweedFS on 127.0.0.1) per test module, its settings in the environment."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as env:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield env
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
