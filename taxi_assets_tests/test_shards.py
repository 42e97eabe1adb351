"""The data path in vehicle shards equals the data path on the whole day, bit for bit."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taxi_assets import shards as shards_module
from taxi_assets.cleaning import CleaningResult, clean_probes
from taxi_assets.demand import aggregate_cell_demand
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets.shards import (
    PINGS_PER_SHARD,
    cell_demand_in_shards,
    clean_in_shards,
    combine_shards,
    shard_count,
    sum_cell_demand,
    vehicle_ranges,
)
from taxi_assets.simulation import CityConfig, simulate_day
from taxi_assets.trips import derive_trip_events
from taxi_assets_tests.probe_builders import raw_probes
from taxi_assets_tests.test_cleaning import DAY as HOSTILE_DAY
from taxi_assets_tests.test_cleaning import _row

AREA = CENTRAL_TOKYO
DAY = date(2026, 5, 1)


def assert_same(sharded: CleaningResult, whole: CleaningResult) -> None:
    assert sharded.clean.equals(whole.clean)
    assert sharded.rejected.equals(whole.rejected)
    assert sharded.out_of_order_rows == whole.out_of_order_rows


@pytest.fixture(scope="module")
def faulty_day() -> pl.DataFrame:
    """A real-60s feed: every cleaning reason and meter flaps occur (test_simulated_faults)."""
    return simulate_day(CityConfig(fleet_size=80, seed=5, feed_profile="real_60s"), DAY).probes


@pytest.mark.parametrize(("shards", "slice_pings"), [(1, None), (3, None), (7, 10_007)])
def test_sharded_cleaning_and_demand_equal_the_whole_day(
    faulty_day: pl.DataFrame, shards: int, slice_pings: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if slice_pings:  # the day read and encoded in many slices, as a big day is
        monkeypatch.setattr(shards_module, "ENCODE_SLICE_PINGS", slice_pings)
    whole = clean_probes(faulty_day, DAY, AREA)
    parts = list(clean_in_shards(faulty_day.lazy(), DAY, AREA, shards=shards))
    assert [p.index for p in parts] == list(range(shards))
    assert {p.count for p in parts} == {shards}
    assert sum(p.raw_rows for p in parts) == faulty_day.height
    assert sum(p.vehicles for p in parts) == faulty_day["vehicle_id"].n_unique()
    assert_same(combine_shards(parts), whole)

    expected = aggregate_cell_demand(whole.clean, derive_trip_events(whole.clean), DAY, AREA)
    assert expected["vacant_taxis"].sum() > 0 and expected["pickups"].sum() > 0
    got = cell_demand_in_shards(faulty_day.lazy(), DAY, AREA, shards=shards)
    assert got.equals(expected)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_row, max_size=40), shards=st.integers(1, 4))
def test_property_sharded_cleaning_equals_whole_on_hostile_frames(
    rows: list[tuple], shards: int
) -> None:
    """Null ids, unclean ids, duplicates, odd statuses: the shards change nothing."""
    raw = raw_probes(rows)
    whole = clean_probes(raw, HOSTILE_DAY, AREA)
    assert_same(combine_shards(list(clean_in_shards(raw, HOSTILE_DAY, AREA, shards=shards))), whole)


def test_shard_count_and_ranges() -> None:
    assert shard_count(0) == 1
    assert shard_count(PINGS_PER_SHARD) == 1
    assert shard_count(PINGS_PER_SHARD + 1) == 2
    assert shard_count(10, 5) == 5
    with pytest.raises(ValueError, match="vehicle_shards"):
        shard_count(10, -1)
    counts = pl.DataFrame({"vehicle_id": ["d", "a", None, "c", "b"], "len": [10, 10, 99, 10, 10]})
    ranges = vehicle_ranges(counts.cast({"len": pl.UInt32}), 2)
    # Contiguous in sort order, balanced by pings; the null id is not a vehicle.
    assert [r.to_list() for r in ranges] == [["a", "b"], ["c", "d"]]


def test_sum_cell_demand_refuses_parts_of_different_grids(faulty_day: pl.DataFrame) -> None:
    clean = clean_probes(faulty_day, DAY, AREA).clean
    part = aggregate_cell_demand(clean, derive_trip_events(clean), DAY, AREA)
    with pytest.raises(ValueError, match="grid"):
        sum_cell_demand([part, part.head(10)])
