"""The two alert sensors: failed asset checks, and failed runs.

Open-source Dagster records a failed check but tells no one, and a failed non-blocking
check does not even fail its run; these sensors read what the instance recorded and send
it through the ``alerts`` resource (alert log, webhook, email).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from taxi_assets.automation.alerts import Alert
from taxi_assets.automation.channels import AlertChannels

# Check evaluations are mirrored into the event log's cross-run index with a storage id that
# grows in the order they were written, on SQLite (run-sharded) and Postgres alike; this is
# the read Dagster's own run-retry daemon uses. (``get_event_records`` would need a
# run-sharded cursor on SQLite, and the asset_check_executions ids are assigned when a check
# is *planned*, so a cursor on them skips checks of a long run evaluated after a later one.)
EVENTS_PER_READ = 200
MAX_EVENTS_PER_TICK = 2000
# A freshly started sensor alerts on failures of the last day (e.g. a `make run` done before
# the daemon came up) but does not replay an instance's whole history.
FIRST_TICK_LOOKBACK = timedelta(hours=24)
# Numeric check metadata that counts what failed, by the names our checks use.
COUNT_KEYS = (
    "failure_count",
    "failing_rows",
    "rows_checked",
    "quarantined_rows",
    "reasons_over_limit",
    "failures",
    "unaccounted_rows",
    "anomalies",
    "rows_affected",
    "features_drifted",
    "features_skewed",
)


def failure_counts(metadata: Mapping[str, Any]) -> dict[str, float]:
    counts: dict[str, float] = {}
    for key, entry in metadata.items():
        value = getattr(entry, "value", entry)
        if key in COUNT_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
            counts[key] = value
    return counts


def check_failure_alert(
    evaluation: dg.AssetCheckEvaluation,
    run_id: str,
    timestamp: float,
    check_description: str | None,
    run_url: str,
) -> Alert:
    """The alert for one failed check evaluation. One evaluation per run, check and
    partition: that is the failure, whichever sensor or tick reads it."""
    asset = evaluation.asset_key.to_user_string()
    partition = evaluation.partition
    where = f" for {partition}" if partition else ""
    return Alert(
        kind="asset_check",
        dedupe_key=f"asset_check:{run_id}:{asset}:{evaluation.check_name}:{partition or '-'}",
        severity=evaluation.severity.value,
        title=f"Check {asset}:{evaluation.check_name} failed{where}",
        run_id=run_id,
        run_url=run_url,
        asset=asset,
        check=evaluation.check_name,
        partition=partition,
        check_description=check_description,
        result_description=evaluation.description,
        counts=failure_counts(evaluation.metadata),
        occurred_at=datetime.fromtimestamp(timestamp, UTC).isoformat(),
    )


def _check_description(
    repository_def: dg.RepositoryDefinition | None, key: dg.AssetCheckKey
) -> str | None:
    if repository_def is None:
        return None
    graph = repository_def.asset_graph
    if not graph.has(key):
        return None
    return graph.get_check_spec(key).description


def _failed_check_events(
    instance: dg.DagsterInstance, after: int
) -> Iterator[tuple[int, dg.EventLogEntry]]:
    read = 0
    while read < MAX_EVENTS_PER_TICK:
        batch = instance.event_log_storage.get_logs_for_all_runs_by_log_id(
            after_cursor=after,
            dagster_event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION,
            limit=EVENTS_PER_READ,
        )
        yield from sorted(batch.items())
        read += len(batch)
        if len(batch) < EVENTS_PER_READ:
            return
        after = max(batch)


@dg.sensor(
    name="asset_check_alert_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on every failed asset check (blocking or not, error or warning) with "
    "the asset, check, partition, severity, what the check verifies, the failure counts and "
    "a link to the run. The cursor is the last check evaluation read; the instance's "
    "storage keeps the same failure from being sent twice.",
)
def asset_check_alert_sensor(
    context: dg.SensorEvaluationContext, alerts: AlertChannels
) -> dg.SkipReason | None:
    first_tick = context.cursor is None
    after = int(context.cursor) if context.cursor else -1
    not_before = (datetime.now(UTC) - FIRST_TICK_LOOKBACK).timestamp() if first_tick else 0.0
    sent = evaluated = 0
    for storage_id, entry in _failed_check_events(context.instance, after):
        after = storage_id
        event = entry.dagster_event
        if event is None or entry.timestamp < not_before:
            continue
        evaluation = event.event_specific_data
        if not isinstance(evaluation, dg.AssetCheckEvaluation):
            continue
        evaluated += 1
        if evaluation.passed:
            continue
        key = dg.AssetCheckKey(evaluation.asset_key, evaluation.check_name)
        alert = check_failure_alert(
            evaluation,
            entry.run_id,
            entry.timestamp,
            _check_description(context.repository_def, key),
            alerts.run_url(entry.run_id),
        )
        delivery = alerts.dispatch(alert, context.instance)
        context.log.info(delivery.summary())
        sent += not delivery.duplicate
    context.update_cursor(str(after))
    if not sent:
        return dg.SkipReason(f"{evaluated} check evaluation(s) read, no new failure")
    return None


def failed_check_lines(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """What each failed check of a run said: Dagster's step error for a failed blocking
    check names only the check ("clean_probes: contract"), not the column, rule or counts."""
    lines = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data if entry.dagster_event else None
        if isinstance(evaluation, dg.AssetCheckEvaluation) and not evaluation.passed:
            asset = evaluation.asset_key.to_user_string()
            lines.append(f"{asset}:{evaluation.check_name}: {evaluation.description or 'failed'}")
    return lines


def run_failure_alert(context: dg.RunFailureSensorContext, alerts: AlertChannels) -> Alert:
    run = context.dagster_run
    step_failures = context.get_step_failure_events()
    steps = [event.step_key for event in step_failures if event.step_key]
    errors = [
        f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
        for event in step_failures
        if event.step_failure_data.error is not None
    ]
    errors += failed_check_lines(context.instance, run.run_id)
    partition = run.tags.get("dagster/partition")
    where = f" for {partition}" if partition else ""
    return Alert(
        kind="run_failure",
        dedupe_key=f"run_failure:{run.run_id}",
        severity="ERROR",
        title=f"Run of {run.job_name} failed{where}",
        run_id=run.run_id,
        run_url=alerts.run_url(run.run_id),
        partition=partition,
        job=run.job_name,
        failed_steps=steps,
        error="\n".join(errors) or context.failure_event.message,
    )


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on every failed run of this code location with the failing step(s) "
    "and their errors and a link to the run.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: AlertChannels) -> None:
    delivery = alerts.dispatch(run_failure_alert(context, alerts), context.instance)
    context.log.info(delivery.summary())


ALERT_SENSORS = (asset_check_alert_sensor, run_failure_alert_sensor)
