"""`retail`: the command line of the platform (generate a landing zone, run the pipeline)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import time
from pathlib import Path

import click

from retail_assets.settings import DataLayout


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _known_errors() -> tuple[type[Exception], ...]:
    """Refusals whose message is already a sentence a person can act on (imported only when one is raised)."""
    from retail_assets.core.forecast.backtest_csv import BacktestInputError
    from retail_assets.core.edge.bundle import BundleVerificationError
    from retail_assets.core.ids import InvalidIdentifier
    from retail_assets.core.edge.keys import SigningKeyError
    from retail_assets.core.ingest.sources import LandingZoneError
    from retail_assets.core.registry.records import RegistryError
    from retail_assets.core.warehouse import WarehouseError
    from retail_assets.core.mirror import MirrorConflict, MirrorPathError
    from retail_assets.edge.runner import BundleError

    return (BacktestInputError, BundleError, BundleVerificationError, InvalidIdentifier, LandingZoneError,
            MirrorConflict, MirrorPathError, RegistryError, SigningKeyError, WarehouseError)


class _Retail(click.Group):
    """The one place where a known refusal becomes `error: <sentence>` on stderr and exit status 2; anything
    else is a bug and keeps its traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if isinstance(exc, _known_errors()):
                _fail(" ".join(str(exc).split()))  # one line, whatever the message held
            raise


def _layout(data_dir: str | None, without_landing: bool = False) -> DataLayout:
    """The data root's local folder. For an object-store URL, this machine's copy: pulled now, pushed when the
    command ends (core/mirror.py), each said on stderr; `without_landing`: the copy leaves the landing files on
    the store (a machine that does not ingest), here and in the runs this process starts."""
    from retail_assets.core.storage import is_url
    from retail_assets.settings import data_root_setting, export_data_root

    configured = data_root_setting(data_dir)
    layout = DataLayout(export_data_root(configured))
    if is_url(configured):
        from retail_assets.core.mirror import WITHOUT_LANDING_ENV, RootMirror

        if without_landing:
            os.environ[WITHOUT_LANDING_ENV] = "1"  # the runs' data root resource reads it when it is built
        copy = RootMirror(configured, layout.root, skip=("landing",) if without_landing else ())
        click.echo(f"pulled {configured} into {layout.root}: {copy.pull().describe()}", err=True)
        click.get_current_context().call_on_close(
            lambda: click.echo(f"pushed to {configured}: {copy.push().describe()}", err=True))
    return layout


@click.group(cls=_Retail)
def main() -> None:
    """Retail demand platform: landing zone -> dbt on DuckDB -> per-store forecasts and edge bundles."""


@main.command()
@click.option("--data-dir", default=None, help="Data root (default: $RETAIL_DATA_DIR or ./data).")
@click.option("--stores", default=8, show_default=True, type=click.IntRange(1, 9000))
@click.option("--items", default=30, show_default=True, type=click.IntRange(1, 8999))
@click.option("--days", default=1096, show_default=True, type=click.IntRange(14, 20000))
@click.option("--start", default="2023-01-01", show_default=True, help="First day of history (YYYY-MM-DD).")
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--scenario", default="demo", show_default=True, type=click.Choice(["demo", "clean", "broken_store", "cold_snap"]))
def generate(data_dir, stores, items, days, start, seed, scenario) -> None:
    """Write a seeded demo landing zone (replacing <data-dir>/landing)."""
    from retail_assets.core.demo.generator import generate_landing_zone
    from retail_assets.core.demo.world import GeneratorConfig

    layout = _layout(data_dir)
    try:
        cfg = GeneratorConfig(stores=stores, items=items, days=days, start=dt.date.fromisoformat(start),
                              seed=seed, scenario=scenario)
    except ValueError as exc:
        _fail(str(exc))
    t0 = time.perf_counter()
    truth = generate_landing_zone(layout.landing, cfg, progress=lambda m: click.echo(f"  {m}"))
    counts = truth["counts"]
    click.echo(
        f"landing zone written to {layout.landing} in {time.perf_counter() - t0:.1f}s: "
        f"{counts['pos']['rows_written']:,} POS rows, {counts['ecommerce']['rows_written']:,} e-commerce lines, "
        f"{counts['iot']['rows_written']:,} IoT readings, {counts.get('weather', {}).get('rows_written', 0):,} "
        f"weather forecast rows; injected defects in {layout.landing / '_truth/defects.json'}"
    )


