"""Schedules: the nightly training of a closed Tokyo day, and the 5-minute forecast.

Both are STOPPED by default (see the README's "Operations"): the simulated city needs no
nightly training or live forecast unless someone asks for them, and a forecast every five
minutes before any model is deployed would only fail (and alert) every five minutes.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg

from taxi_assets.calendar import TOKYO, TOKYO_TZ_NAME
from taxi_assets.jobs import daily_job, forecast_job

# 00:30 Tokyo: the day closed at midnight, and the feed's late pings of the last minutes
# get half an hour to arrive before the day is cleaned and counted.
DAILY_CRON = "30 0 * * *"
FORECAST_CRON = "*/5 * * * *"


def closed_tokyo_day(at: datetime) -> date:
    """The last Tokyo calendar day that has ended at instant ``at`` (yesterday in Tokyo)."""
    return at.astimezone(TOKYO).date() - timedelta(days=1)


@dg.schedule(
    name="daily_training_schedule",
    job=daily_job,
    cron_schedule=DAILY_CRON,
    execution_timezone=TOKYO_TZ_NAME,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="At 00:30 Tokyo, the day that just closed: raw probes through every contract "
    "to training features, then train, evaluate on that day and deploy if blessed.",
)
def daily_training_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = closed_tokyo_day(context.scheduled_execution_time)
    return dg.RunRequest(
        run_key=f"daily:{day.isoformat()}",
        partition_key=day.isoformat(),
        tags={"taxi_assets/trigger": "daily_training_schedule"},
    )


@dg.schedule(
    name="forecast_every_5_minutes",
    job=forecast_job,
    cron_schedule=FORECAST_CRON,
    execution_timezone=TOKYO_TZ_NAME,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every 5 minutes: the forecast for the bucket in progress, the cruising "
    "guidance and the training-serving skew, at the scheduled tick.",
)
def forecast_every_5_minutes(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    # The tick is the scheduled instant, not the moment the run starts: a run that waited
    # in the queue (or a tick caught up after downtime) still forecasts its own bucket.
    tick = context.scheduled_execution_time.astimezone(TOKYO).isoformat()
    return dg.RunRequest(
        run_key=f"forecast:{tick}",
        run_config={"ops": {"demand_forecast": {"config": {"tick": tick}}}},
        tags={"taxi_assets/trigger": "forecast_every_5_minutes", "taxi_assets/tick": tick},
    )


SCHEDULES = (daily_training_schedule, forecast_every_5_minutes)
