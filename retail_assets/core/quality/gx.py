"""Run a Great Expectations 1.x suite on a DataFrame and summarize the result, without Dagster.

dagster-ge pins great_expectations < 1.0, so the checks call this and map the summary to an
`AssetCheckResult` themselves. One ephemeral GX context per process; nothing is written to disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no network calls from validation

import great_expectations as gx  # noqa: E402
import pandas as pd  # noqa: E402

_CONTEXT = None
SAMPLE_SIZE = 5


@dataclass
class ExpectationOutcome:
    expectation: str
    kwargs: dict[str, Any]
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_sample: list = field(default_factory=list)
    observed_value: Any = None

    @property
    def label(self) -> str:
        target = self.kwargs.get("column") or self.kwargs.get("column_list") or (
            f"{self.kwargs.get('column_A')} vs {self.kwargs.get('column_B')}" if "column_A" in self.kwargs else "table"
        )
        return f"{self.expectation}({target})"


@dataclass
class SuiteOutcome:
    suite: str
    success: bool
    outcomes: list[ExpectationOutcome]

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]


def ensure_context():
    global _CONTEXT
    if _CONTEXT is None:
        ctx = gx.get_context(mode="ephemeral")
        try:
            from great_expectations.data_context.types.base import ProgressBarsConfig

            ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        except Exception:  # progress bars are cosmetic
            pass
        source = ctx.data_sources.add_pandas("frames")
        asset = source.add_dataframe_asset(name="frame")
        _CONTEXT = (ctx, asset.add_batch_definition_whole_dataframe("whole"))
    return _CONTEXT


def _plain(value: Any) -> Any:
    """JSON-friendly values for check metadata (numpy scalars, timestamps, tuples)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item"):
        try:
            return value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def validate_frame(frame: pd.DataFrame, suite: gx.ExpectationSuite) -> SuiteOutcome:
    """Validate `frame` against `suite`; every expectation is evaluated, failures are kept in full."""
    _ctx, batch_definition = ensure_context()
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE})
    outcomes = []
    for r in result.results:
        cfg = r.expectation_config
        res = r.result or {}
        kwargs = {k: _plain(v) for k, v in cfg.kwargs.items() if k != "batch_id"}
        outcomes.append(
            ExpectationOutcome(
                expectation=cfg.type,
                kwargs=kwargs,
                success=bool(r.success),
                element_count=res.get("element_count"),
                unexpected_count=res.get("unexpected_count"),
                unexpected_sample=_plain(res.get("partial_unexpected_list", []))[:SAMPLE_SIZE],
                observed_value=_plain(res.get("observed_value")),
            )
        )
    return SuiteOutcome(suite=suite.name, success=bool(result.success), outcomes=outcomes)
