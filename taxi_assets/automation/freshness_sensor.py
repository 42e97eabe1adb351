"""Freshness: an alert when no forecast tick has succeeded for 15 minutes.

The forecast runs every 5 minutes; three missed ticks in a row mean drivers' apps and the
guidance API are serving a stale forecast, whatever the reason (the schedule stopped, runs
fail, or runs queue behind a backfill). A failed run already alerts through
``run_failure_alert_sensor``; this one also catches the runs that never happened.

It reads Dagster's own record, the latest materialization of ``demand_forecast`` and the
``tick`` it forecast (a re-run of an old tick does not make the forecast fresh), and sends
through the ``alerts`` resource (``AlertChannels.dispatch``), which claims each alert's key
in the instance's storage and drops a repeat: one alert per stale spell, keyed by the last
tick that succeeded.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from taxi_assets.automation.alerts import Alert
from taxi_assets.automation.channels import AlertChannels

FORECAST_ASSET = dg.AssetKey("demand_forecast")
MAX_FORECAST_SILENCE = timedelta(minutes=15)


def last_forecast_tick(instance: dg.DagsterInstance) -> tuple[datetime, str] | None:
    """The newest tick ``demand_forecast`` materialized, and its run; None if it never
    was. The tick comes from the materialization's ``tick`` metadata (the event's own time
    when that is missing)."""
    entry = instance.get_latest_materialization_event(FORECAST_ASSET)
    if entry is None or entry.asset_materialization is None:
        return None
    tick = entry.asset_materialization.metadata.get("tick")
    seconds = tick.value if isinstance(tick, dg.TimestampMetadataValue) else entry.timestamp
    return datetime.fromtimestamp(seconds, UTC), entry.run_id


def stale_forecast_alert(
    last: tuple[datetime, str] | None,
    now: datetime,
    alerts: AlertChannels,
    limit: timedelta = MAX_FORECAST_SILENCE,
) -> Alert | None:
    """The alert when the newest forecast tick is older than ``limit`` at ``now`` (or no
    tick was ever forecast); None while the forecast is fresh."""
    if last is not None and now - last[0] <= limit:
        return None
    base_url = alerts.ui_base_url.rstrip("/")
    if last is None:
        since, run_id, run_url = "never", "", f"{base_url}/assets/{FORECAST_ASSET.path[-1]}"
        silence = "no forecast tick has ever succeeded"
    else:
        tick, run_id = last
        since, run_url = tick.isoformat(), alerts.run_url(run_id)
        minutes = (now - tick).total_seconds() / 60
        silence = f"the latest forecast tick that succeeded is {minutes:.0f} minutes old ({since})"
    return Alert(
        kind="forecast_freshness",
        dedupe_key=f"forecast_freshness:{since}",
        severity="ERROR",
        title=f"No forecast tick succeeded for {limit.total_seconds() / 60:.0f} minutes",
        run_id=run_id,
        run_url=run_url,
        asset=FORECAST_ASSET.to_user_string(),
        result_description=f"{silence}; the guidance API and drivers' apps serve a stale "
        "forecast. Check that forecast_every_5_minutes is running and its runs succeed.",
        counts={}
        if last is None
        else {"minutes_since_last_tick": round((now - last[0]).total_seconds() / 60, 1)},
    )


@dg.sensor(
    name="forecast_freshness_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Alerts when no demand_forecast tick has succeeded for 15 minutes (missed, "
    "failed or queued ticks alike), once per stale spell. Switch it on with "
    "forecast_every_5_minutes.",
)
def forecast_freshness_sensor(
    context: dg.SensorEvaluationContext, alerts: AlertChannels
) -> dg.SkipReason:
    last = last_forecast_tick(context.instance)
    alert = stale_forecast_alert(last, datetime.now(UTC), alerts)
    if alert is None:
        return dg.SkipReason(f"the forecast is fresh: latest tick {last[0].isoformat()}")
    delivery = alerts.dispatch(alert, context.instance)
    context.log.info(delivery.summary())
    return dg.SkipReason(delivery.summary())