@main.command("generate-telemetry")
@click.option("--data-dir", default=None, help="Data root (default: $RETAIL_DATA_DIR or ./data).")
@click.option("--hours", default=72, show_default=True, type=click.IntRange(1, 24 * 60))
@click.option("--every-minutes", default=20, show_default=True, type=click.IntRange(1, 1440))
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--now", "now_text", default=None, help="End of the telemetry window, ISO UTC (default: now).")
def generate_telemetry(data_dir, hours, every_minutes, seed, now_text) -> None:
    """Write demo edge telemetry for every store with a published bundle into <data-dir>/landing/telemetry."""
    from retail_assets.core.demo.telemetry import generate_fleet_telemetry

    layout = _layout(data_dir)
    try:
        now = dt.datetime.fromisoformat(now_text.replace("Z", "+00:00")) if now_text else \
            dt.datetime.now(dt.timezone.utc)
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.timezone.utc)
        truth = generate_fleet_telemetry(layout.landing, layout.models, now, seed, hours, every_minutes)
    except ValueError as exc:
        _fail(str(exc))
    special = ", ".join(f"{s} {r}" for s, r in truth["roles"].items() if r != "healthy")
    click.echo(f"telemetry for {len(truth['roles'])} stores written to {layout.landing / 'telemetry'}: "
               f"{truth['records']:,} records over {hours} h ({special}), {truth['duplicates']} duplicate and "
               f"{sum(truth['malformed'].values())} malformed lines; truth in {layout.landing / '_truth/telemetry.json'}")


@main.command()
@click.option("--history", "history", required=True, type=click.Path(path_type=Path), help="Long-format CSV.")
@click.option("--date-col", required=True)
@click.option("--series-cols", required=True, help="Comma-separated columns that identify a series.")
@click.option("--target", required=True, help="The column to forecast.")
@click.option("--freq", default="D", show_default=True, type=click.Choice(["D", "W"]))
@click.option("--horizon", default=None, type=int, help="Periods per fold (default 28 days or 8 weeks).")
@click.option("--holiday-col", default=None, help="Optional column naming the holiday on that date.")
@click.option("--regressor-cols", default="", help="Comma-separated numeric columns known in advance (a promotion, "
              "a markdown): non-zero means on; Prophet gets them as a regressor.")
@click.option("--closed-when-missing", is_flag=True, help="A period missing from the file is a closed day (not "
              "scored, forecast as zero), not a day of zero demand.")
@click.option("--store-col", default=None, help="The series column naming the store: each store's series are "
              "trained as the platform trains a store (its own LightGBM model, best model and calibration); without "
              "it, all series are one store's items.")
@click.option("--out", default="backtest_results.csv", show_default=True, type=click.Path(path_type=Path))
@click.option("--workers", default=os.cpu_count() or 2, show_default=True, type=int)
def backtest(history, date_col, series_cols, target, freq, horizon, holiday_col, regressor_cols, closed_when_missing,
             store_col, out, workers) -> None:
    """Backtest the champion selection against seasonal naive on your own history CSV."""
    from retail_assets.core.forecast.backtest_csv import run_backtest

    cols = [c.strip() for c in series_cols.split(",") if c.strip()]
    if not cols:
        _fail("--series-cols needs at least one column name")
    bar = None

    def start(n: int) -> None:
        nonlocal bar
        bar = click.progressbar(length=n, label=f"backtesting {n} series", show_pos=True, file=sys.stderr)
        bar.__enter__()

    try:
        report = run_backtest(history, date_col, cols, target, freq, horizon, holiday_col, workers,
                              progress=lambda _m: bar and bar.update(1), on_start=start,
                              regressor_cols=[c.strip() for c in regressor_cols.split(",") if c.strip()],
                              closed_when_missing=closed_when_missing, store_col=store_col)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    report.results.to_csv(out, index=False)
    s = report.summary
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    click.echo(f"series: {report.series}  (held-out = the {s['heldout_fold']}; champion chosen on the earlier folds)")
    for model, m in report.per_model.items():
        click.echo(f"  {model:<15} median WAPE {fmt(m['median_wape'])}  weighted WAPE {fmt(m['weighted_wape'])}")
    click.echo(f"  champion        weighted WAPE {fmt(s['heldout_weighted_wape_champion'])}"
               f" vs seasonal naive {fmt(s['heldout_weighted_wape_seasonal_naive'])}")
    click.echo(f"  champion beats seasonal naive on {s['heldout_share_champion_beats_naive']:.0%} of the series"
               " where it is not the baseline")
    click.echo(f"  interval coverage (nominal {s['nominal_coverage']:.0%}): calibrated "
               f"{fmt(s['heldout_coverage_calibrated'])}, Prophet raw {fmt(s['heldout_coverage_prophet_raw'])}; "
               f"mean width {fmt(s['heldout_interval_mean_width'])}, interval score "
               f"{fmt(s['heldout_interval_score'])} ({fmt(s['heldout_interval_score_relative'])} of the mean actual)")
    click.echo(f"  champion mix: {s['champion_mix']}; per-series results in {out}")


