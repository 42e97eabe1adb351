"""Pickups and drop-offs, read from the meter status transitions of each taxi."""

from __future__ import annotations

import polars as pl

from taxi_assets.frames import TRIP_EVENTS_SCHEMA, Booking, TripEvent

# How a pickup was booked, by the status the taxi had just before the meter went on.
BOOKING_BY_PREVIOUS_STATUS = {
    "vacant": "street_hail",
    "dispatched": "app_booking",
    "off_duty": "other",
}


def derive_trip_events(clean: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Trip events (TRIP_EVENTS_SCHEMA) from clean probes sorted by (vehicle_id, ts).

    A pickup is the first 'occupied' ping after a non-occupied one; a drop-off is the first
    non-occupied ping after an occupied one, and carries the booking of the trip it ends
    ('other' when the trip was already under way at the vehicle's first ping). Each event
    takes the time, position and cell of the first ping with the new status.
    """
    status = pl.col("status")
    same_vehicle_as_prev = (pl.col("vehicle_id") == pl.col("vehicle_id").shift(1)).fill_null(False)
    prev_status = pl.when(same_vehicle_as_prev).then(status.shift(1))
    is_occupied = status == "occupied"
    was_occupied = (prev_status == "occupied").fill_null(False)
    pickup = is_occupied & ~was_occupied & same_vehicle_as_prev
    dropoff = ~is_occupied & was_occupied
    pickup_booking = prev_status.cast(pl.String).replace_strict(
        BOOKING_BY_PREVIOUS_STATUS, default=None, return_dtype=Booking
    )
    # Every occupied run starts either with a pickup or at the vehicle's first ping, so a
    # forward fill from run starts gives each occupied ping the booking of its trip.
    trip_booking = (
        pl.when(pickup)
        .then(pickup_booking)
        .when(is_occupied & ~same_vehicle_as_prev)
        .then(pl.lit("other", dtype=Booking))
        .forward_fill()
    )
    return (
        clean.lazy()
        .with_columns(
            _event=pl.when(pickup)
            .then(pl.lit("pickup", dtype=TripEvent))
            .when(dropoff)
            .then(pl.lit("dropoff", dtype=TripEvent)),
            _booking=pl.when(pickup).then(pickup_booking).otherwise(trip_booking.shift(1)),
        )
        .filter(pl.col("_event").is_not_null())
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
        .collect()
    )
