"""Per-store models and forecasts, and the `forecasts` view over every store."""

import datetime as dt
import io

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from retail_assets.assets.stores import store_features
from retail_assets.core import plots, registry
from retail_assets.core.atomic import atomic_write_bytes, atomic_write_text, sha256_file
from retail_assets.core.ids import validate_store_id
from retail_assets.core.serving import forecast_store
from retail_assets.core.training import live_version, train_store
from retail_assets.partitions import stores_partitions
from retail_assets.resources import EdgeSigning, ForecastSettings, RetailDataRoot


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.3f}"


@dg.asset(
    partitions_def=stores_partitions,
    deps=[store_features],
    group_name="forecasting",
    kinds={"prophet", "json"},
    description="One model per item of the store: Prophet vs seasonal naive vs moving average, the backtest "
                "winner served, with calibrated 80% intervals. Stored as Prophet JSON + manifest.",
)
def demand_model(
    context: dg.AssetExecutionContext, data_root: RetailDataRoot, settings: ForecastSettings
) -> dg.MaterializeResult:
    metadata, version = model_step(data_root.layout, settings, context.partition_key, context.log.info)
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(version))


def model_step(layout, settings: ForecastSettings, store_id: str, log, pool=None) -> tuple[dict, str]:
    """Train (or reuse) one store's models; return the materialization metadata and the model version.
    `pool`: an open `FitPool` shared by several stores (the batched retrain); default one for this store."""
    store_id = validate_store_id(store_id)
    features_path = layout.store_dir("features", store_id) / "features.parquet"
    features = pd.read_parquet(features_path)
    cfg = settings.train_config()
    mv = train_store(features, layout.models, sha256_file(features_path), cfg, workers=settings.fit_workers,
                     warm_start=settings.warm_start, progress=log, engine=settings.fit_engine,
                     scheduler_address=settings.dask_scheduler_address, pool=pool)
    registry.record_model(layout.models, mv)
    s = mv.manifest["summary"]
    log(f"store {store_id}: version {mv.version}" + (" (reused: inputs unchanged)" if mv.reused else ""))
    metadata = {
        "model_version": mv.version,
        "reused_unchanged_inputs": mv.reused,
        "path": dg.MetadataValue.path(str(mv.path)),
        "features_data_version": mv.manifest["features_data_version"],
        "code_version": mv.manifest["code_version"],
        "items_fitted": s["items"],
        "items_fallback": s["items_fallback"],
        "champion_mix": dg.MetadataValue.json(s["champion_mix"]),
        "heldout_median_wape_champion": s["heldout_median_wape_champion"],
        "heldout_median_wape_seasonal_naive": s["heldout_median_wape_seasonal_naive"],
        "heldout_weighted_wape_champion": s["heldout_weighted_wape_champion"],
        "heldout_weighted_wape_seasonal_naive": s["heldout_weighted_wape_seasonal_naive"],
        "heldout_coverage_calibrated": s["heldout_coverage_calibrated"],
        "heldout_coverage_prophet_raw": s["heldout_coverage_prophet_raw"],
        "nominal_coverage": s["nominal_coverage"],
        "fit_seconds_total": round(s["fit_seconds_total"], 2),
        "warm_started_items": s["warm_started_items"],
        "accuracy": dg.MetadataValue.md(
            f"Held-out = the {s['heldout_fold']}, champion chosen and interval calibrated on the earlier folds.\n\n"
            "| figure | champion | seasonal naive |\n|---|---|---|\n"
            f"| median WAPE per item | {_fmt(s['heldout_median_wape_champion'])} | "
            f"{_fmt(s['heldout_median_wape_seasonal_naive'])} |\n"
            f"| weighted WAPE | {_fmt(s['heldout_weighted_wape_champion'])} | "
            f"{_fmt(s['heldout_weighted_wape_seasonal_naive'])} |\n"
            f"| 80% interval coverage | {_fmt(s['heldout_coverage_calibrated'])} calibrated "
            f"(Prophet raw {_fmt(s['heldout_coverage_prophet_raw'])}) | |\n"
        ),
    }
    fallbacks = {i: d["error"] for i, d in mv.manifest["items"].items() if d["status"] == "fallback"}
    if fallbacks:
        metadata["fallback_items"] = dg.MetadataValue.json(fallbacks)
    metadata.update(_plots(mv, features, settings.horizon_days))
    return metadata, mv.version


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
                                  forecast[forecast["item_id"] == item], champion)
        atomic_write_bytes(mv.path / plots.plot_file("forecast", item), png)
        out[f"plot_forecast_{rank}"] = dg.MetadataValue.md(plots.markdown_image(png, f"{item} ({champion})"))
    prophet_items = [i for i in top_items if mv.manifest["items"][i]["champion"] == "prophet"]
    if prophet_items:
        item = prophet_items[0]
        fut = features[(features["item_id"] == item) & features["is_future"]].head(horizon)
        png = plots.components_plot((mv.path / mv.manifest["items"][item]["file"]).read_text(),
                                    pd.DataFrame({"ds": fut["date"], "promo": fut["promo_planned"].astype(int)}))
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
    metadata, version = forecast_step(data_root.layout, settings, context.partition_key, context.run_id)
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(version))


