"""Trip events from meter status transitions."""

from __future__ import annotations

from datetime import date

import polars as pl

from taxi_assets.cleaning import clean_probes
from taxi_assets.frames import TRIP_EVENTS_SCHEMA
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets.trips import derive_trip_events
from taxi_assets_tests.probe_builders import raw_probes, track

DAY = date(2025, 6, 2)


def events_of(*tracks: list[tuple]) -> pl.DataFrame:
    rows = [row for t in tracks for row in t]
    result = clean_probes(raw_probes(rows), DAY, CENTRAL_TOKYO)
    assert result.rejected.height == 0
    events = derive_trip_events(result.clean)
    assert events.schema == TRIP_EVENTS_SCHEMA
    return events


def summary(events: pl.DataFrame) -> list[tuple[int, str, str]]:
    """(vehicle_id, event, booking) per event; ids are text, built from integers here."""
    return [
        (int(vehicle), event, booking)
        for vehicle, event, booking in events.select("vehicle_id", "event", "booking").iter_rows()
    ]


def test_street_hail_and_app_booking() -> None:
    statuses = ["vacant", "occupied", "occupied", "vacant", "dispatched", "occupied", "vacant"]
    events = events_of(track(1, DAY, statuses))
    assert summary(events) == [
        (1, "pickup", "street_hail"),
        (1, "dropoff", "street_hail"),
        (1, "pickup", "app_booking"),
        (1, "dropoff", "app_booking"),
    ]


def test_event_takes_the_first_ping_with_the_new_status() -> None:
    rows = track(1, DAY, ["vacant", "vacant", "occupied", "occupied", "off_duty"])
    events = events_of(rows)
    pickup, dropoff = rows[2], rows[4]
    assert events.select("ts", "lat", "lon").rows() == [pickup[1:4], dropoff[1:4]]
    assert events["cell"].null_count() == 0


def test_trip_in_progress_at_start_has_no_pickup_and_other_dropoff() -> None:
    events = events_of(track(1, DAY, ["occupied", "occupied", "vacant", "occupied"]))
    assert summary(events) == [(1, "dropoff", "other"), (1, "pickup", "street_hail")]


def test_off_duty_pickup_is_other_and_dropoff_carries_it() -> None:
    events = events_of(track(1, DAY, ["off_duty", "occupied", "dispatched"]))
    assert summary(events) == [(1, "pickup", "other"), (1, "dropoff", "other")]


def test_no_transition_across_vehicles() -> None:
    # Vehicle 1 ends occupied, vehicle 2 starts vacant then occupied; vehicle 3 starts occupied.
    events = events_of(
        track(1, DAY, ["vacant", "occupied"]),
        track(2, DAY, ["vacant", "occupied", "vacant"], origin=(35.65, 139.70)),
        track(3, DAY, ["occupied", "off_duty"], origin=(35.70, 139.80)),
    )
    assert summary(events) == [
        (1, "pickup", "street_hail"),
        (2, "pickup", "street_hail"),
        (2, "dropoff", "street_hail"),
        (3, "dropoff", "other"),
    ]


def test_dropoff_booking_survives_long_trips_and_other_statuses() -> None:
    statuses = ["dispatched"] + ["occupied"] * 5 + ["vacant", "vacant", "occupied", "off_duty"]
    events = events_of(track(1, DAY, statuses))
    assert summary(events) == [
        (1, "pickup", "app_booking"),
        (1, "dropoff", "app_booking"),
        (1, "pickup", "street_hail"),
        (1, "dropoff", "street_hail"),
    ]


def test_empty() -> None:
    events = derive_trip_events(clean_probes(raw_probes([]), DAY, CENTRAL_TOKYO).clean)
    assert events.height == 0 and events.schema == TRIP_EVENTS_SCHEMA