@main.group()
def edge() -> None:
    """Verify and run a store's edge bundle (onnxruntime only, as on the device)."""


@edge.command("verify")
@click.argument("bundle")
@click.option("--public-key", default=None, help="Hex Ed25519 public key file (default: $RETAIL_EDGE_PUBLIC_KEY "
              "or <data>/keys/edge_signing.pub).")
@click.option("--store", default=None, help="Refuse a bundle for another store, or older than this device served.")
@click.option("--state", default=None, help="Device state file (default: $RETAIL_EDGE_STATE, else "
              "<data>/edge_state/<store>.json).")
def edge_verify(bundle, public_key, store, state) -> None:
    """Check the bundle's signature, expiry, file hashes and graph."""
    from retail_assets.edge import runner

    args = ["verify", bundle]
    for flag, value in (("--public-key", public_key), ("--store", store), ("--state", state)):
        if value is not None:
            args += [flag, value]
    sys.exit(runner.main(args))


@edge.command("predict")
@click.argument("bundle")
@click.option("--public-key", default=None)
@click.option("--start", default=None, help="First date (YYYY-MM-DD); default today (the device's local date).")
@click.option("--horizon", default=None, type=int, help="Days; default to the end of the bundle.")
@click.option("--format", "fmt", default="csv", type=click.Choice(["csv", "json"]))
@click.option("--telemetry", default=None, help="Telemetry JSONL file (default: $RETAIL_EDGE_TELEMETRY, else "
              "<data>/landing/telemetry/<host>/telemetry.jsonl).")
@click.option("--no-telemetry", is_flag=True, help="Do not record this forecast.")
@click.option("--store", default=None, help="This device's store id (required, or $RETAIL_EDGE_STORE_ID).")
@click.option("--state", default=None, help="Device state file (default: $RETAIL_EDGE_STATE, else "
              "<data>/edge_state/<store>.json).")
def edge_predict(bundle, public_key, start, horizon, fmt, telemetry, no_telemetry, store, state) -> None:
    """Forecast every item of the store from the bundle alone; one telemetry record per forecast."""
    from retail_assets.edge import runner

    args = ["predict", bundle, "--format", fmt] + (["--no-telemetry"] if no_telemetry else [])
    for flag, value in (("--public-key", public_key), ("--start", start), ("--horizon", horizon),
                        ("--telemetry", telemetry), ("--store", store), ("--state", state)):
        if value is not None:
            args += [flag, str(value)]
    sys.exit(runner.main(args))


