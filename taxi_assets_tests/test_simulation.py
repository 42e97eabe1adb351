"""The simulated city: determinism, contracts, fault rates and the demand oracle."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import numpy as np
import polars as pl
import pytest

from taxi_assets.calendar import TOKYO_TZ_NAME, bucket_starts, day_type, day_window_utc
from taxi_assets.definitions import ASSET_MODULES
from taxi_assets.frames import PROBE_STATUSES, RAW_PROBES_SCHEMA, WEATHER_SCHEMA
from taxi_assets.jobs import DATA_PATH_GROUPS
from taxi_assets.resources import local_resources
from taxi_assets.settings import PipelineSettings
from taxi_assets.simulation import (
    NO_FAULTS,
    TRIPS_SCHEMA,
    TRUE_DEMAND_SCHEMA,
    CityConfig,
    FaultRates,
    SimulatedDay,
    simulate_day,
    simulate_weather,
    true_demand_rate,
)
from taxi_assets.simulation.feed import vehicle_id_column
from taxi_assets.sources.simulated import SimulatedProbeSource

WEEKDAY = date(2026, 5, 1)  # a Friday
SUNDAY = date(2026, 5, 10)
FLEET = 150
HIGH_FAULTS = FaultRates(
    duplicate=0.05,
    out_of_order=0.05,
    gps_jump=0.05,
    zero_coordinates=0.05,
    stuck_status=0.05,
    clock_skew=0.05,
)


@pytest.fixture(scope="module")
def clean_config() -> CityConfig:
    return CityConfig(seed=7, fleet_size=FLEET, faults=NO_FAULTS)


@pytest.fixture(scope="module")
def clean_day(clean_config: CityConfig) -> SimulatedDay:
    return simulate_day(clean_config, WEEKDAY)


@pytest.fixture(scope="module")
def faulty_config() -> CityConfig:
    return CityConfig(seed=7, fleet_size=FLEET, faults=HIGH_FAULTS)


@pytest.fixture(scope="module")
def faulty_day(faulty_config: CityConfig) -> SimulatedDay:
    return simulate_day(faulty_config, WEEKDAY)


@pytest.fixture(scope="module")
def full_fleet_day() -> SimulatedDay:
    # The default 1,000 taxis: a much smaller fleet is too sparse over 400 km2 to reach
    # every request (demand scales with the fleet, density does not).
    return simulate_day(CityConfig(seed=7, faults=NO_FAULTS), WEEKDAY)


def _original_rows(sim: SimulatedDay) -> int:
    return sim.probes.height - sim.faults["duplicate"]


def test_same_seed_and_day_give_identical_frames(faulty_config, faulty_day):
    again = simulate_day(faulty_config, WEEKDAY)
    assert again.probes.equals(faulty_day.probes)
    assert again.trips.equals(faulty_day.trips)
    assert again.true_demand.equals(faulty_day.true_demand)
    assert again.weather.equals(faulty_day.weather)
    assert again.faults == faulty_day.faults


def test_another_day_or_seed_gives_other_probes(faulty_config, faulty_day):
    other_day = simulate_day(faulty_config, WEEKDAY + timedelta(days=1))
    other_seed = simulate_day(CityConfig(seed=8, fleet_size=FLEET, faults=HIGH_FAULTS), WEEKDAY)
    for other in (other_day, other_seed):
        assert not other.probes.equals(faulty_day.probes)


def test_frames_have_the_published_schemas(faulty_day):
    assert faulty_day.probes.schema == RAW_PROBES_SCHEMA
    assert faulty_day.weather.schema == WEATHER_SCHEMA
    assert faulty_day.true_demand.schema == TRUE_DEMAND_SCHEMA
    assert faulty_day.trips.schema == TRIPS_SCHEMA
    assert faulty_day.weather.height == 24


def test_probe_values_are_plausible(clean_day):
    probes = clean_day.probes
    assert set(probes["status"].unique().to_list()) == set(PROBE_STATUSES)
    assert set(probes["vehicle_id"].unique()) == {str(i) for i in range(1, FLEET + 1)}
    assert probes["vehicle_id"].n_unique() == FLEET
    assert probes.select(pl.col("heading").is_between(0, 360, closed="left").all()).item()
    assert probes.select(pl.col("speed_kmh").is_between(0, 80).all()).item()
    assert probes.null_count().sum_horizontal().item() == 0


def test_clean_pings_stay_inside_the_day_and_the_area(clean_config, clean_day):
    start, end = day_window_utc(WEEKDAY)
    probes = clean_day.probes
    assert probes.select(pl.col("ts").is_between(start, end, closed="left").all()).item()
    inside = clean_config.area.contains(pl.col("lat"), pl.col("lon"))
    # Only GPS noise at the very edge of the area may fall outside.
    assert probes.select(inside.mean()).item() > 0.999
    assert not probes.select(pl.struct("vehicle_id", "ts").is_duplicated().any()).item()


def test_every_taxi_pings_late_enough_for_clock_skew_to_show(clean_day):
    # A +9 h skew moves pings after 15:00 JST past midnight; cleaning flags >= 5% outside.
    share_after_15h = clean_day.probes.group_by("vehicle_id").agg(
        (pl.col("ts").dt.convert_time_zone(TOKYO_TZ_NAME).dt.hour() >= 15).mean()
    )
    assert share_after_15h["ts"].min() >= 0.05


def test_trip_timings_are_consistent(clean_config, clean_day):
    start, end = day_window_utc(WEEKDAY)
    trips = clean_day.trips
    assert trips.select(
        ordered=(
            (pl.col("request_ts") <= pl.col("pickup_ts"))
            & (pl.col("pickup_ts") < pl.col("dropoff_ts"))
        ).all(),
        requested_today=pl.col("request_ts").is_between(start, end, closed="left").all(),
        picked_up_today=pl.col("pickup_ts").is_between(start, end, closed="left").all(),
    ).row(0) == (True, True, True)
    street = trips.filter(pl.col("booking") == "street_hail")
    assert street.select((pl.col("request_ts") == pl.col("pickup_ts")).all()).item()
    cells = set(clean_config.area.cells()["cell"].to_list())
    assert set(trips["pickup_cell"].to_list()) <= cells
    assert set(trips["dropoff_cell"].to_list()) <= cells
    minutes = trips.select((pl.col("dropoff_ts") - pl.col("pickup_ts")).dt.total_seconds() / 60)
    assert 8 < minutes.mean().item() < 30


def test_true_demand_is_dense_over_cells_and_slices(clean_config, clean_day):
    demand = clean_day.true_demand
    cells = clean_config.area.cells()["cell"]
    slices = bucket_starts(WEEKDAY, 5)
    assert demand.height == len(cells) * len(slices) == 1520 * 288
    assert demand.select(pl.struct("cell", "slice_start").n_unique()).item() == demand.height
    assert demand["cell"].unique().sort().equals(cells.sort(), check_names=False)
    assert demand["slice_start"].unique().sort().equals(slices, check_names=False)
    assert demand.select(
        (pl.col("expected_street_hails") >= 0).all() & (pl.col("expected_app_bookings") >= 0).all()
    ).item()


def test_cheap_entry_points_match_the_full_simulation(clean_config, clean_day):
    assert true_demand_rate(clean_config, WEEKDAY).equals(clean_day.true_demand)
    assert simulate_weather(clean_config, WEEKDAY).equals(clean_day.weather)


def test_observed_pickups_follow_the_rate(full_fleet_day):
    clean_day = full_fleet_day
    expected = clean_day.true_demand.select(
        pl.col("expected_street_hails").sum(), pl.col("expected_app_bookings").sum()
    ).row(0)
    observed = clean_day.trips["booking"].value_counts().rows_by_key("booking")
    street, app = observed["street_hail"][0][0], observed["app_booking"][0][0]
    assert street == pytest.approx(expected[0], rel=0.04)
    assert app == pytest.approx(expected[1], rel=0.05)
    unserved = clean_day.faults["unserved_requests"]
    assert unserved / (unserved + clean_day.trips.height) < 0.03


def test_pickups_land_where_and_when_the_rate_says(full_fleet_day):
    clean_day = full_fleet_day
    # Hourly pickup counts track the hourly rate (Poisson noise aside).
    hour = pl.col("slice_start").dt.convert_time_zone(TOKYO_TZ_NAME).dt.hour()
    rate = clean_day.true_demand.group_by(hour.alias("hour")).agg(
        (pl.col("expected_street_hails") + pl.col("expected_app_bookings")).sum().alias("rate")
    )
    pickups = clean_day.trips.group_by(
        pl.col("pickup_ts").dt.convert_time_zone(TOKYO_TZ_NAME).dt.hour().alias("hour")
    ).len()
    both = rate.join(pickups, on="hour", how="left").fill_null(0)
    assert both.select(pl.corr("rate", "len")).item() > 0.95
    # And per cell over the day: the busiest cells of the rate are the busiest in pickups.
    by_cell = (
        clean_day.true_demand.group_by("cell")
        .agg(
            (pl.col("expected_street_hails") + pl.col("expected_app_bookings")).sum().alias("rate")
        )
        .join(
            clean_day.trips.group_by(pl.col("pickup_cell").alias("cell")).len(),
            on="cell",
            how="left",
        )
        .fill_null(0)
    )
    assert by_cell.select(pl.corr("rate", "len")).item() > 0.9


def test_weekday_and_holiday_profiles_differ(clean_config):
    assert day_type(WEEKDAY) == "weekday" and day_type(SUNDAY) == "holiday"
    hour = pl.col("slice_start").dt.convert_time_zone(TOKYO_TZ_NAME).dt.hour().alias("hour")

    def hourly_share(day: date) -> pl.Series:
        hourly = (
            true_demand_rate(clean_config, day)
            .group_by(hour)
            .agg((pl.col("expected_street_hails") + pl.col("expected_app_bookings")).sum())
            .sort("hour")["expected_street_hails"]
        )
        return hourly / hourly.sum()

    weekday, sunday = hourly_share(WEEKDAY), hourly_share(SUNDAY)
    assert (weekday - sunday).abs().max() > 0.01
    # The weekday morning commute is busier than a Sunday morning.
    assert weekday[8] > sunday[8]


def _rainy_day(config: CityConfig) -> date:
    for offset in range(120):
        day = date(2026, 6, 1) + timedelta(days=offset)
        if simulate_weather(config, day)["rain_mm_per_h"].max() >= 2:
            return day
    raise AssertionError("no rainy day in 120 days")


def test_rain_raises_demand(clean_config):
    day = _rainy_day(clean_config)
    rain = simulate_weather(clean_config, day)["rain_mm_per_h"]
    assert (rain == 0).sum() > 0, "most hours of a rainy day are still dry"
    hour = pl.col("slice_start").dt.convert_time_zone(TOKYO_TZ_NAME).dt.hour().alias("hour")
    total = (pl.col("expected_street_hails") + pl.col("expected_app_bookings")).sum()

    def hourly(config: CityConfig) -> pl.Series:
        return (
            true_demand_rate(config, day)
            .group_by(hour)
            .agg(total)
            .sort("hour")["expected_street_hails"]
        )

    with_rain = hourly(clean_config)
    no_rain_effect = hourly(CityConfig(seed=7, fleet_size=FLEET, rain_demand_gain=0.0))
    ratio = with_rain / no_rain_effect
    assert (ratio.filter(rain >= 1) > 1.1).all()
    assert (ratio.filter(rain == 0) - 1).abs().max() < 1e-9


def test_day_is_self_contained_and_starts_vacant(clean_day):
    first = clean_day.probes.sort("ts").group_by("vehicle_id", maintain_order=True).first()
    start, _ = day_window_utc(WEEKDAY)
    at_midnight = first.filter(pl.col("ts") < start + timedelta(seconds=60))
    assert at_midnight.height > 0
    assert (at_midnight["status"] == "vacant").all()


def test_fault_counts_match_the_probes_and_the_rates(faulty_config, faulty_day):
    probes, faults = faulty_day.probes, faulty_day.faults
    rows = _original_rows(faulty_day)
    rates = faulty_config.faults

    duplicates = probes.height - probes.unique().height
    assert duplicates == faults["duplicate"]
    assert duplicates / rows == pytest.approx(rates.duplicate, rel=0.1)

    zeros = probes.filter((pl.col("lat") == 0) & (pl.col("lon") == 0)).height
    assert zeros == pytest.approx(faults["zero_coordinates"], rel=0.1)
    assert zeros / probes.height == pytest.approx(rates.zero_coordinates, rel=0.1)

    # Pings replayed from yesterday (outside_day) are stale, not late.
    start, _ = day_window_utc(WEEKDAY)
    late = (
        probes.filter(pl.col("ts") >= start)
        .select((pl.col("ts") < pl.col("ts").cum_max().shift(1).over("vehicle_id")).sum())
        .item()
    )
    # Exact but for a stale replay on a +9 h clock, which can land inside the day.
    assert late == pytest.approx(faults["out_of_order"], abs=faults["outside_day"] // 10)
    # A late ping is overtaken unless it was the last of its vehicle's window.
    assert late / rows == pytest.approx(rates.out_of_order, rel=0.1)

    start, end = day_window_utc(WEEKDAY)
    outside = probes.group_by("vehicle_id").agg(
        (~pl.col("ts").is_between(start, end, closed="left")).mean().alias("share")
    )
    skewed = outside.filter(pl.col("share") >= 0.05).height
    assert skewed == faults["clock_skew"]
    assert skewed == pytest.approx(rates.clock_skew * FLEET, abs=4)


def test_gps_jumps_are_single_ping_spikes(faulty_config, faulty_day):
    ordered = (
        faulty_day.probes.unique(maintain_order=True)
        .filter((pl.col("lat") != 0) | (pl.col("lon") != 0))
        .sort("vehicle_id", "ts")
    )
    km_lat, km_lon = 110.574, 90.4

    def dist_km(shift: int) -> pl.Expr:
        return (
            ((pl.col("lat") - pl.col("lat").shift(shift)) * km_lat) ** 2
            + ((pl.col("lon") - pl.col("lon").shift(shift)) * km_lon) ** 2
        ).sqrt()

    same = pl.col("vehicle_id") == pl.col("vehicle_id").shift(1)
    same_next = pl.col("vehicle_id") == pl.col("vehicle_id").shift(-1)
    spikes = ordered.filter(same & same_next & (dist_km(1) > 1.5) & (dist_km(-1) > 1.5)).height
    expected = faulty_day.faults["gps_jump"]
    assert spikes == pytest.approx(expected, rel=0.15)
    assert expected / _original_rows(faulty_day) == pytest.approx(
        faulty_config.faults.gps_jump, rel=0.1
    )


def test_stuck_status_vehicles_stay_occupied_for_hours(faulty_config, faulty_day):
    start, _ = day_window_utc(WEEKDAY)
    runs = (
        faulty_day.probes.unique()
        # A ping replayed from yesterday (outside_day) would stretch its run by a day.
        .filter(pl.col("ts") >= start)
        .sort("vehicle_id", "ts")
        .with_columns(
            run=(
                (pl.col("status") != pl.col("status").shift(1))
                | (pl.col("vehicle_id") != pl.col("vehicle_id").shift(1))
            ).cum_sum()
        )
        .filter(pl.col("status") == "occupied")
        .group_by("vehicle_id", "run")
        .agg(hours=(pl.col("ts").max() - pl.col("ts").min()).dt.total_seconds() / 3600)
    )
    long_runs = runs.filter(pl.col("hours") >= 2)["vehicle_id"].n_unique()
    stuck = faulty_day.faults["stuck_status"]
    # A spell may straddle a night taxi's off-duty gap and show shorter in the pings.
    assert stuck - 2 <= long_runs <= stuck
    assert stuck == pytest.approx(faulty_config.faults.stuck_status * FLEET, abs=4)


def test_settings_are_validated_with_the_setting_named():
    with pytest.raises(ValueError, match="fleet_size"):
        CityConfig(fleet_size=0)
    with pytest.raises(ValueError, match="app_booking_share"):
        CityConfig(app_booking_share=1.5)
    with pytest.raises(ValueError, match="ping_interval_s"):
        CityConfig(ping_interval_s=0)
    with pytest.raises(ValueError, match="duplicate"):
        FaultRates(duplicate=-0.1)
    with pytest.raises(ValueError, match="feed_profile='nope' is unknown.*real_60s"):
        CityConfig(feed_profile="nope")


# --- feed profiles: each trait of a real feed (DESIGN.md, "What real feeds look like") ------


@pytest.fixture(scope="module")
def real_feed_day() -> SimulatedDay:
    return simulate_day(CityConfig(seed=7, fleet_size=FLEET, feed_profile="real_60s"), WEEKDAY)


def ping_intervals_s(probes: pl.DataFrame) -> pl.Series:
    start, end = day_window_utc(WEEKDAY)
    gaps = (
        probes.filter(pl.col("ts").is_between(start, end, closed="left"))
        .unique(["vehicle_id", "ts"])
        .sort("vehicle_id", "ts")
        .select(pl.col("ts").diff().dt.total_seconds().over("vehicle_id"))
        .to_series()
        .drop_nulls()
    )
    return gaps.filter((gaps > 0) & (gaps < 1800))  # not the off-duty breaks


def occupied_runs(probes: pl.DataFrame) -> pl.DataFrame:
    """Runs of one status per vehicle, with their length in pings and neighbours' status."""
    start, end = day_window_utc(WEEKDAY)
    return (
        probes.filter(pl.col("ts").is_between(start, end, closed="left"))
        .unique(["vehicle_id", "ts"], keep="first")
        .sort("vehicle_id", "ts")
        .with_columns(
            run=(
                (pl.col("status") != pl.col("status").shift(1))
                | (pl.col("vehicle_id") != pl.col("vehicle_id").shift(1))
            ).cum_sum()
        )
        .group_by("run", maintain_order=True)
        .agg(pl.col("vehicle_id").first(), pl.col("status").first(), pings=pl.len())
        .with_columns(before=pl.col("status").shift(1), after=pl.col("status").shift(-1))
    )


