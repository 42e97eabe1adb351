"""Daily partitions in Tokyo time: one partition per Tokyo calendar day."""

from __future__ import annotations

from datetime import date

import dagster as dg

from taxi_assets.calendar import TOKYO_TZ_NAME

# Low thousands of partitions at most (see DESIGN.md): the 5-minute forecast is not partitioned.
PARTITIONS_START = "2025-01-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone=TOKYO_TZ_NAME)


def partition_day(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> date:
    """The Tokyo calendar day of the partition being materialized."""
    return date.fromisoformat(context.partition_key)
