"""The one interface every probe source implements (simulator, landing folder, BigQuery)."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

import dagster as dg
import polars as pl

from taxi_assets.cleaning import CleaningRules
from taxi_assets.frames import CLEAN_VEHICLE_ID_RULE, is_clean_vehicle_id
from taxi_assets.service_area import ServiceArea


def cast_keeping_track(column: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, pl.Series]:
    """``column`` cast to ``dtype``, and the values the cast could not keep (they became
    null: text that is no number, a number out of range); each source names them its way."""
    cast = column.cast(dtype, strict=False)
    return cast, column.filter(cast.is_null() & column.is_not_null())


SHOWN_EXAMPLES = 5


def examples(values: pl.Series) -> list:
    """Up to five distinct values, for an error message."""
    return values.unique(maintain_order=True).head(SHOWN_EXAMPLES).to_list()


def _integral_text(column: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Integers, or floats that hold integers (46.0, as a pandas export of an id column with
    a null writes them), as decimal text; and the values that are not integral (46.5 must
    not be truncated into vehicle 46, nor NaN or an infinity become an id)."""
    if column.dtype.is_integer():
        return column.cast(pl.String), column.clear()
    whole = column.cast(pl.Int64, strict=False)
    integral = (column.is_finite() & (column == column.floor()) & whole.is_not_null()).fill_null(
        False
    )
    text = whole.cast(pl.String).zip_with(integral, pl.Series([None], dtype=pl.String))
    return text.alias(column.name), column.filter(~integral & column.is_not_null())


def text_column(column: pl.Series) -> tuple[pl.Series, pl.Series] | None:
    """A delivered column of words or codes as text, and its values that cannot be text
    without inventing something (a fractional number); None for a type that holds neither
    (dates, lists, ...). Text stays as delivered, integers become their decimal text."""
    dtype = column.dtype
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return column.cast(pl.String), column.clear()
    if dtype == pl.Null:
        return column.cast(pl.String), column.clear()
    if dtype.is_integer() or dtype.is_float():
        return _integral_text(column)
    if dtype == pl.Boolean:
        return column.cast(pl.String), column.clear()
    return None


def vehicle_ids_as_text(column: pl.Series) -> tuple[pl.Series, pl.Series] | None:
    """The delivered vehicle ids as text, and the delivered values that are not clean ids
    (fractional numbers, or text breaking the rule in ``frames``); None for a column type
    that cannot hold ids. Nulls stay nulls: cleaning quarantines them as missing_value."""
    if column.dtype == pl.Boolean:
        return None
    converted = text_column(column)
    if converted is None:
        return None
    text, bad = converted
    # The rule is judged once per distinct id (a day has a thousand ids, a million pings).
    distinct = text.drop_nulls().unique()
    judged = distinct.to_frame().select(is_clean_vehicle_id(pl.col(text.name))).to_series()
    unclean_ids = distinct.filter(~judged)
    refused = (
        column.filter(text.is_in(unclean_ids.implode()).fill_null(False))
        if unclean_ids.len()
        else column.clear()
    )
    return text, pl.concat([bad.cast(pl.String), refused.cast(pl.String)])


def refused_ids_message(where: str, name: str, refused: pl.Series) -> str:
    """What to say about ids a source refuses: the file or table, the column, examples."""
    return (
        f"{where}: column {name!r} has {refused.len()} value(s) that are not clean vehicle "
        f"ids, e.g. {examples(refused)}; an id is text ({CLEAN_VEHICLE_ID_RULE}) or a whole "
        "number"
    )


@dataclass(frozen=True)
class LookBack:
    """What a window read adds for vehicles silent at its start (see ``taxi_assets.serving``).

    A vehicle that pinged before the window's start but whose first ping in the window
    comes more than ``silence`` after it was silent there: the rules that judge a ping by
    its vehicle's earlier pings (a stuck meter's run, a GPS step, a pickup's gap) would see
    its track begin at that ping. For such a vehicle the read also holds its pings of the
    ``margin`` before its last ping before the window, as the whole day would show them.
    """

    margin: timedelta
    silence: timedelta


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError(f"{instant} needs a time zone (UTC or an offset)")
    return instant.astimezone(UTC)


