"""Automation: schedules, the landing-folder sensor, and the alert sensors and channels.

One concern per module: ``schedules`` (nightly training, 5-minute forecast),
``landing_sensor`` (new landing files run their days), ``alerts`` (the alert, its text and
the alert log), ``channels`` (webhook, email, the ``alerts`` resource), ``alert_sensors``
(failed checks and failed runs) and ``freshness_sensor`` (no forecast tick for 15 minutes).
"""

from __future__ import annotations

from taxi_assets.automation.alert_sensors import (
    ALERT_SENSORS,
    asset_check_alert_sensor,
    run_failure_alert_sensor,
)
from taxi_assets.automation.channels import AlertChannels, alert_resources
from taxi_assets.automation.freshness_sensor import forecast_freshness_sensor
from taxi_assets.automation.landing_sensor import landing_files_sensor
from taxi_assets.automation.schedules import (
    SCHEDULES,
    daily_training_schedule,
    forecast_every_5_minutes,
)

SENSORS = (landing_files_sensor, *ALERT_SENSORS, forecast_freshness_sensor)

__all__ = [
    "SCHEDULES",
    "SENSORS",
    "AlertChannels",
    "alert_resources",
    "asset_check_alert_sensor",
    "daily_training_schedule",
    "forecast_freshness_sensor",
    "forecast_every_5_minutes",
    "landing_files_sensor",
    "run_failure_alert_sensor",
]
