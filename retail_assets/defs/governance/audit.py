"""`audit_report`: the auditor's questions answered from the platform's records (core/registry/audit.py), the
same markdown `retail audit` prints. What only Dagster knows (which sensors and schedules start running, where
the instance keeps its runs) is read here and passed in."""

import os

import dagster as dg

from retail_assets.core.registry import audit
from retail_assets.defs.automation import automation_on
from retail_assets.defs.edge.fleet import compute_fleet_status
from retail_assets.defs.forecasting.schedules import load_peaks
from retail_assets.defs.governance.assets import model_registry
from retail_assets.resources import EdgeSigning, FleetSettings, ForecastSettings, RetailDataRoot


def automation_status(defs: dg.Definitions) -> dict[str, str]:
    """Every sensor and schedule of the code location and the status it starts with."""
    out = {s.name: s.default_status.value for s in defs.sensors or []}
    out |= {s.name: s.default_status.value for s in defs.schedules or []}
    return dict(sorted(out.items()))


def targets(data_root: RetailDataRoot, settings: ForecastSettings, instance: dg.DagsterInstance) -> dict:
    layout = data_root.layout
    return {"data root": str(layout.root), "warehouse": f"DuckDB file {layout.warehouse} (one writer at a time)",
            "Dagster instance": f"{type(instance.run_storage).__name__} under {instance.root_directory}",
            "fits": f"{settings.fit_engine} x {settings.fit_workers} workers"
                    + (f" on {settings.dask_scheduler_address}" if settings.dask_scheduler_address else ""),
            "automation": ("on" if automation_on() else "off") + " (RETAIL_AUTOMATION="
                          + (os.environ.get("RETAIL_AUTOMATION") or "unset") + ")"}


def build(data_root: RetailDataRoot, settings: ForecastSettings, fleet_settings: FleetSettings,
          edge_signing: EdgeSigning, instance: dg.DagsterInstance, defs: dg.Definitions) -> dict:
    try:
        status, _as_of = compute_fleet_status(data_root, fleet_settings)
    except Exception:  # noqa: BLE001 - no warehouse yet: the answers say no telemetry was received
        import pandas as pd

        status = pd.DataFrame(columns=["store_id", "status"])
    return audit.build_report(
        data_root.layout, signing_key=edge_signing.load(data_root), fleet=status,
        fleet_window_hours=fleet_settings.window_hours, peaks=load_peaks(), automation=automation_status(defs),
        targets=targets(data_root, settings, instance))


@dg.asset(
    deps=[model_registry],
    group_name="governance",
    kinds={"markdown"},
    description="Answers an auditor's questions from the records (trace time, one-store rollback time on a scratch "
                "copy, drift-to-live lag in the last peak season, live versions and what devices serve, edge "
                "latency and failures, the no-manual-step path, storage and compute): `retail audit`.",
)
def audit_report(context: dg.AssetExecutionContext, data_root: RetailDataRoot, settings: ForecastSettings,
                 fleet_settings: FleetSettings, edge_signing: EdgeSigning) -> dg.MaterializeResult:
    from retail_assets.core.atomic import atomic_write_text
    from retail_assets.definitions import build_definitions

    report = build(data_root, settings, fleet_settings, edge_signing, context.instance,
                   build_definitions(resources={}))
    text = audit.markdown(report)
    path = data_root.layout.root / "exports" / "audit_report.md"
    atomic_write_text(path, text)
    atomic_write_text(path.with_suffix(".json"), audit.to_json(report))
    figures = {a["question"]: a["figures"] for a in report["answers"]}
    return dg.MaterializeResult(metadata={
        "report": dg.MetadataValue.md(text), "path": dg.MetadataValue.path(str(path)),
        "figures": dg.MetadataValue.json(figures)})
