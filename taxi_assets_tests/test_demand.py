"""Cell demand against an independent recomputation in plain Python."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from taxi_assets.calendar import day_window_utc
from taxi_assets.cleaning import clean_probes
from taxi_assets.definitions import ASSET_MODULES
from taxi_assets.demand import (
    aggregate_cell_demand,
    demand_summary,
    vacant_presence,
    vacant_presence_by_cell,
)
from taxi_assets.frames import CELL_DEMAND_SCHEMA, PROBE_STATUSES
from taxi_assets.guidance import GuidanceParams
from taxi_assets.resources import local_resources
from taxi_assets.service_area import CENTRAL_TOKYO, ServiceArea
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets.trips import TripRules, derive_trip_events
from taxi_assets_tests.probe_builders import at_minute, raw_probes, track

DAY = date(2025, 6, 2)
SMALL_AREA = ServiceArea(lat_min=35.67, lat_max=35.69, lon_min=139.75, lon_max=139.78)
BOOKING = {"vacant": "street_hail", "dispatched": "app_booking", "off_duty": "other"}
# The aggregation is what is tested here: every status change of the random walks is a
# trip event (the meter debouncing and the pickup gap have their own tests in test_trips).
EVERY_CHANGE = TripRules(max_vacant_gap_pings=0, min_fare_pings=1, max_pickup_gap_s=86_400)


def random_day(seed: int, area: ServiceArea, vehicles: int = 6, pings: int = 120) -> list[tuple]:
    """Random walks inside the area, one ping every 1-7 minutes, sticky random statuses."""
    rng = random.Random(seed)
    lat_min, lat_max, lon_min, lon_max = area.snapped_bounds
    rows = []
    for vehicle_id in range(1, vehicles + 1):
        minute = rng.uniform(0, 120)
        lat, lon = rng.uniform(lat_min, lat_max), rng.uniform(lon_min, lon_max)
        status = rng.choice(PROBE_STATUSES)
        for _ in range(pings):
            minute += rng.uniform(1, 7)
            if minute >= 24 * 60:
                break
            lat = min(max(lat + rng.uniform(-0.001, 0.001), lat_min + 1e-6), lat_max - 1e-6)
            lon = min(max(lon + rng.uniform(-0.001, 0.001), lon_min + 1e-6), lon_max - 1e-6)
            if rng.random() < 0.3:
                status = rng.choice(PROBE_STATUSES)
            rows.append((vehicle_id, at_minute(DAY, minute), lat, lon, 20.0, 0.0, status))
    rng.shuffle(rows)
    return rows


def reference_demand(clean_rows: list[dict], bucket_minutes: int) -> dict[tuple, dict[str, int]]:
    """Cell demand recomputed with loops over rows: trips, then counts, sparse."""
    start, _ = day_window_utc(DAY)
    width = timedelta(minutes=bucket_minutes)

    def bucket(ts: datetime) -> datetime:
        return start + ((ts - start) // width) * width

    counts: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    vacant: dict[tuple, set] = defaultdict(set)
    occupied: dict[tuple, set] = defaultdict(set)
    rows = sorted(clean_rows, key=lambda r: (r["vehicle_id"], r["ts"]))
    previous = None
    trip_booking = None
    for row in rows:
        key = (row["cell"], bucket(row["ts"]))
        if row["status"] == "vacant":
            vacant[key].add(row["vehicle_id"])
        if row["status"] == "occupied":
            occupied[key].add(row["vehicle_id"])
        same_vehicle = previous is not None and previous["vehicle_id"] == row["vehicle_id"]
        if not same_vehicle:
            trip_booking = "other" if row["status"] == "occupied" else None
        elif previous["status"] != "occupied" and row["status"] == "occupied":
            trip_booking = BOOKING[previous["status"]]
            counts[key]["pickups"] += 1
            if trip_booking != "other":
                counts[key][f"{trip_booking}_pickups"] += 1
        elif previous["status"] == "occupied" and row["status"] != "occupied":
            counts[key]["dropoffs"] += 1
        previous = row
    for key, vehicles in vacant.items():
        counts[key]["vacant_taxis"] = len(vehicles)
    for key, vehicles in occupied.items():
        counts[key]["occupied_taxis"] = len(vehicles)
    return counts


@pytest.mark.parametrize(("seed", "bucket_minutes"), [(1, 15), (2, 15), (3, 30), (4, 60)])
def test_matches_plain_python(seed: int, bucket_minutes: int) -> None:
    result = clean_probes(raw_probes(random_day(seed, SMALL_AREA)), DAY, SMALL_AREA)
    # Random sticky statuses sometimes make a long dispatched run; nothing else is rejected.
    assert set(result.rejected["reason"].cast(pl.String)) <= {"stuck_status"}
    events = derive_trip_events(result.clean, EVERY_CHANGE)
    demand = aggregate_cell_demand(result.clean, events, DAY, SMALL_AREA, bucket_minutes)

    assert demand.schema == CELL_DEMAND_SCHEMA
    n_buckets = 24 * 60 // bucket_minutes
    assert demand.height == SMALL_AREA.n_cells * n_buckets
    assert demand.equals(demand.sort("cell", "bucket_start"))
    assert demand.select("cell", "bucket_start").is_duplicated().sum() == 0

    expected = reference_demand(list(result.clean.iter_rows(named=True)), bucket_minutes)
    assert expected, "the random day should produce some activity"
    count_columns = [c for c in CELL_DEMAND_SCHEMA if c not in ("cell", "bucket_start")]
    for row in demand.iter_rows(named=True):
        want = expected.get((row["cell"], row["bucket_start"]), {})
        got = {c: row[c] for c in count_columns}
        assert got == {c: want.get(c, 0) for c in count_columns}, (row["cell"], row["bucket_start"])
    assert demand["pickups"].sum() == events.filter(pl.col("event") == "pickup").height


def test_dense_grid_of_the_default_area_on_an_empty_day() -> None:
    empty = clean_probes(raw_probes([]), DAY, CENTRAL_TOKYO).clean
    demand = aggregate_cell_demand(empty, derive_trip_events(empty), DAY, CENTRAL_TOKYO)
    assert demand.height == CENTRAL_TOKYO.n_cells * 96
    assert (
        demand.select(pl.sum_horizontal(pl.all().exclude("cell", "bucket_start"))).sum().item() == 0
    )
    start, end = day_window_utc(DAY)
    assert demand["bucket_start"].min() == start
    assert demand["bucket_start"].max() == end - timedelta(minutes=15)
    assert set(demand["cell"].unique()) == set(CENTRAL_TOKYO.cells()["cell"])


def test_invalid_bucket_minutes() -> None:
    empty = clean_probes(raw_probes([]), DAY, SMALL_AREA).clean
    with pytest.raises(ValueError, match="bucket_minutes"):
        aggregate_cell_demand(empty, derive_trip_events(empty), DAY, SMALL_AREA, 7)


def test_demand_summary() -> None:
    result = clean_probes(raw_probes(random_day(5, SMALL_AREA)), DAY, SMALL_AREA)
    events = derive_trip_events(result.clean)
    summary = demand_summary(aggregate_cell_demand(result.clean, events, DAY, SMALL_AREA))
    pickups = events.filter(pl.col("event") == "pickup")
    assert summary["pickups"] == pickups.height
    assert summary["street_hail_pickups"] == (pickups["booking"] == "street_hail").sum()
    assert summary["app_booking_pickups"] == (pickups["booking"] == "app_booking").sum()
    assert summary["dropoffs"] == events.height - pickups.height
    assert summary["cells_with_pickups"] == pickups["cell"].n_unique()


def test_trip_events_shows_what_the_real_feed_rules_changed(
    data_dir: Path, instance: dg.DagsterInstance
) -> None:
    """The trip_events materialization counts debounced flips, boundary re-entries and
    skipped pickups as numbers, from the settings' trip rules."""
    day = date(2026, 4, 29)
    # A fare with a one-ping vacant gap, a one-ping fare, and a taxi seen again occupied,
    # 500 m inside the southern edge, 40 minutes after its last vacant ping.
    flapping = ["vacant"] * 3 + ["occupied"] * 4 + ["vacant"] + ["occupied"] * 4
    flapping += ["vacant"] * 3 + ["occupied"] + ["vacant"] * 3
    edge = (CENTRAL_TOKYO.snapped_bounds[0] + 0.0045, 139.75)
    rows = track(1, day, flapping) + track(2, day, ["vacant"] * 3, origin=(35.70, 139.70))
    rows += track(2, day, ["occupied"] * 4 + ["vacant"] * 2, start_minute=103, origin=edge)
    clean = clean_probes(raw_probes(rows), day, CENTRAL_TOKYO).clean
    (data_dir / "clean_probes").mkdir()
    clean.write_parquet(data_dir / "clean_probes" / f"{day}.parquet")

    resources = local_resources(
        str(data_dir), str(data_dir / "artifacts"), SimulatedProbeSource(fleet_size=10)
    )
    result = dg.materialize(
        dg.load_assets_from_modules(list(ASSET_MODULES)),
        selection=["trip_events"],
        partition_key=str(day),
        resources=resources,
        instance=instance,
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = {key: value.value for key, value in event.materialization.metadata.items()}
    assert metadata["debounced_vacant_gaps"] == 1
    assert metadata["debounced_short_fares"] == 1
    assert metadata["boundary_reentries"] == 1
    assert metadata["gap_skipped_pickups"] == 1
    assert metadata["street_hail_pickups"] == 1  # the one real fare of vehicle 1


def parked(vehicle_id: int, day: date, start_minute: float, minutes: int, status: str = "vacant"):
    """A taxi standing near Tokyo Station, one ping a minute."""
    return track(vehicle_id, day, [status] * minutes, start_minute=start_minute, step_deg=0.0)


def test_vacant_presence_of_hand_made_taxis() -> None:
    # Minute 60 opens a bucket; vacant pings at 60..74, then occupied at 75 (the next
    # bucket): vacant there the whole bucket, present all the time it is seen.
    one = parked(1, DAY, 60, 15) + parked(1, DAY, 75, 1, "occupied")
    one = clean_probes(raw_probes(one), DAY, CENTRAL_TOKYO).clean
    assert vacant_presence(one, DAY) == pytest.approx(1.0)

    by_cell = vacant_presence_by_cell(one, DAY)
    first = by_cell.row(0, named=True)
    assert (first["vacant_minutes"], first["vacant_taxis"]) == (15.0, 1)

    # Passing through: one vacant ping, then the taxi is seen a minute later, occupied.
    passing = parked(2, DAY, 60, 1) + parked(2, DAY, 61, 1, "occupied")
    clean = clean_probes(raw_probes(passing), DAY, CENTRAL_TOKYO).clean
    assert vacant_presence(clean, DAY) == pytest.approx(1 / 15)

    # Both in the same cell and bucket: 15 + 1 vacant minutes over 2 taxis seen.
    both = parked(1, DAY, 60, 15) + parked(1, DAY, 75, 1, "occupied") + passing
    clean = clean_probes(raw_probes(both), DAY, CENTRAL_TOKYO).clean
    assert vacant_presence(clean, DAY) == pytest.approx(16 / (15 * 2))

    # A silence longer than max_gap_s counts max_gap_s; no vacant pings at all, None.
    silent = parked(3, DAY, 60, 1) + parked(3, DAY, 74, 1, "occupied")
    clean = clean_probes(raw_probes(silent), DAY, CENTRAL_TOKYO).clean
    assert vacant_presence(clean, DAY, max_gap_s=300) == pytest.approx(5 / 15)
    occupied = clean_probes(raw_probes(parked(4, DAY, 60, 5, "occupied")), DAY, CENTRAL_TOKYO)
    assert vacant_presence(occupied.clean, DAY) is None
    with pytest.raises(ValueError, match="max_gap_s"):
        vacant_presence(one, DAY, max_gap_s=0)


def test_vacant_presence_of_a_simulated_day() -> None:
    """The simulator's 15 s pings measure its own vacant presence: near the 0.17 the
    guidance defaults to (measured on a 1,000-taxi day of the same city), and the taxis seen
    are exactly cell_demand's vacant_taxis."""
    day = date(2026, 5, 12)
    raw = SimulatedProbeSource(fleet_size=60, seed=7).read_probes(day).probes
    clean = clean_probes(raw, day, CENTRAL_TOKYO).clean
    presence = vacant_presence(clean, day)
    # A fleet of 60 spreads thinner than 1,000, but a vacant taxi's dwell in a 500 m cell
    # depends on the city's speeds, not the fleet: within 0.05 of the default.
    assert abs(presence - GuidanceParams.vacant_presence) < 0.05, presence

    demand = aggregate_cell_demand(clean, derive_trip_events(clean), day, CENTRAL_TOKYO)
    by_cell = vacant_presence_by_cell(clean, day)
    seen = demand.filter(pl.col("vacant_taxis") > 0).select("cell", "bucket_start", "vacant_taxis")
    assert seen.equals(by_cell.select(seen.columns).cast(seen.schema))
    # A taxi's last vacant ping in a bucket holds it at most max_gap_s (10 min) beyond.
    assert (by_cell["vacant_minutes"] <= 25 * by_cell["vacant_taxis"] + 1e-9).all()