def silent_vehicles(
    pings: pl.DataFrame | pl.LazyFrame, start: datetime, end: datetime, look_back: LookBack
) -> pl.DataFrame:
    """Per vehicle silent at ``start`` (:class:`LookBack`), from its delivery's ``vehicle_id``
    and ``ts``: ``read_from``, the start of its look-back. One row per such vehicle."""
    start, end = _utc(start), _utc(end)
    ts = pl.col("ts")
    return (
        pings.lazy()
        .select("vehicle_id", "ts")
        .filter(ts < end)
        .group_by("vehicle_id")
        # when/then rather than ts.filter(...) in the aggregation: the same values, but a
        # plain expression the group-by runs in its fast path (half the time).
        .agg(
            last_before=pl.when(ts < start).then(ts).max(),
            first_from=pl.when(ts >= start).then(ts).min(),
        )
        .filter(
            pl.col("last_before").is_not_null()
            & pl.col("vehicle_id").is_not_null()
            & (pl.col("first_from") - start > look_back.silence)
        )
        .select("vehicle_id", read_from=pl.col("last_before") - look_back.margin)
        .sort("vehicle_id")
        .collect()
    )


def select_window(
    probes: pl.DataFrame | pl.LazyFrame, start: datetime, end: datetime, silent: pl.DataFrame
) -> pl.DataFrame:
    """The rows stamped in [start, end), then the earlier rows of the ``silent`` vehicles
    from their ``read_from`` on (:func:`silent_vehicles`)."""
    start, end = _utc(start), _utc(end)
    ts = pl.col("ts")
    window = probes.lazy().filter((ts >= start) & (ts < end))
    if silent.height == 0:
        return window.collect()
    earlier = (
        probes.lazy()
        .filter((ts < start) & pl.col("vehicle_id").is_in(silent["vehicle_id"].implode()))
        .join(silent.lazy(), on="vehicle_id", how="inner", maintain_order="left")
        .filter(ts >= pl.col("read_from"))
        .drop("read_from")
    )
    return pl.concat([earlier, window]).collect()


def window_with_look_back(
    probes: pl.DataFrame | pl.LazyFrame,
    start: datetime,
    end: datetime,
    look_back: LookBack | None,
) -> pl.DataFrame:
    """The rows of ``probes`` (UTC ``ts``) stamped in [start, end) and, with ``look_back``,
    the earlier rows of the vehicles silent at ``start`` (:class:`LookBack`)."""
    silent = (
        silent_vehicles(probes, start, end, look_back)
        if look_back is not None
        else pl.DataFrame(schema={"vehicle_id": pl.String, "read_from": pl.Datetime("us", "UTC")})
    )
    return select_window(probes, start, end, silent)


def window_origin(origin: dict[str, Any], start: datetime, end: datetime) -> dict[str, Any]:
    """A delivery's origin, saying which window of the day it holds."""
    return {
        **origin,
        "window_start": _utc(start).isoformat(),
        "window_end": _utc(end).isoformat(),
    }


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
    timestamps, vehicle ids as text, status as the feed's own words), faults and all:
    cleaning is not the source's job, but a file it cannot read (or ids that are not clean
    ids) is, and raises ``ProbeSourceError``.
    """

    # Where ``cell_demand`` does the work, for the asset's ``computed_in`` metadata.
    cell_demand_engine: ClassVar[str] = "polars"

    @abstractmethod
    def read_probes(self, day: date) -> ProbeDelivery: ...

    def read_probes_window(
        self, day: date, start: datetime, end: datetime, look_back: LookBack | None = None
    ) -> ProbeDelivery:
        """The pings of ``day``'s delivery stamped in [start, end) and, with ``look_back``,
        the earlier pings of the vehicles silent at ``start`` (:func:`window_with_look_back`):
        what the 5-minute tick reads instead of the whole day. Sources that can filter where
        the pings live (BigQuery, parquet row-group statistics) override this; this default
        reads the day and slices it, so every source gives the same rows."""
        delivery = self.read_probes(day)
        probes = window_with_look_back(delivery.probes, start, end, look_back)
        return ProbeDelivery(probes, window_origin(delivery.origin, start, end))

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

    def warehouse_data_path(self) -> Any:
        """The ``BigQueryDataPath`` that writes clean_probes, rejected_probes, trip_events
        and cell_demand as tables where the probes live, or None when the assets compute
        them in Polars from the pulled day (every source but a configured BigQuery one)."""
        return None

    def true_demand(self, day: date) -> pl.DataFrame | None:
        """The true demand rate per cell, when the source knows it (only the simulator)."""
        return None
