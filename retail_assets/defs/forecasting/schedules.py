"""Weekly and seasonal retrains of every store, in batched runs."""

import json
import os
from pathlib import Path

import dagster as dg

from retail_assets.defs.automation import schedule_status
from retail_assets.defs.forecasting.batch import batch_run_requests
from retail_assets.core.monitor.signals import seasonal_trigger_dates
from retail_assets.defs.partitions import stores_partitions

DEFAULT_WEEKLY_CRON = "0 3 * * 0"  # Sunday 03:00
DEFAULT_PEAKS_FILE = Path(__file__).with_name("peaks.json")


def load_peaks() -> list[dict]:
    """The seasonal calendar, read when a tick evaluates it ($RETAIL_SEASONAL_PEAKS, else peaks.json)."""
    return json.loads(Path(os.environ.get("RETAIL_SEASONAL_PEAKS", DEFAULT_PEAKS_FILE)).read_text())


def retrain_schedules() -> list[dg.ScheduleDefinition]:
    """Built when the definitions load: cron and time zone come from the environment then, not at import."""
    weekly_cron = os.environ.get("RETAIL_WEEKLY_RETRAIN_CRON", DEFAULT_WEEKLY_CRON)
    timezone = os.environ.get("RETAIL_SCHEDULE_TIMEZONE", "UTC")
    return [
        dg.ScheduleDefinition(name="weekly_retrain_schedule", cron_schedule=weekly_cron, execution_timezone=timezone,
                              default_status=schedule_status(),
                              job_name="retrain_stores", execution_fn=weekly_retrain_schedule,
                              description="Every Sunday: retrain every store, 50 stores per run."),
        dg.ScheduleDefinition(name="seasonal_retrain_schedule", cron_schedule="0 4 * * *",
                              execution_timezone=timezone, job_name="retrain_stores", default_status=schedule_status(),
                              execution_fn=seasonal_retrain_schedule,
                              description="Daily check of the seasonal calendar: retrain every store the configured "
                                          "lead days before each peak (Black Friday, Christmas, Easter, back to "
                                          "school, summer)."),
    ]


def weekly_retrain_schedule(context: dg.ScheduleEvaluationContext):
    """Every store, in batches of `BATCH_SIZE` per run."""
    stores = sorted(context.instance.get_dynamic_partitions(stores_partitions.name))
    if not stores:
        return dg.SkipReason("no store partitions yet")
    day = context.scheduled_execution_time.date().isoformat()
    return batch_run_requests(stores, "weekly", f"weekly-{day}",
                              detected_at=context.scheduled_execution_time.isoformat(timespec="seconds"))


def seasonal_retrain_schedule(context: dg.ScheduleEvaluationContext):
    """Every store, on the lead day of a configured peak."""
    today = context.scheduled_execution_time.date()
    triggers = seasonal_trigger_dates(today.year, load_peaks())
    peak = triggers.get(today.isoformat())
    if peak is None:
        return dg.SkipReason(f"{today} is not the lead day of any configured peak")
    stores = sorted(context.instance.get_dynamic_partitions(stores_partitions.name))
    if not stores:
        return dg.SkipReason("no store partitions yet")
    return batch_run_requests(stores, f"seasonal: {peak}", f"seasonal-{today.isoformat()}",
                              detected_at=context.scheduled_execution_time.isoformat(timespec="seconds"))
