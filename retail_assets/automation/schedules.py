"""Weekly and seasonal retrains of every store, in batched runs."""

import json
import os
from pathlib import Path

import dagster as dg

from retail_assets.automation.batch import batch_run_requests
from retail_assets.core.monitor.signals import seasonal_trigger_dates
from retail_assets.partitions import stores_partitions

WEEKLY_CRON = os.environ.get("RETAIL_WEEKLY_RETRAIN_CRON", "0 3 * * 0")  # Sunday 03:00
SCHEDULE_TZ = os.environ.get("RETAIL_SCHEDULE_TIMEZONE", "UTC")
PEAKS_FILE = Path(os.environ.get("RETAIL_SEASONAL_PEAKS", Path(__file__).with_name("peaks.json")))


def load_peaks() -> list[dict]:
    return json.loads(PEAKS_FILE.read_text())


@dg.schedule(cron_schedule=WEEKLY_CRON, execution_timezone=SCHEDULE_TZ, job_name="retrain_stores",
             description="Every Sunday: retrain every store, 50 stores per run.")
def weekly_retrain_schedule(context: dg.ScheduleEvaluationContext):
    stores = sorted(context.instance.get_dynamic_partitions(stores_partitions.name))
    if not stores:
        return dg.SkipReason("no store partitions yet")
    day = context.scheduled_execution_time.date().isoformat()
    return batch_run_requests(stores, "weekly", f"weekly-{day}")


@dg.schedule(cron_schedule="0 4 * * *", execution_timezone=SCHEDULE_TZ, job_name="retrain_stores",
             description="Daily check of the seasonal calendar: retrain every store the configured lead days "
                         "before each peak (Black Friday, Christmas, Easter, back to school, summer).")
def seasonal_retrain_schedule(context: dg.ScheduleEvaluationContext):
    today = context.scheduled_execution_time.date()
    triggers = seasonal_trigger_dates(today.year, load_peaks())
    peak = triggers.get(today.isoformat())
    if peak is None:
        return dg.SkipReason(f"{today} is not the lead day of any configured peak")
    stores = sorted(context.instance.get_dynamic_partitions(stores_partitions.name))
    if not stores:
        return dg.SkipReason("no store partitions yet")
    return batch_run_requests(stores, f"seasonal: {peak}", f"seasonal-{today.isoformat()}")
