"""Registry, one-store rollback, trace from the shelf number to landing lines, reproducibility."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from retail_assets.core.edge.bundle import build_bundle, load_private_key
from retail_assets.core.edge.keys import ensure_dev_keys
from retail_assets.core.features.grid import write_features
from retail_assets.core.fitting.train import train_store
from retail_assets.core.forecast.models import TrainConfig
from retail_assets.core.registry import records as registry
from retail_assets.core.registry.versions import live_version
from retail_assets.settings import DataLayout
from retail_assets_tests.helpers import (
    FAST_SETTINGS,
    noisy_weekly,
    retail_cli,
    synthetic_store,
)

CFG = TrainConfig(horizon=14, folds=2, fold_horizon=14, min_train_days=42, raw_interval_samples=0)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Two stores; store 0001 retrained twice (new data), store 0002 once; bundles published."""
    root = tmp_path_factory.mktemp("gov") / "data"
    layout = DataLayout(root)
    priv, _pub = ensure_dev_keys(root / "keys")
    key = load_private_key(priv.read_bytes())
    versions = {}
    for store, seeds in (("0001", (1, 2)), ("0002", (3,))):
        for seed in seeds:
            frame = synthetic_store({"SKU-A": noisy_weekly(120, 10, seed), "SKU-B": noisy_weekly(120, 4, seed + 10)},
                                    horizon=14, store=store)
            path = layout.store_dir("features", store) / "features.parquet"
            mv = train_store(frame, layout.models, write_features(frame, path), CFG, workers=1)
            registry.record_model(layout.models, mv)
            b = build_bundle(mv, frame, 14, key, root / "bundles", "test")
            registry.record_bundle(layout.models, store, b.manifest, b.path, "x")
            versions.setdefault(store, []).append(mv.version)
    return root, layout, versions


def test_registry_lists_live_versions_and_history(fleet):
    root, layout, versions = fleet
    live = retail_cli("models", "--format", "json", data_dir=root)
    assert live.returncode == 0, live.stderr
    rows = {r["store_id"]: r for r in json.loads(live.stdout)}
    assert rows["0001"]["live_version"] == versions["0001"][-1]
    assert rows["0002"]["live_version"] == versions["0002"][-1]
    assert rows["0001"]["bundle_version"] and rows["0001"]["champion_mix"]
    everything = json.loads(retail_cli("models", "--all", "--format", "json", "--store", "0001", data_dir=root).stdout)
    assert [e["version"] for e in everything if e["kind"] == "model"] == versions["0001"]
    assert sum(e["kind"] == "bundle" for e in everything) == 2
    table = retail_cli("models", data_dir=root).stdout
    assert "2 stores with a live model, 2 distinct live versions" in table