def test_the_city_profile_is_the_default_and_pings_like_clockwork(clean_config, clean_day):
    assert clean_config.feed_profile == "city" and clean_config.feed.dispatch == "shown"
    assert ping_intervals_s(clean_day.probes).unique().to_list() == [15]
    assert clean_day.faults["vacant_flaps"] == clean_day.faults["reentries"] == 0


def test_real_60s_pings_about_every_minute_with_a_long_tail(real_feed_day):
    gaps = ping_intervals_s(real_feed_day.probes)
    assert 55 <= gaps.median() <= 65
    assert 95 <= gaps.quantile(0.95) <= 125  # real feed: ~110 s
    assert gaps.quantile(0.99) >= 180  # real feed: ~240 s


def test_real_60s_meter_flaps(real_feed_day):
    runs = occupied_runs(real_feed_day.probes)
    inside = (pl.col("before") == pl.col("after")) & pl.col("before").is_not_null()
    lone_fares = runs.filter(
        (pl.col("status") == "occupied") & (pl.col("pings") == 1) & inside
    ).height
    lone_gaps = runs.filter(
        (pl.col("status") == "vacant")
        & (pl.col("pings") == 1)
        & (pl.col("before") == "occupied")
        & (pl.col("after") == "occupied")
    ).height
    apparent_hails = runs.filter(
        (pl.col("status") == "occupied") & (pl.col("before") == "vacant")
    ).height
    # Single-ping fares: up to ~9% of apparent hails on the real feed.
    assert 0.04 <= lone_fares / apparent_hails <= 0.12
    assert lone_gaps >= real_feed_day.faults["vacant_flaps"] * 0.8 > 0


