"""Model features: no leakage from the target bucket or later, lags, calendar and rain."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from taxi_assets.calendar import TOKYO, bucket_starts, day_window_utc
from taxi_assets.features import (
    DAILY_FEATURES,
    FEATURE_KEYS,
    FEATURES,
    HORIZONS,
    KEYS,
    RECENT_FEATURES,
    TARGETS,
    build_features,
    feature_matrix,
    history_buckets_read,
    with_horizons,
)
from taxi_assets.frames import CELL_DEMAND_SCHEMA, WEATHER_SCHEMA

# A Monday; eight days of history end on Monday 2026-04-27, a plain working day.
FIRST_DAY = date(2026, 4, 20)
DAYS = [FIRST_DAY + timedelta(days=i) for i in range(8)]
COUNT_COLUMNS = [c for c in CELL_DEMAND_SCHEMA.names() if c not in KEYS]
NO_WEATHER = pl.DataFrame(schema=WEATHER_SCHEMA)
NO_HISTORY = pl.DataFrame(schema=CELL_DEMAND_SCHEMA)
# Offsets of each count column in the encoded history, so a value names its column.
ENCODED = {
    "street_hail_pickups": 0,
    "vacant_taxis": 1000,
    "app_booking_pickups": 2000,
    "dropoffs": 3000,
    "occupied_taxis": 4000,
    "pickups": 5000,
}


def tokyo(day: date, hour: int, minute: int = 0) -> datetime:
    """A Tokyo wall-clock time as the UTC instant the frames store."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TOKYO).astimezone(UTC)


def history_frame(rows: Iterable[dict]) -> pl.DataFrame:
    """CELL_DEMAND_SCHEMA rows; counts left out are 0."""
    return pl.DataFrame(
        [{**dict.fromkeys(COUNT_COLUMNS, 0), **row} for row in rows], schema=CELL_DEMAND_SCHEMA
    )


def targets_at(cells: Sequence[int], *instants: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        [(cell, instant) for instant in instants for cell in cells],
        schema={"cell": pl.Int64, "bucket_start": pl.Datetime("us", "UTC")},
        orient="row",
    )


def grid(cells: Sequence[int], days: Sequence[date], bucket_minutes: int) -> pl.DataFrame:
    """Every (cell, bucket_start) of the days, bucket by bucket in time order."""
    starts = pl.concat([bucket_starts(day, bucket_minutes) for day in days])
    return (
        starts.to_frame()
        .join(pl.DataFrame({"cell": list(cells)}, schema={"cell": pl.Int64}), how="cross")
        .select("cell", "bucket_start")
    )


def encoded_history(bucket_minutes: int, cell: int = 7) -> pl.DataFrame:
    """One cell over DAYS whose counts give away the bucket they were read from: the i-th
    bucket since the first midnight has ``i`` street hails, ``1000 + i`` vacant taxis..."""
    index = pl.int_range(pl.len(), dtype=pl.Int32)
    return (
        grid([cell], DAYS, bucket_minutes)
        .with_columns(**{column: index + offset for column, offset in ENCODED.items()})
        .select(CELL_DEMAND_SCHEMA.names())
        .cast(dict(CELL_DEMAND_SCHEMA))
    )


def random_history(
    seed: int, cells: Sequence[int], bucket_minutes: int, missing_share: float
) -> pl.DataFrame:
    """Random counts over DAYS with ``missing_share`` of the rows left out."""
    rng = np.random.default_rng(seed)
    keys = grid(cells, DAYS, bucket_minutes)
    counts = {c: pl.Series(c, rng.integers(0, 6, keys.height)) for c in COUNT_COLUMNS}
    kept = pl.Series(rng.random(keys.height) >= missing_share)
    return keys.with_columns(**counts).cast(dict(CELL_DEMAND_SCHEMA)).filter(kept)


def hourly_rain(rain_mm_per_h: dict[datetime, float]) -> pl.DataFrame:
    return pl.DataFrame(list(rain_mm_per_h.items()), schema=WEATHER_SCHEMA, orient="row")