@main.command()
@click.option("--data-dir", default=None)
@click.option("--store", default=None, help="One store only.")
@click.option("--all", "show_all", is_flag=True, help="Every trained version and published bundle, not just live.")
@click.option("--format", "fmt", default="table", type=click.Choice(["table", "json"]))
def models(data_dir, store, show_all, fmt) -> None:
    """Which model version is live per store, with its champion mix and held-out accuracy."""
    import json as _json

    from retail_assets.core.registry import records as registry

    layout = _layout(data_dir)
    if show_all:
        rows = [e for s in ([store] if store else registry.stores(layout.models))
                for e in registry.history(layout.models, s)]
    else:
        rows = registry.live_rows(layout.models, store)
    if store and not rows:
        _fail(f"store {store} has no trained model in {layout.models}")
    if not show_all:
        fleet = _fleet_by_store(layout)
        for r in rows:
            f = fleet.get(r["store_id"], {})
            r.update(serving_bundle=f.get("serving_bundle"), last_seen=f.get("last_seen"),
                     fleet_status=f.get("status"))
    if fmt == "json":
        click.echo(_json.dumps(rows, indent=1, default=str))
        return
    if show_all:
        for e in rows:
            what = e.get("bundle_version") or e["version"]
            note = ""
            if e["kind"] == "model" and "live" in e:
                note = "  went live" if e["live"] else f"  HELD BACK: {e['promotion']['reason']}"
            elif e["kind"] == "retrain":
                note = (f"  {e['trigger']}: detected {e.get('detected_at') or '-'}, retrain started "
                        f"{e['retrain_started_at']}, {e['outcome']} {e.get('live_at') or ''}")
            click.echo(f"{e['store_id']}  {e['kind']:<7} {what:<14} model {e['version']}  {e['created_at']}{note}")
        return
    fmt3 = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    click.echo(f"{len(rows)} stores with a live model, {len({r['live_version'] for r in rows})} distinct live versions")
    click.echo("store  live version   bundle          serving (reported)          last seen (UTC)    created"
               "                    WAPE champ/naive  coverage  champions")
    for r in rows:
        mix = ", ".join(f"{k} {v}" for k, v in r["champion_mix"].items())
        serving = r["serving_bundle"] or "never reported"
        if r["serving_bundle"] and r["serving_bundle"] != r["bundle_version"]:
            serving += " NOT LIVE"
        seen = r["last_seen"][:16].replace("T", " ") if r["last_seen"] else "-"
        click.echo(f"{r['store_id']:<6} {r['live_version']:<14} {str(r['bundle_version']):<15} {serving:<27} "
                   f"{seen:<18} {r['created_at']:<26} "
                   f"{fmt3(r['heldout_wape_champion'])}/{fmt3(r['heldout_wape_naive'])}      "
                   f"{fmt3(r['coverage'])}     {mix}")
    if not store:
        unserved = _stores_without_live_model(layout, {r["store_id"] for r in rows})
        if unserved:
            click.echo(f"stores of dim_store with no live model: {', '.join(unserved)} (blocked by their "
                       "gx_store_features check, or not trained yet: see the store's partition in the UI)")


def _stores_without_live_model(layout: DataLayout, live: set[str]) -> list[str]:
    """The stores of dim_store that have no live model; empty when the warehouse cannot be read now."""
    from retail_assets.core.warehouse import connect_readonly

    try:
        with connect_readonly(layout.warehouse, wait_seconds=0) as con:
            ids = [r[0] for r in con.execute("select store_id from dim_store order by 1").fetchall()]
    except Exception:  # noqa: BLE001 - no warehouse yet, or a writer holds it: the registry alone
        return []
    return [s for s in ids if s not in live]


def _fleet_by_store(layout: DataLayout) -> dict[str, dict]:
    """What each store's device last reported (fleet status now); empty when there is no telemetry mart yet."""
    from retail_assets.core.monitor import fleet

    try:
        status = fleet.current_status(layout.models, layout.warehouse, fleet.parse_as_of(None), fleet.FleetConfig())
    except Exception:  # noqa: BLE001 - no warehouse yet, or a writer holds it: show the registry alone
        return {}
    return {r["store_id"]: r for r in status.to_dict("records")} if len(status) else {}


@main.command()
@click.option("--data-dir", default=None)
@click.option("--store", required=True)
@click.option("--to", "version", required=True, help="The model version to serve again (see `retail models --all`).")
@click.option("--reason", default="manual rollback", show_default=True)
def rollback(data_dir, store, version, reason) -> None:
    """Serve an earlier model version for one store, republish its edge bundle, audit it."""
    _serve_by_hand(_layout(data_dir), store, version, "rollback", reason)


@main.command()
@click.option("--data-dir", default=None)
@click.option("--store", required=True)
@click.option("--version", required=True, help="A challenger the promotion gate held back (`retail models --all`).")
@click.option("--reason", required=True, help="Why it goes live although the gate held it back (audit log).")
def promote(data_dir, store, version, reason) -> None:
    """Put a held-back challenger live by hand: verified and republished as a rollback is, audited."""
    from retail_assets.core.registry import records as registry

    layout = _layout(data_dir)
    held = {e["version"]: e for e in registry.challengers(layout.models, store)}
    if version not in held:
        _fail(f"store {store} has no challenger {version} (challengers: {', '.join(held) or 'none'}); "
              "an earlier live version goes back with `retail rollback`")
    _serve_by_hand(layout, store, version, "promote", reason,
                   {"held_back_because": held[version]["promotion"]["reason"]})


@main.command()
@click.option("--data-dir", default=None)
@click.option("--store", required=True)
@click.argument("older")
@click.argument("newer")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]))
def diff(data_dir, store, older, newer, fmt) -> None:
    """What differs between two versions of a store: data, configuration, code, libraries, champions,
    held-out accuracy, and the forecast that moved most."""
    import json as _json

    import pandas as pd

    from retail_assets.core.registry import diff as differ
    from retail_assets.core.registry import records as registry

    layout = _layout(data_dir)
    a, b = (registry.verify_version(layout.models, store, v) for v in (older, newer))
    d = differ.diff_versions(a, b, pd.read_parquet(layout.features_file(store)))
    click.echo(_json.dumps(d, indent=1, default=str) if fmt == "json" else differ.render(d))