def forecast_step(layout, settings: ForecastSettings, store_id: str, run_id: str) -> tuple[dict, str]:
    """Forecast one store from its live model: Parquet, planner CSV; metadata and data version."""
    store_id = validate_store_id(store_id)
    mv = live_version(layout.models, store_id)
    if mv is None:
        raise dg.Failure(f"store {store_id} has no live model: materialize demand_model for it first")
    features = pd.read_parquet(layout.store_dir("features", store_id) / "features.parquet")
    fcst = forecast_store(mv, features, settings.horizon_days)
    if (fcst["yhat_lower"] > fcst["yhat"] + 1e-9).any() or (fcst["yhat"] > fcst["yhat_upper"] + 1e-9).any() \
            or (fcst["yhat_lower"] < 0).any():
        raise dg.Failure("forecast intervals are inconsistent (lower <= yhat <= upper, >= 0): not published")
    buf = io.BytesIO()
    fcst.to_parquet(buf, index=False)
    path = layout.store_dir("forecasts", store_id) / "forecast.parquet"
    atomic_write_bytes(path, buf.getvalue())
    export = fcst.rename(columns={"yhat": "forecast_units", "yhat_lower": "lower_units",
                                  "yhat_upper": "upper_units"})[
        ["store_id", "item_id", "date", "fiscal_year", "fiscal_week", "forecast_units", "lower_units",
         "upper_units", "model_version"]].copy()
    export["date"] = pd.to_datetime(export["date"]).dt.strftime("%Y-%m-%d")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    csv_path = layout.exports / f"forecast_store={store_id}_{mv.version}_{stamp}_{run_id[:8]}.csv"
    atomic_write_text(csv_path, export.round(3).to_csv(index=False))
    preview = fcst.head(8).assign(date=lambda d: pd.to_datetime(d["date"]).dt.date).round(2)
    metadata = {
        "dagster/row_count": len(fcst),
        "model_version": mv.version,
        "items": int(fcst["item_id"].nunique()),
        "horizon_days": settings.horizon_days,
        "first_date": str(pd.to_datetime(fcst["date"]).min().date()) if len(fcst) else None,
        "forecast_units_total": float(fcst["yhat"].sum()),
        "mean_interval_width": float((fcst["yhat_upper"] - fcst["yhat_lower"]).mean()) if len(fcst) else 0.0,
        "path": dg.MetadataValue.path(str(path)),
        "planner_export": dg.MetadataValue.path(str(csv_path)),
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False, disable_numparse=True)),
    }
    return metadata, f"{mv.version}-{sha256_file(path)[:12]}"


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


@dg.asset(
    partitions_def=stores_partitions,
    deps=[demand_model, store_features],
    group_name="edge",
    automation_condition=dg.AutomationCondition.eager(),  # follows a retrain by itself
    kinds={"onnx"},
    description="The store's models compiled to one ONNX graph with its horizon's calendar, verified against "
                "Prophet to 1e-6, signed (Ed25519) and zipped for offline devices.",
)
def edge_bundle(
    context: dg.AssetExecutionContext, data_root: RetailDataRoot, settings: ForecastSettings,
    edge_signing: EdgeSigning,
) -> dg.MaterializeResult:
    metadata, version = bundle_step(data_root.layout, settings, edge_signing.load(data_root), context.partition_key,
                                    context.log.info)
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(version))


def bundle_step(layout, settings: ForecastSettings, signing_key, store_id: str, log) -> tuple[dict, str]:
    """Compile, verify, sign and publish one store's bundle; metadata and bundle version."""
    from retail_assets.core.edge_bundle import BundleVerificationError, build_bundle
    from retail_assets.core.training import code_version

    store_id = validate_store_id(store_id)
    mv = live_version(layout.models, store_id)
    if mv is None:
        raise dg.Failure(f"store {store_id} has no live model: materialize demand_model for it first")
    features = pd.read_parquet(layout.store_dir("features", store_id) / "features.parquet")
    try:
        bundle = build_bundle(mv, features, settings.horizon_days, signing_key, layout.root / "bundles",
                              code_version())
    except BundleVerificationError as exc:
        raise dg.Failure(str(exc), metadata={"model_version": mv.version}) from exc
    registry.record_bundle(layout.models, store_id, bundle.manifest, bundle.path, sha256_file(bundle.path))
    v, lat = bundle.manifest["verification"], bundle.manifest["latency_ms"]
    log(f"store {store_id}: bundle {bundle.bundle_version}, {bundle.size_bytes:,} bytes, "
        f"max rel error {v['max_rel_error']:.1e}, p50 {lat['p50']:.3f} ms")
    metadata = {
        "bundle_version": bundle.bundle_version,
        "model_version": mv.version,
        "path": dg.MetadataValue.path(str(bundle.path)),
        "size_bytes": bundle.size_bytes,
        "items": len(bundle.manifest["items_order"]),
        "horizon": f"{bundle.manifest['horizon']['first']} .. {bundle.manifest['horizon']['last']}",
        "verification_max_rel_error": v["max_rel_error"],
        "verification_max_abs_error": v["max_abs_error"],
        "latency_p50_ms": round(lat["p50"], 4),
        "latency_p99_ms": round(lat["p99"], 4),
    }
    return metadata, bundle.bundle_version