def random_rain(seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    first, _ = day_window_utc(DAYS[0] - timedelta(days=1))
    hours = [first + timedelta(hours=h) for h in range(24 * (len(DAYS) + 1))]
    return hourly_rain(dict(zip(hours, rng.uniform(0, 10, len(hours)).round(2), strict=True)))


def row_of(features: pl.DataFrame, cell: int, instant: datetime) -> dict:
    rows = features.filter(
        (pl.col("cell") == cell) & (pl.col("bucket_start") == instant)
    ).to_dicts()
    assert len(rows) == 1, f"expected one feature row for cell {cell} at {instant}"
    return rows[0]


def mean_present(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def reference_features(
    history: pl.DataFrame,
    weather: pl.DataFrame,
    cell: int,
    target: datetime,
    bucket_minutes: int,
    horizon: int = 0,
) -> dict[str, float | None]:
    """The lag, rolling, daily and rain features and the targets of one row, recomputed in
    plain Python from the spec: recent lags and the rain as of the issue bucket (``horizon``
    buckets before the target), the same slot on earlier days as of the target; means
    average the buckets present, null when none is."""
    by_key = {(r["cell"], r["bucket_start"]): r for r in history.iter_rows(named=True)}
    rain = dict(weather.iter_rows())
    width = timedelta(minutes=bucket_minutes)
    issue = target - horizon * width

    def at(offset: timedelta, column: str, since: datetime = issue) -> float | None:
        row = by_key.get((cell, since - offset))
        return None if row is None else float(row[column])

    n_1h, n_3h = 60 // bucket_minutes, 180 // bucket_minutes
    hails = [at(k * width, "street_hail_pickups") for k in range(1, n_3h + 1)]
    same_slot = [at(timedelta(days=d), "street_hail_pickups", target) for d in range(1, 8)]
    previous_hour = issue.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return {
        **{f"hails_prev_{k}": hails[k - 1] for k in range(1, 5)},
        "hails_mean_prev_1h": mean_present(hails[:n_1h]),
        "hails_mean_prev_3h": mean_present(hails),
        "app_bookings_prev_1": at(width, "app_booking_pickups"),
        "dropoffs_prev_1": at(width, "dropoffs"),
        "vacant_prev_1": at(width, "vacant_taxis"),
        "occupied_prev_1": at(width, "occupied_taxis"),
        "vacant_mean_prev_1h": mean_present(
            at(k * width, "vacant_taxis") for k in range(1, n_1h + 1)
        ),
        "hails_yesterday": same_slot[0],
        "hails_last_week": same_slot[6],
        "hails_mean_same_slot_7d": mean_present(same_slot),
        "vacant_yesterday": at(timedelta(days=1), "vacant_taxis", target),
        "rain_mm_per_h": rain.get(previous_hour),
        "street_hail_pickups": at(timedelta(0), "street_hail_pickups", target),
        "vacant_taxis": at(timedelta(0), "vacant_taxis", target),
    }


def assert_matches_reference(
    features: pl.DataFrame, history: pl.DataFrame, weather: pl.DataFrame, bucket_minutes: int
) -> None:
    for row in features.iter_rows(named=True):
        expected = reference_features(
            history, weather, row["cell"], row["bucket_start"], bucket_minutes, row["horizon"]
        )
        actual = {name: row[name] for name in expected}
        where = (row["cell"], row["bucket_start"], row["horizon"])
        assert {k for k, v in actual.items() if v is None} == {
            k for k, v in expected.items() if v is None
        }, where
        numbers = {k: v for k, v in expected.items() if v is not None}
        assert {k: actual[k] for k in numbers} == pytest.approx(numbers, rel=1e-6), where


def perturb_from(
    history: pl.DataFrame, target: datetime, mode: str, seed: int, issue: datetime | None = None
) -> pl.DataFrame:
    """History with every row at or after ``issue`` (default: the target) deleted, or
    changed to random counts except the target bucket's own labels."""
    future = pl.col("bucket_start") >= (target if issue is None else issue)
    if mode == "delete":
        return history.filter(~future)
    rng = np.random.default_rng(seed)
    noise = {c: pl.Series(rng.integers(50, 100, history.height)) for c in COUNT_COLUMNS}
    is_target = pl.col("bucket_start") == target
    return history.with_columns(
        pl.when(future & ~(is_target & pl.lit(c in TARGETS)))
        .then(noise[c])
        .otherwise(pl.col(c))
        .alias(c)
        for c in COUNT_COLUMNS
    ).cast(dict(CELL_DEMAND_SCHEMA))


def feature_columns(features: pl.DataFrame) -> pl.DataFrame:
    return features.select(*KEYS, *FEATURES[1:])


def targets_at_horizon(cells: Sequence[int], horizon: int, *instants: datetime) -> pl.DataFrame:
    return targets_at(cells, *instants).with_columns(horizon=pl.lit(horizon, pl.Int8))


# Leakage -------------------------------------------------------------------------------------


@pytest.mark.parametrize("horizon", HORIZONS)
@pytest.mark.parametrize("mode", ["change", "delete"])
def test_the_issue_bucket_and_later_feed_no_feature_of_the_target(mode: str, horizon: int) -> None:
    history = random_history(seed=3, cells=[1, 2, 3], bucket_minutes=15, missing_share=0.0)
    weather = random_rain(seed=3)
    target = tokyo(DAYS[-1], 10)
    issue = target - horizon * timedelta(minutes=15)
    targets = targets_at_horizon([1, 2, 3], horizon, target)

    honest = build_features(history, weather, targets, 15)
    tampered = build_features(
        perturb_from(history, target, mode, seed=4, issue=issue), weather, targets, 15
    )

    assert_frame_equal(feature_columns(tampered), feature_columns(honest))
    truth = history.filter(pl.col("bucket_start") == target).sort("cell")
    assert honest.select(TARGETS).to_dicts() == truth.select(TARGETS).to_dicts()
    if mode == "change":
        assert_frame_equal(tampered, honest)
    else:
        assert tampered.select(pl.col(TARGETS).null_count()).row(0) == (3, 3)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    target_fraction=st.floats(0, 1, exclude_max=True),
    mode=st.sampled_from(["change", "delete"]),
    bucket_minutes=st.sampled_from([15, 30]),
    horizon=st.sampled_from(HORIZONS),
)
def test_no_history_from_the_issue_bucket_on_changes_its_features(
    seed: int, target_fraction: float, mode: str, bucket_minutes: int, horizon: int
) -> None:
    history = random_history(
        seed, cells=[1, 2, 3], bucket_minutes=bucket_minutes, missing_share=0.1
    )
    starts = pl.concat([bucket_starts(day, bucket_minutes) for day in DAYS])
    target = starts[int(target_fraction * len(starts))]
    issue = target - horizon * timedelta(minutes=bucket_minutes)
    weather = random_rain(seed)
    targets = targets_at_horizon([1, 2, 3], horizon, target)

    honest = build_features(history, weather, targets, bucket_minutes)
    tampered = build_features(
        perturb_from(history, target, mode, seed + 1, issue=issue),
        weather,
        targets,
        bucket_minutes,
    )

    assert_frame_equal(feature_columns(tampered), feature_columns(honest))
    if mode == "change":
        assert_frame_equal(tampered.select(TARGETS), honest.select(TARGETS))


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    target_fractions=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=4),
    bucket_minutes=st.sampled_from([15, 30]),
    missing_share=st.sampled_from([0.0, 0.3]),
)
def test_features_match_a_plain_python_reference(
    seed: int, target_fractions: list[float], bucket_minutes: int, missing_share: float
) -> None:
    history = random_history(seed, [1, 2], bucket_minutes, missing_share)
    weather = random_rain(seed)
    starts = pl.concat([bucket_starts(day, bucket_minutes) for day in DAYS])
    instants = [starts[int(f * len(starts))] for f in target_fractions]

    features = build_features(
        history, weather, with_horizons(targets_at([1, 2], *instants)), bucket_minutes
    )

    assert features.height == 2 * len(set(instants)) * len(HORIZONS)
    assert_matches_reference(features, history, weather, bucket_minutes)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    target_fractions=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=3),
    bucket_minutes=st.sampled_from([15, 30, 60]),
)
def test_a_history_cut_to_the_buckets_read_gives_the_same_features(
    seed: int, target_fractions: list[float], bucket_minutes: int
) -> None:
    """The 5-minute tick cuts its week of stored demand to ``history_buckets_read``."""
    history = random_history(seed, [1, 2], bucket_minutes, missing_share=0.1)
    weather = random_rain(seed)
    starts = pl.concat([bucket_starts(day, bucket_minutes) for day in DAYS])
    instants = [starts[int(f * len(starts))] for f in target_fractions]
    targets = with_horizons(targets_at([1, 2], *instants)).collect()

    read = history_buckets_read(targets, bucket_minutes)
    cut = history.filter(pl.col("bucket_start").is_in(read.implode()))

    assert cut.height < history.height
    assert_frame_equal(
        build_features(cut, weather, targets, bucket_minutes),
        build_features(history, weather, targets, bucket_minutes),
    )


