"""The 5-minute forecast: the live window through the training path's own functions.

At a tick, the forecast is issued for the bucket in progress (the first one without complete
data) and the next two (horizons 0, 1, 2): at 10:00 it covers 10:00-10:15, 10:15-10:30 and
10:30-10:45, at 10:05 and 10:10 it is refreshed with whatever late pings arrived. Its
features come from the last complete buckets before the bucket in progress, read live from
the probe source and put through the same cleaning, trip and demand functions as the
nightly path, and from stored ``cell_demand`` for yesterday and last week.

The tick reads only pings stamped in [window start, tick) (:func:`live_read_window`: the
3 hours the recent features need) and, per vehicle pinging there, a look-back
(:func:`live_look_back`, ``sources.base.LookBack``) long enough for the rules that judge a
ping by its vehicle's other pings: its pings from ``margin`` (40 minutes: a GPS step, the
pickup gap and a slack) before its last vacant or off-duty ping before the window, or
before its last ping ``lookback_margin`` (210 minutes) before the window, whichever is
later. A vacant taxi brings 40 minutes; a taxi with its meter on, the whole fare; a stuck
meter, enough to be judged stuck. That state (two timestamps per vehicle) costs one scan of
three columns; at 18:00 on a simulated day of 1,000 taxis the tick then reads 63% of the
pings a uniform 210-minute look-back held (``bench/bench_forecast.py``).

On the window's buckets the tick's demand equals the demand of the whole day seen so far
(every ping stamped before the tick, as the nightly path would clean it), and the nightly
demand of the finished day, except where a rule's answer depends on pings the read does
not hold:

- ``stuck_status``: a meter stuck on for longer than ``max_occupied_minutes`` (or
  dispatched for ``max_dispatched_minutes``) is judged on its whole run: the run began after
  the vehicle's last vacant or off-duty ping, which the read holds, or it spans more than
  ``lookback_margin`` and is stuck on both. A vehicle silent before the window (a night taxi
  resting through the day) brings the ping before its silence the same way. Only a vehicle
  whose anchor ping (that last vacant ping, or that last ping before the run span) is itself
  rejected (a GPS jump, outside the area) can have a stuck run judged shorter than on the
  whole day.
- ``clock_skew``: the share of a vehicle's pings stamped outside the day is taken over the
  read, not the day; a vehicle near the threshold (5%) can be judged differently.
- meter debouncing compares a vacant gap with the vehicle's median ping interval over the
  read, not the day: on an irregular feed a median that differs can bridge a flap or not.
- pings within a few minutes of a vehicle's look-back start are judged with fewer
  neighbours (GPS jumps, pickups, short fares): the margin keeps them 40 minutes away from
  the pings that decide the window.
- as before, the finished day adds what only later pings show (a stuck run that goes on,
  the pings after a track's last ping, late deliveries), so the nightly demand of the
  buckets just before the tick can still differ from the tick's.

``taxi_assets_tests/test_serving.py`` checks the equality on simulated days.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

import polars as pl

from taxi_assets.calendar import TOKYO, day_window_utc
from taxi_assets.cleaning import CleaningRules, clean_probe_codes, encode_probes
from taxi_assets.demand import aggregate_cell_demand
from taxi_assets.features import (
    HISTORY_COLUMNS,
    HISTORY_DAYS,
    HORIZON,
    HORIZONS,
    KEYS,
    build_features,
    history_buckets_needed,
    history_buckets_read,
)
from taxi_assets.frames import CELL_DEMAND_SCHEMA
from taxi_assets.guidance import GuidanceParams, opportunity
from taxi_assets.model.training import TrainedModel
from taxi_assets.service_area import ServiceArea
from taxi_assets.sources.base import LookBack, window_with_look_back
from taxi_assets.trips import derive_trip_events

FORECAST_COLUMNS = (
    "tick",
    "model_version",
    "cell",
    "horizon",
    "bucket_start",
    "expected_street_hails",
    "expected_vacant_taxis",
    "opportunity",
)
# Buckets ahead of the bucket in progress a row forecasts: the model's (one model, the
# horizon a feature); the guidance reads each arrival bucket's own horizon.
FORECAST_HORIZONS = HORIZONS


def target_bucket(tick: datetime, bucket_minutes: int) -> datetime:
    """The start (UTC) of the bucket in progress at ``tick``, buckets aligned to Tokyo days."""
    if tick.tzinfo is None:
        raise ValueError(f"tick {tick.isoformat()} has no time zone: pass an aware datetime")
    day_start, _ = day_window_utc(tick.astimezone(TOKYO).date())
    elapsed = tick - day_start
    width = timedelta(minutes=bucket_minutes)
    return day_start + (elapsed // width) * width


def live_window(tick: datetime, bucket_minutes: int) -> tuple[datetime, datetime]:
    """[start, end) of the complete buckets the recent features read, ending at the target."""
    end = target_bucket(tick, bucket_minutes)
    return end - history_buckets_needed(bucket_minutes) * timedelta(minutes=bucket_minutes), end


# Margin of pings a vehicle's look-back keeps before its anchor ping, beyond the span of the
# short rules (a GPS step, the pickup gap): a ping judged that far from the read's start
# sees the neighbours it sees on the whole day.
LOOKBACK_SLACK = timedelta(minutes=30)
# The statuses whose runs the stuck-meter rule measures; any other status ends such a run.
RUN_STATUSES = ("occupied", "dispatched")


def lookback_margin(rules: CleaningRules) -> timedelta:
    """How far before the live window a status run is followed (``LookBack.run_span``): the
    longest span a per-vehicle rule measures (a stuck meter's run, a GPS step, the pickup
    gap) plus ``LOOKBACK_SLACK``; a run that goes on from there into the window is longer
    than ``max_occupied_minutes``, and judged stuck as on the whole day."""
    longest_minutes = max(
        rules.max_occupied_minutes,
        rules.max_dispatched_minutes,
        rules.max_jump_run_minutes,
        rules.trips.max_pickup_gap_s / 60,
    )
    return timedelta(minutes=longest_minutes) + LOOKBACK_SLACK


def live_look_back(rules: CleaningRules) -> LookBack:
    """The per-vehicle look-back of the tick's read (:class:`LookBack`): each vehicle pinging
    in the window brings its pings from ``margin`` (the short rules plus
    ``LOOKBACK_SLACK``) before its last ping with a status that ends a meter's run (vacant,
    off duty, in the feed's own words), or before its last ping ``lookback_margin`` before
    the window, whichever is later.

    A vehicle vacant at the window's start brings the ``margin`` before it; one with its
    meter on brings the whole fare and the ``margin`` before it; a stuck meter, the
    ``lookback_margin`` that shows it stuck; a night taxi resting through the day, its last
    ping before it rested and the minutes before that.
    """
    short_minutes = max(rules.max_jump_run_minutes, rules.trips.max_pickup_gap_s / 60)
    return LookBack(
        margin=timedelta(minutes=short_minutes) + LOOKBACK_SLACK,
        run_span=lookback_margin(rules),
        break_words=tuple(
            word for word, status in rules.status_mapping if status not in RUN_STATUSES
        ),
    )


def live_read_window(tick: datetime, bucket_minutes: int) -> tuple[datetime, datetime]:
    """[start, end) of the pings the tick reads of every vehicle (UTC): the live window up
    to the tick (pings stamped at or after it are not there yet); each vehicle's look-back
    (:func:`live_look_back`) comes before it."""
    window_start, _ = live_window(tick, bucket_minutes)
    return window_start.astimezone(UTC), tick.astimezone(UTC)


def days_touched(start: datetime, end: datetime) -> list[date]:
    """Tokyo days overlapping [start, end]."""
    first, last = start.astimezone(TOKYO).date(), end.astimezone(TOKYO).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def live_cell_demand(
    raw_by_day: Mapping[date, pl.DataFrame],
    tick: datetime,
    area: ServiceArea,
    rules: CleaningRules,
    bucket_minutes: int,
) -> pl.DataFrame:
    """Cell demand of the live window's complete buckets from the raw pings seen by ``tick``.

    ``raw_by_day`` holds, per service day the read touches, that day's delivery: the pings
    of :func:`live_read_window` and :func:`live_look_back` (``ProbeSource.read_probes_window``)
    or more (the whole day); only those pings are used, so both give the same answer.
    Each day goes through ``clean_probes`` (as ``clean_probe_codes``: the same pings),
    ``derive_trip_events`` (with the same trip rules) and ``aggregate_cell_demand`` exactly
    as in the nightly path. Where that equals
    the whole day's demand and where it may not: see the module docstring.
    """
    start, end = live_window(tick, bucket_minutes)
    read_start, read_end = live_read_window(tick, bucket_minutes)
    look_back = live_look_back(rules)
    parts = []
    for day, raw in sorted(raw_by_day.items()):
        # Vehicle ids as codes, which sort and compare as the ids do: the selection, the
        # trip events and the demand are those of the text ids (the events' ids stay codes,
        # the demand does not read them), at a fraction of the cost of text.
        coded, codes = encode_probes(raw)
        seen = window_with_look_back(
            coded, read_start, read_end, look_back, codes.status_is(look_back.break_words)
        )
        if seen.height == 0:
            continue  # nothing delivered for that day yet: unknown (null), not zero demand
        cleaned = clean_probe_codes(seen, codes, day, area, rules)
        events = derive_trip_events(cleaned, rules.trips).drop("vehicle_id")
        # Buckets tile the day, so a ping or event stamped in [start, end) is counted in a
        # window bucket and no other: the look-back's only feed the rules, not the counts.
        in_window = (pl.col("ts") >= start) & (pl.col("ts") < end)
        demand = aggregate_cell_demand(
            cleaned.filter(in_window), events.filter(in_window), day, area, bucket_minutes
        )
        parts.append(
            demand.filter((pl.col("bucket_start") >= start) & (pl.col("bucket_start") < end))
        )
    if not parts:
        return pl.DataFrame(schema=CELL_DEMAND_SCHEMA)
    return pl.concat(parts)


def history_days(tick: datetime) -> list[date]:
    """The stored days of cell demand the daily features read (yesterday back to last week)."""
    today = tick.astimezone(TOKYO).date()
    return [today - timedelta(days=d) for d in range(HISTORY_DAYS, 0, -1)]


def tick_features(
    live: pl.DataFrame,
    stored: pl.DataFrame | None,
    weather: pl.DataFrame,
    area: ServiceArea,
    tick: datetime,
    bucket_minutes: int,
) -> pl.DataFrame:
    """The model's features for every cell at the bucket in progress and the buckets after
    it (``FORECAST_HORIZONS``), built by the very function that built the training features:
    every horizon reads the same complete buckets, those before the bucket in progress.

    ``live`` (the window's complete buckets) wins over ``stored`` cell demand where both
    hold a bucket: it is what the nightly path will also see, minus the late pings.
    """
    target = target_bucket(tick, bucket_minutes)
    width = timedelta(minutes=bucket_minutes)
    targets = (
        area.cells()
        .select("cell")
        .join(
            pl.DataFrame(
                {
                    "bucket_start": [target + h * width for h in FORECAST_HORIZONS],
                    HORIZON: list(FORECAST_HORIZONS),
                },
                schema={"bucket_start": pl.Datetime("us", "UTC"), HORIZON: pl.Int8},
            ),
            how="cross",
        )
    )
    # Only the buckets the features read: the week of stored demand is a million rows, of
    # which the features read 36 buckets (deduplicating and joining all of it took 1.3 s).
    read = pl.col("bucket_start").is_in(history_buckets_read(targets, bucket_minutes).implode())
    history = live.select(HISTORY_COLUMNS).filter(read)
    if stored is not None:
        history = pl.concat([history, stored.select(HISTORY_COLUMNS).filter(read)]).unique(
            list(KEYS), keep="first"
        )
    # Labels of the target bucket are unknown at the tick; drop any a replay could see.
    history = history.filter(pl.col("bucket_start") < target)
    return build_features(history, weather, targets, bucket_minutes)


def forecast_from_features(
    model: TrainedModel,
    model_version: str,
    features: pl.DataFrame,
    tick: datetime,
    competitor_prior: float = GuidanceParams.competitor_prior,
) -> pl.DataFrame:
    """Expected street hails and vacant taxis per row of ``features`` (per cell and horizon),
    the opportunity they give one more vacant taxi arriving (street hails it
    can expect to capture, see ``taxi_assets.guidance``), stamped with the tick and the model
    version that made them."""
    return (
        model.predict(features)
        .with_columns(
            tick=pl.lit(tick).dt.cast_time_unit("us").dt.convert_time_zone("UTC"),
            model_version=pl.lit(model_version),
        )
        .with_columns(opportunity=opportunity(competitor_prior))
        .select(FORECAST_COLUMNS)
    )


def forecast_tick(
    model: TrainedModel,
    model_version: str,
    live: pl.DataFrame,
    stored: pl.DataFrame | None,
    weather: pl.DataFrame,
    area: ServiceArea,
    tick: datetime,
    bucket_minutes: int,
) -> pl.DataFrame:
    """Expected street hails and vacant taxis in every cell for the bucket in progress and
    the next ones (``FORECAST_HORIZONS``)."""
    features = tick_features(live, stored, weather, area, tick, bucket_minutes)
    return forecast_from_features(model, model_version, features, tick)
