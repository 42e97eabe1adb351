"""Model features per cell and target bucket, the same function for training and serving.

A row describes one cell, one *target bucket* T and one *horizon* h: the forecast is issued
at the start of the *issue bucket* I = T - h buckets (the bucket in progress when it is
made), so every feature is computed from buckets that ended by I's start (lags and rolling
means before I, the same bucket as T yesterday and last week, the rain of the last hour
completed by I), plus the calendar of T and h itself; the targets are what happened in T.
Training calls :func:`build_features` on a stored day of ``cell_demand`` at every horizon;
the 5-minute forecast calls it on the live window, where I is the bucket in progress and
the targets are unknown (null). One function, so training and serving cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import polars as pl

from taxi_assets.calendar import TOKYO_TZ_NAME, is_japanese_holiday
from taxi_assets.frames import WEATHER_SCHEMA

# What the model predicts: street hails (the demand guidance serves) and vacant taxis (the
# supply already there). Both are counts per cell and bucket, from ``cell_demand``.
TARGET = "street_hail_pickups"
SUPPLY_TARGET = "vacant_taxis"
TARGETS = (TARGET, SUPPLY_TARGET)

RECENT_LAGS = 4
HISTORY_DAYS = 7
KEYS = ("cell", "bucket_start")
# Buckets ahead of the bucket in progress a forecast covers: 0 is the bucket in progress,
# 2 ends 30 to 45 minutes after the forecast is issued (the horizon of the 500 m mesh demand
# services Tokyo drivers use). One model serves them all, the horizon being a feature.
HORIZONS = (0, 1, 2)
HORIZON = "horizon"
FEATURE_KEYS = (*KEYS, HORIZON)

CATEGORICAL_FEATURES = ("cell", "day_type")
DAY_TYPES = ("weekday", "saturday", "holiday")
CALENDAR_FEATURES = ("hour", "bucket_of_day", "weekday", "is_holiday")
RECENT_FEATURES = tuple(f"hails_prev_{k}" for k in range(1, RECENT_LAGS + 1)) + (
    "hails_mean_prev_1h",
    "hails_mean_prev_3h",
    "app_bookings_prev_1",
    "dropoffs_prev_1",
    "vacant_prev_1",
    "occupied_prev_1",
    "vacant_mean_prev_1h",
)
DAILY_FEATURES = (
    "hails_yesterday",
    "hails_last_week",
    "hails_mean_same_slot_7d",
    "vacant_yesterday",
)
RAIN_FEATURE = "rain_mm_per_h"
WEATHER_FEATURES = (RAIN_FEATURE,)
FEATURES = (
    CATEGORICAL_FEATURES
    + (HORIZON,)
    + CALENDAR_FEATURES
    + WEATHER_FEATURES
    + RECENT_FEATURES
    + DAILY_FEATURES
)

# Demand columns the features read; history frames must carry them (cell_demand does).
HISTORY_COLUMNS = (
    "cell",
    "bucket_start",
    "street_hail_pickups",
    "app_booking_pickups",
    "dropoffs",
    "vacant_taxis",
    "occupied_taxis",
)


def history_buckets_needed(bucket_minutes: int) -> int:
    """How many buckets before T the recent features look back (the 3-hour mean)."""
    return max(RECENT_LAGS, _buckets_in(180, bucket_minutes))


def _buckets_in(minutes: int, bucket_minutes: int) -> int:
    return max(1, minutes // bucket_minutes)


def _lagged(history: pl.LazyFrame, offset: timedelta, columns: dict[str, str]) -> pl.LazyFrame:
    """History moved forward by ``offset``: the row keyed T holds the values of T - offset."""
    return history.select(
        "cell",
        (pl.col("bucket_start") + offset).alias("bucket_start"),
        *(pl.col(source).alias(name) for name, source in columns.items()),
    )


def validate_horizons(horizons: Sequence[int], bucket_minutes: int) -> None:
    """Horizons are whole buckets ahead, and the same slot yesterday must have ended before
    the forecast is issued (it is a feature at every horizon)."""
    for horizon in horizons:
        if horizon < 0 or (horizon + 1) * bucket_minutes > 24 * 60:
            raise ValueError(
                f"horizon {horizon} with {bucket_minutes}-minute buckets: a horizon is 0 (the "
                "bucket in progress) or more buckets ahead, and less than a day"
            )


def with_horizons(
    targets: pl.DataFrame | pl.LazyFrame, horizons: Sequence[int] = HORIZONS
) -> pl.LazyFrame:
    """Every (cell, bucket_start) of ``targets`` at each of ``horizons``."""
    return (
        targets.lazy()
        .select(KEYS)
        .join(pl.LazyFrame({HORIZON: list(horizons)}, schema={HORIZON: pl.Int8}), how="cross")
    )


def build_features(
    history: pl.DataFrame | pl.LazyFrame,
    weather: pl.DataFrame | pl.LazyFrame | None,
    targets: pl.DataFrame | pl.LazyFrame,
    bucket_minutes: int,
) -> pl.DataFrame:
    """One row per (cell, bucket_start, horizon) of ``targets``, with ``FEATURES`` and
    ``TARGETS``; ``targets`` without a ``horizon`` column are forecast at horizon 0.

    ``history`` is cell demand (``HISTORY_COLUMNS``) covering the week before the targets;
    rows of it at or after a row's issue bucket (T - horizon buckets) only ever feed a
    target's label, never a feature. A bucket missing from the history gives null features
    (CatBoost treats them as missing), a bucket present with zeros gives zeros: absence is
    not "no demand".
    ``weather`` is hourly rain (``hour_start``, ``rain_mm_per_h``); a feed without weather
    passes None or an empty frame, and ``rain_mm_per_h`` is then null (missing) throughout.
    """
    bucket = timedelta(minutes=bucket_minutes)
    hist = history.lazy().select(HISTORY_COLUMNS)
    targets = targets.lazy()
    if HORIZON not in targets.collect_schema().names():
        targets = targets.with_columns(pl.lit(0, pl.Int8).alias(HORIZON))
    rows = targets.select(*KEYS, pl.col(HORIZON).cast(pl.Int8)).unique().collect()
    validate_horizons(rows[HORIZON].unique().to_list(), bucket_minutes)
    # Recent features and the rain are read as of the issue bucket, not the target's.
    issue_start = issue_bucket_start(bucket_minutes).alias("_issue_start")

    recent = [
        _lagged(
            hist,
            k * bucket,
            {
                f"hails_prev_{k}": "street_hail_pickups",
                f"_vacant_prev_{k}": "vacant_taxis",
                **(
                    {
                        "app_bookings_prev_1": "app_booking_pickups",
                        "dropoffs_prev_1": "dropoffs",
                        "vacant_prev_1": "vacant_taxis",
                        "occupied_prev_1": "occupied_taxis",
                    }
                    if k == 1
                    else {}
                ),
            },
        )
        for k in range(1, history_buckets_needed(bucket_minutes) + 1)
    ]
    daily = [
        _lagged(
            hist,
            timedelta(days=d),
            {f"_hails_day_{d}": "street_hail_pickups", f"_vacant_day_{d}": "vacant_taxis"},
        )
        for d in range(1, HISTORY_DAYS + 1)
    ]
    frame = rows.lazy().with_columns(issue_start)
    for lagged in recent:
        frame = frame.join(
            lagged.rename({"bucket_start": "_issue_start"}), on=["cell", "_issue_start"], how="left"
        )
    for lagged in daily:
        frame = frame.join(lagged, on=KEYS, how="left")

    n_1h = _buckets_in(60, bucket_minutes)
    n_3h = _buckets_in(180, bucket_minutes)
    hails = [f"hails_prev_{k}" for k in range(1, n_3h + 1)]
    vacant = [f"_vacant_prev_{k}" for k in range(1, n_1h + 1)]
    local = pl.col("bucket_start").dt.convert_time_zone(TOKYO_TZ_NAME)
    # The rain of the last hour completed by the issue bucket's start: hourly rain is an
    # hour's total, so the hour under way at I (10:00-11:00 for I = 10:15) is not known yet.
    last_hour = pl.col("_issue_start").dt.truncate("1h") - timedelta(hours=1)
    if weather is None:
        weather = pl.DataFrame(schema=WEATHER_SCHEMA)
    rain = weather.lazy().select(
        pl.col("hour_start").alias("_rain_hour"), pl.col("rain_mm_per_h").cast(pl.Float64)
    )
    frame = (
        frame.with_columns(
            hails_mean_prev_1h=pl.mean_horizontal(hails[:n_1h]),
            hails_mean_prev_3h=pl.mean_horizontal(hails),
            vacant_mean_prev_1h=pl.mean_horizontal(vacant),
            hails_yesterday=pl.col("_hails_day_1"),
            hails_last_week=pl.col(f"_hails_day_{HISTORY_DAYS}"),
            hails_mean_same_slot_7d=pl.mean_horizontal(
                [f"_hails_day_{d}" for d in range(1, HISTORY_DAYS + 1)]
            ),
            vacant_yesterday=pl.col("_vacant_day_1"),
            hour=local.dt.hour().cast(pl.Int8),
            bucket_of_day=(
                (local.dt.hour().cast(pl.Int32) * 60 + local.dt.minute()) // bucket_minutes
            ).cast(pl.Int16),
            weekday=local.dt.weekday().cast(pl.Int8),
            _local_day=local.dt.date(),
            _rain_hour=last_hour,
        )
        .join(rain, on="_rain_hour", how="left")
        .join(
            hist.select(*KEYS, *TARGETS),
            on=KEYS,
            how="left",
        )
        .collect()
    )
    holidays = pl.Series(
        [day for day in frame["_local_day"].unique().to_list() if is_japanese_holiday(day)],
        dtype=pl.Date,
    )
    frame = frame.with_columns(
        is_holiday=pl.col("_local_day").is_in(holidays.implode()),
    ).with_columns(
        day_type=pl.when(pl.col("is_holiday") | (pl.col("weekday") == 7))
        .then(pl.lit("holiday"))
        .when(pl.col("weekday") == 6)
        .then(pl.lit("saturday"))
        .otherwise(pl.lit("weekday")),
        is_holiday=pl.col("is_holiday").cast(pl.Int8),
    )
    return (
        frame.select(
            *FEATURE_KEYS,
            *(pl.col(name) for name in FEATURES if name not in FEATURE_KEYS),
            *TARGETS,
        )
        .with_columns(pl.col(RECENT_FEATURES + DAILY_FEATURES).cast(pl.Float32))
        .sort(list(FEATURE_KEYS))
    )


def history_buckets_read(targets: pl.DataFrame, bucket_minutes: int) -> pl.Series:
    """The bucket starts :func:`build_features` reads from its history for ``targets``
    (``KEYS`` and ``HORIZON``): the recent lags before each row's issue bucket, the same
    slot on each of the ``HISTORY_DAYS`` days before, and the target itself (its labels).

    No other history row matches a row's join keys, so a history cut to these buckets gives
    the same features; the 5-minute tick cuts its week of stored demand (a million rows) to
    them before combining it with the live window.
    """
    bucket = timedelta(minutes=bucket_minutes)
    rows = targets.select("bucket_start", issue=issue_bucket_start(bucket_minutes)).unique()
    return (
        pl.concat(
            [
                rows["bucket_start"],
                *(
                    rows["issue"] - k * bucket
                    for k in range(1, history_buckets_needed(bucket_minutes) + 1)
                ),
                *(rows["bucket_start"] - timedelta(days=d) for d in range(1, HISTORY_DAYS + 1)),
            ]
        )
        .unique()
        .alias("bucket_start")
    )


def feature_matrix(features: pl.DataFrame) -> pl.DataFrame:
    """The model's input columns in ``FEATURES`` order; the cell as a string category."""
    return features.select(pl.col("cell").cast(pl.String), *FEATURES[1:])


def issue_bucket_start(bucket_minutes: int) -> pl.Expr:
    """The start of the bucket in progress when a row's forecast was issued."""
    ahead = pl.duration(minutes=pl.col(HORIZON).cast(pl.Int64) * bucket_minutes)
    return pl.col("bucket_start") - ahead.cast(pl.Duration("us"))
