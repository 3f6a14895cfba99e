"""Per-store models and forecasts, and the `forecasts` view over every store."""

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from retail_assets.core import pipeline, plots
from retail_assets.core.atomic import atomic_write_bytes
from retail_assets.core.features.grid import promo_regressor
from retail_assets.core.forecast.serving import forecast_store
from retail_assets.defs.partitions import stores_partitions
from retail_assets.defs.results import or_failure
from retail_assets.defs.stores.assets import STORE_FEATURES
from retail_assets.resources import ForecastSettings, RetailDataRoot


PROMOTION_CHECK = "promotion_gate"


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.3f}"


@dg.asset(
    partitions_def=stores_partitions,
    deps=[STORE_FEATURES],
    group_name="forecasting",
    kinds={"prophet", "json"},
    check_specs=[dg.AssetCheckSpec(PROMOTION_CHECK, asset="demand_model",
                                   description="Warns when the new version was held back as a challenger (worse "
                                               "than the live version on the same held-out days, or than seasonal "
                                               "naive, or awaiting approval): the store keeps serving the live one.")],
    description="One model per item of the store: the model zoo (Prophet, baselines, ETS, Theta, LightGBM, for a "
                "young store its analog stores' forecast) judged on rolling folds, with intervals calibrated to the "
                "`interval` setting. Stored as Prophet JSON, LightGBM text and JSON, with a manifest.",
)
def demand_model(
    context: dg.AssetExecutionContext, data_root: RetailDataRoot, settings: ForecastSettings
) -> dg.MaterializeResult:
    r = pipeline.train_model(data_root.layout, settings, context.partition_key, context.log.info,
                             trigger=run_trigger(context.run.tags))
    return dg.MaterializeResult(metadata=model_metadata(r, settings), data_version=dg.DataVersion(r.version),
                                check_results=[promotion_check_result(r)])



def run_trigger(tags) -> dict | None:
    """What asked for this run (the sensors' `retail/trigger`, `retail/detected_at` tags), or None by hand."""
    if "retail/trigger" not in tags:
        return None
    return {"kind": tags["retail/trigger"], "detected_at": tags.get("retail/detected_at"),
            "detail": tags.get("retail/drift_reasons") or tags.get("retail/spikes")}


def promotion_check_result(r: pipeline.ModelResult) -> dg.AssetCheckResult:
    """Passed when the store serves this training (promoted, or the live version reused unchanged)."""
    d = r.mv.promotion
    meta = {"model_version": r.mv.version}
    if d is None:
        meta["decision"] = "the live version, reused: its inputs are unchanged"
    else:
        meta |= {"decision": pipeline.promotion_line(d), "rule": d["rule"],
                 "figures": dg.MetadataValue.json({k: v for k, v in d["figures"].items() if v is not None})}
    return dg.AssetCheckResult(asset_key="demand_model", check_name=PROMOTION_CHECK,
                               passed=d is None or d["promote"], severity=dg.AssetCheckSeverity.WARN,
                               metadata=meta)


