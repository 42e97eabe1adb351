"""Pickups and drop-offs, read from the meter status transitions of each taxi.

Real meters flap: a fare shows a single vacant ping in its middle, or a single occupied
ping appears between vacant ones. Before reading transitions the meter is debounced
(:class:`TripRules`): short vacant gaps between occupied pings are bridged, then occupied
runs too short to be a fare are dropped. A pickup is only counted when the change from
not occupied to occupied was observed: both pings are clean (so inside the service area)
and at most ``max_pickup_gap_s`` apart. A taxi that re-enters the area already carrying a
passenger (an airport fare) or comes back from a long silence shows its first occupied
ping long after its last vacant one: that trip is treated as under way, like a trip in
progress at the day's first ping (no pickup; its drop-off has booking 'other').
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import polars.selectors as cs

from taxi_assets.frames import TRIP_EVENTS_SCHEMA, Booking, TripEvent
from taxi_assets.service_area import ServiceArea

# How a pickup was booked, by the status the taxi had just before the meter went on.
BOOKING_BY_PREVIOUS_STATUS = {
    "vacant": "street_hail",
    "dispatched": "app_booking",
    "off_duty": "other",
}
_KM_PER_DEG_LAT = 111.195  # mean Earth radius x pi/180


@dataclass(frozen=True)
class TripRules:
    """How trips are read from a flapping meter; defaults suit 10 s to 120 s pings."""

    # A vacant run of at most this many pings between occupied pings is the meter flapping
    # inside one fare (0 turns bridging off).
    max_vacant_gap_pings: int = 1
    # ... and lasting at most this long, from the occupied ping before it to the one after:
    # a flap is a glitch between two pings, while a taxi that drops off and finds its next
    # passenger minutes later really was vacant, even if only one ping shows it.
    max_vacant_gap_s: float = 240.0
    # An occupied run with fewer pings is a flap, not a fare (1 turns it off). A fare
    # lasts minutes, so even at 120 s pings it spans two pings or more.
    min_fare_pings: int = 2
    # An occupied run ending sooner than this after its first ping is a flap (0: off).
    min_fare_seconds: float = 0.0
    # A pickup is observed only if the last non-occupied ping is at most this long before
    # the first occupied one: well above the 99th percentile of a 60 s feed's ping interval
    # (~240 s), well below the time a fare from outside takes (an airport run: 20+ min).
    max_pickup_gap_s: float = 600.0
    # A skipped pickup whose first occupied ping is this close to the area's edge is
    # counted as a boundary re-entry (metadata only; the rule is the gap).
    boundary_km: float = 2.0

    def __post_init__(self) -> None:
        for name in ("max_vacant_gap_pings", "min_fare_pings"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"TripRules.{name} must be an int >= 0, got {value!r}")
        for name in ("min_fare_seconds", "boundary_km", "max_vacant_gap_s"):
            value = getattr(self, name)
            if not 0 <= value < float("inf"):
                raise ValueError(f"TripRules.{name} must be a number >= 0, got {value!r}")
        if not 0 < self.max_pickup_gap_s < float("inf"):
            raise ValueError(
                f"TripRules.max_pickup_gap_s must be a positive number, "
                f"got {self.max_pickup_gap_s!r}"
            )


@dataclass(frozen=True)
class TripDerivation:
    """Trip events and what the debouncing and the pickup rule changed on the way."""

    events: pl.DataFrame  # TRIP_EVENTS_SCHEMA
    debounced_vacant_gaps: int  # vacant runs bridged: no drop-off + pickup inside a fare
    debounced_short_fares: int  # occupied runs too short to be a fare
    boundary_reentries: int  # skipped pickups near the area's edge (taxi came back occupied)
    gap_skipped_pickups: int  # every pickup not observed within max_pickup_gap_s

    def metadata(self) -> dict[str, int]:
        return {
            "debounced_vacant_gaps": self.debounced_vacant_gaps,
            "debounced_short_fares": self.debounced_short_fares,
            "boundary_reentries": self.boundary_reentries,
            "gap_skipped_pickups": self.gap_skipped_pickups,
        }


def _same_vehicle(offset: int) -> pl.Expr:
    """True where the row ``offset`` rows away (negative = earlier) is the same vehicle."""
    return (pl.col("vehicle_id") == pl.col("vehicle_id").shift(-offset)).fill_null(False)


def _runs(flag: str, prefix: str) -> list[pl.Expr]:
    """For the runs of a boolean column of each vehicle: ``{prefix}_pings`` (pings in the
    run), ``{prefix}_before`` / ``_after`` (the flag just before / after the run, False
    at the vehicle's ends), ``{prefix}_has_before`` / ``_has_after`` (a ping of the
    vehicle before / after the run) and the times ``{prefix}_prev_ts`` / ``_next_ts`` of
    those pings and ``{prefix}_first_ts`` of the run's first ping.

    Runs are located by a forward and a backward fill of row numbers and read with
    ``gather``: cheaper than window functions over run ids.
    """
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    changes = pl.col(flag) != pl.col(flag).shift(1)
    starts = ~_same_vehicle(-1) | changes.fill_null(True)
    ends = ~_same_vehicle(1) | changes.shift(-1).fill_null(True)
    first, last = pl.when(starts).then(row).forward_fill(), pl.when(ends).then(row).backward_fill()
    before, after = (first - 1).clip(0), (last + 1).clip(0, pl.len() - 1)
    has_before = pl.col("_has_prev").gather(first)
    has_after = pl.col("_has_next").gather(last)
    return [
        (last - first + 1).alias(f"{prefix}_pings"),
        has_before.alias(f"{prefix}_has_before"),
        has_after.alias(f"{prefix}_has_after"),
        (pl.col(flag).gather(before) & has_before).alias(f"{prefix}_before"),
        (pl.col(flag).gather(after) & has_after).alias(f"{prefix}_after"),
        pl.col("ts").gather(before).alias(f"{prefix}_prev_ts"),
        pl.col("ts").gather(after).alias(f"{prefix}_next_ts"),
        pl.col("ts").gather(first).alias(f"{prefix}_first_ts"),
    ]


def debounce_meter(clean: pl.DataFrame | pl.LazyFrame, rules: TripRules) -> pl.LazyFrame:
    """Clean probes (sorted by vehicle_id, ts) with ``occupied``: the debounced meter, and
    ``bridged`` / ``dropped`` marking the pings a rule changed."""
    # The vacant stretch lasts from the last occupied ping before it to the first after it.
    gap_s = (pl.col("_g_next_ts") - pl.col("_g_prev_ts")).dt.total_microseconds() / 1e6
    bridged = (
        ~pl.col("_raw_occupied")
        & (pl.col("_g_pings") <= rules.max_vacant_gap_pings)
        & pl.col("_g_before")
        & pl.col("_g_after")
        & (gap_s <= rules.max_vacant_gap_s)
    )
    # A fare's length runs to the ping that ends it; a run open at either end of the track
    # cannot be judged.
    fare_s = (pl.col("_f_next_ts") - pl.col("_f_first_ts")).dt.total_microseconds() / 1e6
    too_short = (pl.col("_f_pings") < rules.min_fare_pings) | (fare_s < rules.min_fare_seconds)
    dropped = (
        pl.col("_bridged_occupied") & pl.col("_f_has_before") & pl.col("_f_has_after") & too_short
    )
    return (
        clean.lazy()
        .with_columns(
            _raw_occupied=pl.col("status") == "occupied",
            _has_prev=_same_vehicle(-1),
            _has_next=_same_vehicle(1),
        )
        .with_columns(_runs("_raw_occupied", "_g"))
        .with_columns(bridged=bridged.fill_null(False))
        .with_columns(_bridged_occupied=pl.col("_raw_occupied") | pl.col("bridged"))
        .with_columns(_runs("_bridged_occupied", "_f"))
        .with_columns(dropped=dropped.fill_null(False))
        .with_columns(occupied=pl.col("_bridged_occupied") & ~pl.col("dropped"))
        .drop(cs.starts_with("_"))
    )


def _km_to_edge(area: ServiceArea) -> pl.Expr:
    lat_min, lat_max, lon_min, lon_max = area.snapped_bounds
    lat, lon = pl.col("lat"), pl.col("lon")
    km_per_deg_lon = _KM_PER_DEG_LAT * lat.radians().cos()
    return pl.min_horizontal(
        (lat - lat_min) * _KM_PER_DEG_LAT,
        (lat_max - lat) * _KM_PER_DEG_LAT,
        (lon - lon_min) * km_per_deg_lon,
        (lon_max - lon) * km_per_deg_lon,
    )


def derive_trips(
    clean: pl.DataFrame | pl.LazyFrame,
    rules: TripRules = TripRules(),  # noqa: B008 - frozen, so a shared default is safe
    area: ServiceArea | None = None,
) -> TripDerivation:
    """Trip events (TRIP_EVENTS_SCHEMA) from clean probes sorted by (vehicle_id, ts).

    A pickup is the first occupied ping of the debounced meter after a non-occupied one
    seen at most ``rules.max_pickup_gap_s`` before; a drop-off is the first non-occupied
    ping after an occupied one, and carries the booking of the trip it ends ('other' when
    its pickup was not observed). Each event takes the time, position and cell of the first
    ping with the new status. ``area`` only tells boundary re-entries from other skipped
    pickups in the counts.
    """
    debounced = debounce_meter(clean, rules)
    same_vehicle_as_prev = _same_vehicle(-1)
    occupied = pl.col("occupied")
    was_occupied = (occupied.shift(1) & same_vehicle_as_prev).fill_null(False)
    gap_s = (pl.col("ts") - pl.col("ts").shift(1)).dt.total_microseconds() / 1e6
    change = occupied & ~was_occupied & same_vehicle_as_prev
    pickup = change & (gap_s <= rules.max_pickup_gap_s)
    skipped = change & ~pickup
    dropoff = ~occupied & was_occupied
    pickup_booking = (
        pl.col("status")
        .shift(1)
        .cast(pl.String)
        .replace_strict(BOOKING_BY_PREVIOUS_STATUS, default=None, return_dtype=Booking)
    )
    # Every occupied run starts with a pickup, a skipped pickup or the vehicle's first ping,
    # so a forward fill from run starts gives each occupied ping the booking of its trip.
    trip_booking = (
        pl.when(pickup)
        .then(pickup_booking)
        .when(occupied & ~was_occupied)
        .then(pl.lit("other", dtype=Booking))
        .forward_fill()
    )
    near_edge = _km_to_edge(area) <= rules.boundary_km if area else pl.lit(False)
    flagged = debounced.with_columns(
        _event=pl.when(pickup)
        .then(pl.lit("pickup", dtype=TripEvent))
        .when(dropoff)
        .then(pl.lit("dropoff", dtype=TripEvent)),
        _booking=pl.when(pickup).then(pickup_booking).otherwise(trip_booking.shift(1)),
        _skipped=skipped,
        _reentry=skipped & near_edge,
    ).collect()
    events = (
        flagged.filter(pl.col("_event").is_not_null())
        .select(
            "vehicle_id",
            "ts",
            event=pl.col("_event"),
            booking=pl.col("_booking"),
            lat="lat",
            lon="lon",
            cell="cell",
        )
        .cast(dict(TRIP_EVENTS_SCHEMA))
    )
    bridged_runs = pl.col("bridged") & ~(pl.col("bridged").shift(1) & same_vehicle_as_prev)
    dropped_runs = pl.col("dropped") & ~(pl.col("dropped").shift(1) & same_vehicle_as_prev)
    counts = flagged.select(
        bridged_runs.fill_null(True).sum().alias("gaps"),
        dropped_runs.fill_null(True).sum().alias("short"),
        pl.col("_reentry").sum().alias("reentry"),
        pl.col("_skipped").sum().alias("skipped"),
    ).row(0)
    gaps, short, reentry, skipped_n = (int(n or 0) for n in counts)
    return TripDerivation(events, gaps, short, reentry, skipped_n)


def derive_trip_events(
    clean: pl.DataFrame | pl.LazyFrame,
    rules: TripRules = TripRules(),  # noqa: B008 - frozen, so a shared default is safe
) -> pl.DataFrame:
    """Trip events (TRIP_EVENTS_SCHEMA) of :func:`derive_trips`, without the counts."""
    return derive_trips(clean, rules).events
