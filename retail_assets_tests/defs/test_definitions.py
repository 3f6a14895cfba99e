"""The Dagster wiring: definitions load, ingest is idempotent and incremental, the CLI fails clearly."""

from __future__ import annotations

import shutil
import subprocess
import sys

import duckdb

from retail_assets_tests.helpers import materialize_ingest


def test_definitions_load_with_every_dbt_model_and_test():
    from retail_assets.definitions import build_definitions

    defs = build_definitions()

    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    for expected in ("landing/raw_pos_us", "landing/raw_pos_de", "landing/raw_ecommerce", "stg_pos_uk",
                     "fct_daily_demand", "fct_store_conditions", "dim_store", "dim_item", "dim_calendar",
                     "quarantine", "ingest_reconciliation"):
        assert expected in keys, expected
    checks = {c.name for c in defs.resolve_asset_graph().asset_check_keys}
    assert "assert_ingest_reconciles" in checks
    assert any(c.startswith("unique_dim_store_store_id") for c in checks)
    assert defs.resolve_job_def("ingest_and_harmonize")


def test_materialization_reports_counts_and_checks_pass(ingested):
    _root, _truth, result = ingested
    recon = result.asset_materializations_for_node("harmonized")
    by_key = {m.asset_key.to_user_string(): m.metadata for m in recon}
    assert by_key["ingest_reconciliation"]["files_not_reconciled"].value == 0
    assert by_key["fct_daily_demand"]["dagster/row_count"].value > 1000
    assert "negative_qty" in by_key["quarantine"]["reasons"].value
    evaluations = [e.asset_check_evaluation_data for e in result.all_events
                   if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    dbt_tests = [e for e in evaluations if not e.check_name.startswith("gx_")]
    assert len(dbt_tests) >= 20 and all(e.passed for e in dbt_tests)


def _fingerprint(con) -> tuple:
    return (
        con.execute("select count(*), sum(units_total), sum(revenue_total_usd) from fct_daily_demand").fetchone(),
        con.execute("select count(*) from quarantine").fetchone(),
        con.execute("select count(*), sum(rows_read) from ingest_reconciliation").fetchone(),
        con.execute("select count(*) from raw_pos_us").fetchone(),
    )


def test_rerun_changes_nothing_and_new_files_add_only_their_rows(ingested, tmp_path):
    root, _truth, _ = ingested
    data = tmp_path / "data"
    shutil.copytree(root / "landing", data / "landing")
    shutil.copy(root / "warehouse.duckdb", data / "warehouse.duckdb")
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        before = _fingerprint(con)

    assert materialize_ingest(data).success
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        assert _fingerprint(con) == before

    # a new US file: two good lines, one the parser cannot split
    (data / "landing" / "pos" / "region=US" / "pos_US_20231201_extra.csv").write_text(
        "txn_id,store_id,sku,sold_at,qty,unit_price,currency,promo_code,color\n"
        "X-1,0001,SKU-0001,2023-12-01 10:00:00,2,3.50,USD,,red\n"
        "X-2,0001,SKU-0002,2023-12-01 11:00:00,5,1.25,USD,,blue\n"
        "X-3,0001,SKU-0002,2023-12-01 11:00:00,5,1.25,USD,,blue,extra,fields\n"
    )
    assert materialize_ingest(data).success
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        after = _fingerprint(con)
        assert after[0][0] == before[0][0]  # same store-item-days
        assert after[0][1] == before[0][1] + 7
        assert after[1][0] == before[1][0] + 1  # the malformed line, in quarantine
        assert after[2] == (before[2][0] + 1, before[2][1] + 3)
        assert after[3][0] == before[3][0] + 2
        assert con.execute(
            "select reason, source_line from quarantine where source_file like '%extra.csv'"
        ).fetchall() == [("malformed_csv_row", 4)]


def test_cli_run_without_landing_zone_says_what_to_do(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "retail_assets.cli", "run", "--data-dir", str(tmp_path / "nothing")],
        capture_output=True, text=True,
    )
    assert proc.returncode != 0
    assert "retail generate" in proc.stderr


def test_automation_starts_running_in_the_embedded_default_and_stopped_when_turned_off(monkeypatch):
    """New data reaches a live version with no manual step: every sensor and schedule starts running, unless the
    deployment says RETAIL_AUTOMATION=off (then each is turned on in the UI)."""
    from retail_assets.definitions import build_definitions

    monkeypatch.delenv("RETAIL_AUTOMATION", raising=False)
    defs = build_definitions(resources={})
    statuses = {s.name: s.default_status.value for s in [*defs.sensors, *defs.schedules]}
    for name in ("landing_files_sensor", "new_stores_sensor", "drift_sensor", "sales_spike_sensor",
                 "stale_bundle_sensor", "weekly_retrain_schedule", "seasonal_retrain_schedule"):
        assert statuses[name] == "RUNNING", statuses
    monkeypatch.setenv("RETAIL_AUTOMATION", "off")
    off = build_definitions(resources={})
    stopped = {s.name for s in [*off.sensors, *off.schedules] if s.default_status.value == "STOPPED"}
    assert {"landing_files_sensor", "drift_sensor", "weekly_retrain_schedule"} <= stopped
