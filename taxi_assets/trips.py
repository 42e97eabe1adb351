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

import numpy as np
import polars as pl

from taxi_assets.frames import TRIP_EVENTS_SCHEMA, Booking, TripEvent
from taxi_assets.service_area import ServiceArea

# How a pickup was booked, by the status the taxi had just before the meter went on.
BOOKING_BY_PREVIOUS_STATUS = {
    "vacant": "street_hail",
    "dispatched": "app_booking",
    "off_duty": "other",
}
KM_PER_DEG_LAT = 111.195  # mean Earth radius x pi/180


@dataclass(frozen=True)
class TripRules:
    """How trips are read from a flapping meter; defaults suit 10 s to 120 s pings."""

    # A vacant run of at most this many pings between occupied pings is the meter flapping
    # inside one fare (0 turns bridging off).
    max_vacant_gap_pings: int = 1
    # ... and with the occupied pings around it at most this many of the vehicle's median
    # ping intervals apart (a one-ping flap spans two): a taxi that drops off and finds its
    # next passenger minutes later really was vacant, even if only one ping shows it. In
    # intervals rather than seconds so that one value holds from 10 s to 120 s pings.
    max_vacant_gap_intervals: float = 2.5
    # An occupied run with fewer pings is a flap, not a fare (1 turns it off). A fare
    # lasts minutes: at 60 s pings nearly every one spans two pings; at 120 s the shortest
    # fares show one ping only and are lost with the flaps (bench_feed_profiles.py).
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
        for name in ("min_fare_seconds", "boundary_km", "max_vacant_gap_intervals"):
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


