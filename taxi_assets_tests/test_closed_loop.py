"""The simulator's cruising-policy hook and the closed loop of issue 12 part 6."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pytest

from taxi_assets.calendar import TOKYO, bucket_starts
from taxi_assets.closed_loop import bucket_forecasts, guidance_policy, oracle_forecasts
from taxi_assets.simulation import NO_FAULTS, CityConfig, simulate_day
from taxi_assets.simulation.cruising import fleet_outcomes, guided_taxis
from taxi_assets.simulation.demand import true_demand_frame
from taxi_assets.simulation.paths import OCCUPIED, VACANT
from taxi_assets.simulation.simulator import simulate_fleet

DAY = date(2026, 5, 12)  # a Tuesday
FLEET = 60


def _config(adoption: float, fleet: int = FLEET) -> CityConfig:
    return CityConfig(seed=5, fleet_size=fleet, faults=NO_FAULTS, guidance_adoption=adoption)


def _one_target(cell: int, calls: list | None = None):
    """A policy sending every guided vacant taxi to ``cell``."""

    def policy(tick: datetime, vacant: pl.DataFrame) -> pl.DataFrame:
        if calls is not None:
            calls.append((tick, vacant))
        return vacant.select("cell", target_cell=pl.lit(cell, pl.Int64))

    return policy


def _refusing(tick: datetime, vacant: pl.DataFrame) -> pl.DataFrame:
    raise AssertionError("a policy must not be called at adoption 0")


def _busiest_cell(config: CityConfig) -> tuple[int, float, float]:
    field = simulate_fleet(config, DAY).field
    i = int(field.street.sum(axis=0).argmax())
    return int(field.cells["cell"][i]), float(field.cell_x[i]), float(field.cell_y[i])


def test_adoption_zero_leaves_the_day_unchanged_and_never_calls_the_policy():
    plain = simulate_day(CityConfig(seed=5, fleet_size=FLEET), DAY)
    with_policy = simulate_day(
        CityConfig(seed=5, fleet_size=FLEET, guidance_adoption=0.0), DAY, _refusing
    )
    assert plain.probes.equals(with_policy.probes)
    assert plain.trips.equals(with_policy.trips)
    assert plain.faults == with_policy.faults


def test_adoption_needs_a_policy_and_a_fraction():
    with pytest.raises(ValueError, match="guidance_adoption"):
        simulate_fleet(_config(0.5), DAY)
    with pytest.raises(ValueError, match="guidance_adoption"):
        CityConfig(guidance_adoption=1.5)


def test_guided_share_is_the_adoption_and_the_same_taxis_for_every_policy():
    guided = guided_taxis(_config(0.25, fleet=200), DAY)
    assert guided.sum() == 50
    assert np.array_equal(guided, guided_taxis(_config(0.25, fleet=200), DAY))


def test_guided_taxis_cruise_towards_their_targets():
    cell, cx, cy = _busiest_cell(_config(0.0))
    calls: list = []
    steered = simulate_fleet(_config(0.5), DAY, _one_target(cell, calls))
    plain = simulate_fleet(_config(0.0), DAY)

    def vacant_km_from_target(segments: np.ndarray, taxis: np.ndarray) -> float:
        rows = segments[(segments[:, 7] == VACANT) & taxis[segments[:, 0].astype(int)]]
        weight = rows[:, 2] - rows[:, 1]
        km = np.abs(rows[:, 5] - cx) + np.abs(rows[:, 6] - cy)
        return float((km * weight).sum() / weight.sum())

    guided = steered.guided
    assert vacant_km_from_target(steered.result.segments, guided) < 0.5 * vacant_km_from_target(
        plain.result.segments, guided
    )
    # Unguided taxis still behave by today's rules, and the policy is asked every 5 minutes
    # with the guided vacant taxis only.
    ticks = [tick for tick, _ in calls]
    assert ticks[0] == datetime(2026, 5, 12, tzinfo=TOKYO)
    assert all((b - a).total_seconds() == 300 for a, b in zip(ticks, ticks[1:], strict=False))
    assert len(ticks) == 288
    assert max(frame["vacant_taxis"].sum() for _, frame in calls) <= guided.sum()
    assert sum(frame["vacant_taxis"].sum() for _, frame in calls) > 0


def test_same_seed_day_and_policy_give_the_same_day():
    cell, _, _ = _busiest_cell(_config(0.0))
    first = simulate_fleet(_config(0.5), DAY, _one_target(cell))
    second = simulate_fleet(_config(0.5), DAY, _one_target(cell))
    assert np.array_equal(first.result.segments, second.result.segments)
    assert np.array_equal(first.result.trip_request_idx, second.result.trip_request_idx)
    assert first.result.unserved_requests == second.result.unserved_requests


def test_fleet_outcomes_on_a_hand_made_day():
    # Taxi 0 (guided): 1 h vacant driving 2 km, then 1 h occupied with one street hail.
    # Taxi 1 (unguided): 2 h vacant standing still, no fare.
    segments = np.array(
        [
            [0, 0.0, 3600.0, 0.0, 0.0, 2.0, 0.0, VACANT],
            [0, 3600.0, 7200.0, 2.0, 0.0, 5.0, 0.0, OCCUPIED],
            [1, 0.0, 7200.0, 1.0, 1.0, 1.0, 1.0, VACANT],
        ]
    )
    out = fleet_outcomes(
        segments,
        trip_taxi=np.array([0]),
        trip_is_app=np.array([False]),
        trip_pickup_s=np.array([3600.0]),
        guided=np.array([True, False]),
    )
    rows = {row["group"]: row for row in out.iter_rows(named=True)}
    assert rows["guided"]["street_hails_per_vacant_hour"] == pytest.approx(1.0)
    assert rows["guided"]["occupancy_rate"] == pytest.approx(0.5)
    assert rows["guided"]["empty_km_per_street_hail"] == pytest.approx(2.0)
    assert rows["unguided"]["street_hails_per_vacant_hour"] == pytest.approx(0.0)
    assert rows["unguided"]["empty_km_per_street_hail"] is None
    assert rows["all"]["street_hails"] == 1


def test_a_small_closed_loop_runs_end_to_end_on_the_oracle_guidance():
    config = _config(0.5, fleet=80)
    field = simulate_fleet(_config(0.0, fleet=80), DAY).field
    cells = config.area.cells().select("cell")
    supply = {
        bucket: cells.with_columns(expected_vacant_taxis=pl.lit(0.05), horizon=pl.lit(0, pl.Int8))
        for bucket in bucket_starts(DAY, 15).to_list()
    }
    oracle = oracle_forecasts(true_demand_frame(field, DAY), supply, 15)
    guide = guidance_policy(bucket_forecasts(oracle, 15), config.area)

    def evening_only(tick: datetime, vacant: pl.DataFrame) -> pl.DataFrame:
        # Guidance for three evening hours keeps the test quick; taxis stay otherwise.
        if 17 <= tick.astimezone(TOKYO).hour < 20:
            return guide(tick, vacant)
        return vacant.select("cell", target_cell="cell")

    fleet = simulate_fleet(config, DAY, evening_only)
    r = fleet.result
    out = fleet_outcomes(r.segments, r.trip_taxi, r.trip_is_app, r.trip_pickup_s, fleet.guided)
    rows = {row["group"]: row for row in out.iter_rows(named=True)}
    assert rows["guided"]["taxis"] == 40 and rows["unguided"]["taxis"] == 40
    for group in ("guided", "unguided"):
        assert rows[group]["street_hails"] > 0
        assert 0 < rows[group]["occupancy_rate"] < 1
    assert rows["all"]["street_hails"] + rows["all"]["app_bookings"] == len(r.trip_taxi)
    # The oracle's hails are the true rate of the bucket.
    bucket = datetime(2026, 5, 12, 18, tzinfo=TOKYO).astimezone(UTC)
    truth = true_demand_frame(field, DAY).filter(
        pl.col("slice_start").dt.truncate("15m") == bucket
    )["expected_street_hails"]
    assert oracle[bucket]["expected_street_hails"].sum() == pytest.approx(truth.sum())


def test_a_short_street_hail_reach_leaves_far_hails_unserved():
    far = simulate_fleet(_config(0.0), DAY).result
    near = simulate_fleet(
        CityConfig(seed=5, fleet_size=FLEET, faults=NO_FAULTS, street_hail_reach_km=0.3), DAY
    ).result
    assert near.unserved_requests > far.unserved_requests
    assert (~near.trip_is_app).sum() < (~far.trip_is_app).sum()
    with pytest.raises(ValueError, match="street_hail_reach_km"):
        CityConfig(street_hail_reach_km=0.0)