# Lags ----------------------------------------------------------------------------------------


def test_lags_read_the_buckets_before_the_target_15_minutes() -> None:
    target = tokyo(DAYS[-1], 10)  # bucket 7 * 96 + 40 = 712 since the first midnight
    features = build_features(encoded_history(15), NO_WEATHER, targets_at([7], target), 15)

    row = row_of(features, 7, target)
    assert [row[f"hails_prev_{k}"] for k in range(1, 5)] == [711, 710, 709, 708]
    assert row["hails_mean_prev_1h"] == 709.5  # 708..711
    assert row["hails_mean_prev_3h"] == 705.5  # 700..711
    assert row["hails_yesterday"] == 712 - 96
    assert row["hails_last_week"] == 712 - 7 * 96
    assert row["hails_mean_same_slot_7d"] == 712 - 4 * 96  # mean of 712 - 96 d, d = 1..7
    assert row["vacant_prev_1"] == 1711
    assert row["vacant_mean_prev_1h"] == 1709.5
    assert row["vacant_yesterday"] == 1000 + 712 - 96
    assert row["app_bookings_prev_1"] == 2711
    assert row["dropoffs_prev_1"] == 3711
    assert row["occupied_prev_1"] == 4711
    assert (row["street_hail_pickups"], row["vacant_taxis"]) == (712, 1712)