@main.command()
@click.option("--data-dir", default=None)
@click.option("--format", "fmt", default="md", type=click.Choice(["md", "json"]))
def audit(data_dir, fmt) -> None:
    """Answer an auditor's questions from the platform's records (the audit_report asset's markdown)."""
    layout = _layout(data_dir)
    os.environ.setdefault("DAGSTER_HOME", str(layout.dagster_home))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    import dagster as dg

    from retail_assets.core.registry import audit as auditing
    from retail_assets.definitions import build_definitions
    from retail_assets.defs.governance.audit import build
    from retail_assets.resources import EdgeSigning, FleetSettings, RetailDataRoot, build_resources

    resources = build_resources(str(layout.root))
    with dg.DagsterInstance.get() as instance:
        report = build(RetailDataRoot(data_dir=str(layout.root)), resources["settings"], FleetSettings(),
                       EdgeSigning(), instance, build_definitions(resources={}))
    click.echo(auditing.to_json(report) if fmt == "json" else auditing.markdown(report))


def _serve_by_hand(layout: DataLayout, store: str, version: str, action: str, reason: str,
                   extra: dict | None = None) -> None:
    """Verify a stored version, build and verify its bundle, then make it live and audit who, when and why."""
    from retail_assets.core.edge.bundle import BundleVerificationError
    from retail_assets.core.registry.serve import serve_version
    from retail_assets.resources import EdgeSigning, RetailDataRoot

    key = EdgeSigning().load(RetailDataRoot(data_dir=str(layout.root)))
    try:
        served = serve_version(layout, store, version, action, reason, key, extra)
    except BundleVerificationError as exc:
        _fail(f"{action} refused: {exc}")
    entry = served.entry
    _report_to_dagster(layout, store, entry, served.bundle_version)
    click.echo(f"store {store}: live {entry['from']} -> {entry['to']} ({action}); bundle {served.bundle_version} "
               f"republished (verified, max rel error {served.max_rel_error:.1e}); "
               f"audit entry by {entry['who']} at {entry['when']}")


def _report_to_dagster(layout: DataLayout, store: str, entry: dict, bundle_version: str) -> None:
    """The rollback or promotion as materializations of the store's model and bundle, so the UI shows it."""
    os.environ.setdefault("DAGSTER_HOME", str(layout.dagster_home))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        if store not in instance.get_dynamic_partitions("stores"):
            instance.add_dynamic_partitions("stores", [store])
        meta = {"action": entry["action"], "from_version": str(entry["from"]), "model_version": entry["to"],
                "reason": entry["reason"], "who": entry["who"], "when": entry["when"]}
        instance.report_runless_asset_event(dg.AssetMaterialization("demand_model", partition=store, metadata=meta))
        instance.report_runless_asset_event(dg.AssetMaterialization(
            "edge_bundle", partition=store, metadata={**meta, "bundle_version": bundle_version}))


@main.command()
@click.option("--data-dir", default=None)
@click.option("--store", required=True)
@click.option("--item", required=True)
@click.option("--date", "day", required=True, help="The forecast date (YYYY-MM-DD).")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]))
def trace(data_dir, store, item, day, fmt) -> None:
    """How one forecast number reached the shelf: value, bundle, model, data, validation, code, raw lines."""
    import json as _json

    from retail_assets.core.registry import trace as tracing

    layout = _layout(data_dir)
    try:
        when = dt.date.fromisoformat(day)
    except ValueError:
        _fail(f"--date {day!r} is not a date (YYYY-MM-DD)")
    try:
        t = tracing.trace(layout, store, item, when)
    except FileNotFoundError as exc:  # the store's features or forecast are not there yet
        _fail(str(exc))
    click.echo(_json.dumps(t, indent=1, default=str) if fmt == "json" else tracing.render(t))


@main.command()
def prepare() -> None:
    """Build the dbt manifest (done by `make`; needed before the code location loads outside `dagster dev`)."""
    from retail_assets.dbt import prepare_manifest

    prepare_manifest()
    click.echo("dbt manifest ready")


@main.command()
@click.option("--data-dir", default=None, help="Data root (default: $RETAIL_DATA_DIR or ./data).")
@click.option("--no-ingest", is_flag=True, help="Load no landing files: train every store on the marts as they are "
              "(on a machine without the warehouse, those its warehouse machine published on the object store).")