def test_real_60s_has_gps_steps_of_several_pings(real_feed_day):
    assert real_feed_day.faults["gps_steps"] > 0
    lat_min, lat_max, lon_min, lon_max = CityConfig().area.snapped_bounds
    probes = real_feed_day.probes.unique(["vehicle_id", "ts"]).sort("vehicle_id", "ts")
    far = probes.with_columns(
        jump_km=(
            ((pl.col("lat") - pl.col("lat").shift(1)) * 110.6) ** 2
            + ((pl.col("lon") - pl.col("lon").shift(1)) * 90.4) ** 2
        ).sqrt(),
        same=pl.col("vehicle_id") == pl.col("vehicle_id").shift(1),
    )
    # A step: two consecutive moves, each small, both several km away from the ping
    # before the step (the displaced pings agree with each other).
    displaced_pairs = far.filter(
        pl.col("same")
        & (pl.col("jump_km") < 2)
        & (pl.col("jump_km").shift(1) > 8)
        & pl.col("same").shift(1)
    ).height
    assert displaced_pairs >= real_feed_day.faults["gps_steps"] * 0.5


def test_real_60s_has_no_dispatch_no_weather_and_reentries(real_feed_day):
    assert "dispatched" not in real_feed_day.probes["status"].unique().to_list()
    assert "app_booking" not in real_feed_day.trips["booking"].unique().to_list()
    assert real_feed_day.weather.height == 0
    assert real_feed_day.weather.schema == WEATHER_SCHEMA
    # A re-entered fare is not a street hail of the area in the ground truth.
    reentries = real_feed_day.faults["reentries"]
    assert (real_feed_day.trips["booking"] == "other").sum() == reentries > 0
    lat_min = CityConfig().area.snapped_bounds[0]
    assert (real_feed_day.probes["lat"] < lat_min - 0.02).sum() > 0  # out towards Haneda


