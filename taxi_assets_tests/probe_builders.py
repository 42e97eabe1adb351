"""Build small raw probe frames by hand, for tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from taxi_assets.calendar import day_window_utc
from taxi_assets.frames import RAW_PROBES_SCHEMA

# A point well inside the default central Tokyo service area (near Tokyo Station).
TOKYO_STATION = (35.6812, 139.7671)

ProbeTuple = tuple[Any, ...]


def raw_probes(rows: Iterable[ProbeTuple]) -> pl.DataFrame:
    """A RAW_PROBES_SCHEMA frame from tuples (vehicle_id, ts, lat, lon, speed_kmh, heading,
    status); trailing fields may be left out (speed 20 km/h, heading 90, status 'vacant').
    An integer vehicle id becomes its decimal text, as the sources deliver it.
    """
    defaults: Sequence[Any] = (None, None, None, None, 20.0, 90.0, "vacant")
    full = [as_text_id(tuple(row) + tuple(defaults[len(row) :])) for row in rows]
    return pl.DataFrame(full, schema=RAW_PROBES_SCHEMA, orient="row")


def as_text_id(row: ProbeTuple) -> ProbeTuple:
    vehicle_id = row[0]
    return (str(vehicle_id) if isinstance(vehicle_id, int) else vehicle_id, *row[1:])


def at_minute(day: date, minute: float) -> datetime:
    """The UTC instant ``minute`` minutes after Tokyo midnight of ``day``."""
    start, _ = day_window_utc(day)
    return (start + timedelta(minutes=minute)).astimezone(UTC)


def track(
    vehicle_id: int | str,
    day: date,
    statuses: Sequence[str],
    start_minute: float = 60.0,
    every_minutes: float = 1.0,
    origin: tuple[float, float] = TOKYO_STATION,
    step_deg: float = 0.001,
) -> list[ProbeTuple]:
    """A plausible track: one ping a minute, moving ~100 m north-east per ping."""
    lat0, lon0 = origin
    return [
        (
            vehicle_id,
            at_minute(day, start_minute + i * every_minutes),
            lat0 + i * step_deg,
            lon0 + i * step_deg,
            20.0,
            45.0,
            status,
        )
        for i, status in enumerate(statuses)
    ]
