"""Which sensors and schedules start running when the code location loads: in the embedded default all of them
(new data reaches a live version with no manual step); `RETAIL_AUTOMATION=off` starts them stopped, for a
production deployment that turns each on in the UI (Automation tab) when it is ready. Read when the
definitions load, never at import."""

import os

import dagster as dg


def automation_on() -> bool:
    return os.environ.get("RETAIL_AUTOMATION", "on").strip().lower() not in ("off", "0", "false", "no")


def sensor_status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if automation_on() else dg.DefaultSensorStatus.STOPPED


def schedule_status() -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if automation_on() else dg.DefaultScheduleStatus.STOPPED


def started(sensor: dg.SensorDefinition) -> dg.SensorDefinition:
    """The module-level sensor (stopped: what tests evaluate directly) with the deployment's default status.
    `_raw_fn` is the decorated function, which SensorDefinition.with_attributes copies the same way."""
    return dg.sensor(name=sensor.name, job_name=sensor.job_name, minimum_interval_seconds=sensor.minimum_interval_seconds,
                     description=sensor.description, default_status=sensor_status())(sensor._raw_fn)