def run(data_dir, no_ingest) -> None:
    """Materialize every asset into the data root, recorded in its local Dagster instance."""
    layout = _layout(data_dir, without_landing=no_ingest)
    if not no_ingest and not layout.landing.is_dir():
        _fail(f"no landing zone at {layout.landing}: run `retail generate` first, or copy your files there")
    # the embedded default instance lives in the data root; an instance configured elsewhere (e.g. Postgres)
    # is used when DAGSTER_HOME says so
    os.environ.setdefault("DAGSTER_HOME", str(layout.dagster_home))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    _own_scratch()

    import dagster as dg

    from retail_assets.dbt import dbt_project, prepare_manifest

    if not dbt_project().manifest_path.exists():
        prepare_manifest()
    from retail_assets.core.atomic import sweep_stale_temps
    from retail_assets.definitions import build_definitions
    from retail_assets.defs.governance.run_hygiene import local_run_tags, reap_dead_runs

    from retail_assets.core.fitting.pool import shared_pool
    from retail_assets.progress import HANDLER, progress_logger
    from retail_assets.resources import ForecastSettings, settings_from_env

    HANDLER.attach_terminal()

    # after the environment above is set: resources read it when they are built
    defs = build_definitions(loggers={"console": dg.colored_console_logger, "progress": progress_logger})

    t0 = time.perf_counter()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    silent = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}, "progress": {}}}
    tags = local_run_tags()
    with dg.DagsterInstance.get() as instance, contextlib.ExitStack() as stack:
        # what a killed earlier run left: runs still STARTED, temp files of atomic writes, cmdstan folders
        for run_id, _msg in reap_dead_runs(instance):
            click.echo(f"run {run_id} was left STARTED by a process that is gone: marked failed")
        stale = sweep_stale_temps(layout.root)
        if stale:
            click.echo(f"removed {len(stale)} temp files left by killed writers")
        ingest = defs.resolve_job_def("ingest_and_harmonize")
        from retail_assets.defs.stores.assets import STORE_REGISTRY

        if no_ingest:  # the store partitions from the marts as they are, nothing loaded or rebuilt
            click.echo("no ingest: store partitions from the marts as they are ...")
            result = ingest.execute_in_process(instance=instance, raise_on_error=False, run_config=quiet, tags=tags,
                                               asset_selection=[STORE_REGISTRY])
        else:
            click.echo("ingest and harmonize (raw landing -> dbt build -> store partitions) ...")
            result = ingest.execute_in_process(instance=instance, raise_on_error=False, run_config=quiet, tags=tags)
        if not result.success:
            failed = [e.step_key for e in result.all_events if e.is_step_failure]
            _fail(f"run {result.run_id} failed at {', '.join(failed) or 'a step'}; open `make dev` to see its logs")
        stores = instance.get_dynamic_partitions("stores")
        store_job = defs.resolve_job_def("store_pipeline")
        outcomes = {}
        click.echo(f"per-store pipeline (features, gate, model, forecast, bundle) for {len(stores)} stores ...")
        # one fit pool for every store's run in this process: its workers start once, not once per store
        fits = stack.enter_context(ForecastSettings(**settings_from_env()).fit_pool())
        stack.enter_context(shared_pool(fits))
        for i, store in enumerate(stores, start=1):
            t_store = time.perf_counter()
            HANDLER.label = f"[{i}/{len(stores)}] store {store}"
            r = store_job.execute_in_process(  # full logs are in the UI (`make dev`)
                instance=instance, partition_key=store, raise_on_error=False, run_config=silent, tags=tags
            )
            outcomes[store] = _store_outcome(r)
            HANDLER.clear()
            click.echo(f"  [{i}/{len(stores)}] " + _store_line(layout, store, outcomes[store],
                                                             time.perf_counter() - t_store))
        fleet_note = None
        # the forecasts view, registry and fleet tables are the warehouse's: a machine without one leaves them to it
        if any(o == "ok" for o in outcomes.values()) and layout.warehouse.exists():
            defs.resolve_job_def("publish_forecasts").execute_in_process(
                instance=instance, raise_on_error=False, run_config=quiet, tags=tags)
            fleet_note = _demo_fleet(layout, defs, instance, quiet, tags)
    _print_summary(layout, time.perf_counter() - t0, result.run_id, outcomes)
    if fleet_note:
        click.echo(fleet_note)


