"""A store that opened three weeks ago arrives through the landing zone and `new_stores_sensor`: it gets its
partition, a model, a forecast marked cold start and a bundle, served from its analog stores."""

from __future__ import annotations

import datetime as dt
import dagster as dg
import numpy as np
import pandas as pd

from retail_assets.core.demo.generator import generate_landing_zone
from retail_assets.core.demo.world import GeneratorConfig
from retail_assets.core.registry.versions import live_version
from retail_assets.defs.stores.sensors import new_stores_sensor
from retail_assets.resources import RetailDataRoot
from retail_assets.settings import DataLayout
from retail_assets_tests.helpers import materialize_ingest, run_store_pipeline

ZONE = GeneratorConfig(stores=4, items=3, days=400, start=dt.date(2023, 1, 1), seed=5, scenario="clean",
                       channels=("pos",))
NEW = "0042"
OPEN_DAYS = 20


def _open_a_store(landing, last_day: dt.date) -> None:
    """Reference row for a US store that opened OPEN_DAYS days before the last day, and its tills' files."""
    stores = pd.read_csv(landing / "reference" / "stores.csv", dtype=str)
    twin = stores[stores["region"] == "US"].iloc[0].copy()
    twin["store_id"], twin["opened_on"] = NEW, str(last_day - dt.timedelta(days=OPEN_DAYS - 1))
    pd.concat([stores, twin.to_frame().T]).to_csv(landing / "reference" / "stores.csv", index=False)
    items = pd.read_csv(landing / "reference" / "items.csv", dtype=str)["sku"].tolist()
    rng = np.random.default_rng(1)
    for k in range(OPEN_DAYS):
        day = last_day - dt.timedelta(days=OPEN_DAYS - 1 - k)
        lines = ["txn_id,store_id,sku,sold_at,qty,unit_price,currency,promo_code,color"]
        for i, sku in enumerate(items):
            lines += [f"N{day:%Y%m%d}-{i}-{j},{NEW},{sku},{day} 12:{j % 60:02d}:00,1,4.50,USD,,red"
                      for j in range(int(rng.poisson(6)))]
        (landing / "pos" / "region=US" / f"pos_US_{day:%Y%m%d}_{NEW}.csv").write_text("\n".join(lines) + "\n")


def test_a_new_store_gets_a_cold_start_forecast_and_a_bundle_in_its_first_runs(tmp_path):
    root = tmp_path / "data"
    generate_landing_zone(root / "landing", ZONE)
    assert materialize_ingest(root).success
    last_day = ZONE.start + dt.timedelta(days=ZONE.days - 1)
    _open_a_store(root / "landing", last_day)
    assert materialize_ingest(root).success  # stores.csv changed: the marts rebuild in full by themselves

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("stores", ["0001", "0002", "0003", "0004"])
        with dg.build_sensor_context(instance=instance, resources={"data_root": RetailDataRoot(data_dir=str(root))}) as ctx:
            result = new_stores_sensor(ctx)
        assert [r.partition_key for r in result.run_requests] == [NEW]
        runs = run_store_pipeline(root, instance, only=[NEW], fit_workers=1, min_train_days=56)
        assert runs[NEW].success

    layout = DataLayout(root)
    manifest = live_version(layout.models, NEW).manifest
    s = manifest["summary"]
    assert s["history_stages"] == {"cold_start": len(manifest["items"])}
    # the mature stores, chosen by rule: US humid twins are too few, so the region, then every mature store
    assert s["analog_stores"] and NEW not in s["analog_stores"]
    for item in manifest["items"].values():
        assert item["champion"] == "analog" and item["history_stage"] == "cold_start"
        assert item["reason"].startswith("cold start")
    export = sorted(layout.exports.glob(f"forecast_store={NEW}_*.csv"))[-1]
    planner = pd.read_csv(export)
    assert set(planner["history_stage"]) == {"cold_start"} and (planner["forecast_units"] > 0).any()
    bundles = list(layout.bundles.rglob(f"*{NEW}*"))
    assert bundles, "the new store's devices get a bundle"
