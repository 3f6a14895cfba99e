"""Pipeline and suite results as Dagster sees them: one AssetCheckResult per suite run, and an expected
refusal of the per-store pipeline as a `dg.Failure` with its sentence instead of a traceback."""

import dagster as dg

from retail_assets.core import pipeline
from retail_assets.core.quality.gx import SuiteOutcome


def check_result(
    outcomes: list[SuiteOutcome], severity: dg.AssetCheckSeverity, check_name: str | None = None,
    asset_key: dg.AssetKey | None = None, extra: dict | None = None,
) -> dg.AssetCheckResult:
    """One AssetCheckResult for one or more suites: expectations run, the failed ones named, with counts and samples."""
    expectations = [o for s in outcomes for o in s.outcomes]
    failed = [o for s in outcomes for o in s.failed]
    rows = "\n".join(
        f"| {o.label} | {o.unexpected_count if o.unexpected_count is not None else o.observed_value} "
        f"| {str(o.unexpected_sample)[:120]} |"
        for o in failed
    )
    metadata = {
        "suites": ", ".join(s.suite for s in outcomes),
        "expectations_run": len(expectations),
        "expectations_failed": len(failed),
        "failed_expectations": dg.MetadataValue.md(
            "| expectation | unexpected / observed | sample |\n|---|---|---|\n" + rows if failed else "none"
        ),
        "details": dg.MetadataValue.json([
            {"expectation": o.label, "success": o.success, "kwargs": o.kwargs, "element_count": o.element_count,
             "unexpected_count": o.unexpected_count, "unexpected_sample": o.unexpected_sample,
             "observed_value": o.observed_value}
            for o in expectations
        ]),
        **(extra or {}),
    }
    kwargs = {"check_name": check_name} if check_name else {}
    if asset_key is not None:
        kwargs["asset_key"] = asset_key
    return dg.AssetCheckResult(passed=not failed, severity=severity, metadata=metadata, **kwargs)


def or_failure(step):
    """Run one pipeline step; its PipelineError becomes a Dagster failure with the same sentence."""
    try:
        return step()
    except pipeline.PipelineError as exc:
        raise dg.Failure(str(exc)) from exc


def gate_check_result(gate: pipeline.GateResult) -> dg.AssetCheckResult:
    """The blocking gate's verdict as the UI shows it: every failed expectation named."""
    return check_result(
        gate.outcomes, dg.AssetCheckSeverity.ERROR,
        extra={"store_id": gate.store_id, "history_days": gate.history_days,
               "longest_zero_sales_streak_days": gate.longest_zero_sales_streak_days},
    )