def _own_scratch() -> None:
    """Every temp file of this run (cmdstan's, dbt's, Dagster's) goes to a folder named after this process,
    removed at exit, or by the next run if this one is killed."""
    import atexit
    import tempfile

    from retail_assets.core import lifetime

    os.environ.setdefault(lifetime.SCRATCH_ROOT_ENV, str(lifetime.scratch_root()))  # children share the root
    lifetime.sweep_scratch()
    os.environ["TMPDIR"] = str(lifetime.scratch_dir("run-"))
    tempfile.tempdir = None
    atexit.register(lifetime.release_scratch)


def _demo_fleet(layout: DataLayout, defs, instance, run_config, tags) -> str | None:
    """A generated demo zone gets its devices' telemetry once (they only exist after the first publish), and
    every run judges the fleet. A zone of your own files gets telemetry only from your devices."""
    demo = (layout.landing / "_truth" / "defects.json").exists()
    if demo and not (layout.landing / "telemetry").exists():
        from retail_assets.core.demo.telemetry import generate_fleet_telemetry

        click.echo("demo edge telemetry (72 h of the stores' devices) ...")
        generate_fleet_telemetry(layout.landing, layout.models, dt.datetime.now(dt.timezone.utc))
    if not (layout.landing / "telemetry").exists():
        return None
    r = defs.resolve_job_def("refresh_edge_fleet").execute_in_process(
        instance=instance, raise_on_error=False, run_config=run_config, tags=tags)
    if not r.success:
        return f"  edge fleet     refresh_edge_fleet run {r.run_id} failed: open `make dev` to see why"
    from retail_assets.core.warehouse import connect_readonly

    with connect_readonly(layout.warehouse) as con:
        rows = con.execute("select store_id, status, problems from edge_fleet_status order by 1").fetchall()
    lines = [f"  edge fleet     table edge_fleet_status ({len(rows)} stores; `retail models` shows what each serves)"]
    lines += [f"    store {s}: {st}" + (f" - {pr}" if pr else "") for s, st, pr in rows if st != "ok"]
    return "\n".join(lines)


def _store_line(layout: DataLayout, store: str, outcome: str, seconds: float) -> str:
    """The same line the batch job logs (`pipeline.describe_store`), from what the run recorded."""
    from retail_assets.core.pipeline import describe_store
    from retail_assets.core.registry import records as registry
    from retail_assets.core.registry.versions import live_version

    mv = live_version(layout.models, store) if outcome == "ok" else None
    if mv is None:
        return f"store {store}: {outcome} ({seconds:.1f}s)"
    trained = [e for e in registry.history(layout.models, store) if e["kind"] == "model"]
    held = trained[-1] if trained and trained[-1].get("live") is False and trained[-1]["version"] != mv.version \
        else None
    return describe_store(mv, seconds=seconds) + (
        f"; its newest training {held['version']} was HELD BACK: {held['promotion']['reason']}" if held else "")


def _store_outcome(result) -> str:
    """'ok', or which blocking check stopped the store, in a few words. A failed warning check (the inventory
    cover's flags) stops nothing: the store is ok."""
    import dagster as dg

    failed_checks = [
        e.asset_check_evaluation_data.check_name
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.asset_check_evaluation_data.passed
        and e.asset_check_evaluation_data.severity == dg.AssetCheckSeverity.ERROR
    ]
    if failed_checks:
        return "blocked by " + ", ".join(failed_checks)
    return "ok" if result.success else "failed: " + ", ".join(e.step_key for e in result.all_events if e.is_step_failure)


