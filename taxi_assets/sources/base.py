"""The one interface every probe source implements (simulator, landing folder, BigQuery)."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

import dagster as dg
import polars as pl

from taxi_assets.cleaning import CleaningRules, status_word
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
    """What a window read [start, end) adds before ``start``, per vehicle pinging in the
    window (see ``taxi_assets.serving``): the pings the rules that judge a ping by its
    vehicle's earlier pings (a stuck meter's run, a GPS step, a pickup's gap) would see on
    the whole day.

    A status run that goes on into the window (a meter on) began after the vehicle's last
    ping before ``start`` whose status is one of ``break_words`` (delivered words, matched
    as cleaning matches them: the statuses that end such a run), so the read goes back to
    that ping, ``margin`` before it (the short rules around it). A run followed back further
    than ``run_span`` before ``start`` is long enough to be judged stuck whatever it holds,
    so the read goes no further back than the vehicle's last ping before that, and ``margin``
    before it: a vehicle silent there (a night taxi resting through the day) still brings
    that ping. Only where such an anchor ping is itself rejected can a rule see less than
    on the whole day.
    """

    margin: timedelta
    run_span: timedelta
    break_words: tuple[str, ...]

    def breaks(self, statuses: pl.Series) -> pl.Expr:
        """Whether a delivered ``status`` (any type: cast to text) is one of the words; the
        words are matched once per distinct value of ``statuses``, not per ping."""
        text = pl.col("status").cast(pl.String, strict=False)
        distinct = statuses.cast(pl.String, strict=False).unique().drop_nulls()
        matched = distinct.filter(
            distinct.to_frame("status").select(
                status_word(pl.col("status")).is_in(list(self.break_words))
            )["status"]
        )
        # A comparison per word: a feed has a few, and is_in hashes every ping's text.
        return pl.any_horizontal(pl.lit(False), *(text == word for word in matched)).fill_null(
            False
        )


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError(f"{instant} needs a time zone (UTC or an offset)")
    return instant.astimezone(UTC)


LOOK_BACK_SCHEMA = {"vehicle_id": pl.String, "read_from": pl.Datetime("us", "UTC")}
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)


def look_back_starts(
    pings: pl.DataFrame | pl.LazyFrame,
    start: datetime,
    end: datetime,
    look_back: LookBack,
    breaks: pl.Expr | None = None,
) -> pl.DataFrame:
    """Per vehicle pinging in [start, end), from its delivery's ``vehicle_id``, ``ts`` and
    ``status``: ``read_from``, where its look-back starts (:class:`LookBack`); null where
    it has no ping to anchor it (every earlier ping is in the run: all of them are read).
    ``breaks`` overrides ``look_back.breaks`` for a frame whose status is coded."""
    start, end = _utc(start), _utc(end)
    ts = pl.col("ts")
    state = pings.lazy().select("vehicle_id", "ts", "status").filter(ts < end).collect()
    is_break = look_back.breaks(state["status"]) if breaks is None else breaks
    anchors = (
        state.lazy()
        .group_by("vehicle_id")
        # when/then rather than ts.filter(...) in the aggregation: the same values, but a
        # plain expression the group-by runs in its fast path (half the time).
        .agg(
            in_window=(ts >= start).any(),
            last_break=pl.when((ts < start) & is_break).then(ts).max(),
            last_before_span=pl.when(ts < start - look_back.run_span).then(ts).max(),
        )
        .filter(pl.col("in_window") & pl.col("vehicle_id").is_not_null())
    )
    return (
        anchors.select(
            "vehicle_id",
            read_from=pl.max_horizontal("last_break", "last_before_span") - look_back.margin,
        )
        .sort("vehicle_id")
        .collect()
    )


def select_window(
    probes: pl.DataFrame | pl.LazyFrame, start: datetime, end: datetime, starts: pl.DataFrame
) -> pl.DataFrame:
    """The rows stamped in [start, end), then the earlier rows of the vehicles in
    ``starts`` from their ``read_from`` on (every earlier row where it is null;
    :func:`look_back_starts`)."""
    start, end = _utc(start), _utc(end)
    ts = pl.col("ts")
    window = probes.lazy().filter((ts >= start) & (ts < end))
    if starts.height == 0:
        return window.collect()
    # A per-vehicle bound as an expression on the scan's own columns, not a join, so a
    # parquet scan applies it as it reads (a null read_from: every row, the earliest time).
    read_from = pl.col("vehicle_id").replace_strict(
        starts["vehicle_id"], starts["read_from"].fill_null(_EARLIEST), default=None
    )
    earlier = probes.lazy().filter((ts < start) & (ts >= read_from))
    return pl.concat([earlier, window]).collect()


def window_with_look_back(
    probes: pl.DataFrame | pl.LazyFrame,
    start: datetime,
    end: datetime,
    look_back: LookBack | None,
    breaks: pl.Expr | None = None,
) -> pl.DataFrame:
    """The rows of ``probes`` (UTC ``ts``) stamped in [start, end) and, with ``look_back``,
    the earlier rows of each vehicle's look-back (:class:`LookBack`)."""
    starts = (
        look_back_starts(probes, start, end, look_back, breaks)
        if look_back is not None
        else pl.DataFrame(schema=LOOK_BACK_SCHEMA)
    )
    return select_window(probes, start, end, starts)


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
        each vehicle's earlier pings the rules need (:func:`window_with_look_back`):
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