def model_metadata(r: pipeline.ModelResult, settings: ForecastSettings) -> dict:
    """Accuracy against seasonal naive, champion mix, fallbacks and plots: what a person acts on."""
    mv = r.mv
    s = mv.manifest["summary"]
    metadata = {
        "model_version": mv.version,
        "reused_unchanged_inputs": mv.reused,
        # the promotion gate (core/registry/promotion.py): live, or held back as a challenger, and why
        "promotion": pipeline.promotion_line(mv.promotion) if mv.promotion else "the live version (reused)",
        "path": dg.MetadataValue.path(str(mv.path)),
        "features_data_version": mv.manifest["features_data_version"],
        "code_version": mv.manifest["code_version"],
        "items_fitted": s["items"],
        "items_fallback": s["items_fallback"],
        "champion_mix": dg.MetadataValue.json(s["champion_mix"]),
        # items by age: cold start (served their analog forecast), weekly, mature (core/forecast/analog.py)
        "history_stages": dg.MetadataValue.json(s.get("history_stages", {})),
        "analog_stores": ", ".join(s.get("analog_stores", [])) or "none",
        # what every regular item is served, and how the store's trees see an item (core/forecast/gbm.py)
        "store_best_model": s.get("store_best_model"),
        "lightgbm_variant": s.get("gbm_variant"),
        "lightgbm_variant_backtest_wape": dg.MetadataValue.json(s.get("gbm_variant_wape") or {}),
        "heldout_median_wape_champion": s["heldout_median_wape_champion"],
        "heldout_median_wape_seasonal_naive": s["heldout_median_wape_seasonal_naive"],
        "heldout_weighted_wape_champion": s["heldout_weighted_wape_champion"],
        "heldout_weighted_wape_seasonal_naive": s["heldout_weighted_wape_seasonal_naive"],
        # what a user who picked one model for every item instead would have got, on the same held-out days
        **{f"heldout_weighted_wape_{m}_alone": v for m, v in s.get("heldout_weighted_wape_alone", {}).items()},
        "heldout_coverage_calibrated": s["heldout_coverage_calibrated"],
        "heldout_interval_mean_width": s.get("heldout_interval_mean_width"),
        "heldout_interval_score": s.get("heldout_interval_score"),
        "heldout_coverage_prophet_raw": s["heldout_coverage_prophet_raw"],
        "nominal_coverage": s["nominal_coverage"],
        "fit_seconds_total": round(s["fit_seconds_total"], 2),
        # what this training reused: folds whose inputs, code and configuration were unchanged (fold_cache.py)
        "folds_from_cache": s.get("folds_cached"),
        "folds_total": s.get("folds_total"),
        "lightgbm_origins_from_cache": s.get("gbm_origins_cached"),
        # items whose folds all came from the cache fit in the run's process: no worker was started for them
        "items_fitted_in_process": s.get("items_fitted_in_process"),
        # items whose fit task went to a Dask worker without its history, read from the data root instead
        "items_read_from_root": s.get("items_read_from_root", 0),
        "warm_started_items": s["warm_started_items"],
        # the final fits after the decisions, made only where a served forecast reads them: fitted, failed, not made
        "prophet_final_fits": dg.MetadataValue.json(s.get("prophet_final_fits", {})),
        "classic_final_fits": dg.MetadataValue.json(s.get("classic_final_fits", {})),
        # how every Prophet fit started, fallbacks included (a reused version trained before this was recorded
        # has none)
        "prophet_fit_starts": dg.MetadataValue.json(s.get("prophet_fit_starts", {})),
        # where each Prophet fit's optimum was found: in process, CmdStan, or CmdStan as a fallback
        "prophet_fit_optimizers": dg.MetadataValue.json(s.get("prophet_fit_optimizers", {})),
        "accuracy": dg.MetadataValue.md(
            f"Held-out = the {s['heldout_fold']}, champion chosen and interval calibrated on the earlier folds.\n\n"
            "| figure | champion | seasonal naive |\n|---|---|---|\n"
            f"| median WAPE per item ({s.get('heldout_median_items', s['items'])} items scored by both) | "
            f"{_fmt(s['heldout_median_wape_champion'])} | "
            f"{_fmt(s['heldout_median_wape_seasonal_naive'])} |\n"
            f"| weighted WAPE | {_fmt(s['heldout_weighted_wape_champion'])} | "
            f"{_fmt(s['heldout_weighted_wape_seasonal_naive'])} |\n"
            f"| {settings.interval:.0%} interval coverage | {_fmt(s['heldout_coverage_calibrated'])} calibrated "
            f"(Prophet raw {_fmt(s['heldout_coverage_prophet_raw'])}) | |\n"
            f"| interval mean width / interval score (lower is better) | "
            f"{_fmt(s.get('heldout_interval_mean_width'))} / {_fmt(s.get('heldout_interval_score'))} | |\n"
            "\nThe alternatives, each served alone to every item (seasonal naive where it has no forecast), on the "
            "same held-out days:\n\n| model alone | weighted WAPE |\n|---|---|\n"
            + "".join(f"| {m.replace('_', ' ')} | {_fmt(v)} |\n"
                      for m, v in s.get("heldout_weighted_wape_alone", {}).items())
        ),
    }
    fallbacks = {i: d["error"] for i, d in mv.manifest["items"].items() if d["status"] == "fallback"}
    if fallbacks:
        metadata["fallback_items"] = dg.MetadataValue.json(fallbacks)
    metadata.update(_plots(mv, r.features, settings.horizon_days))
    return metadata