def _run_bounds(flag: np.ndarray, has_prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of the first and last row of each row's run of ``flag`` (one vehicle's
    consecutive rows with the same value): runs numbered by a running count of their
    starts, each ending the row before the next one starts (a run ends where the next row
    is another vehicle's, ``has_next[i] == has_prev[i + 1]``, or the flag changes)."""
    n = len(flag)
    changes = np.ones(n, dtype=bool)
    np.not_equal(flag[1:], flag[:-1], out=changes[1:])
    starts = ~has_prev | changes
    start_rows = np.flatnonzero(starts)
    end_rows = np.empty_like(start_rows)
    end_rows[:-1] = start_rows[1:] - 1
    end_rows[-1:] = n - 1
    run = np.cumsum(starts) - 1
    return start_rows[run], end_rows[run]


def _bridged(
    occupied: np.ndarray,
    has_prev: np.ndarray,
    has_next: np.ndarray,
    us: np.ndarray,
    median_interval_us: np.ndarray,
    rules: TripRules,
) -> np.ndarray:
    """Non-occupied pings of a flap: a short vacant run between two occupied pings."""
    first, last = _run_bounds(occupied, has_prev)
    rows = np.flatnonzero(~occupied & (last - first + 1 <= rules.max_vacant_gap_pings))
    start, end = first[rows], last[rows]
    before, after = np.maximum(start - 1, 0), np.minimum(end + 1, len(occupied) - 1)
    # The vacant stretch lasts from the occupied ping before it to the one after it.
    flap = (
        has_prev[start]
        & has_next[end]
        & occupied[before]
        & occupied[after]
        & (us[after] - us[before] <= rules.max_vacant_gap_intervals * median_interval_us[rows])
    )
    bridged = np.zeros(len(occupied), dtype=bool)
    bridged[rows[flap]] = True
    return bridged


def _dropped(
    occupied: np.ndarray,
    has_prev: np.ndarray,
    has_next: np.ndarray,
    us: np.ndarray,
    rules: TripRules,
) -> np.ndarray:
    """Occupied pings of a fare too short to be one. A fare's length runs to the ping that
    ends it; a run open at either end of the track cannot be judged."""
    first, last = _run_bounds(occupied, has_prev)
    rows = np.flatnonzero(occupied)
    start, end = first[rows], last[rows]
    fare_s = (us[np.minimum(end + 1, len(occupied) - 1)] - us[start]) / 1e6
    too_short = (end - start + 1 < rules.min_fare_pings) | (fare_s < rules.min_fare_seconds)
    dropped = np.zeros(len(occupied), dtype=bool)
    dropped[rows[has_prev[start] & has_next[end] & too_short]] = True
    return dropped


def debounce_meter(clean: pl.DataFrame | pl.LazyFrame, rules: TripRules) -> pl.DataFrame:
    """Clean probes (sorted by vehicle_id, ts) with ``occupied``: the debounced meter, and
    ``bridged`` / ``dropped`` marking the pings a rule changed."""
    frame = clean.lazy().collect()
    vehicle = frame["vehicle_id"]
    has_prev = (vehicle == vehicle.shift(1)).fill_null(False).to_numpy()
    has_next = (vehicle == vehicle.shift(-1)).fill_null(False).to_numpy()
    us = frame["ts"].dt.epoch("us").to_numpy()
    occupied = (frame["status"] == "occupied").fill_null(False).to_numpy()
    # The vehicle's own clock: the median time between its consecutive pings.
    median_interval_us = (
        frame.select(pl.col("ts").diff().dt.total_microseconds().median().over("vehicle_id"))
        .to_series()
        .fill_null(0.0)
        .to_numpy()
    )
    bridged = _bridged(occupied, has_prev, has_next, us, median_interval_us, rules)
    dropped = _dropped(occupied | bridged, has_prev, has_next, us, rules)
    return frame.with_columns(
        occupied=pl.Series(occupied | bridged) & ~pl.Series(dropped),
        bridged=pl.Series(bridged),
        dropped=pl.Series(dropped),
    )


def _km_to_edge(area: ServiceArea) -> pl.Expr:
    lat_min, lat_max, lon_min, lon_max = area.snapped_bounds
    lat, lon = pl.col("lat"), pl.col("lon")
    km_per_deg_lon = KM_PER_DEG_LAT * lat.radians().cos()
    return pl.min_horizontal(
        (lat - lat_min) * KM_PER_DEG_LAT,
        (lat_max - lat) * KM_PER_DEG_LAT,
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
    debounced = debounce_meter(clean, rules).lazy()
    same_vehicle_as_prev = _same_vehicle(-1)
    occupied = pl.col("occupied")
    was_occupied = (occupied.shift(1) & same_vehicle_as_prev).fill_null(False)
    gap_s = (pl.col("ts") - pl.col("ts").shift(1)).dt.total_microseconds() / 1e6
    change = occupied & ~was_occupied & same_vehicle_as_prev
    pickup = change & (gap_s <= rules.max_pickup_gap_s)
    skipped = change & ~pickup
    dropoff = ~occupied & was_occupied
    # Compared as enums: casting every ping's status to text to look it up costs 30x more.
    previous_status = pl.col("status").shift(1)
    pickup_booking = pl.lit(None, dtype=Booking)
    for status, booking in reversed(BOOKING_BY_PREVIOUS_STATUS.items()):
        pickup_booking = (
            pl.when(previous_status == status)
            .then(pl.lit(booking, dtype=Booking))
            .otherwise(pickup_booking)
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
    bridged, dropped = pl.col("bridged"), pl.col("dropped")
    # Only events and the first ping of each rule's change leave the lazy plan.
    flagged = (
        debounced.with_columns(
            _event=pl.when(pickup)
            .then(pl.lit("pickup", dtype=TripEvent))
            .when(dropoff)
            .then(pl.lit("dropoff", dtype=TripEvent)),
            _booking=pl.when(pickup).then(pickup_booking).otherwise(trip_booking.shift(1)),
            _skipped=skipped,
            _bridged_run=bridged & ~(bridged.shift(1) & same_vehicle_as_prev).fill_null(False),
            _dropped_run=dropped & ~(dropped.shift(1) & same_vehicle_as_prev).fill_null(False),
        )
        .filter(
            pl.col("_event").is_not_null()
            | pl.col("_skipped")
            | pl.col("_bridged_run")
            | pl.col("_dropped_run")
        )
        .collect()
    )
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
    skipped_rows = flagged.filter(pl.col("_skipped"))
    near_edge = _km_to_edge(area) <= rules.boundary_km if area else pl.lit(False)
    return TripDerivation(
        events,
        debounced_vacant_gaps=int(flagged["_bridged_run"].sum()),
        debounced_short_fares=int(flagged["_dropped_run"].sum()),
        boundary_reentries=int(skipped_rows.select(near_edge.sum()).item() or 0),
        gap_skipped_pickups=skipped_rows.height,
    )


def derive_trip_events(
    clean: pl.DataFrame | pl.LazyFrame,
    rules: TripRules = TripRules(),  # noqa: B008 - frozen, so a shared default is safe
) -> pl.DataFrame:
    """Trip events (TRIP_EVENTS_SCHEMA) of :func:`derive_trips`, without the counts."""
    return derive_trips(clean, rules).events