def test_rollback_one_store_leaves_the_others_alone(fleet, tmp_path):
    root, layout, versions = fleet
    other_live = (layout.models / "store=0002" / "live.json").read_bytes()
    other_bundles = sorted(p.name for p in (root / "bundles" / "store=0002").glob("*.zip"))
    home = tmp_path / "dagster_home"
    done = retail_cli("rollback", "--store", "0001", "--to", versions["0001"][0], "--reason", "bad promo data",
                data_dir=root, env={"DAGSTER_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    assert live_version(layout.models, "0001").version == versions["0001"][0]
    assert (layout.models / "store=0002" / "live.json").read_bytes() == other_live
    assert sorted(p.name for p in (root / "bundles" / "store=0002").glob("*.zip")) == other_bundles
    audit = registry.audit_log(layout.models, "0001")[-1]
    assert (audit["from"], audit["to"], audit["reason"]) == (versions["0001"][1], versions["0001"][0], "bad promo data")
    latest = json.loads((root / "bundles" / "store=0001" / "latest.json").read_text())
    assert latest["model_version"] == versions["0001"][0]
    verify = subprocess.run([sys.executable, "-m", "retail_assets.edge.runner", "verify",
                             str(root / "bundles" / "store=0001" / latest["file"]), "--public-key",
                             str(root / "keys" / "edge_signing.pub")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    with dg.DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("demand_model"))
        assert event.asset_materialization.partition == "0001"
        assert event.asset_materialization.metadata["action"].value == "rollback"


def test_rollback_refuses_unknown_or_tampered_versions(fleet):
    root, layout, versions = fleet
    unknown = retail_cli("rollback", "--store", "0001", "--to", "vdeadbeef0000", data_dir=root)
    assert unknown.returncode != 0 and "has no model version vdeadbeef0000" in unknown.stderr
    target = layout.models / "store=0002" / versions["0002"][0] / "items" / "SKU-A.json"
    target.write_text(target.read_text() + " ")  # one byte more than what was hashed
    tampered = retail_cli("rollback", "--store", "0002", "--to", versions["0002"][0], data_dir=root)
    assert tampered.returncode != 0 and "does not match its SHA-256" in tampered.stderr
    bad_id = retail_cli("rollback", "--store", "../x", "--to", versions["0002"][0], data_dir=root)
    assert bad_id.returncode != 0 and "not valid" in bad_id.stderr


def test_trace_from_served_number_to_landing_lines(stores_run):
    root, _instance, _ = stores_run
    forecast = pd.read_parquet(root / "forecasts" / "store=0001" / "forecast.parquet")
    row = forecast[forecast["item_id"] == "SKU-0001"].iloc[3]
    day = pd.Timestamp(row["date"]).date().isoformat()
    out = retail_cli("trace", "--store", "0001", "--item", "SKU-0001", "--date", day, "--format", "json", data_dir=root)
    assert out.returncode == 0, out.stderr
    t = json.loads(out.stdout)
    assert t["forecast"]["yhat"] == pytest.approx(row["yhat"]) and t["forecast"]["model_version"] == row["model_version"]
    assert t["model"]["version"] == row["model_version"] and len(t["model"]["item_sha256"]) == 64
    assert t["bundle"]["model_version"] == row["model_version"]
    assert t["validation"]["passed"] is True and t["validation"]["expectations_run"] == 8
    assert 20 <= len(t["history"]) <= 28 and t["raw_lines_total"] > 0  # closed days (Thanksgiving) have no row
    for line in t["raw_lines"][:10]:  # every raw line really is that line of that landing file
        text = (root / "landing" / line["source_file"]).read_text().splitlines()[line["source_line"] - 1]
        assert line["record_key"].split("/")[0] in text
    from retail_assets.core.registry.trace import trace

    full = trace(DataLayout(root), "0001", "SKU-0001", pd.Timestamp(day).date(), raw_limit=100_000)
    assert len(full["raw_lines"]) == full["raw_lines_total"]
    # the lines behind the history add up to it, duplicates excluded
    assert sum(r["qty"] for r in full["raw_lines"] if not r["is_duplicate"]) == sum(h["units_total"] for h in full["history"])
    text = retail_cli("trace", "--store", "0001", "--item", "SKU-0001", "--date", day, data_dir=root).stdout
    assert "forecast served:" in text and "landing lines behind it" in text


def test_rematerializing_the_same_inputs_gives_the_same_hashes(stores_run):
    from retail_assets.core import pipeline
    from retail_assets.resources import ForecastSettings

    root, _instance, results = stores_run
    layout, settings = DataLayout(root), ForecastSettings(**FAST_SETTINGS)
    before = results["0001"].asset_materializations_for_node("edge_bundle")[0].metadata
    model = pipeline.train_model(layout, settings, "0001")
    assert model.mv.reused is True and model.version == before["model_version"].value
    priv = load_private_key((root / "keys" / "edge_signing.pem").read_bytes())
    assert pipeline.publish_bundle(layout, settings, priv, "0001").version == before["bundle_version"].value
    features = pd.read_parquet(root / "features" / "store=0001" / "features.parquet")
    same = write_features(features, root / "tmp_same.parquet")
    changed = write_features(features.assign(units=features["units"].fillna(0) + 1), root / "tmp_changed.parquet")
    assert same == layout_hash(root / "features" / "store=0001" / "features.parquet") and changed != same


def layout_hash(path: Path) -> str:
    from retail_assets.core.atomic import sha256_file

    return sha256_file(path)


def test_model_registry_tables_for_sql_users(stores_run):
    import duckdb

    root, _instance, results = stores_run
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        live = dict(con.execute("select store_id, live_version from live_models").fetchall())
        kinds = dict(con.execute("select kind, count(*) from model_registry group by 1").fetchall())
    trained = {s for s, r in results.items() if r.success}
    assert set(live) == trained and kinds["model"] >= len(trained) and kinds["bundle"] >= len(trained)


def test_a_recorded_path_never_leaves_the_data_root(tmp_path):
    models = tmp_path / "data" / "models"
    assert registry.recorded_file(models, "bundles/store=0001/b.zip") == tmp_path / "data" / "bundles/store=0001/b.zip"
    with pytest.raises(registry.RegistryError, match="outside the data root"):
        registry.recorded_file(models, "../../etc/passwd")
