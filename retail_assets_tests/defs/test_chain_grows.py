"""A chain that grows, on one generated zone (one setup for the whole story): new days of landing files with a
late row and a resent file are harmonized incrementally and give the marts a full rebuild gives; then a store
that opened three weeks ago arrives (a reference change: the marts rebuild in full by themselves) and through
`new_stores_sensor` gets its partition, a model, a forecast marked cold start and a bundle, served from its
analog stores; so does a store that opens next week and has sold nothing yet, while one open ten days without a
sale (a dead feed) is blocked by the gate; and two items launched in a mature store are served from the same
item in the other mature store, or from their category's profile in the store. What cannot be incremental is planned in full, with its reason."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from retail_assets.core.demo.generator import generate_landing_zone, sales_files_by_day
from retail_assets.core.demo.world import GeneratorConfig
from retail_assets.core.ingest.harmonize import plan_build
from retail_assets.core.ingest.load import load_landing_zone
from retail_assets.core.registry.versions import live_version
from retail_assets.dbt import dbt_project
from retail_assets.defs.stores.sensors import new_stores_sensor
from retail_assets.resources import RetailDataRoot
from retail_assets.settings import DataLayout
from retail_assets_tests.helpers import materialize_ingest, retail_cli, run_store_pipeline

# 400 days: stores 0001 and 0002 are mature (a year of history), 0003 and 0004 opened during it (world.py)
ZONE = GeneratorConfig(stores=4, items=3, days=400, start=dt.date(2023, 1, 1), seed=5, channels=("pos", "ecommerce"))
HELD_BACK_DAYS = 3
NEW = "0042"
OPEN_DAYS = 20
LAUNCHED = {"SKU-0101": "grocery", "SKU-0102": "beverages"}  # new items, launched with the new store
OPENING, OPENING_IN = "0043", 5  # opens five days after the last day of history: no sales yet
SILENT, SILENT_DAYS = "0044", 10  # open ten days, not one sale received: a dead feed the gate blocks
KEYS = {"int_sales_lines": ["source_file", "source_line"], "fct_daily_demand": ["store_id", "item_id", "business_date"]}
BUILD_STAMPS = {"harmonized_at", "lines_through"}  # when a row was built: all a full rebuild may change


def _tables(con, without_stores: tuple[str, ...] = ()) -> dict[str, pd.DataFrame]:
    """The harmonized tables a planner's numbers come from (reference files aside), minus some stores' rows and
    files."""
    out = {}
    for name in (*KEYS, "ingest_reconciliation", "quarantine"):
        df = con.execute(f"select * from {name}").df()
        df = df.drop(columns=[c for c in df.columns if c in BUILD_STAMPS])
        df = df[df["source"] != "reference"] if "source" in df else df  # stores.csv gains the new store
        for store in without_stores:  # their files and their rows
            df = df[~df["source_file"].astype(str).str.contains(store)] if "source_file" in df else df
            df = df[df["store_id"] != store] if "store_id" in df else df
        if without_stores:  # and the items launched with them
            df = df[~df["source_file"].astype(str).str.contains("_launch")] if "source_file" in df else df
            df = df[~df["item_id"].isin(LAUNCHED)] if "item_id" in df else df
        out[name] = df.sort_values(KEYS.get(name, list(df.columns))).reset_index(drop=True)
    return out


def _build_meta(result: dg.ExecuteInProcessResult, model: str) -> dict:
    for mat in result.asset_materializations_for_node("harmonized"):
        if mat.asset_key.path[-1] == model:
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"no materialization of {model}")


def _open_a_store(landing: Path, last_day: dt.date) -> None:
    """Reference rows for three US stores: NEW opened OPEN_DAYS days before the last day (with its tills' files),
    OPENING opens OPENING_IN days after it (no sales yet), SILENT opened SILENT_DAYS before it and never sent a
    sale (a dead feed)."""
    stores = pd.read_csv(landing / "reference" / "stores.csv", dtype=str, keep_default_na=False)
    twins = []
    for store_id, opened in ((NEW, last_day - dt.timedelta(days=OPEN_DAYS - 1)),
                             (OPENING, last_day + dt.timedelta(days=OPENING_IN)),
                             (SILENT, last_day - dt.timedelta(days=SILENT_DAYS - 1))):
        twin = stores[stores["region"] == "US"].iloc[0].copy()
        twin["store_id"], twin["opened_on"] = store_id, str(opened)
        twins.append(twin.to_frame().T)
    pd.concat([stores, *twins]).to_csv(landing / "reference" / "stores.csv", index=False)
    items = pd.read_csv(landing / "reference" / "items.csv", dtype=str)["sku"].tolist()
    rng = np.random.default_rng(1)
    for k in range(OPEN_DAYS):
        day = last_day - dt.timedelta(days=OPEN_DAYS - 1 - k)
        lines = ["txn_id,store_id,sku,sold_at,qty,unit_price,currency,promo_code,color"]
        for i, sku in enumerate(items):
            lines += [f"N{day:%Y%m%d}-{i}-{j},{NEW},{sku},{day} 12:{j % 60:02d}:00,1,4.50,USD,,red"
                      for j in range(int(rng.poisson(6)))]
        (landing / "pos" / "region=US" / f"pos_US_{day:%Y%m%d}_{NEW}.csv").write_text("\n".join(lines) + "\n")


def _launch_items(landing: Path, last_day: dt.date) -> None:
    """Two items launched OPEN_DAYS days before the last day in mature store 0001: SKU-0101 also sold in the
    other mature store (0002, UK), SKU-0102 only here (no store to borrow it from: its category's profile)."""
    items = pd.read_csv(landing / "reference" / "items.csv", dtype=str)
    launched = str(last_day - dt.timedelta(days=OPEN_DAYS - 1))
    rows = [{"sku": sku, "item_name": f"New {sku}", "category": cat, "color": "red", "list_price_usd": "5.00",
             "launched_on": launched} for sku, cat in LAUNCHED.items()]
    pd.concat([items, pd.DataFrame(rows)]).to_csv(landing / "reference" / "items.csv", index=False)
    rng = np.random.default_rng(2)
    for k in range(OPEN_DAYS):
        day = last_day - dt.timedelta(days=OPEN_DAYS - 1 - k)
        us = ["txn_id,store_id,sku,sold_at,qty,unit_price,currency,promo_code,color"]
        uk = ["txn_id,store_id,sku,sold_at,quantity,unit_price,currency,promo_code,colour"]
        for sku, mean in (("SKU-0101", 5), ("SKU-0102", 4)):
            us += [f"L{day:%Y%m%d}-{sku}-{j},0001,{sku},{day} 13:{j % 60:02d}:00,1,5.00,USD,,red"
                   for j in range(int(rng.poisson(mean)))]
        uk += [f"L{day:%Y%m%d}-UK-{j},0002,SKU-0101,{day:%d/%m/%Y} 13:{j % 60:02d}:00,1,4.00,GBP,,red"
               for j in range(int(rng.poisson(8)))]
        (landing / "pos" / "region=US" / f"pos_US_{day:%Y%m%d}_launch.csv").write_text("\n".join(us) + "\n")
        (landing / "pos" / "region=UK" / f"pos_UK_{day:%Y%m%d}_launch.csv").write_text("\n".join(uk) + "\n")


@pytest.fixture(scope="module")
def growing_chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain") / "data"
    landing = root / "landing"
    generate_landing_zone(landing, ZONE)
    by_day = sales_files_by_day(landing)
    held = root / "held_back"
    for day in sorted(by_day)[-HELD_BACK_DAYS:]:
        for f in by_day[day]:
            (held / f.relative_to(landing)).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(f, held / f.relative_to(landing))
    first = materialize_ingest(root)
    assert first.success
    # the newest days arrive, with a resent copy of an old file and a late row for an old day
    for f in held.rglob("*"):
        if f.is_file():
            shutil.move(f, landing / f.relative_to(held))
    old = sorted(landing.glob("pos/region=US/*.csv"))[5]
    shutil.copy(old, old.with_name(old.stem + "_resent.csv"))
    header, first_line = old.read_text().splitlines()[:2]
    late = first_line.split(",")
    late[0] = "LATE-0001"
    old.with_name(old.stem + "_late.csv").write_text(header + "\n" + ",".join(late) + "\n")
    second = materialize_ingest(root)
    assert second.success
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        incremental = _tables(con)
        newest = con.execute("select max(harmonized_at) from int_sales_lines").fetchone()[0]
        rebuilt_lines, total_lines = con.execute(
            "select count(*) filter (where harmonized_at = ?), count(*) from int_sales_lines", [newest]).fetchone()
    # a store opens: its reference row changes stores.csv, so this build is a full one
    _open_a_store(landing, ZONE.start + dt.timedelta(days=ZONE.days - 1))
    _launch_items(landing, ZONE.start + dt.timedelta(days=ZONE.days - 1))
    third = materialize_ingest(root)
    assert third.success
    return {"root": root, "first": first, "second": second, "third": third, "incremental": incremental,
            "rebuilt_lines": rebuilt_lines, "total_lines": total_lines, "old": old}


def test_a_new_day_builds_incrementally_and_equals_a_full_rebuild(growing_chain):
    c = growing_chain
    assert _build_meta(c["first"], "int_sales_lines")["build_mode"] == "full refresh"
    meta = _build_meta(c["second"], "fct_daily_demand")
    assert meta["build_mode"] == "incremental", meta
    assert meta["build_mode_reason"] == "only new landing files since the last build"
    assert 0 < c["rebuilt_lines"] < c["total_lines"] / 4, "only the new files' lines were harmonized"
    third = _build_meta(c["third"], "int_sales_lines")
    assert third["build_mode"] == "full refresh"
    assert third["build_mode_reason"] == "the reference data or the dbt code changed since the last build"
    with duckdb.connect(str(c["root"] / "warehouse.duckdb"), read_only=True) as con:
        for table, df in _tables(con, without_stores=(NEW, OPENING, SILENT)).items():
            pd.testing.assert_frame_equal(c["incremental"][table], df, check_dtype=False, obj=table)
        late = con.execute("select is_duplicate, quarantine_reason from int_sales_lines "
                           "where record_key = 'LATE-0001'").fetchall()
        resent = con.execute("select count(*), bool_and(is_duplicate) from int_sales_lines "
                             "where source_file like '%\\_resent.csv' escape '\\' and quarantine_reason is null"
                             ).fetchone()
    assert late == [(False, None)], "the late row is accepted on its own (old) day"
    assert resent[0] > 0 and resent[1], "every accepted line of the resent copy is a duplicate"


def test_a_new_store_gets_a_cold_start_forecast_and_a_bundle_in_its_first_runs(growing_chain):
    root = growing_chain["root"]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("stores", ["0001", "0002", "0003", "0004"])
        with dg.build_sensor_context(instance=instance,
                                     resources={"data_root": RetailDataRoot(data_dir=str(root))}) as ctx:
            result = new_stores_sensor(ctx)
        assert [r.partition_key for r in result.run_requests] == [NEW, OPENING, SILENT]
        runs = run_store_pipeline(root, instance, only=[NEW, OPENING, SILENT, "0001"], fit_workers=1,
                                  min_train_days=56)
        assert runs[NEW].success and runs[OPENING].success and runs["0001"].success
        # the dead feed: the gate blocks it (its open days sold nothing), no model reaches its devices
        gate = [e for e in runs[SILENT].get_asset_check_evaluations() if e.check_name == "gx_store_features"]
        assert gate and not gate[0].passed
        assert not (DataLayout(root).models / f"store={SILENT}").exists()

    layout = DataLayout(root)
    manifest = live_version(layout.models, NEW).manifest
    s = manifest["summary"]
    assert s["history_stages"] == {"cold_start": len(manifest["items"])}
    # the mature stores by rule: one US store of its climate is too few, so the region's, then every mature one
    assert s["analog_stores"] == ["0001", "0002"]
    for item in manifest["items"].values():
        assert item["champion"] == "analog" and item["history_stage"] == "cold_start"
        assert item["reason"].startswith("cold start")
    planner = pd.read_csv(sorted(layout.exports.glob(f"forecast_store={NEW}_*.csv"))[-1])
    assert set(planner["history_stage"]) == {"cold_start"} and (planner["forecast_units"] > 0).any()
    assert list(layout.bundles.rglob(f"*{NEW}*")), "the new store's devices get a bundle"

    # the store that opens in five days, with no sale yet: ranged with the chain's items, served its analogs
    manifest = live_version(layout.models, OPENING).manifest
    assert manifest["summary"]["history_stages"] == {"cold_start": len(manifest["items"])}
    assert sorted(manifest["items"]) == sorted(pd.read_csv(layout.landing / "reference" / "items.csv")["sku"])
    planner = pd.read_csv(sorted(layout.exports.glob(f"forecast_store={OPENING}_*.csv"))[-1], dtype={"store_id": str})
    opens = pd.Timestamp(ZONE.start + dt.timedelta(days=ZONE.days - 1 + OPENING_IN))
    days = pd.to_datetime(planner["date"])
    assert set(planner["history_stage"]) == {"cold_start"}
    assert (planner.loc[days < opens, "forecast_units"] == 0).all(), "nothing sold before the doors open"
    assert (planner.loc[days >= opens].groupby("item_id")["forecast_units"].sum() > 0).all()
    assert list(layout.bundles.rglob(f"*{OPENING}*")), "its devices get a bundle before the first sale"
    # `retail models`: both new stores are live; the stores without a live model are named (the dead feed, and
    # the stores this test never trained)
    table = retail_cli("models", data_dir=root).stdout.splitlines()
    assert {line[:4] for line in table if line[:4].isdigit()} == {"0001", NEW, OPENING}
    assert table[-1].startswith(f"stores of dim_store with no live model: 0002, 0003, 0004, {SILENT} (")


def test_new_items_in_a_mature_store_are_served_from_the_same_item_elsewhere_or_their_category(growing_chain):
    layout = DataLayout(growing_chain["root"])  # store 0001 trained by the test above
    items = live_version(layout.models, "0001").manifest["items"]
    for sku in ("SKU-0001", "SKU-0002", "SKU-0003"):
        assert items[sku]["history_stage"] == "mature" and items[sku]["analog_stores"] is None
    shared, own = items["SKU-0101"], items["SKU-0102"]
    assert shared["history_stage"] == own["history_stage"] == "cold_start"
    assert shared["champion"] == own["champion"] == "analog"
    # the other mature store sells SKU-0101; nobody else sells SKU-0102: the store's mean beverages item
    assert (shared["analog_stores"], shared["analog_rule"]) == ("0002", "every mature store")
    assert own["analog_stores"] == "" and own["analog_rule"] == "category profile: the mean beverages item in this store"
    assert "category profile" in own["reason"]
    planner = pd.read_csv(sorted(layout.exports.glob("forecast_store=0001_*.csv"))[-1])
    new = planner[planner["item_id"].isin(LAUNCHED)]
    assert set(new["history_stage"]) == {"cold_start"} and (new.groupby("item_id")["forecast_units"].sum() > 0).all()
    assert set(planner.loc[~planner["item_id"].isin(LAUNCHED), "history_stage"]) == {"mature"}


def test_what_cannot_be_incremental_is_planned_in_full_with_its_reason(growing_chain):
    root, old = growing_chain["root"], growing_chain["old"]
    landing = root / "landing"
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        assert not plan_build(con, dbt_project().project_dir).full_refresh
        # a harmonized file comes again with other bytes
        old.write_text(old.read_text().replace(",USD,", ",EUR,", 1))
        load_landing_zone(con, landing)
        plan = plan_build(con, dbt_project().project_dir)
        assert plan.full_refresh and "came again with other bytes" in plan.reason
        # reference data changed (a holiday added)
        holidays = landing / "reference" / "holidays.csv"
        holidays.write_text(holidays.read_text().rstrip("\n") + "\n2023-11-02,US,Test closing,true\n")
        load_landing_zone(con, landing)
        plan = plan_build(con, dbt_project().project_dir)
        assert plan.full_refresh and "reference data or the dbt code changed" in plan.reason
        assert plan_build(con, dbt_project().project_dir, requested_full=True).reason == "a full refresh was asked for"
