"""From raw GPS pings to clean probes: every ping either kept or quarantined with one reason.

The rules run in the order of :data:`taxi_assets.frames.REJECT_REASONS`; a ping gets the
first reason that applies and later rules only see the pings earlier rules kept (so a GPS
jump is judged against its nearest *kept* neighbours). The frame is sorted once, by
vehicle, time and then every other column, which makes exact duplicates adjacent and lets
every neighbour rule use plain ``shift`` with a same-vehicle mask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from taxi_assets.calendar import day_window_utc
from taxi_assets.frames import (
    CLEAN_PROBES_SCHEMA,
    MAX_PHYSICAL_SPEED_KMH,
    PROBE_STATUSES,
    RAW_PROBES_SCHEMA,
    REJECT_REASONS,
    REJECTED_PROBES_SCHEMA,
    ProbeStatus,
    RejectReason,
    is_kept_vehicle_id,
)
from taxi_assets.service_area import ServiceArea
from taxi_assets.trips import TripRules

RAW_COLUMNS = list(RAW_PROBES_SCHEMA)
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
_ROW = "_row"  # arrival order of a ping in the raw frame
_US_PER_HOUR = 3_600_000_000
_US_PER_MINUTE = 60_000_000


StatusMapping = tuple[tuple[str, str], ...]


def status_word(text: pl.Expr) -> pl.Expr:
    """How a delivered status is looked up: case-insensitive, surrounding spaces ignored."""
    # Spaces only, as SQL's TRIM(x, ' ') in the BigQuery path.
    return text.str.strip_chars(" ").str.to_lowercase()


def normalised_status_mapping(mapping: Mapping[str, str] | StatusMapping) -> StatusMapping:
    """The effective mapping from the feed's words to PROBE_STATUSES: every probe status
    maps to itself unless ``mapping`` says otherwise; keys lower-cased and trimmed.

    Raises ValueError naming the entry at fault (an unknown target, an empty word, or two
    spellings of one word mapped to different statuses)."""
    pairs = mapping.items() if isinstance(mapping, Mapping) else mapping
    effective = {status: status for status in PROBE_STATUSES}
    given: dict[str, tuple[str, str]] = {}
    for word, status in pairs:
        key = str(word).strip(" ").lower()
        if not key:
            raise ValueError(f"status_mapping: the word {word!r} is empty once trimmed")
        if status not in PROBE_STATUSES:
            raise ValueError(
                f"status_mapping: {word!r} maps to {status!r}, not one of {list(PROBE_STATUSES)}"
            )
        if key in given and given[key][1] != status:
            raise ValueError(
                f"status_mapping: {given[key][0]!r} and {word!r} are the same word "
                f"(case-insensitive) but map to {given[key][1]!r} and {status!r}"
            )
        given[key] = (str(word), status)
        effective[key] = status
    return tuple(sorted(effective.items()))


# A taxi's speedometer or GPS speed never reads this high on Tokyo's roads (expressway limits
# are 80-120 km/h); real feeds carry ~0.15% pings with absurd speeds, which are quarantined
# as invalid_value rather than kept. Must not exceed the contract's MAX_PHYSICAL_SPEED_KMH.
DEFAULT_MAX_SPEED_KMH = 200.0


@dataclass(frozen=True)
class CleaningRules:
    """Thresholds of the cleaning rules, and the trip rules applied to what they keep."""

    # A taxi in central Tokyo never exceeds ~120 km/h, even on the Shuto expressway.
    max_implied_speed_kmh: float = 150.0
    # An 'occupied' run longer than this is a meter flag stuck on, not a fare.
    max_occupied_minutes: float = 180.0
    # A dispatched taxi reaches its passenger well within an hour.
    max_dispatched_minutes: float = 60.0
    # A GPS step (a run of displaced pings between two impossible moves) lasts at most
    # this long; longer displaced stretches are left to the single-ping rule.
    max_jump_run_minutes: float = 10.0
    # A ping too fast on one side is a spike when reaching it and leaving it is this many
    # times the direct way between its neighbours (a real detour at taxi speed never
    # implies more than max_implied_speed_kmh).
    spike_detour_ratio: float = 3.0
    # A vehicle with at least this share of its pings outside the day has a skewed clock
    # (a device stamping Tokyo wall time as UTC puts 9 of its 24 hours in the next day).
    clock_skew_min_share: float = 0.05
    # A reported speed above this is a broken reading (invalid_value), see above.
    max_speed_kmh: float = DEFAULT_MAX_SPEED_KMH
    # The feed's status words (case-insensitive) to probe statuses; a value that maps to
    # none is quarantined as unknown_status. A dict is accepted and normalised.
    status_mapping: StatusMapping | Mapping[str, str] = normalised_status_mapping({})
    # How trips are read from the clean pings (meter debouncing, observed pickups): carried
    # here so that every engine of the data path gets the same rules in one object.
    trips: TripRules = TripRules()

    def __post_init__(self) -> None:
        for name in (
            "max_implied_speed_kmh",
            "max_speed_kmh",
            "max_occupied_minutes",
            "max_dispatched_minutes",
            "max_jump_run_minutes",
            "spike_detour_ratio",
        ):
            value = getattr(self, name)
            if not value > 0 or value == float("inf"):
                raise ValueError(f"CleaningRules.{name} must be a positive number, got {value!r}")
        if self.max_speed_kmh > MAX_PHYSICAL_SPEED_KMH:
            raise ValueError(
                f"CleaningRules.max_speed_kmh={self.max_speed_kmh!r} is above the CleanProbes "
                f"contract's bound of {MAX_PHYSICAL_SPEED_KMH} km/h: cleaning would keep pings "
                "the contract rejects"
            )
        object.__setattr__(self, "status_mapping", normalised_status_mapping(self.status_mapping))
        share = self.clock_skew_min_share
        if not 0 < share <= 1:
            raise ValueError(f"CleaningRules.clock_skew_min_share must be in (0, 1], got {share!r}")


@dataclass(frozen=True)
class CleaningResult:
    """The outcome of cleaning one day of probes."""

    clean: pl.DataFrame  # CLEAN_PROBES_SCHEMA, sorted by (vehicle_id, ts)
    rejected: pl.DataFrame  # REJECTED_PROBES_SCHEMA: raw values + reason, in arrival order
    out_of_order_rows: int  # kept pings that arrived after a later ping of the same vehicle


def haversine_km(lat1: pl.Expr, lon1: pl.Expr, lat2: pl.Expr, lon2: pl.Expr) -> pl.Expr:
    """Great-circle distance in km between two points given in degrees."""
    half_dlat = (lat2 - lat1).radians() / 2
    half_dlon = (lon2 - lon1).radians() / 2
    a = half_dlat.sin() ** 2 + lat1.radians().cos() * lat2.radians().cos() * half_dlon.sin() ** 2
    return 2 * EARTH_RADIUS_KM * a.sqrt().arcsin()


def implied_speed_kmh(offset_a: int, offset_b: int) -> pl.Expr:
    """Speed needed to travel from the ping ``offset_a`` rows away to the one ``offset_b`` away.

    Offsets are relative to the current row of a frame sorted by (vehicle_id, ts); the
    caller masks rows whose neighbours belong to another vehicle.
    """

    def at(name: str, offset: int) -> pl.Expr:
        return pl.col(name).shift(-offset) if offset else pl.col(name)

    km = haversine_km(
        at("lat", offset_a), at("lon", offset_a), at("lat", offset_b), at("lon", offset_b)
    )
    hours = (at("ts", offset_b) - at("ts", offset_a)).dt.total_microseconds() / _US_PER_HOUR
    return km / hours


def _same_vehicle(offset: int) -> pl.Expr:
    """True where the row ``offset`` rows away (negative = earlier) is the same vehicle."""
    return (pl.col("vehicle_id") == pl.col("vehicle_id").shift(-offset)).fill_null(False)


def as_raw_lazy(raw: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return raw.lazy().select(pl.col(c).cast(t) for c, t in RAW_PROBES_SCHEMA.items())


def _reason(*rules: tuple[pl.Expr, str]) -> pl.Expr:
    """The first reason whose condition holds (null when none does)."""
    # Enum literals: a chain of text literals builds a text column first, 30x slower.
    condition, reason = rules[0]
    chain = pl.when(condition).then(pl.lit(reason, dtype=RejectReason))
    for condition, reason in rules[1:]:
        chain = chain.when(condition).then(pl.lit(reason, dtype=RejectReason))
    return chain.otherwise(pl.lit(None, dtype=RejectReason)).alias("reason")


def _row_rules(
    area: ServiceArea,
    rules: CleaningRules,
    duplicate: pl.Expr,
    unclean_ids: pl.Series,
    mapped_status: pl.Expr,
) -> pl.Expr:
    """Reasons a ping can be judged on by itself (``duplicate`` marks later exact copies).

    Everything the CleanProbes contract would refuse in a single row is caught here, so a
    kept row always satisfies it: a null anywhere is missing_value; a value out of its
    bounds (or an id that is not a clean id) is invalid_value."""
    missing = pl.any_horizontal(pl.col(c).is_null() for c in RAW_COLUMNS)
    lat, lon, speed, heading = (pl.col(c) for c in ("lat", "lon", "speed_kmh", "heading"))
    invalid = (
        ~lat.is_finite()
        | ~lon.is_finite()
        | (speed < 0)
        | ~speed.is_finite()
        | (speed > rules.max_speed_kmh)
        | (heading < 0)
        | (heading > 360)
        | heading.is_nan()
        | pl.col("vehicle_id").is_in(unclean_ids.implode())
    ).fill_null(False)
    zero = (lat == 0) & (lon == 0)
    return _reason(
        (duplicate, "duplicate"),
        (missing, "missing_value"),
        (invalid, "invalid_value"),
        (mapped_status.is_null(), "unknown_status"),
        (zero, "zero_coordinates"),
        (~area.contains(lat, lon), "outside_service_area"),
    )


def _codes(values: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(distinct non-null values sorted, their UInt32 codes 0..n-1)."""
    distinct = values.unique().drop_nulls().sort()
    return distinct, pl.int_range(distinct.len(), dtype=pl.UInt32, eager=True)