def _plots(mv, features: pd.DataFrame, horizon: int, top: int = 3) -> dict:
    """Forecast-vs-actuals for the top items by volume, Prophet components for the top Prophet item."""
    hist = features[~features["is_future"]]
    top_items = hist.groupby("item_id")["units"].sum().sort_values(ascending=False).head(top).index.tolist()
    backtest = pd.read_parquet(mv.path / "backtest.parquet")
    forecast = forecast_store(mv, features[features["item_id"].isin(top_items)], horizon)
    out = {}
    for rank, item in enumerate(top_items, start=1):
        champion = mv.manifest["items"][item]["champion"]
        png = plots.forecast_plot(item, hist[hist["item_id"] == item], backtest[backtest["item_id"] == item],
                                  forecast[forecast["item_id"] == item], champion, mv.manifest["summary"]["nominal_coverage"])
        atomic_write_bytes(mv.path / plots.plot_file("forecast", item), png)
        out[f"plot_forecast_{rank}"] = dg.MetadataValue.md(plots.markdown_image(png, f"{item} ({champion})"))
    prophet_items = [i for i in top_items if mv.manifest["items"][i]["champion"] == "prophet"]
    if prophet_items:
        item = prophet_items[0]
        fut = features[(features["item_id"] == item) & features["is_future"]].head(horizon)
        png = plots.components_plot((mv.path / mv.manifest["items"][item]["file"]).read_text(),
                                    pd.DataFrame({"ds": fut["date"], "promo": promo_regressor(fut)}))
        atomic_write_bytes(mv.path / plots.plot_file("components", item), png)
        out["plot_components"] = dg.MetadataValue.md(plots.markdown_image(png, f"{item}: Prophet components"))
    return out


@dg.asset(
    partitions_def=stores_partitions,
    deps=[demand_model],
    group_name="forecasting",
    automation_condition=dg.AutomationCondition.eager(),  # follows a retrain by itself
    kinds={"parquet", "csv"},
    description="The store's served forecast: yhat with calibrated interval per item and day, never negative; "
                "Parquet per store plus a planner CSV export per run.",
)
def demand_forecast(
    context: dg.AssetExecutionContext, data_root: RetailDataRoot, settings: ForecastSettings
) -> dg.MaterializeResult:
    r = or_failure(lambda: pipeline.publish_forecast(data_root.layout, settings, context.partition_key,
                                                      context.run_id))
    return dg.MaterializeResult(metadata=forecast_metadata(r, settings), data_version=dg.DataVersion(r.version))


def forecast_metadata(r: pipeline.ForecastResult, settings: ForecastSettings) -> dict:
    fcst = r.frame
    preview = fcst.head(8).assign(date=lambda d: pd.to_datetime(d["date"]).dt.date).round(2)
    return {
        "dagster/row_count": len(fcst),
        "model_version": r.mv.version,
        "items": int(fcst["item_id"].nunique()),
        "horizon_days": settings.horizon_days,
        "first_date": str(pd.to_datetime(fcst["date"]).min().date()) if len(fcst) else None,
        "forecast_units_total": float(fcst["yhat"].sum()),
        "mean_interval_width": float((fcst["yhat_upper"] - fcst["yhat_lower"]).mean()) if len(fcst) else 0.0,
        "path": dg.MetadataValue.path(str(r.path)),
        "planner_export": dg.MetadataValue.path(str(r.export_path)),
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False, disable_numparse=True)),
    }


@dg.asset(
    deps=[demand_forecast],
    group_name="forecasting",
    automation_condition=dg.AutomationCondition.eager(),
    kinds={"duckdb"},
    pool="duckdb",
    description="`forecasts` view in the warehouse over every store's forecast file (created by the one writer).",
)
def forecasts_view(data_root: RetailDataRoot, duckdb: DuckDBResource) -> dg.MaterializeResult:
    layout = data_root.layout
    files = sorted(layout.forecasts.glob("store=*/forecast.parquet"))
    if not files:
        raise dg.Failure("no store forecasts yet: materialize demand_forecast for at least one store")
    glob = str(layout.forecasts / "store=*" / "forecast.parquet").replace("'", "''")
    with duckdb.get_connection() as con:
        con.execute(
            "create or replace view forecasts as select store_id, item_id, date, yhat, yhat_lower, yhat_upper,"
            f" champion, model_version, fiscal_year, fiscal_week from read_parquet('{glob}', union_by_name = true)"
        )
        rows, stores = con.execute("select count(*), count(distinct store_id) from forecasts").fetchone()
    return dg.MaterializeResult(metadata={"dagster/row_count": rows, "stores": stores})
