"""The 5-minute forecast: target bucket, live window, live demand and one forecast tick."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import cast

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from taxi_assets.calendar import TOKYO
from taxi_assets.cleaning import CleaningRules, clean_probes
from taxi_assets.demand import aggregate_cell_demand
from taxi_assets.features import build_features
from taxi_assets.model.training import TrainedModel, TrainingParams, train_model
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets.serving import (
    FORECAST_COLUMNS,
    FORECAST_HORIZONS,
    days_touched,
    forecast_tick,
    history_days,
    live_cell_demand,
    live_look_back,
    live_read_window,
    live_window,
    lookback_margin,
    target_bucket,
)
from taxi_assets.sources.base import look_back_starts
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets.trips import TripRules, derive_trip_events
from taxi_assets_tests.conftest import SMALL_FLEET
from taxi_assets_tests.probe_builders import at_minute, raw_probes, track

YESTERDAY, TODAY = date(2026, 4, 27), date(2026, 4, 28)  # a Monday and a Tuesday
RULES = CleaningRules()


def tokyo(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=TOKYO)


def utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)


def nightly_demand(raw: pl.DataFrame, day: date) -> pl.DataFrame:
    """Cell demand of a whole day the way the nightly path computes it."""
    clean = clean_probes(raw, day, CENTRAL_TOKYO, RULES).clean
    return aggregate_cell_demand(clean, derive_trip_events(clean), day, CENTRAL_TOKYO, 15)


def between(frame: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    """The rows of buckets in [start, end), sorted by cell and bucket."""
    return frame.filter((pl.col("bucket_start") >= start) & (pl.col("bucket_start") < end)).sort(
        "cell", "bucket_start"
    )


@pytest.fixture(scope="module")
def city() -> SimulatedProbeSource:
    return SimulatedProbeSource(fleet_size=SMALL_FLEET, seed=7)


@pytest.fixture(scope="module")
def raw(city: SimulatedProbeSource) -> dict[date, pl.DataFrame]:
    return {day: city.read_probes(day).probes for day in (YESTERDAY, TODAY)}


@pytest.fixture(scope="module")
def nightly(raw: dict[date, pl.DataFrame]) -> pl.DataFrame:
    return pl.concat([nightly_demand(frame, day) for day, frame in raw.items()])


@pytest.fixture(scope="module")
def weather(city: SimulatedProbeSource) -> pl.DataFrame:
    return pl.concat([city.read_weather(day) for day in (YESTERDAY, TODAY)])


@pytest.fixture(scope="module")
def model(nightly: pl.DataFrame, weather: pl.DataFrame) -> TrainedModel:
    """A tiny real model trained on yesterday, stopped early on today."""
    rows = build_features(nightly, weather, nightly, 15)
    return train_model(rows, TrainingParams(iterations=20, supply_iterations=10))


@dataclass
class EchoModel:
    """Stands in for a TrainedModel: it 'predicts' the features that fed it (the previous
    bucket's and yesterday's street hails), so a test can see where they came from."""

    seen: list[pl.DataFrame] = field(default_factory=list)

    def predict(self, rows: pl.DataFrame) -> pl.DataFrame:
        self.seen.append(rows)
        return rows.with_columns(
            expected_street_hails=pl.col("hails_prev_1").cast(pl.Float64),
            expected_vacant_taxis=pl.col("hails_yesterday").cast(pl.Float64),
        )


# The target bucket and the live window ---------------------------------------------------------


@pytest.mark.parametrize(
    ("tick", "bucket_minutes", "expected"),
    [
        (tokyo(TODAY, 10, 7), 15, tokyo(TODAY, 10)),
        (tokyo(TODAY, 10), 15, tokyo(TODAY, 10)),
        (tokyo(TODAY, 10, 14, 59), 15, tokyo(TODAY, 10)),
        (tokyo(TODAY, 23, 59), 15, tokyo(TODAY, 23, 45)),
        (tokyo(TODAY, 0, 3), 15, tokyo(TODAY, 0)),
        (utc(tokyo(TODAY, 10, 7)), 15, tokyo(TODAY, 10)),  # the same instant, told in UTC
        (tokyo(TODAY, 10, 59), 30, tokyo(TODAY, 10, 30)),
    ],
)
def test_target_bucket_is_the_bucket_in_progress(
    tick: datetime, bucket_minutes: int, expected: datetime
) -> None:
    bucket = target_bucket(tick, bucket_minutes)
    assert bucket == expected
    assert bucket.utcoffset() == timedelta(0)


def test_target_bucket_refuses_a_naive_tick() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        target_bucket(datetime(2026, 4, 28, 10, 7), 15)


def test_live_window_is_the_three_hours_before_the_target() -> None:
    assert live_window(tokyo(TODAY, 10, 7), 15) == (tokyo(TODAY, 7), tokyo(TODAY, 10))
    start, end = live_window(tokyo(TODAY, 10, 7), 30)
    assert (end - start, end) == (timedelta(hours=3), tokyo(TODAY, 10))


def test_days_touched_spans_midnight() -> None:
    start, end = live_window(tokyo(TODAY, 1, 10), 15)
    assert start == tokyo(YESTERDAY, 22)
    assert days_touched(start, end) == [YESTERDAY, TODAY]
    assert days_touched(*live_window(tokyo(TODAY, 14, 7), 15)) == [TODAY]
    # Instants given in UTC still count Tokyo days: 15:00 UTC is the next Tokyo morning.
    assert days_touched(utc(tokyo(TODAY, 8)), utc(tokyo(TODAY, 9))) == [TODAY]


def test_history_days_are_the_week_before_the_tick_oldest_first() -> None:
    days = history_days(utc(tokyo(TODAY, 0, 5)))
    assert days == [TODAY - timedelta(days=d) for d in range(7, 0, -1)]


# Live cell demand ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tick",
    [tokyo(TODAY, 14, 7), tokyo(TODAY, 1, 10), tokyo(TODAY, 0, 0)],
    ids=["afternoon", "window_across_midnight", "at_midnight"],
)
def test_live_demand_is_the_nightly_demand_of_the_window(
    raw: dict[date, pl.DataFrame], nightly: pl.DataFrame, tick: datetime
) -> None:
    live = live_cell_demand(raw, utc(tick), CENTRAL_TOKYO, RULES, 15)

    start, end = live_window(tick, 15)
    assert live["bucket_start"].unique().sort().to_list() == [
        start + k * timedelta(minutes=15) for k in range(12)
    ]
    assert live.height == 12 * CENTRAL_TOKYO.n_cells
    # Cleaning sees fewer pings live than at night, so a clock-skew share or a stuck meter
    # run near the tick can be judged differently; this city and these days have none, so
    # every count of every bucket agrees with the nightly path.
    assert_frame_equal(live.sort("cell", "bucket_start"), between(nightly, start, end))
    assert live["street_hail_pickups"].sum() > 0


# The tick reads only its window and a look-back -----------------------------------------------


def test_the_tick_reads_its_window_and_the_look_back_the_rules_need() -> None:
    tick = tokyo(TODAY, 14, 7)
    # Every vehicle from the window's start (11:00); each brings its own look-back.
    assert live_read_window(tick, 15) == (utc(tokyo(TODAY, 11, 0)), utc(tick))
    look_back = live_look_back(RULES)
    # The short rules (a 10-minute GPS step, the 10-minute pickup gap) plus the slack.
    assert look_back.margin == timedelta(minutes=40)
    # A stuck meter is judged over 180 minutes, plus the slack.
    assert look_back.run_span == timedelta(minutes=210)
    assert set(look_back.break_words) == {"vacant", "off_duty"}
    longer = CleaningRules(max_occupied_minutes=300.0)
    assert lookback_margin(longer) == timedelta(minutes=330)
    # The pickup gap counts too when it is the longest span.
    slow_feed = CleaningRules(trips=TripRules(max_pickup_gap_s=4 * 3600.0))
    assert lookback_margin(slow_feed) == timedelta(hours=4, minutes=30)
    # The feed's own words end a run as the mapping reads them.
    feed = CleaningRules(status_mapping={"Kuusha": "vacant", "Jissha": "occupied"})
    assert set(live_look_back(feed).break_words) == {"kuusha", "vacant", "off_duty"}


def day_so_far_demand(raw_by_day: dict[date, pl.DataFrame], tick: datetime) -> pl.DataFrame:
    """The live window's demand from every ping of each day stamped before the tick, cleaned
    as the nightly path cleans a day: what the tick computed before it read a window."""
    start, end = live_window(tick, 15)
    parts = []
    for day, raw in sorted(raw_by_day.items()):
        seen = raw.filter(pl.col("ts") < utc(tick))
        if seen.height:
            parts.append(between(nightly_demand(seen, day), start, end))
    return pl.concat(parts).sort("cell", "bucket_start")


@pytest.fixture(scope="module", params=["city", "real_60s"])
def stuck_city(request: pytest.FixtureRequest) -> SimulatedProbeSource:
    # Many stuck meters (3-6 h spells) and skewed clocks, so the rules the look-back serves
    # are exercised in every window; on the simulator's own feed and on a real feed's
    # traits (60 s pings, a flapping meter that ends runs, GPS steps, text ids).
    return SimulatedProbeSource(
        fleet_size=SMALL_FLEET,
        seed=11,
        stuck_status_rate=0.25,
        clock_skew_rate=0.05,
        feed_profile=request.param,
    )


@pytest.mark.parametrize(
    "tick",
    [tokyo(TODAY, 14, 7), tokyo(TODAY, 19, 0), tokyo(TODAY, 1, 10)],
    ids=["afternoon", "evening", "window_across_midnight"],
)
def test_the_windowed_tick_equals_the_whole_day_so_far(
    stuck_city: SimulatedProbeSource, tick: datetime
) -> None:
    read_start, read_end = live_read_window(tick, 15)
    look_back = live_look_back(RULES)
    days = days_touched(read_start, read_end)
    windowed = {
        day: stuck_city.read_probes_window(day, read_start, read_end, look_back).probes
        for day in days
    }
    whole = {day: stuck_city.read_probes(day).probes for day in days}
    assert sum(f.height for f in windowed.values()) < sum(f.height for f in whole.values())

    live = live_cell_demand(windowed, utc(tick), CENTRAL_TOKYO, RULES, 15)

    assert_frame_equal(live.sort("cell", "bucket_start"), day_so_far_demand(whole, tick))
    # The whole day as delivered gives the same answer: only the read window is used.
    assert_frame_equal(live, live_cell_demand(whole, utc(tick), CENTRAL_TOKYO, RULES, 15))
    # Stuck meters were quarantined in the window, so the look-back did matter.
    start, end = live_window(tick, 15)
    stuck_in_window = sum(
        clean_probes(raw.filter(pl.col("ts") < utc(tick)), day, CENTRAL_TOKYO, RULES)
        .rejected.filter(
            (pl.col("reason") == "stuck_status") & (pl.col("ts") >= start) & (pl.col("ts") < end)
        )
        .height
        for day, raw in whole.items()
    )
    assert stuck_in_window > 0


STUCK_VEHICLE = "stuck-1"


def stuck_meter(first_minute: float, silent_until: float | None = None) -> pl.DataFrame:
    """One taxi, meter on from ``first_minute`` to 14:06 Tokyo, one ping a minute (none
    between ``first_minute`` and ``silent_until``), barely moving, inside the area."""
    minutes = 14 * 60 + 7 - first_minute
    rows = track(
        STUCK_VEHICLE, TODAY, ["occupied"] * int(minutes), first_minute, 1.0, step_deg=1e-5
    )
    if silent_until is not None:
        rows = [rows[0]] + [row for row in rows if row[1] >= at_minute(TODAY, silent_until)]
    return raw_probes(rows)


def test_a_stuck_meter_that_began_before_the_window_is_judged_as_on_the_whole_day() -> None:
    tick = utc(tokyo(TODAY, 14, 7))
    # On since 10:00: the run is 4 h long at the tick, 1 h of it before the window (11:00).
    raw = {TODAY: stuck_meter(10 * 60)}

    live = live_cell_demand(raw, tick, CENTRAL_TOKYO, RULES, 15)

    assert_frame_equal(live.sort("cell", "bucket_start"), day_so_far_demand(raw, tick))
    assert live["occupied_taxis"].sum() == 0  # quarantined as stuck_status, as at night


def test_a_stuck_meter_silent_at_the_read_start_brings_its_own_look_back() -> None:
    tick = utc(tokyo(TODAY, 14, 7))
    # On at 07:00 (before the run span's start, 07:30), then silent until 11:10: the whole
    # day sees a 7-hour run; the window alone would see 11:10-14:06, under 180 minutes.
    raw = {TODAY: stuck_meter(7 * 60, silent_until=11 * 60 + 10)}
    read_start, read_end = live_read_window(tick, 15)
    # A read without the vehicle's look-back keeps it occupied in 12 buckets (11:00-13:45).
    plain = {TODAY: raw[TODAY].filter(pl.col("ts") >= read_start)}
    assert live_cell_demand(plain, tick, CENTRAL_TOKYO, RULES, 15)["occupied_taxis"].sum() == 12

    live = live_cell_demand(raw, tick, CENTRAL_TOKYO, RULES, 15)

    assert_frame_equal(live.sort("cell", "bucket_start"), day_so_far_demand(raw, tick))
    assert live["occupied_taxis"].sum() == 0


def test_each_vehicle_reads_back_to_the_start_of_its_meters_run() -> None:
    tick = tokyo(TODAY, 14, 7)

    def pings(vehicle: str, statuses: list[str]) -> list:
        return track(vehicle, TODAY, statuses, 6 * 60, 1.0, step_deg=1e-5)  # 06:00 on

    raw = raw_probes(
        pings("vacant-1", ["vacant"] * (8 * 60 + 7))
        # Vacant to 08:59, meter on 09:00-12:09 (190 minutes: stuck), vacant after.
        + pings("fare-1", ["vacant"] * 180 + ["occupied"] * 190 + ["vacant"] * 117)
        + pings(STUCK_VEHICLE, ["occupied"] * (8 * 60 + 7))  # on all day
    )
    read_start, read_end = live_read_window(tick, 15)

    starts = look_back_starts(raw, read_start, read_end, live_look_back(RULES))

    # 40 minutes before: the vacant taxi's last ping before the window (10:59); the fare's
    # last vacant ping (08:59); the stuck meter's last ping 210 minutes before (07:29).
    assert dict(starts.iter_rows()) == {
        "fare-1": utc(tokyo(TODAY, 8, 19)),
        STUCK_VEHICLE: utc(tokyo(TODAY, 6, 49)),
        "vacant-1": utc(tokyo(TODAY, 10, 19)),
    }
    live = live_cell_demand({TODAY: raw}, utc(tick), CENTRAL_TOKYO, RULES, 15)
    assert_frame_equal(live.sort("cell", "bucket_start"), day_so_far_demand({TODAY: raw}, tick))
    assert live["occupied_taxis"].sum() == 0  # both runs quarantined as stuck_status
    # Reading every vehicle from the same start, 40 minutes before the window, would see
    # the fare's run from 10:20 (110 minutes) and count it in 5 buckets (11:00-12:00).
    uniform = raw.filter(pl.col("ts") >= utc(tokyo(TODAY, 10, 20)))
    occupied = live_cell_demand({TODAY: uniform}, utc(tick), CENTRAL_TOKYO, RULES, 15)
    assert occupied["occupied_taxis"].sum() == 5


def test_a_clock_skew_share_taken_before_the_read_is_where_the_tick_may_differ() -> None:
    tick = utc(tokyo(TODAY, 14, 7))
    # A taxi vacant 06:00-14:06 that replayed 30 pings of yesterday: 30 of its 516 pings
    # (5.8%) lie outside the day, so the whole day quarantines it as a skewed clock; the
    # replays are stamped before the read (07:30 on), so the tick keeps it.
    rows = track(STUCK_VEHICLE, TODAY, ["vacant"] * 486, 6 * 60, 1.0, step_deg=1e-5)
    replays = track(STUCK_VEHICLE, YESTERDAY, ["vacant"] * 30, 9 * 60, 1.0, step_deg=1e-5)
    raw = {TODAY: raw_probes(rows + replays)}

    live = live_cell_demand(raw, tick, CENTRAL_TOKYO, RULES, 15)

    assert day_so_far_demand(raw, tick)["vacant_taxis"].sum() == 0
    # The documented difference: that taxi counted vacant in each window bucket (11:00 on).
    assert live["vacant_taxis"].sum() == 12


def busiest_hailing_vehicle(raw: pl.DataFrame, day: date, start: datetime, end: datetime) -> int:
    clean = clean_probes(raw, day, CENTRAL_TOKYO, RULES).clean
    hails = derive_trip_events(clean).filter(
        (pl.col("booking") == "street_hail")
        & (pl.col("event") == "pickup")
        & (pl.col("ts") >= start)
        & (pl.col("ts") < end)
    )
    return hails.group_by("vehicle_id").len().sort("len", "vehicle_id", descending=True)[0, 0]


@pytest.mark.parametrize("seconds_after_tick", [0, 90])
def test_pings_stamped_at_or_after_the_tick_are_not_seen(
    raw: dict[date, pl.DataFrame], seconds_after_tick: int
) -> None:
    # At midnight, pings stamped at or after the tick fall outside yesterday; enough of
    # them would mark the vehicle's clock as skewed and drop all its pings of the window.
    tick = utc(tokyo(TODAY, 0))
    start, end = live_window(tick, 15)
    vehicle = busiest_hailing_vehicle(raw[YESTERDAY], YESTERDAY, start, end)
    own = raw[YESTERDAY].filter(pl.col("vehicle_id") == vehicle).sort("ts")
    late = own.tail(math.ceil(0.1 * own.height)).with_columns(
        ts=pl.lit(tick + timedelta(seconds=seconds_after_tick)).dt.cast_time_unit("us"),
        lat=pl.col("lat") + pl.int_range(pl.len()) * 1e-6,
    )
    with_late = {**raw, YESTERDAY: pl.concat([raw[YESTERDAY], late])}

    seen_late = clean_probes(with_late[YESTERDAY], YESTERDAY, CENTRAL_TOKYO, RULES)
    assert seen_late.clean.filter(pl.col("vehicle_id") == vehicle).height == 0  # the bite
    nightly_hails = between(nightly_demand(with_late[YESTERDAY], YESTERDAY), start, end)

    live = live_cell_demand(with_late, tick, CENTRAL_TOKYO, RULES, 15)

    assert_frame_equal(live, live_cell_demand(raw, tick, CENTRAL_TOKYO, RULES, 15))
    assert live["street_hail_pickups"].sum() > nightly_hails["street_hail_pickups"].sum()


def test_a_day_with_no_ping_seen_yet_leaves_the_other_day_intact(
    raw: dict[date, pl.DataFrame], nightly: pl.DataFrame
) -> None:
    tick = utc(tokyo(TODAY, 1, 10))
    without_today = {YESTERDAY: raw[YESTERDAY], TODAY: raw[TODAY].clear()}

    live = live_cell_demand(without_today, tick, CENTRAL_TOKYO, RULES, 15)

    # Nothing delivered for today yet means unknown, not "no demand": today's buckets are
    # absent (their features become null), yesterday's are those of the nightly path.
    start, end = live_window(tick, 15)
    midnight = utc(tokyo(TODAY, 0))
    assert live.filter(pl.col("bucket_start") >= midnight).height == 0
    assert live.height == 8 * CENTRAL_TOKYO.n_cells  # 22:00-24:00 yesterday
    assert_frame_equal(between(live, start, midnight), between(nightly, start, midnight))


def test_a_fixed_offset_tick_as_the_forecast_config_parses_it(
    raw: dict[date, pl.DataFrame],
) -> None:
    # ForecastConfig.tick_time() parses "2026-04-28T14:07:00+09:00" to a fixed-offset zone.
    tick = datetime.fromisoformat("2026-04-28T14:07:00+09:00")
    assert tick.tzinfo == timezone(timedelta(hours=9))
    assert_frame_equal(
        live_cell_demand(raw, tick, CENTRAL_TOKYO, RULES, 15),
        live_cell_demand(raw, utc(tick), CENTRAL_TOKYO, RULES, 15),
    )


def test_a_tick_in_tokyo_time_gives_the_same_live_demand(
    raw: dict[date, pl.DataFrame],
) -> None:
    tick = tokyo(TODAY, 14, 7)
    assert_frame_equal(
        live_cell_demand(raw, tick, CENTRAL_TOKYO, RULES, 15),
        live_cell_demand(raw, utc(tick), CENTRAL_TOKYO, RULES, 15),
    )


# One forecast tick -----------------------------------------------------------------------------


def test_a_forecast_tick_covers_every_cell_for_the_target_bucket(
    model: TrainedModel,
    raw: dict[date, pl.DataFrame],
    nightly: pl.DataFrame,
    weather: pl.DataFrame,
) -> None:
    tick = utc(tokyo(TODAY, 14, 7))
    live = live_cell_demand(raw, tick, CENTRAL_TOKYO, RULES, 15)
    stored = nightly.filter(pl.col("bucket_start") < utc(tokyo(TODAY, 0)))

    forecast = forecast_tick(model, "v-test", live, stored, weather, CENTRAL_TOKYO, tick, 15)

    assert forecast.columns == list(FORECAST_COLUMNS)
    assert FORECAST_HORIZONS == (0, 1, 2)
    assert forecast.height == CENTRAL_TOKYO.n_cells * len(FORECAST_HORIZONS)
    all_cells = CENTRAL_TOKYO.cells()["cell"].sort().to_list()
    for horizon in FORECAST_HORIZONS:
        ahead = forecast.filter(pl.col("horizon") == horizon)
        assert ahead["cell"].sort().to_list() == all_cells
        # The bucket in progress (14:00-14:15 at 14:07), then the next two.
        assert ahead["bucket_start"].unique().to_list() == [tokyo(TODAY, 14, 15 * horizon)]
    assert forecast["tick"].unique().to_list() == [tick]
    assert forecast.schema["tick"] == pl.Datetime("us", "UTC")
    assert forecast["model_version"].unique().to_list() == ["v-test"]
    assert forecast.schema["horizon"] == pl.Int8
    for column in ("expected_street_hails", "expected_vacant_taxis", "opportunity"):
        values = forecast[column].to_numpy()
        assert np.isfinite(values).all() and (values >= 0).all(), column
    # Street hails one more vacant taxi can capture: at most one, and at most its share.
    share = forecast["expected_street_hails"] / (forecast["expected_vacant_taxis"] + 2.0)
    assert (forecast["opportunity"] <= 1.0).all()
    assert (forecast["opportunity"] <= share + 1e-12).all()
    # A real model on real features: the forecast is not a constant.
    assert forecast["expected_street_hails"].n_unique() > 1


def test_live_rows_win_over_stored_rows_and_labels_of_the_target_stay_unknown(
    raw: dict[date, pl.DataFrame], nightly: pl.DataFrame, weather: pl.DataFrame
) -> None:
    tick = tokyo(TODAY, 14, 7)  # forecast_tick converts the tick itself
    target = target_bucket(tick, 15)
    live = live_cell_demand(raw, utc(tick), CENTRAL_TOKYO, RULES, 15)
    # The store disagrees with the live window (a stale or partial copy of today) and even
    # holds the target bucket's outcome.
    stored = nightly.with_columns(
        pl.when(pl.col("bucket_start") >= utc(tokyo(TODAY, 0)))
        .then(pl.col("street_hail_pickups") + 100)
        .otherwise(pl.col("street_hail_pickups"))
        .alias("street_hail_pickups")
    )
    echo = EchoModel()

    forecast = forecast_tick(
        cast(TrainedModel, echo), "v", live, stored, weather, CENTRAL_TOKYO, tick, 15
    )

    previous = live.filter(pl.col("bucket_start") == target - timedelta(minutes=15))
    a_day_ago = nightly.filter(pl.col("bucket_start") == target - timedelta(days=1))
    expected = (
        previous.select("cell", pl.col("street_hail_pickups").alias("prev"))
        .join(a_day_ago.select("cell", pl.col("street_hail_pickups").alias("yday")), on="cell")
        .sort("cell")
    )
    got = forecast.filter(pl.col("horizon") == 0).sort("cell")
    assert got["expected_street_hails"].to_list() == expected["prev"].cast(pl.Float64).to_list()
    assert got["expected_vacant_taxis"].to_list() == expected["yday"].cast(pl.Float64).to_list()
    assert got["tick"].unique().to_list() == [tick]
    # Later horizons read the same last complete bucket, and their own slot yesterday.
    for horizon in (1, 2):
        ahead = forecast.filter(pl.col("horizon") == horizon).sort("cell")
        slot = target + timedelta(minutes=15 * horizon)
        their_yesterday = (
            nightly.filter(pl.col("bucket_start") == slot - timedelta(days=1))
            .sort("cell")["street_hail_pickups"]
            .cast(pl.Float64)
        )
        assert ahead["expected_street_hails"].to_list() == got["expected_street_hails"].to_list()
        assert ahead["expected_vacant_taxis"].to_list() == their_yesterday.to_list()
    (features,) = echo.seen
    assert features.select(pl.col("street_hail_pickups", "vacant_taxis").null_count()).row(0) == (
        CENTRAL_TOKYO.n_cells * len(FORECAST_HORIZONS),
        CENTRAL_TOKYO.n_cells * len(FORECAST_HORIZONS),
    )

    # Without the live rows the stored ones are read: so above, live won on purpose.
    stored_only = (
        forecast_tick(
            cast(TrainedModel, EchoModel()),
            "v",
            live.clear(),
            stored,
            weather,
            CENTRAL_TOKYO,
            tick,
            15,
        )
        .filter(pl.col("horizon") == 0)
        .sort("cell")
    )
    assert stored_only["expected_street_hails"].to_list() == [
        v + 100 for v in expected["prev"].cast(pl.Float64).to_list()
    ]


def test_without_stored_days_the_daily_features_are_missing(
    raw: dict[date, pl.DataFrame], weather: pl.DataFrame
) -> None:
    tick = utc(tokyo(TODAY, 14, 7))
    live = live_cell_demand(raw, tick, CENTRAL_TOKYO, RULES, 15)

    forecast = forecast_tick(
        cast(TrainedModel, EchoModel()), "v", live, None, weather, CENTRAL_TOKYO, tick, 15
    )

    assert forecast["expected_vacant_taxis"].null_count() == forecast.height
    assert forecast["expected_street_hails"].null_count() == 0
    # Unknown supply counts as no taxis (the prior still damps): the opportunity is finite.
    assert forecast["opportunity"].null_count() == 0
    assert np.isfinite(forecast["opportunity"].to_numpy()).all()