def _print_summary(layout: DataLayout, seconds: float, run_id: str, store_outcomes: dict[str, str]) -> None:
    from retail_assets.resources import build_resources

    if not layout.warehouse.exists():  # a machine that trained on the marts on the object store
        _print_marts_summary(layout, seconds, run_id, store_outcomes)
        return
    # same connection settings as the run's resource: DuckDB refuses a second, different config
    with build_resources(layout.root)["duckdb"].get_connection() as con:
        q = lambda sql: con.execute(sql).fetchone()  # noqa: E731
        stores, items = q("select count(*) from dim_store")[0], q("select count(*) from dim_item")[0]
        rows, first, last, units = q(
            "select count(*), min(business_date), max(business_date), sum(units_total) from fct_daily_demand"
        )
        read, accepted, dup, quar, ok = q(
            "select sum(rows_read), sum(rows_accepted), sum(rows_duplicate), sum(rows_quarantined),"
            " bool_and(reconciled) from ingest_reconciliation where source <> 'reference'"
        )
        reasons = con.execute("select reason, count(*) from quarantine group by 1 order by 2 desc").fetchall()
        rejected = con.execute("select source_file, rejected_reason from ingest_reconciliation"
                               " where rejected_reason is not null order by 1").fetchall()
    click.echo(f"\nfinished in {seconds:.1f}s (ingest run {run_id})")
    click.echo(f"  warehouse      {layout.warehouse}")
    click.echo(f"  dagster home   {os.environ['DAGSTER_HOME']}  (`make dev` shows these runs)")
    click.echo(f"  stores/items   {stores} stores x {items} items")
    click.echo(f"  fct_daily_demand  {rows:,} rows, {first} .. {last}, {int(units):,} units")
    click.echo(
        f"  ingest         {int(read):,} rows read = {int(accepted):,} accepted + {int(dup):,} duplicate"
        f" + {int(quar):,} quarantined ({'reconciled' if ok else 'NOT RECONCILED'})"
    )
    click.echo("  quarantine     " + ", ".join(f"{r}: {n}" for r, n in reasons))
    for f, why in rejected:
        click.echo(f"  REJECTED FILE  {f}: {why}")
    _print_stores(layout, store_outcomes)


def _print_stores(layout: DataLayout, store_outcomes: dict[str, str]) -> None:
    ok = sorted(s for s, o in store_outcomes.items() if o == "ok")
    click.echo(f"  features       {layout.features}/store=<id>/features.parquet: "
               f"{len(ok)} of {len(store_outcomes)} stores passed their gate")
    for store, outcome in sorted(store_outcomes.items()):
        if outcome != "ok":
            click.echo(f"    store {store}: {outcome}")
    _print_models(layout, ok)


def _print_marts_summary(layout: DataLayout, seconds: float, run_id: str, store_outcomes: dict[str, str]) -> None:
    """What a machine without the warehouse trained on: the marts' build on the object store."""
    from retail_assets.core import marts
    from retail_assets.core.mirror import copy_url
    from retail_assets.core.warehouse import connect_readonly

    url = copy_url(layout.root)
    pointer = marts.current(url) if url else None
    with connect_readonly(layout.warehouse) as con:
        q = lambda sql: con.execute(sql).fetchone()  # noqa: E731
        stores, items = q("select count(*) from dim_store")[0], q("select count(*) from dim_item")[0]
        rows, first, last = q("select count(*), min(business_date), max(business_date) from fct_daily_demand")
    click.echo(f"\nfinished in {seconds:.1f}s (store registry run {run_id})")
    click.echo(f"  warehouse      none on this machine: the marts of build {pointer['build'] if pointer else '?'} "
               f"(published {pointer['published_at'] if pointer else '?'}) read in place on {url}/{marts.MARTS_DIR}/")
    click.echo(f"  stores/items   {stores} stores x {items} items")
    click.echo(f"  fct_daily_demand  {rows:,} rows, {first} .. {last}")
    _print_stores(layout, store_outcomes)


def _print_models(layout: DataLayout, stores: list[str]) -> None:
    from retail_assets.core.registry.versions import live_version

    if not stores:
        return
    click.echo(f"  models         {layout.models}/store=<id>/<version>/   forecasts {layout.forecasts}/store=<id>/")
    click.echo(f"  exports        {layout.exports}/ (planner CSV per store and run); warehouse view `forecasts`")
    click.echo(f"  edge bundles   {layout.bundles}/store=<id>/bundle_<version>.zip "
               f"(`retail edge verify` / `retail edge predict`)")
    click.echo("    store  version        items  fallback  champion mix                     held-out WAPE"
               " champion / naive / Prophet alone / LightGBM alone  coverage (nominal)")
    for store in stores:
        mv = live_version(layout.models, store)
        if mv is None:
            continue
        s = mv.manifest["summary"]
        mix = ", ".join(f"{k} {v}" for k, v in s["champion_mix"].items())
        fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
        alone = s.get("heldout_weighted_wape_alone", {})
        click.echo(f"    {store}   {mv.version}  {s['items']:>5}  {s['items_fallback']:>8}  {mix:<32} "
                   f"{fmt(s['heldout_weighted_wape_champion'])} / {fmt(s['heldout_weighted_wape_seasonal_naive'])}"
                   f" / {fmt(alone.get('prophet'))} / {fmt(alone.get('lightgbm'))}"
                   f"          {fmt(s['heldout_coverage_calibrated'])} ({s['nominal_coverage']:.0%})")


if __name__ == "__main__":
    main()
