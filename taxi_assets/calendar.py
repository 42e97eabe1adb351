"""Days, time buckets and Japanese public holidays, all in Asia/Tokyo time."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays
import polars as pl

TOKYO = ZoneInfo("Asia/Tokyo")
TOKYO_TZ_NAME = "Asia/Tokyo"
MINUTES_PER_DAY = 24 * 60


def day_window_utc(day: date) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of a Tokyo calendar day."""
    start = datetime.combine(day, time(0), tzinfo=TOKYO)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=TOKYO)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def validate_bucket_minutes(bucket_minutes: int) -> int:
    """A bucket must tile the Tokyo day exactly, or buckets would straddle midnight."""
    if bucket_minutes <= 0 or MINUTES_PER_DAY % bucket_minutes:
        raise ValueError(
            f"bucket_minutes={bucket_minutes} is impossible: it must be a positive divisor of "
            f"{MINUTES_PER_DAY} (e.g. 5, 10, 15, 30, 60) so that buckets tile the day"
        )
    return bucket_minutes


def bucket_start(ts: pl.Expr, day: date, bucket_minutes: int) -> pl.Expr:
    """The start (UTC) of the bucket holding each timestamp, buckets aligned to Tokyo midnight."""
    validate_bucket_minutes(bucket_minutes)
    start, _ = day_window_utc(day)
    origin = pl.lit(start).dt.convert_time_zone("UTC")
    width_us = bucket_minutes * 60 * 1_000_000
    offset_us = (ts - origin).dt.total_microseconds()
    return origin + pl.duration(microseconds=(offset_us // width_us) * width_us)


def bucket_starts(day: date, bucket_minutes: int) -> pl.Series:
    """Every bucket start (UTC) of a Tokyo day."""
    validate_bucket_minutes(bucket_minutes)
    start, end = day_window_utc(day)
    return (
        pl.datetime_range(
            start, end, interval=f"{bucket_minutes}m", closed="left", time_unit="us", eager=True
        )
        .dt.convert_time_zone("UTC")
        .alias("bucket_start")
    )


@cache
def _japan_holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("JP", years=year)


def is_japanese_holiday(day: date) -> bool:
    return day in _japan_holidays(day.year)


def day_type(day: date) -> str:
    """'holiday' for Japanese public holidays and Sundays, 'saturday', or 'weekday'."""
    if is_japanese_holiday(day) or day.weekday() == 6:
        return "holiday"
    if day.weekday() == 5:
        return "saturday"
    return "weekday"
