"""Stores as partitions, per-store features, and the Great Expectations gates on real demo data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from retail_assets.core.demo.generator import generate_landing_zone
from retail_assets.core.ids import InvalidIdentifier, validate_store_id
from retail_assets.settings import DataLayout
from retail_assets_tests.helpers import SMALL, materialize_ingest, run_store_pipeline


@pytest.mark.parametrize("bad", ["../x", "1'; drop table dim_store; --", "", "a/b", " 0001", "x" * 40, None])
def test_store_ids_that_could_escape_a_path_or_query_are_refused(bad, tmp_path):
    with pytest.raises(InvalidIdentifier, match="not valid"):
        validate_store_id(bad)
    with pytest.raises(InvalidIdentifier):
        DataLayout(tmp_path).store_dir("features", bad)


def test_good_store_ids_pass():
    assert validate_store_id("0001") == "0001"
    assert validate_store_id("store_238-B") == "store_238-B"


def test_every_store_in_dim_store_is_a_partition(stores_run, warehouse):
    _root, instance, _ = stores_run
    ids = [r[0] for r in warehouse.execute("select store_id from dim_store order by 1").fetchall()]
    assert sorted(instance.get_dynamic_partitions("stores")) == ids
    assert len(ids) == SMALL.stores


def test_features_per_store_file_with_targets_and_known_future(stores_run, warehouse):
    root, _instance, results = stores_run
    for store, result in results.items():
        assert result.success, store
        frame = pd.read_parquet(root / "features" / f"store={store}" / "features.parquet")
        hist, fut = frame[~frame["is_future"]], frame[frame["is_future"]]
        assert set(frame["store_id"]) == {store}
        # the target matches the warehouse
        units = warehouse.execute(
            "select sum(units_total) from fct_daily_demand where store_id = ?", [store]).fetchone()[0]
        assert hist["units"].sum() == units
        assert fut["units"].isna().all() and len(fut) == 28 * frame["item_id"].nunique()
        assert {"promo_planned", "is_holiday", "fiscal_week", "temperature_c", "out_of_stock_hours",
                "is_open_day"} <= set(frame.columns)
        mat = result.asset_materializations_for_node("store_features")[0]
        assert mat.metadata["data_version_sha256"].value == mat.tags["dagster/data_version"]
        assert mat.metadata["items"].value == frame["item_id"].nunique()
        assert "store_id" in mat.metadata["preview"].value and f"| {store} " in mat.metadata["preview"].value
        # a store younger than a year borrows its normal weather from the other stores of its climate zone
        zone = warehouse.execute(
            "select avg(c.temperature_mean_c), count(*) from fct_store_conditions c join dim_store s using (store_id) "
            "where s.climate_zone = (select climate_zone from dim_store where store_id = ?) and c.store_id <> ? "
            "and c.temperature_mean_c is not null", [store, store]).fetchone()
        climate = root / "features" / f"store={store}" / "climate.parquet"
        assert climate.exists() == (zone[1] > 0), store
        if zone[1]:
            got = pd.read_parquet(climate)
            assert (got["stores"] >= 1).all()
            assert abs((got["temperature_c"] * got["stores"]).sum() / got["stores"].sum() - float(zone[0])) < 0.01
    assert any((root / "features").glob("store=*/climate.parquet"))  # the small zone's stores share zones


def test_feature_gates_pass_on_demo_data(stores_run):
    _root, _instance, results = stores_run
    for store, result in results.items():
        evaluations = [e.asset_check_evaluation_data for e in result.all_events
                       if e.event_type_value == "ASSET_CHECK_EVALUATION"
                       and e.asset_check_evaluation_data.check_name == "gx_store_features"]
        assert [(e.check_name, e.passed) for e in evaluations] == [("gx_store_features", True)], store
        assert evaluations[0].metadata["expectations_run"].value == 8  # 3 history + 3 item + 2 store expectations


def test_demand_checks_run_on_the_warehouse(ingested):
    _root, _truth, result = ingested
    evaluations = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
                   for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    for name in ("gx_demand_values", "gx_demand_completeness", "gx_demand_volume"):
        assert evaluations[name].passed, evaluations[name].metadata["failed_expectations"].value
    # the generator renamed the quantity column of one UK file: every row of it is quarantined, and the
    # ingest gate says so by name
    quarantine = evaluations["gx_quarantine_rate"]
    assert not quarantine.passed and quarantine.severity == dg.AssetCheckSeverity.ERROR
    assert "expect_column_values_to_be_between(quarantine_rate)" in quarantine.metadata["failed_expectations"].value
    assert "pos_UK_" in quarantine.metadata["worst_files"].value


def test_broken_store_is_blocked_and_the_others_go_on(tmp_path):
    root = tmp_path / "data"
    cfg = dataclasses.replace(SMALL, stores=3, items=4, scenario="broken_store")
    truth = generate_landing_zone(root / "landing", cfg)
    broken = truth["counts"]["feed_outage"]["store_id"]
    assert materialize_ingest(root).success
    results = run_store_pipeline(root, dg.DagsterInstance.ephemeral())
    assert set(results) == {"0001", "0002", "0003"}
    for store, result in results.items():
        evaluation = next(e.asset_check_evaluation_data for e in result.all_events
                          if e.event_type_value == "ASSET_CHECK_EVALUATION")
        trained = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()
                   for m in [m.materialization]}
        if store == broken:
            assert not evaluation.passed
            assert "longest_zero_sales_streak_days" in evaluation.metadata["failed_expectations"].value
            assert evaluation.metadata["longest_zero_sales_streak_days"].value >= 14
            assert trained == {"store_features"}  # blocked: not trained in this run
            assert not (root / "models" / f"store={store}").exists()
        else:
            assert evaluation.passed, store
            assert {"store_features", "demand_model", "demand_forecast", "store_inventory_cover", "edge_bundle"} <= trained, store


def test_models_and_forecasts_per_store(stores_run, warehouse):
    root, _instance, results = stores_run
    view = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    total = 0
    for store, result in results.items():
        model = result.asset_materializations_for_node("demand_model")[0].metadata
        assert model["items_fitted"].value == 6 and model["items_fallback"].value == 0
        assert "data:image/png;base64," in model["plot_forecast_1"].value
        assert (root / "models" / f"store={store}" / model["model_version"].value / "manifest.json").exists()
        forecast = pd.read_parquet(root / "forecasts" / f"store={store}" / "forecast.parquet")
        assert len(forecast) == 6 * 28
        assert (forecast["yhat"] >= 0).all() and (forecast["yhat_lower"] >= 0).all()
        assert (forecast["yhat_lower"] <= forecast["yhat"] + 1e-9).all()
        assert (forecast["yhat"] <= forecast["yhat_upper"] + 1e-9).all()
        assert set(forecast["model_version"]) == {model["model_version"].value}
        exports = list((root / "exports").glob(f"forecast_store={store}_*.csv"))
        assert exports
        csv = pd.read_csv(exports[-1], dtype={"store_id": str})
        assert list(csv.columns) == ["store_id", "item_id", "date", "fiscal_year", "fiscal_week", "forecast_units",
                                     "lower_units", "upper_units", "model_version", "history_stage", "on_hand_units",
                                     "weeks_of_cover", "stockout_risk", "category_overstock"]
        total += len(forecast)
        # inventory cover from the shelf sensors' last reading and this forecast, with its warning check
        cover = result.asset_materializations_for_node("store_inventory_cover")[0].metadata
        table = pd.read_parquet(cover["path"].value)
        features = pd.read_parquet(root / "features" / f"store={store}" / "features.parquet")
        last = features[~features["is_future"] & features["on_hand_units"].notna()].sort_values("date")
        last = last.groupby("item_id").tail(1).merge(
            forecast.groupby("item_id")["yhat"].mean().rename("daily").reset_index(), on="item_id")
        expected = last.groupby("category").apply(lambda g: g["on_hand_units"].sum() / (7 * g["daily"].sum()))
        got = table.set_index("category")["weeks_of_cover"]
        assert cover["items_with_stock_reading"].value == len(last) > 0
        pd.testing.assert_series_equal(got.sort_index(), expected.clip(upper=99).sort_index(), check_names=False)
        assert set(csv.loc[csv["on_hand_units"].notna(), "item_id"]) == set(last["item_id"])
        check = result.get_asset_check_evaluations()
        flags = [e for e in check if e.check_name == "inventory_cover_flags"]
        assert len(flags) == 1 and flags[0].passed == (not table["overstock"].any() and not csv["stockout_risk"].any())
        assert "data:image/png;base64," in cover["cover_plot"].value
        edge = result.asset_materializations_for_node("edge_bundle")[0].metadata
        assert edge["verification_max_rel_error"].value < 1e-5  # float32 trees (core/edge/bundle.py)
        assert edge["size_bytes"].value < 1_000_000
        assert Path(edge["path"].value).exists() and edge["model_version"].value == model["model_version"].value
    assert view.execute("select count(*) from forecasts").fetchone()[0] == total
    view.close()
