"""The one interface every probe source implements (simulator, landing folder, BigQuery)."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg
import polars as pl


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

    @abstractmethod
    def read_probes(self, day: date) -> ProbeDelivery: ...

    @abstractmethod
    def read_weather(self, day: date) -> pl.DataFrame:
        """Hourly rain for the day in ``WEATHER_SCHEMA`` (24 rows, UTC hour starts)."""

    def true_demand(self, day: date) -> pl.DataFrame | None:
        """The true demand rate per cell, when the source knows it (only the simulator)."""
        return None