def _status_of_code(words: pl.Series, codes: pl.Series, rules: CleaningRules) -> pl.Expr:
    """The probe status of each row's delivered status code (null where the mapping has
    no word for it): the mapping is applied once per distinct word, not per ping."""
    mapping = dict(rules.status_mapping)
    looked_up = words.to_frame().select(status_word(pl.col(words.name))).to_series()
    targets = pl.Series([mapping.get(word) for word in looked_up.to_list()], dtype=ProbeStatus)
    return pl.col("status").replace_strict(codes, targets, default=None, return_dtype=ProbeStatus)


def _unclean(ids: pl.Series) -> pl.Series:
    """A mask over distinct vehicle ids: True where an id is a placeholder or breaks the
    clean-id rule (sources refuse those; a frame built otherwise may still carry them)."""
    return ~ids.to_frame().select(is_kept_vehicle_id(pl.col(ids.name))).to_series()


_SPEED_IN = "_speed_in_kmh"  # implied speed from the previous ping of the same vehicle
_KM_IN = "_km_in"  # distance from the previous ping of the same vehicle


def _with_speed_in(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the distance and implied speed into each ping, once per pass (haversine is the
    cost); the speed is ``implied_speed_kmh(-1, 0)`` operation for operation."""
    km = haversine_km(pl.col("lat").shift(1), pl.col("lon").shift(1), pl.col("lat"), pl.col("lon"))
    hours = (pl.col("ts") - pl.col("ts").shift(1)).dt.total_microseconds() / _US_PER_HOUR
    same = _same_vehicle(-1)
    return frame.with_columns(pl.when(same).then(km).alias(_KM_IN)).with_columns(
        pl.when(same).then(pl.col(_KM_IN) / hours).alias(_SPEED_IN)
    )


_STALE = "_stale_speed_in"  # the ping before this one was removed since _with_speed_in


def _refresh_speed_in(frame: pl.DataFrame) -> pl.DataFrame:
    """:func:`_with_speed_in` of a frame that had it before some rows were removed: only
    the rows after a removed row (``_STALE``) get a new previous ping, so only their
    distance and speed are computed again (the same operations, pair by pair)."""
    rows = frame[_STALE].arg_true()
    if rows.len() == 0:
        return frame
    inner = rows.filter(rows > 0)  # a first row has no previous ping: null, as in a pass
    before = inner - 1
    pairs = _skip_speed_kmh(frame, before, inner)
    same = frame["vehicle_id"].gather(before) == frame["vehicle_id"].gather(inner)
    nulls = pl.Series([None] * (rows.len() - inner.len()), dtype=pl.Float64)
    refreshed = {}
    for name, values in ((_KM_IN, pairs["km"]), (_SPEED_IN, pairs["speed"])):
        values = pl.select(pl.when(same).then(values)).to_series()
        column = frame[name].clone().scatter(inner, values)
        refreshed[name] = column.scatter(rows.filter(rows == 0), nulls) if nulls.len() else column
    return frame.with_columns(**refreshed)


def _later_copies(keyed: pl.DataFrame) -> pl.Series:
    """A mask over ``keyed``'s rows: exact copies of an earlier ping (the first copy is kept).

    Copies share vehicle and time, so only rows whose (vehicle_id, ts) repeats, a small
    share, are compared on every column; sorting the whole frame by every column to make
    copies adjacent costs more than the rest of the row rules together.
    """
    same_key = (
        pl.col("vehicle_id").eq_missing(pl.col("vehicle_id").shift(1))
        & pl.col("ts").eq_missing(pl.col("ts").shift(1))
    ).fill_null(False)
    shared = keyed.with_row_index("_position").filter(
        same_key | same_key.shift(-1).fill_null(False)
    )
    # Within the (vehicle_id, ts, arrival) order the first of identical rows is the earliest.
    later = shared.filter(~pl.struct(RAW_COLUMNS).is_first_distinct())["_position"]
    return _mark(keyed.height, later)


def _skip_speed_kmh(frame: pl.DataFrame, before: pl.Series, after: pl.Series) -> pl.DataFrame:
    """Distance and implied speed from row ``before`` to row ``after``, pair by pair."""
    ends = pl.DataFrame(
        {
            "lat_a": frame["lat"].gather(before),
            "lon_a": frame["lon"].gather(before),
            "ts_a": frame["ts"].gather(before),
            "lat_b": frame["lat"].gather(after),
            "lon_b": frame["lon"].gather(after),
            "ts_b": frame["ts"].gather(after),
        }
    )
    km = haversine_km(pl.col("lat_a"), pl.col("lon_a"), pl.col("lat_b"), pl.col("lon_b"))
    hours = (pl.col("ts_b") - pl.col("ts_a")).dt.total_microseconds() / _US_PER_HOUR
    return ends.select(km=km, speed=km / hours)


def _mark(n: int, rows: pl.Series) -> pl.Series:
    """A mask of ``n`` rows, True at the positions ``rows``."""
    mask = np.zeros(n, dtype=bool)
    mask[rows.to_numpy()] = True
    return pl.Series(mask, dtype=pl.Boolean)


def _jump_flags(
    frame: pl.DataFrame, limit: float, detour_ratio: float, max_step_minutes: float | None
) -> pl.Series:
    """Which pings of a pass are GPS jumps (``frame`` has :func:`_with_speed_in`).

    A one-ping spike is too fast both in and out (or on its only side at a track's end),
    or too fast on one side and far off the plausible track its neighbours make: at long
    ping intervals a 2 km spike is 480 km/h both ways at 15 s pings, but only 120 km/h on
    one side at 60 s. Between two neighbours, the ping whose detour (in + out) is many
    times the direct way is the wrong one.

    With ``max_step_minutes``, runs of displaced pings too (a GPS step, or a two-ping
    spike): fast moves cut each track into segments, and a segment entered and left by a
    fast move, lasting at most that long, is displaced when skipping it is plausible. A
    step at either end of a track has one fast edge only and is left alone: which side is
    wrong cannot be told.

    The costly distances are only computed around the rare fast moves.
    """
    if frame.height == 0:
        return pl.Series("_jump", [], dtype=pl.Boolean)
    speed_in = pl.col(_SPEED_IN)
    edges = frame.select(
        has_prev=_same_vehicle(-1),
        has_next=_same_vehicle(1),
        fast_in=(speed_in > limit).fill_null(False),
        # The next ping's speed-in is this ping's speed-out (null when another vehicle's).
        fast_out=(speed_in.shift(-1) > limit).fill_null(False),
        km_out=pl.col(_KM_IN).shift(-1),
    ).with_row_index("row")
    has_prev, has_next = pl.col("has_prev"), pl.col("has_next")
    fast_in, fast_out = pl.col("fast_in"), pl.col("fast_out")
    spike = (fast_in & fast_out) | (~has_prev & fast_out) | (~has_next & fast_in)
    jump = edges.select(spike).to_series()

    off_track_candidates = edges.filter(has_prev & has_next & (fast_in | fast_out) & ~spike)
    if off_track_candidates.height:
        rows = off_track_candidates["row"]
        skip = _skip_speed_kmh(frame, rows - 1, rows + 1)
        detour = frame[_KM_IN].gather(rows) + off_track_candidates["km_out"]
        off_track = (detour > detour_ratio * skip["km"]) & (skip["speed"] <= limit)
        jump = jump | _mark(frame.height, rows.filter(off_track.fill_null(False)))

    if max_step_minutes is not None:
        last_row = edges.select(
            pl.when(~has_next | fast_in.shift(-1).fill_null(True))
            .then(pl.col("row"))
            .backward_fill()
        ).to_series()
        # Segments entered by a fast move start there (fast_in implies a previous ping).
        starts = edges.filter(fast_in)["row"]
        ends = last_row.gather(starts)
        closed = edges["has_next"].gather(ends)
        span_us = (frame["ts"].gather(ends) - frame["ts"].gather(starts)).dt.total_microseconds()
        skip = _skip_speed_kmh(frame, starts - 1, (ends + 1).clip(0, frame.height - 1))
        is_step = (
            closed & (span_us <= max_step_minutes * _US_PER_MINUTE) & (skip["speed"] <= limit)
        ).fill_null(False)
        step_rows = pl.int_ranges(starts.filter(is_step), ends.filter(is_step) + 1, eager=True)
        jump = jump | _mark(frame.height, step_rows.explode().drop_nulls())
    return jump.alias("_jump")


def _in_vehicle_time_order(keyed: pl.DataFrame, vehicles: int) -> pl.DataFrame:
    """``keyed`` (vehicle codes 0..vehicles-1, rows in arrival order) sorted by
    (vehicle_id, ts, _ROW), nulls last.

    A sort on those three columns costs more than all the rules after it; one Int64 key
    (vehicle code x the day's time span + time offset, nulls after every value) sorted
    stably gives the same order, ties left in arrival order, several times faster. A frame
    whose time span is too wide for the key (absurd stamps) takes the three-column sort.
    """
    us = pl.col("ts").dt.epoch("us")
    first, last = keyed.select(first=us.min(), last=us.max()).row(0)
    span = 0 if first is None else last - first + 1  # offsets 0..span-1, null ts: span
    if (vehicles + 1) * (span + 1) >= 2**62:
        return keyed.sort(["vehicle_id", "ts", _ROW], nulls_last=True)
    code = pl.col("vehicle_id").cast(pl.Int64).fill_null(vehicles)
    key = code * (span + 1) + (us - (first or 0)).fill_null(span)
    return keyed.sort(key, maintain_order=True)


def _split(frame: pl.DataFrame, reason: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rejected rows with their reason, rows still alive) for one stage of rules."""
    judged = frame.with_columns(reason)
    return judged.filter(pl.col("reason").is_not_null()), judged.filter(
        pl.col("reason").is_null()
    ).drop("reason")


def clean_probes(
    raw: pl.DataFrame | pl.LazyFrame,
    day: date,
    area: ServiceArea,
    rules: CleaningRules = CleaningRules(),  # noqa: B008 - frozen, so a shared default is safe
) -> CleaningResult:
    """Split one Tokyo day of raw pings into clean probes and rejected pings with reasons.

    Every raw row ends in exactly one of the two outputs (rows in = clean + rejected).
    """
    result, _ = clean_delivered(as_raw_lazy(raw).collect(), day, area, rules)
    return result


def clean_delivered(
    delivered: pl.DataFrame, day: date, area: ServiceArea, rules: CleaningRules
) -> tuple[CleaningResult, pl.Series]:
    """:func:`clean_probes` of a frame already in RAW_PROBES_SCHEMA, and the row numbers
    (in ``delivered``) of the rejected rows, in the order of ``result.rejected``."""
    codes = DayCodes.of(delivered["vehicle_id"], delivered["status"])
    return clean_encoded(delivered.with_columns(codes.encode()), codes, day, area, rules)


@dataclass(frozen=True)
class DayCodes:
    """Per-day integer codes of the text columns, in the text's sort order.

    The rules sort, group and compare neighbours on ``vehicle_id``, and carry every column
    through each stage: on text that costs 2-3x more than on integers, so they see codes,
    and the outputs are rebuilt from the codes (one code per distinct text: lossless)."""

    ids: pl.Series  # distinct non-null vehicle ids, sorted; a vehicle's code is its position
    words: pl.Series  # distinct non-null status words, sorted

    @classmethod
    def of(cls, vehicle_ids: pl.Series, statuses: pl.Series) -> DayCodes:
        return cls(_codes(vehicle_ids)[0], _codes(statuses)[0])

    def encode(self) -> list[pl.Expr]:
        """vehicle_id and status as UInt32 codes (null stays null, as would a text the
        codes lack): an enum of the sorted texts is the position, as a lookup twice slower."""
        return [
            pl.col(name).cast(pl.Enum(values), strict=False).to_physical().cast(pl.UInt32)
            for name, values in (("vehicle_id", self.ids), ("status", self.words))
        ]

    def status_is(self, words: Sequence[str]) -> pl.Expr:
        """Whether a coded ``status`` is one of ``words``, matched as the status mapping
        matches them (:func:`status_word`)."""
        matched = self.words.to_frame().select(status_word(pl.col(self.words.name)).is_in(words))
        codes = _codes_of(self.words).filter(matched.to_series())
        return pl.col("status").is_in(codes.implode()).fill_null(False)


def _codes_of(values: pl.Series) -> pl.Series:
    return pl.int_range(values.len(), dtype=pl.UInt32, eager=True)


def clean_encoded(
    coded: pl.DataFrame, codes: DayCodes, day: date, area: ServiceArea, rules: CleaningRules
) -> tuple[CleaningResult, pl.Series]:
    """:func:`clean_delivered` of a frame whose vehicle_id and status are ``codes``
    (rows in arrival order): the codes may cover more vehicles than the frame holds, so a
    caller cleaning a day in shards of vehicles encodes the day once."""
    ids, words = codes.ids, codes.words
    keyed = coded.with_row_index(_ROW)
    delivered_status = keyed["status"]  # by arrival: the quarantine keeps the delivered word
    alive, rejected_parts = _judge(keyed, codes, day, area, rules)

    # A kept ping arrived late if some later-stamped ping of its vehicle arrived before it.
    later_min_row = pl.col(_ROW).reverse().cum_min().reverse().shift(-1).over("vehicle_id")
    out_of_order_rows = alive.select((pl.col(_ROW) > later_min_row).sum()).item()

    clean = _clean_of(alive, area)
    clean = clean.with_columns(ids.gather(clean["vehicle_id"]).alias("vehicle_id"))
    # The quarantine keeps each row exactly as delivered, in arrival order.
    kept_as_delivered = [_ROW, *(c for c in RAW_COLUMNS if c != "status"), "reason"]
    rejected = pl.concat([part.select(kept_as_delivered) for part in rejected_parts]).sort(_ROW)
    rows = rejected[_ROW]
    rejected_all = rejected.select(
        ids.gather(rejected["vehicle_id"]).alias("vehicle_id"),
        *(c for c in RAW_COLUMNS if c not in ("vehicle_id", "status")),
        words.gather(delivered_status.gather(rows)).alias("status"),
        "reason",
    )
    result = CleaningResult(
        clean=clean.cast(dict(CLEAN_PROBES_SCHEMA)),
        rejected=rejected_all.cast(dict(REJECTED_PROBES_SCHEMA)),
        out_of_order_rows=int(out_of_order_rows or 0),
    )
    return result, rows


def encode_probes(raw: pl.DataFrame | pl.LazyFrame) -> tuple[pl.DataFrame, DayCodes]:
    """Raw pings in RAW_PROBES_SCHEMA with vehicle_id and status as the codes of
    :class:`DayCodes`, and the codes: what :func:`clean_probe_codes` cleans. Codes sort and
    compare as the texts do, so a caller may select rows by vehicle on them first."""
    delivered = as_raw_lazy(raw).collect()
    codes = DayCodes.of(delivered["vehicle_id"], delivered["status"])
    return delivered.with_columns(codes.encode()), codes


def clean_probe_codes(
    coded: pl.DataFrame, codes: DayCodes, day: date, area: ServiceArea, rules: CleaningRules
) -> pl.DataFrame:
    """The clean probes of :func:`clean_probes` for pings coded by :func:`encode_probes`
    (rows in arrival order; the codes may cover more vehicles than the rows hold): the same
    rows in the same order, ``vehicle_id`` left as the code (``codes.ids`` gathers the
    text), and neither the rejected pings nor the out-of-order count.

    For a caller that only counts (the live tick's demand): codes sort and compare as the
    ids do, and skipping the quarantine and the text saves a sixth of the cleaning.
    """
    alive, _ = _judge(coded.with_row_index(_ROW), codes, day, area, rules)
    clean = _clean_of(alive, area)
    schema = {name: dtype for name, dtype in CLEAN_PROBES_SCHEMA.items() if name != "vehicle_id"}
    return clean.cast(schema)


def _clean_of(alive: pl.DataFrame, area: ServiceArea) -> pl.DataFrame:
    """The kept pings' raw columns and cell (vehicle_id still coded)."""
    clean = alive.select(RAW_COLUMNS)
    return clean.with_columns(area.cell_codes(clean["lat"], clean["lon"]))


def _judge(
    keyed: pl.DataFrame, codes: DayCodes, day: date, area: ServiceArea, rules: CleaningRules
) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """Every rule over ``keyed`` (codes, ``_ROW`` the arrival order): the kept pings sorted
    by (vehicle_id, ts), their status the probe status, and the rejected rows by stage."""
    day_start, day_end = day_window_utc(day)
    ts = pl.col("ts")
    outside_day = ~((ts >= day_start) & (ts < day_end))

    ids, words = codes.ids, codes.words
    id_codes, word_codes = _codes_of(ids), _codes_of(words)
    keyed = _in_vehicle_time_order(keyed, ids.len())
    mapped_status = _status_of_code(words, word_codes, rules)
    staged = keyed.with_columns(
        _row_rules(
            area,
            rules,
            pl.lit(_later_copies(keyed)),
            id_codes.filter(_unclean(ids)),
            mapped_status,
        )
    )
    del keyed
    rejected_parts = [staged.filter(pl.col("reason").is_not_null())]
    # From here on `status` is the probe status (the quarantine takes the delivered text).
    alive = staged.filter(pl.col("reason").is_null()).drop("reason").with_columns(mapped_status)
    del staged

    # Share among the pings still alive: rows already rejected say nothing about the clock.
    skew_share = outside_day.mean().over("vehicle_id")
    same_key = (pl.col("vehicle_id") == pl.col("vehicle_id").shift(1)) & (ts == ts.shift(1))
    conflicting = same_key.fill_null(False) | same_key.shift(-1).fill_null(False)
    rejected, alive = _split(
        alive,
        _reason(
            (skew_share >= rules.clock_skew_min_share, "clock_skew"),
            (outside_day, "outside_day"),
            (conflicting, "conflicting_duplicate"),
        ),
    )
    rejected_parts.append(rejected)

    # Two passes: the second judges pings against the neighbours the first one kept, and
    # also catches runs of displaced pings (a single-ping rule cannot see those).
    limit = rules.max_implied_speed_kmh
    detour = rules.spike_detour_ratio
    # The second pass keeps the first one's speeds but where a jump was removed before a
    # ping (haversine over every ping is most of a pass).
    alive = _with_speed_in(alive)
    for max_step_minutes in (None, rules.max_jump_run_minutes):
        alive = _refresh_speed_in(alive) if _STALE in alive.columns else alive
        jump = _jump_flags(alive, limit, detour, max_step_minutes)
        alive = alive.with_columns(jump, jump.shift(1, fill_value=False).alias(_STALE))
        rejected, alive = _split(alive, _reason((pl.col("_jump"), "gps_jump")))
        rejected_parts.append(rejected)

    status = pl.col("status")
    run_start = ~_same_vehicle(-1) | (status != status.shift(1)).fill_null(True)
    run_end = ~_same_vehicle(1) | (status != status.shift(-1)).fill_null(True)
    run_minutes = (
        pl.when(run_end).then(ts).backward_fill() - pl.when(run_start).then(ts).forward_fill()
    ).dt.total_microseconds() / _US_PER_MINUTE
    stuck = ((status == "occupied") & (run_minutes > rules.max_occupied_minutes)) | (
        (status == "dispatched") & (run_minutes > rules.max_dispatched_minutes)
    )
    rejected, alive = _split(alive, _reason((stuck, "stuck_status")))
    rejected_parts.append(rejected)
    return alive, rejected_parts


def rejected_counts(rejected: pl.DataFrame) -> dict[str, int]:
    """Rejected pings per reason, every reason of REJECT_REASONS present (zeros included)."""
    counts = dict(rejected.get_column("reason").cast(pl.String).value_counts().iter_rows())
    return {reason: int(counts.get(reason, 0)) for reason in REJECT_REASONS}
