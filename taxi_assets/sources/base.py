"""The one interface every probe source implements (simulator, landing folder, BigQuery)."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar

import dagster as dg
import polars as pl

from taxi_assets.cleaning import CleaningRules
from taxi_assets.frames import PROBE_STATUSES
from taxi_assets.service_area import ServiceArea


def cast_keeping_track(column: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, pl.Series]:
    """``column`` cast to ``dtype``, and the values the cast could not keep (they became
    null: text that is no number, a number out of range); each source names them its way."""
    cast = column.cast(dtype, strict=False)
    return cast, column.filter(cast.is_null() & column.is_not_null())


def unknown_statuses(column: pl.Series) -> list[str]:
    """Up to five distinct values of a status column that are not a probe status."""
    text = column.drop_nulls().cast(pl.String)
    return sorted(set(text.filter(~text.is_in(PROBE_STATUSES)).unique().head(5)))


class ProbeSourceError(ValueError):
    """Input from outside the platform is unusable; the message names the file, column or
    setting at fault so the person on call can fix the input rather than the code."""


@dataclass(frozen=True)
class ProbeDelivery:
    """One day of pings as the source delivered them, and where they came from."""

    probes: pl.DataFrame
    origin: dict[str, Any] = field(default_factory=dict)


class ProbeSource(dg.ConfigurableResource):
    """Delivers one Tokyo day of raw GPS pings and the hourly weather of the city.

    ``read_probes`` returns frames in ``taxi_assets.frames.RAW_PROBES_SCHEMA`` (UTC
    timestamps, status as the probe-status enum), faults and all: cleaning is not the
    source's job, but a file it cannot read is, and raises ``ProbeSourceError``.
    """

    # Where ``cell_demand`` does the work, for the asset's ``computed_in`` metadata.
    cell_demand_engine: ClassVar[str] = "polars"

    @abstractmethod
    def read_probes(self, day: date) -> ProbeDelivery: ...

    @abstractmethod
    def read_weather(self, day: date) -> pl.DataFrame:
        """Hourly rain for the day in ``WEATHER_SCHEMA`` (24 rows, UTC hour starts)."""

    def cell_demand(
        self, day: date, area: ServiceArea, rules: CleaningRules, bucket_minutes: int
    ) -> pl.DataFrame | None:
        """The day's cell demand (CELL_DEMAND_SCHEMA) computed where the probes live, or
        None when the source cannot push the work down and the Polars path computes it
        from ``clean_probes`` and ``trip_events``. Both must agree for the same probes."""
        return None

    def true_demand(self, day: date) -> pl.DataFrame | None:
        """The true demand rate per cell, when the source knows it (only the simulator)."""
        return None