def test_later_horizons_read_their_lags_before_the_issue_bucket() -> None:
    target = tokyo(DAYS[-1], 10)  # bucket 712; issued at bucket 712 - h
    features = build_features(
        encoded_history(15), random_rain(1), with_horizons(targets_at([7], target)), 15
    )

    rows = {row["horizon"]: row for row in features.iter_rows(named=True)}
    assert sorted(rows) == list(HORIZONS)
    for horizon, row in rows.items():
        issue = 712 - horizon
        assert [row[f"hails_prev_{k}"] for k in range(1, 5)] == [issue - k for k in range(1, 5)]
        assert row["vacant_prev_1"] == 1000 + issue - 1
        # The same slot yesterday and last week ended long before the issue: the target's.
        assert row["hails_yesterday"] == 712 - 96
        assert row["hails_last_week"] == 712 - 7 * 96
        # The calendar and the labels are the target's, at every horizon.
        assert (row["hour"], row["bucket_of_day"]) == (10, 40)
        assert (row["street_hail_pickups"], row["vacant_taxis"]) == (712, 1712)
    # Issued at 09:45 (horizon 1) or 09:30 (horizon 2), the 09:00 hour is still under way.
    rain = dict(random_rain(1).iter_rows())
    assert rows[0]["rain_mm_per_h"] == pytest.approx(rain[tokyo(DAYS[-1], 9)])
    assert rows[1]["rain_mm_per_h"] == pytest.approx(rain[tokyo(DAYS[-1], 8)])
    assert rows[2]["rain_mm_per_h"] == pytest.approx(rain[tokyo(DAYS[-1], 8)])


def test_a_horizon_of_a_day_or_more_is_refused() -> None:
    target = tokyo(DAYS[-1], 10)
    with pytest.raises(ValueError, match="horizon 96 with 15-minute buckets"):
        build_features(NO_HISTORY, NO_WEATHER, targets_at_horizon([1], 96, target), 15)


