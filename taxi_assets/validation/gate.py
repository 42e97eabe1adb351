"""Training only learns from validated days: what the data checks recorded, per day.

A blocking check already stops ``demand_model`` when it fails in the same run. A day
validated (and failed) in an earlier run is caught here: ``demand_model`` reads the latest
result of every validation check for each day of its window from the instance, the record
the UI shows, before it trains.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

# The assets whose statistics a day must pass before a model may learn from it.
VALIDATED_ASSETS = ("clean_probes", "cell_demand", "training_features")
VALIDATION_CHECKS = (
    *(
        dg.AssetCheckKey(dg.AssetKey(f"{asset}_statistics"), check)
        for asset in VALIDATED_ASSETS
        for check in ("schema_anomalies", "drift_vs_previous_day")
    ),
    dg.AssetCheckKey(dg.AssetKey("training_features"), "contract"),
)


def _name(key: dg.AssetCheckKey) -> str:
    return f"{key.asset_key.to_user_string()}:{key.name}"


def unvalidated_days(
    instance: dg.DagsterInstance,
    days: Sequence[str],
    checks: Sequence[dg.AssetCheckKey] = VALIDATION_CHECKS,
) -> dict[str, list[str]]:
    """For each day that may not be trained on, why: ``check failed`` or ``check never
    ran``, per check. Days that passed every check are absent."""
    problems: dict[str, list[str]] = {}
    for day in days:
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            list(checks), partition_filter=PartitionKeyFilter(key=day)
        )
        for check in checks:
            found = latest[check].status if check in latest else None
            if found is None:
                problems.setdefault(day, []).append(f"{_name(check)} never ran")
            elif found != AssetCheckExecutionRecordStatus.SUCCEEDED:
                problems.setdefault(day, []).append(f"{_name(check)} {found.value.lower()}")
    return problems


def statistics_checks(statistics_asset: str) -> list[dg.AssetCheckKey]:
    """The schema and drift checks of one statistics asset."""
    return [
        dg.AssetCheckKey(dg.AssetKey(statistics_asset), check)
        for check in ("schema_anomalies", "drift_vs_previous_day")
    ]


def validated_days_before(
    instance: dg.DagsterInstance, statistics_asset: str, day: date, lookback_days: int
) -> list[str]:
    """The days before ``day``'s previous day, at most ``lookback_days`` back, whose
    ``statistics_asset`` checks all passed, latest first: what drift compares with when the
    previous day is not stored."""
    candidates = [(day - timedelta(days=back)).isoformat() for back in range(2, lookback_days + 1)]
    failed = unvalidated_days(instance, candidates, statistics_checks(statistics_asset))
    return [key for key in candidates if key not in failed]
