"""The model registry for SQL users and the UI: every trained version and published bundle, and what is live."""

import json

import dagster as dg
from dagster_duckdb import DuckDBResource

from retail_assets.defs.edge.bundles import edge_bundle
from retail_assets.defs.forecasting.assets import demand_model
from retail_assets.core.registry import records as registry
from retail_assets.resources import RetailDataRoot


@dg.asset(
    deps=[demand_model, edge_bundle],
    group_name="governance",
    kinds={"duckdb"},
    pool="duckdb",
    automation_condition=dg.AutomationCondition.eager(),
    description="Warehouse tables `model_registry` (every version and bundle, from each store's registry.jsonl), "
                "`live_models` (one row per store) and `retrain_lags` (per triggered retrain: detected, started, "
                "live or held back).",
)
def model_registry(data_root: RetailDataRoot, duckdb: DuckDBResource) -> dg.MaterializeResult:
    layout = data_root.layout
    files = sorted(layout.models.glob("store=*/registry.jsonl"))
    live = registry.live_rows(layout.models)
    with duckdb.get_connection() as con:
        if files:
            con.execute("create or replace table model_registry as select * from read_json(?, format = "
                        "'newline_delimited', union_by_name = true)", [[str(f) for f in files]])
        con.execute("create or replace table live_models (store_id varchar, live_version varchar, created_at varchar,"
                    " features_data_version varchar, code_version varchar, champion_mix varchar,"
                    " heldout_wape_champion double, heldout_wape_naive double, coverage double,"
                    " bundle_version varchar)")
        con.executemany("insert into live_models values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            (r["store_id"], r["live_version"], r["created_at"], r["features_data_version"], r["code_version"],
             json.dumps(r["champion_mix"]), r["heldout_wape_champion"], r["heldout_wape_naive"], r["coverage"],
             r["bundle_version"]) for r in live])
        lags = registry.retrain_lag_rows(layout.models)
        con.execute("create or replace table retrain_lags (store_id varchar, version varchar, trigger varchar,"
                    " detected_at timestamptz, retrain_started_at timestamptz, live_at timestamptz, outcome varchar,"
                    " reason varchar, detection_to_live_hours double)")
        if lags:  # executemany refuses an empty list
            con.executemany("insert into retrain_lags values (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                (r["store_id"], r["version"], r["trigger"], r["detected_at"], r["retrain_started_at"], r["live_at"],
                 r["outcome"], r["reason"], r["detection_to_live_hours"]) for r in lags])
        versions = con.execute("select count(*) from model_registry where kind = 'model'").fetchone()[0] if files else 0
    table = "| store | live version | bundle |\n|---|---|---|\n" + "\n".join(
        f"| {r['store_id']} | {r['live_version']} | {r['bundle_version']} |" for r in live)
    return dg.MaterializeResult(metadata={
        "stores_live": len(live), "distinct_live_versions": len({r["live_version"] for r in live}),
        "retrains_recorded": len(lags), "retrains_held_back": sum(r["outcome"] == "held back" for r in lags),
        "versions_recorded": versions, "live": dg.MetadataValue.md(table)})