def test_hidden_dispatch_keeps_app_bookings_without_a_dispatched_status():
    config = CityConfig(seed=7, fleet_size=60, feed_profile="real_60s_hidden_dispatch")
    simulated = simulate_day(config, WEEKDAY)
    assert "dispatched" not in simulated.probes["status"].unique().to_list()
    assert (simulated.trips["booking"] == "app_booking").sum() > 0


def test_vehicle_ids_come_from_one_function():
    numbers = np.arange(1, 1001)
    assert vehicle_id_column(numbers, "integer").dtype == pl.Int32
    prefixed = vehicle_id_column(numbers, "prefixed")
    assert prefixed[42] == "T-0043" and prefixed.n_unique() == 1000
    hashed = vehicle_id_column(numbers, "hash")
    assert hashed.dtype == pl.String and hashed.n_unique() == 1000
    assert hashed.str.len_chars().max() <= 10
    assert hashed.equals(vehicle_id_column(numbers, "hash"))  # stable from day to day


def test_the_profile_is_a_setting_of_the_simulated_source():
    source = SimulatedProbeSource(fleet_size=40, seed=3, feed_profile="real_60s")
    delivery = source.read_probes(WEEKDAY)
    assert delivery.origin["feed_profile"] == "real_60s"
    assert source.read_weather(WEEKDAY).height == 0
    assert SimulatedProbeSource(fleet_size=40).read_weather(WEEKDAY).height == 24


def test_a_real_60s_feed_runs_the_data_path_with_every_check_passing(
    data_dir, instance: dg.DagsterInstance
) -> None:
    """The real-feed profile through Dagster: flaps, steps, re-entries, no dispatch and no
    weather quarantine a few pings and show in the metadata, and no check fails."""
    resources = local_resources(
        str(data_dir),
        str(data_dir / "artifacts"),
        SimulatedProbeSource(fleet_size=60, feed_profile="real_60s"),
    )
    resources["settings"] = PipelineSettings(weather_source="none")
    result = dg.materialize(
        dg.load_assets_from_modules(list(ASSET_MODULES)),
        selection=dg.AssetSelection.groups(*DATA_PATH_GROUPS),
        partition_key="2026-04-29",
        resources=resources,
        instance=instance,
    )
    assert result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed == []
    (trips,) = [
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "trip_events"
    ]
    assert trips["debounced_short_fares"].value > 0
    assert trips["app_booking_pickups"].value == 0