def test_lags_adapt_to_30_minute_buckets() -> None:
    target = tokyo(DAYS[-1], 10)  # bucket 7 * 48 + 20 = 356
    features = build_features(encoded_history(30), NO_WEATHER, targets_at([7], target), 30)

    row = row_of(features, 7, target)
    assert [row[f"hails_prev_{k}"] for k in range(1, 5)] == [355, 354, 353, 352]
    assert row["hails_mean_prev_1h"] == 354.5  # two buckets
    assert row["hails_mean_prev_3h"] == 352.5  # six buckets, 350..355
    assert row["vacant_mean_prev_1h"] == 1354.5
    assert row["hails_yesterday"] == 356 - 48
    assert row["hails_last_week"] == 356 - 7 * 48
    assert row["hails_mean_same_slot_7d"] == 356 - 4 * 48
    assert (row["hour"], row["bucket_of_day"]) == (10, 20)
    assert row["street_hail_pickups"] == 356


def test_three_hour_mean_spans_three_hours_with_60_minute_buckets() -> None:
    target = tokyo(DAYS[-1], 10)  # bucket 7 * 24 + 10 = 178
    features = build_features(encoded_history(60), NO_WEATHER, targets_at([7], target), 60)

    row = row_of(features, 7, target)
    assert [row[f"hails_prev_{k}"] for k in range(1, 5)] == [177, 176, 175, 174]
    assert row["hails_mean_prev_1h"] == 177
    assert row["hails_mean_prev_3h"] == 176  # 175..177, not 174..177


def test_missing_history_is_null_and_present_zeros_are_zero() -> None:
    target = tokyo(DAYS[-1], 10)
    width = timedelta(minutes=15)
    zeros = [{"cell": 2, "bucket_start": target - k * width} for k in range(0, 13)] + [
        {"cell": 2, "bucket_start": target - timedelta(days=d)} for d in range(1, 8)
    ]
    # Cell 1 lacks the previous bucket and last week; it has the other three of the hour.
    gappy = [
        {"cell": 1, "bucket_start": target - k * width, "street_hail_pickups": k, "vacant_taxis": k}
        for k in (2, 3, 4)
    ] + [{"cell": 1, "bucket_start": target - timedelta(days=1), "street_hail_pickups": 5}]

    features = build_features(
        history_frame(zeros + gappy), NO_WEATHER, targets_at([1, 2, 3], target), 15
    )

    present_zeros = row_of(features, 2, target)
    assert all(present_zeros[name] == 0 for name in RECENT_FEATURES + DAILY_FEATURES)
    assert (present_zeros["street_hail_pickups"], present_zeros["vacant_taxis"]) == (0, 0)

    gaps = row_of(features, 1, target)
    for name in ("hails_prev_1", "vacant_prev_1", "app_bookings_prev_1", "dropoffs_prev_1"):
        assert gaps[name] is None, name
    assert gaps["hails_last_week"] is None
    assert gaps["hails_prev_2"] == 2
    assert gaps["hails_mean_prev_1h"] == 3.0  # the buckets present: 2, 3, 4
    assert gaps["hails_yesterday"] == 5
    assert gaps["hails_mean_same_slot_7d"] == 5.0
    assert gaps["street_hail_pickups"] is None  # the target bucket itself is not there

    unseen = row_of(features, 3, target)
    assert all(unseen[name] is None for name in RECENT_FEATURES + DAILY_FEATURES + TARGETS)


# Calendar and rain ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "hour", "bucket_of_day", "weekday", "is_holiday", "day_type"),
    [
        # 15:00 UTC is midnight in Tokyo, on Showa Day (a Wednesday).
        (datetime(2026, 4, 28, 15, 0, tzinfo=UTC), 0, 0, 3, 1, "holiday"),
        (datetime(2026, 4, 28, 14, 45, tzinfo=UTC), 23, 95, 2, 0, "weekday"),
        (tokyo(date(2026, 5, 2), 10), 10, 40, 6, 0, "saturday"),
        (tokyo(date(2026, 4, 26), 12, 30), 12, 50, 7, 0, "holiday"),  # a plain Sunday
        (tokyo(date(2025, 5, 3), 12), 12, 48, 6, 1, "holiday"),  # Constitution Day, a Saturday
        (tokyo(date(2026, 5, 6), 8, 15), 8, 33, 3, 1, "holiday"),  # substitute holiday
    ],
)
def test_calendar_is_tokyo_time(
    instant: datetime,
    hour: int,
    bucket_of_day: int,
    weekday: int,
    is_holiday: int,
    day_type: str,
) -> None:
    features = build_features(NO_HISTORY, NO_WEATHER, targets_at([1], instant), 15)

    row = row_of(features, 1, instant)
    assert (row["hour"], row["bucket_of_day"], row["weekday"]) == (hour, bucket_of_day, weekday)
    assert (row["is_holiday"], row["day_type"]) == (is_holiday, day_type)


