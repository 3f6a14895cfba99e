"""Incremental harmonization: new landing days, a late row and a resent file, built incrementally, give the
same marts as a full rebuild of the same warehouse; what must rebuild in full is planned in full, with why."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from retail_assets.core.demo.generator import generate_landing_zone
from retail_assets.core.ingest.harmonize import plan_build
from retail_assets.core.ingest.load import load_landing_zone
from retail_assets.dbt import dbt_project
from retail_assets_tests.helpers import SMALL, materialize_ingest

HELD_BACK_DAYS = 3
# every column but when a row was built: that is all a full rebuild may change
KEYS = {"int_sales_lines": ["source_file", "source_line"], "fct_daily_demand": ["store_id", "item_id", "business_date"]}
BUILD_STAMPS = {"harmonized_at", "lines_through"}


def _table(con, name: str) -> pd.DataFrame:
    df = con.execute(f"select * from {name}").df()
    df = df.drop(columns=[c for c in df.columns if c in BUILD_STAMPS])
    return df.sort_values(KEYS.get(name, list(df.columns))).reset_index(drop=True)


def _build_meta(result: dg.ExecuteInProcessResult, model: str) -> dict:
    for mat in result.asset_materializations_for_node("harmonized"):
        if mat.asset_key.path[-1] == model:
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"no materialization of {model}")


def _dated_files(landing: Path) -> list[Path]:
    """POS and e-commerce files, each named with its day (pos_US_20231001.csv, orders_20231001.jsonl)."""
    return sorted([*landing.glob("pos/region=*/*.csv"), *landing.glob("ecommerce/*.jsonl")])


def _day_of(f: Path) -> str:
    found = re.search(r"\d{8}", f.name)
    return found.group(0) if found else ""


@pytest.fixture(scope="module")
def incremental_zone(tmp_path_factory):
    root = tmp_path_factory.mktemp("incremental") / "data"
    landing = root / "landing"
    generate_landing_zone(landing, SMALL)
    days = sorted({_day_of(f) for f in _dated_files(landing)})
    late_days = set(days[-HELD_BACK_DAYS:])
    held = root / "held_back"
    for f in _dated_files(landing):
        if _day_of(f) in late_days:
            dest = held / f.relative_to(landing)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(f, dest)
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
    return root, first, second, old


def test_a_new_day_builds_incrementally_and_equals_a_full_rebuild(incremental_zone):
    root, first, second, _old = incremental_zone
    assert _build_meta(first, "int_sales_lines")["build_mode"] == "full refresh"
    meta = _build_meta(second, "fct_daily_demand")
    assert meta["build_mode"] == "incremental", meta
    assert meta["build_mode_reason"] == "only new landing files since the last build"
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        incremental = {t: _table(con, t) for t in (*KEYS, "ingest_reconciliation", "quarantine")}
        newest = con.execute("select max(harmonized_at) from int_sales_lines").fetchone()[0]
        rebuilt_lines = con.execute("select count(*) from int_sales_lines where harmonized_at = ?",
                                    [newest]).fetchone()[0]
        total_lines = con.execute("select count(*) from int_sales_lines").fetchone()[0]
    assert 0 < rebuilt_lines < total_lines / 4, "only the new files' lines were harmonized"

    from retail_assets.defs.harmonize.assets import dbt_models
    from retail_assets.defs.ingest.assets import raw_landing
    from retail_assets.resources import build_resources
    full = dg.materialize(
        [raw_landing, dbt_models()], resources=build_resources(root), selection=[dbt_models()],
        run_config={"ops": {"harmonized": {"config": {"full_refresh": True}}}},
    )
    assert full.success
    assert _build_meta(full, "int_sales_lines")["build_mode"] == "full refresh"
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        for table, df in incremental.items():
            pd.testing.assert_frame_equal(df, _table(con, table), check_dtype=False, obj=table)
        late = con.execute("select is_duplicate, quarantine_reason from int_sales_lines "
                           "where record_key = 'LATE-0001'").fetchall()
        resent = con.execute("select count(*), bool_and(is_duplicate) from int_sales_lines "
                             "where source_file like '%\\_resent.csv' escape '\\' and quarantine_reason is null"
                             ).fetchone()
    assert late == [(False, None)], "the late row is accepted on its own (old) day"
    assert resent[0] > 0 and resent[1], "every accepted line of the resent copy is a duplicate"


def test_what_cannot_be_incremental_is_planned_in_full_with_its_reason(incremental_zone):
    root, _first, _second, old = incremental_zone
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
