"""The simulator's feed faults against the cleaning: every injected fault is caught with
the right reason, and a fault-free day yields the simulator's own trips."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from taxi_assets.cleaning import CleaningResult, clean_probes, rejected_counts
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets.simulation import NO_FAULTS, CityConfig, FaultRates, SimulatedDay, simulate_day
from taxi_assets.trips import derive_trip_events

DAY = date(2026, 5, 1)
FAULTY = FaultRates(
    duplicate=0.01,
    out_of_order=0.02,
    gps_jump=0.005,
    zero_coordinates=0.005,
    stuck_status=0.03,
    clock_skew=0.03,
)


@pytest.fixture(scope="module")
def faulty_day() -> tuple[SimulatedDay, CleaningResult]:
    simulated = simulate_day(CityConfig(fleet_size=200, seed=11, faults=FAULTY), DAY)
    return simulated, clean_probes(simulated.probes, DAY, CENTRAL_TOKYO)


def vehicles_with(result: CleaningResult, reason: str) -> int:
    return result.rejected.filter(pl.col("reason") == reason)["vehicle_id"].n_unique()


def test_rows_are_conserved(faulty_day: tuple[SimulatedDay, CleaningResult]) -> None:
    simulated, result = faulty_day
    assert simulated.probes.height == result.clean.height + result.rejected.height


def test_every_duplicate_is_quarantined_as_duplicate(faulty_day) -> None:
    simulated, result = faulty_day
    assert rejected_counts(result.rejected)["duplicate"] == simulated.faults["duplicate"] > 0


def test_zero_coordinates_are_quarantined(faulty_day) -> None:
    simulated, result = faulty_day
    injected = simulated.faults["zero_coordinates"]
    assert rejected_counts(result.rejected)["zero_coordinates"] == injected > 0


def test_gps_jumps_are_quarantined_as_jumps_or_outside_the_area(faulty_day) -> None:
    simulated, result = faulty_day
    counts = rejected_counts(result.rejected)
    caught = counts["gps_jump"] + counts["outside_service_area"]
    assert counts["gps_jump"] > 0
    # Jumps on skewed-clock vehicles are quarantined as clock_skew first, hence the margin.
    assert caught == pytest.approx(simulated.faults["gps_jump"], rel=0.05)


def test_skewed_clocks_are_found_vehicle_by_vehicle(faulty_day) -> None:
    simulated, result = faulty_day
    assert vehicles_with(result, "clock_skew") == simulated.faults["clock_skew"] > 0
    assert rejected_counts(result.rejected)["outside_day"] == 0


def test_stuck_meters_are_quarantined(faulty_day) -> None:
    simulated, result = faulty_day
    assert vehicles_with(result, "stuck_status") == simulated.faults["stuck_status"] > 0


def test_late_pings_are_kept_and_counted(faulty_day) -> None:
    simulated, result = faulty_day
    assert result.out_of_order_rows == pytest.approx(simulated.faults["out_of_order"], rel=0.1)
    assert result.clean.select(pl.col("ts").is_sorted().over("vehicle_id").all()).item()


def test_a_fault_free_day_keeps_every_ping_and_recovers_the_trips() -> None:
    simulated = simulate_day(CityConfig(fleet_size=200, seed=11, faults=NO_FAULTS), DAY)
    result = clean_probes(simulated.probes, DAY, CENTRAL_TOKYO)
    assert result.rejected.height == 0

    pickups = derive_trip_events(result.clean).filter(pl.col("event") == "pickup")
    # Within 1%: an app booking whose taxi was already at the door shows no 'dispatched'
    # ping (the approach was shorter than one ping interval) and reads as a street hail.
    assert pickups.height == pytest.approx(simulated.trips.height, rel=0.01)
    by_kind = dict(pickups.group_by("booking").len().iter_rows())
    truth_by_kind = dict(simulated.trips.group_by("booking").len().iter_rows())
    assert by_kind["street_hail"] == pytest.approx(truth_by_kind["street_hail"], rel=0.02)
    assert by_kind["app_booking"] == pytest.approx(truth_by_kind["app_booking"], rel=0.05)
