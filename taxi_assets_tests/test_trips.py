"""Trip events from meter status transitions."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from taxi_assets.cleaning import clean_probes
from taxi_assets.frames import TRIP_EVENTS_SCHEMA
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets.trips import (
    TripDerivation,
    TripRules,
    debounce_meter,
    derive_trip_events,
    derive_trips,
)
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
    statuses = ["vacant", "occupied", "occupied", "vacant", "dispatched", "occupied", "occupied"]
    statuses += ["vacant"]
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
    events = events_of(track(1, DAY, ["occupied", "occupied", "vacant", "vacant", "occupied"]))
    assert summary(events) == [(1, "dropoff", "other"), (1, "pickup", "street_hail")]


def test_off_duty_pickup_is_other_and_dropoff_carries_it() -> None:
    events = events_of(track(1, DAY, ["off_duty", "occupied", "occupied", "dispatched"]))
    assert summary(events) == [(1, "pickup", "other"), (1, "dropoff", "other")]


def test_no_transition_across_vehicles() -> None:
    # Vehicle 1 ends occupied, vehicle 2 starts vacant then occupied; vehicle 3 starts occupied.
    events = events_of(
        track(1, DAY, ["vacant", "occupied"]),
        track(2, DAY, ["vacant", "occupied", "occupied", "vacant"], origin=(35.65, 139.70)),
        track(3, DAY, ["occupied", "off_duty"], origin=(35.70, 139.80)),
    )
    assert summary(events) == [
        (1, "pickup", "street_hail"),
        (2, "pickup", "street_hail"),
        (2, "dropoff", "street_hail"),
        (3, "dropoff", "other"),
    ]


def test_dropoff_booking_survives_long_trips_and_other_statuses() -> None:
    statuses = (
        ["dispatched"] + ["occupied"] * 5 + ["vacant", "vacant", "occupied", "occupied", "off_duty"]
    )
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


# Real feeds ping every 10 s to 120 s; each rule must hold across that range.
INTERVALS_S = (10, 60, 120)


def derived(rows: list[tuple], rules: TripRules = TripRules()) -> TripDerivation:  # noqa: B008
    result = clean_probes(raw_probes(rows), DAY, CENTRAL_TOKYO)
    assert result.rejected.height == 0
    return derive_trips(result.clean, rules, CENTRAL_TOKYO)


def every(interval_s: int, statuses: list[str], **kwargs) -> list[tuple]:
    # ~35 km/h at any interval: the step follows the interval.
    step = 0.0001 * interval_s / 10
    return track(1, DAY, statuses, every_minutes=interval_s / 60, step_deg=step, **kwargs)


@pytest.mark.parametrize("interval_s", INTERVALS_S)
def test_a_single_vacant_ping_inside_a_fare_is_one_fare(interval_s: int) -> None:
    statuses = ["vacant"] * 3 + ["occupied"] * 4 + ["vacant"] + ["occupied"] * 4 + ["vacant"] * 2
    result = derived(every(interval_s, statuses))
    assert summary(result.events) == [(1, "pickup", "street_hail"), (1, "dropoff", "street_hail")]
    assert result.debounced_vacant_gaps == 1 and result.debounced_short_fares == 0


@pytest.mark.parametrize("interval_s", INTERVALS_S)
def test_two_vacant_pings_are_a_dropoff_and_a_new_hail(interval_s: int) -> None:
    statuses = ["vacant"] * 2 + ["occupied"] * 3 + ["vacant"] * 2 + ["occupied"] * 3 + ["vacant"]
    result = derived(every(interval_s, statuses))
    assert [e for _, e, _ in summary(result.events)] == ["pickup", "dropoff"] * 2
    assert result.debounced_vacant_gaps == 0


@pytest.mark.parametrize("interval_s", INTERVALS_S)
def test_a_single_occupied_ping_is_not_a_fare(interval_s: int) -> None:
    statuses = ["vacant"] * 3 + ["occupied"] + ["vacant"] * 3 + ["dispatched", "occupied", "vacant"]
    result = derived(every(interval_s, statuses))
    assert result.events.height == 0
    assert result.debounced_short_fares == 2


def test_a_minimum_fare_duration_drops_short_fares() -> None:
    statuses = ["vacant"] * 3 + ["occupied"] * 3 + ["vacant"] * 3
    rows = every(60, statuses)
    assert derived(rows).events.height == 2
    # Three occupied pings a minute apart: the fare ends at the next ping, 3 minutes on.
    result = derived(rows, TripRules(min_fare_seconds=181))
    assert result.events.height == 0 and result.debounced_short_fares == 1
    assert derived(rows, TripRules(min_fare_seconds=180)).events.height == 2


def test_flap_rules_can_be_turned_off() -> None:
    statuses = ["vacant"] * 2 + ["occupied", "vacant", "occupied"] + ["vacant"] * 2
    rules = TripRules(max_vacant_gap_pings=0, min_fare_pings=1)
    assert [e for _, e, _ in summary(derived(every(60, statuses), rules).events)] == [
        "pickup",
        "dropoff",
        "pickup",
        "dropoff",
    ]


@pytest.mark.parametrize("interval_s", INTERVALS_S)
def test_a_pickup_across_a_few_missed_pings_still_counts(interval_s: int) -> None:
    # The last vacant ping and the first occupied one 240 s apart (a 99th-percentile gap).
    before = every(interval_s, ["vacant"] * 3)
    after = every(
        interval_s, ["occupied"] * 3 + ["vacant"], start_minute=60 + 2 * interval_s / 60 + 4
    )
    result = derived(before + after)
    assert summary(result.events) == [(1, "pickup", "street_hail"), (1, "dropoff", "street_hail")]
    assert result.gap_skipped_pickups == 0


@pytest.mark.parametrize("interval_s", INTERVALS_S)
def test_a_taxi_coming_back_occupied_after_a_long_gap_is_no_hail(interval_s: int) -> None:
    before = every(interval_s, ["vacant"] * 3)
    after = every(interval_s, ["occupied"] * 3 + ["vacant"] * 2, start_minute=100)
    result = derived(before + after)
    assert summary(result.events) == [(1, "dropoff", "other")]
    assert result.gap_skipped_pickups == 1 and result.boundary_reentries == 0


def test_a_taxi_reentering_the_area_occupied_is_a_boundary_reentry() -> None:
    inside = every(60, ["vacant"] * 3)
    # 40 minutes later (an airport fare), first seen again 500 m inside the southern edge.
    edge = (CENTRAL_TOKYO.snapped_bounds[0] + 0.0045, 139.75)
    back = every(60, ["occupied"] * 4 + ["vacant"] * 2, start_minute=100, origin=edge)
    result = derived(inside + back)
    assert summary(result.events) == [(1, "dropoff", "other")]
    assert result.boundary_reentries == 1 and result.gap_skipped_pickups == 1
    assert result.metadata() == {
        "debounced_vacant_gaps": 0,
        "debounced_short_fares": 0,
        "boundary_reentries": 1,
        "gap_skipped_pickups": 1,
    }


def test_a_feed_without_dispatched_status_gives_street_hails() -> None:
    statuses = ["off_duty", "vacant", "vacant", "occupied", "occupied", "vacant", "off_duty"]
    result = derived(every(60, statuses))
    assert summary(result.events) == [(1, "pickup", "street_hail"), (1, "dropoff", "street_hail")]


@pytest.mark.parametrize("kwargs", [{"max_pickup_gap_s": 0}, {"min_fare_pings": -1}])
def test_invalid_trip_rules_name_the_setting(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        TripRules(**kwargs)


def test_a_lone_vacant_ping_minutes_long_is_a_real_dropoff_and_hail() -> None:
    # One vacant ping, but five minutes between the fares around it: the taxi dropped off
    # and found its next passenger, it did not flap.
    fare = every(60, ["vacant"] * 2 + ["occupied"] * 4 + ["vacant"])
    next_fare = every(60, ["occupied"] * 4 + ["vacant"], start_minute=60 + 6 + 4)
    result = derived(fare + next_fare)
    assert [e for _, e, _ in summary(result.events)] == ["pickup", "dropoff"] * 2
    assert result.debounced_vacant_gaps == 0
    bridged = derived(fare + next_fare, TripRules(max_vacant_gap_intervals=6))
    assert bridged.debounced_vacant_gaps == 1 and bridged.events.height == 2


def test_meter_rules_take_vehicle_ids_as_opaque_values() -> None:
    # Real feeds name taxis with strings; the rules only compare ids for equality.
    statuses = ["vacant"] * 2 + ["occupied"] * 3 + ["vacant"] + ["occupied"] * 3 + ["vacant"]
    rows = every(60, statuses) + [(2, *row[1:]) for row in every(60, ["occupied"] + statuses)]
    clean = clean_probes(raw_probes(rows), DAY, CENTRAL_TOKYO).clean
    by_number = debounce_meter(clean, TripRules())
    named = clean.with_columns(
        pl.col("vehicle_id").replace_strict({"1": "T-0043", "2": "a1b2c3"}, return_dtype=pl.String)
    )
    by_name = debounce_meter(named, TripRules())
    assert by_name["occupied"].equals(by_number["occupied"])
    assert by_name["bridged"].sum() == 2