def test_rain_is_that_of_the_last_hour_completed_before_the_bucket() -> None:
    day = DAYS[-1]
    weather = hourly_rain(
        {
            tokyo(day - timedelta(days=1), 23): 1.25,
            tokyo(day, 9): 2.5,
            tokyo(day, 10): 7.0,
            tokyo(day, 11): 0.5,
        }
    )
    cases = {
        tokyo(day, 0): 1.25,  # the 23:00-24:00 hour of the day before
        tokyo(day, 10): 2.5,  # the 09:00 hour ended at 10:00
        tokyo(day, 10, 15): 2.5,  # the 10:00 hour is still under way: not known yet
        tokyo(day, 10, 45): 2.5,
        tokyo(day, 11): 7.0,
        tokyo(day, 11, 15): 7.0,
        tokyo(day, 12): 0.5,
        tokyo(day, 14): None,  # no weather for the 13:00 hour
    }

    features = build_features(NO_HISTORY, weather, targets_at([1], *cases), 15)

    assert {instant: row_of(features, 1, instant)["rain_mm_per_h"] for instant in cases} == cases


def test_rain_follows_30_minute_buckets() -> None:
    day = DAYS[-1]
    weather = hourly_rain({tokyo(day, 9): 2.5, tokyo(day, 10): 7.0})
    features = build_features(
        NO_HISTORY,
        weather,
        targets_at([1], tokyo(day, 10), tokyo(day, 10, 30), tokyo(day, 11)),
        30,
    )
    assert features["rain_mm_per_h"].to_list() == [2.5, 2.5, 7.0]


# Shape ---------------------------------------------------------------------------------------


def test_one_sorted_row_per_target_with_the_model_columns() -> None:
    target = tokyo(DAYS[-1], 10)
    targets = pl.concat(
        [targets_at([3, 1], target), targets_at([1, 3], target - timedelta(hours=1))]
    )

    features = build_features(
        random_history(1, [1, 3], 15, 0.0), NO_WEATHER, pl.concat([targets, targets]), 15
    )

    names = [name for name in FEATURES if name not in FEATURE_KEYS]
    assert features.columns == [*FEATURE_KEYS, *names, *TARGETS]
    assert features.select(KEYS).rows() == sorted(set(targets.rows()))
    assert features["horizon"].to_list() == [0] * features.height
    assert all(features.schema[name] == pl.Float32 for name in RECENT_FEATURES + DAILY_FEATURES)
    matrix = feature_matrix(features)
    assert matrix.columns == list(FEATURES)
    assert matrix.schema["cell"] == pl.String


# A feed without weather ------------------------------------------------------------------------


def test_a_feed_without_weather_gives_missing_rain_and_a_model_still_trains() -> None:
    from taxi_assets.model.training import TrainingParams, _pool, train_model
    from taxi_assets.weather import weather_was_used

    history = random_history(3, [1, 2, 3, 4], 15, 0.05)
    targets = grid([1, 2, 3, 4], DAYS, 15)
    without = build_features(history, None, targets, 15)
    # None and an empty weather day (what the `weather` asset stores) mean the same.
    assert_frame_equal(without, build_features(history, NO_WEATHER, targets, 15))
    assert without.schema["rain_mm_per_h"] == pl.Float64
    assert without["rain_mm_per_h"].null_count() == without.height
    assert not weather_was_used(without)
    assert weather_was_used(build_features(history, random_rain(3), targets, 15))

    # CatBoost receives the missing rain as NaN in a float column (not 0, not objects).
    rain = feature_matrix(without).to_pandas()["rain_mm_per_h"]
    assert rain.dtype == np.float64 and rain.isna().all()
    assert _pool(without, "street_hail_pickups").num_row() == without.height

    model = train_model(without, TrainingParams(iterations=5, supply_iterations=3))
    predicted = model.predict(without.filter(pl.col("bucket_start") >= tokyo(DAYS[-1], 0)))
    assert predicted["expected_street_hails"].is_finite().all()
    assert (predicted["expected_street_hails"] >= 0).all()
