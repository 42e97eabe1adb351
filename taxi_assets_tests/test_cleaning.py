"""The cleaning rules: each fault is caught with its reason, and no row is ever lost."""

from __future__ import annotations

import math
from datetime import date, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taxi_assets.calendar import day_window_utc
from taxi_assets.checks import validate_contract
from taxi_assets.cleaning import (
    CleaningRules,
    clean_probe_codes,
    clean_probes,
    encode_probes,
    rejected_counts,
)
from taxi_assets.contracts import CleanProbes, RejectedProbes
from taxi_assets.frames import (
    CLEAN_PROBES_SCHEMA,
    PROBE_STATUSES,
    REJECT_REASONS,
    REJECTED_PROBES_SCHEMA,
)
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets_tests.probe_builders import TOKYO_STATION, at_minute, raw_probes, track

DAY = date(2025, 6, 2)
AREA = CENTRAL_TOKYO


def clean(rows: list[tuple], rules: CleaningRules = CleaningRules()):  # noqa: B008
    result = clean_probes(raw_probes(rows), DAY, AREA, rules)
    assert result.clean.height + result.rejected.height == len(rows)
    assert result.clean.schema == CLEAN_PROBES_SCHEMA
    assert result.rejected.schema == REJECTED_PROBES_SCHEMA
    return result


def reasons(result) -> list[tuple[int | str | None, str]]:
    """(vehicle_id, reason) of every rejected row, in arrival order (numeric ids as int)."""
    return [
        (int(v) if v is not None and v.lstrip("-").isdigit() else v, r)
        for v, r in result.rejected.select("vehicle_id", "reason").iter_rows()
    ]


def good(vehicle_id: int | str = 1, n: int = 5, **kwargs) -> list[tuple]:
    return track(vehicle_id, DAY, ["vacant"] * n, **kwargs)


def test_clean_day_keeps_everything_sorted_with_cells() -> None:
    rows = good(1) + good(2, origin=(35.65, 139.70))
    result = clean(list(reversed(rows)))
    assert result.rejected.height == 0
    assert result.clean.height == len(rows)
    assert result.clean.select("vehicle_id", "ts").is_duplicated().sum() == 0
    assert result.clean.equals(result.clean.sort("vehicle_id", "ts"))
    assert result.clean["cell"].is_in(AREA.cells()["cell"].implode()).all()
    # Every ping of vehicle 1 except the last arrived after a later one.
    assert result.out_of_order_rows == 8


def test_exact_duplicate_keeps_the_first_copy() -> None:
    rows = good()
    result = clean([*rows, rows[2], rows[2]])
    assert reasons(result) == [(1, "duplicate"), (1, "duplicate")]
    assert result.clean.height == len(rows)


def test_missing_values() -> None:
    rows = good()
    vid, ts, lat, lon, speed, heading, status = rows[0]
    faulty = [
        (None, ts, lat, lon, speed, heading, status),
        (9, None, lat, lon, speed, heading, status),
        (9, ts, None, lon, speed, heading, status),
        (9, ts, lat, None, speed, heading, status),
        (9, ts, lat, lon, speed, heading, None),
        (None, None, None, None, None, None, None),
    ]
    result = clean(rows + faulty)
    assert [r for _, r in reasons(result)] == ["missing_value"] * len(faulty)
    assert result.clean.height == len(rows)


def test_null_speed_or_heading_is_missing_as_the_contract_requires_both() -> None:
    rows = good(n=4)
    rows[1] = (*rows[1][:4], None, 90.0, rows[1][6])
    rows[2] = (*rows[2][:4], 20.0, None, rows[2][6])
    assert reasons(clean(rows)) == [(1, "missing_value")] * 2


def test_a_speed_above_the_configured_maximum_is_invalid() -> None:
    rows = good(n=4)
    rows[1] = (*rows[1][:4], 301.0)
    rows[2] = (*rows[2][:4], 120.0)
    assert reasons(clean(rows)) == [(1, "invalid_value")]
    assert reasons(clean(rows, CleaningRules(max_speed_kmh=100.0))) == [(1, "invalid_value")] * 2


def test_max_speed_cannot_exceed_the_contract_bound() -> None:
    with pytest.raises(ValueError, match="max_speed_kmh=301.0 is above the CleanProbes"):
        CleaningRules(max_speed_kmh=301.0)


def test_text_ids_are_kept_as_delivered_and_sorted_as_text() -> None:
    rows = good("T-0043", n=3) + good("abboip", n=2) + good("10", n=2) + good("9", n=2)
    result = clean(list(reversed(rows)))
    assert result.rejected.height == 0
    assert result.clean["vehicle_id"].unique(maintain_order=True).to_list() == [
        "10",
        "9",
        "T-0043",
        "abboip",
    ]


def test_placeholder_and_unclean_ids_are_invalid() -> None:
    rows = good("ok", n=2)
    _, ts, lat, lon, *_ = rows[0]
    faulty = [(vid, ts, lat, lon) for vid in ("-1", " padded", "", "x" * 65, "a\x00b")]
    assert reasons(clean(rows + faulty)) == [
        (-1, "invalid_value"),
        (" padded", "invalid_value"),
        ("", "invalid_value"),
        ("x" * 65, "invalid_value"),
        ("a\x00b", "invalid_value"),
    ]


def test_statuses_are_mapped_case_insensitively_and_unknown_words_quarantined() -> None:
    statuses = ["VACANT", " Vacant ", "hired", "occupied", "Off_Duty", "vacant", "parked"]
    rows = track(1, DAY, statuses)
    result = clean(rows)
    assert reasons(result) == [(1, "unknown_status"), (1, "unknown_status")]
    # The quarantine keeps the feed's word; the clean probes carry the probe status.
    assert result.rejected["status"].to_list() == ["hired", "parked"]
    assert result.clean["status"].cast(pl.String).to_list() == [
        "vacant",
        "vacant",
        "occupied",
        "off_duty",
        "vacant",
    ]


def test_a_status_mapping_reads_an_occupancy_flag() -> None:
    rows = track(1, DAY, ["0", "1", "1", "0", "2"])
    rules = CleaningRules(status_mapping={"0": "vacant", "1": "occupied", "HIRED": "occupied"})
    result = clean(rows, rules)
    assert reasons(result) == [(1, "unknown_status")]
    assert result.clean["status"].cast(pl.String).to_list() == [
        "vacant",
        "occupied",
        "occupied",
        "vacant",
    ]
    # Canonical words still map to themselves; keys are case-insensitive.
    assert dict(rules.status_mapping)["hired"] == "occupied"
    assert dict(rules.status_mapping)["vacant"] == "vacant"


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"0": "free"}, "'0' maps to 'free', not one of"),
        ({"  ": "vacant"}, "empty once trimmed"),
        ({"Hired": "occupied", "HIRED": "vacant"}, "are the same word"),
    ],
)
def test_a_bad_status_mapping_is_refused_naming_the_entry(mapping: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CleaningRules(status_mapping=mapping)


@pytest.mark.parametrize(
    "patch",
    [
        {2: math.nan},
        {3: math.inf},
        {2: -math.inf},
        {4: -1.0},
        {4: math.nan},
        {4: math.inf},
        {5: 361.0},
        {5: -0.5},
        {5: math.nan},
    ],
)
def test_invalid_values(patch: dict[int, float]) -> None:
    rows = good()
    faulty = list(rows[2])
    for index, value in patch.items():
        faulty[index] = value
    rows[2] = tuple(faulty)
    result = clean(rows)
    assert reasons(result) == [(1, "invalid_value")]


def test_heading_bounds_are_inclusive() -> None:
    rows = good(n=3)
    rows[0] = (*rows[0][:5], 0.0, rows[0][6])
    rows[1] = (*rows[1][:5], 360.0, rows[1][6])
    assert clean(rows).rejected.height == 0


def test_zero_coordinates_and_outside_area() -> None:
    rows = good(n=6)
    rows[1] = (1, rows[1][1], 0.0, 0.0)
    rows[3] = (1, rows[3][1], 35.0, 135.0)  # Osaka-ish: Japan, but not our area
    result = clean(rows)
    assert reasons(result) == [(1, "zero_coordinates"), (1, "outside_service_area")]


def test_clock_skew_rejects_the_whole_vehicle() -> None:
    start, end = day_window_utc(DAY)
    # Vehicle 2 stamps Tokyo wall time as UTC: its evening pings land in the next day.
    skewed = [(2, (at_minute(DAY, 60 * h)) + timedelta(hours=9), 35.68, 139.76) for h in range(24)]
    rows = good(1) + skewed
    result = clean(rows)
    assert reasons(result) == [(2, "clock_skew")] * 24
    assert result.clean["vehicle_id"].unique().to_list() == ["1"]


def test_a_few_pings_outside_the_day_are_outside_day_not_skew() -> None:
    rows = track(1, DAY, ["vacant"] * 40, start_minute=-2.0)  # 2 of 40 before midnight: 5 %
    rules = CleaningRules(clock_skew_min_share=0.1)
    result = clean(rows, rules)
    assert reasons(result) == [(1, "outside_day"), (1, "outside_day")]
    # At the default 5 % share the same vehicle counts as skewed.
    assert set(r for _, r in reasons(clean(rows))) == {"clock_skew"}


def test_day_window_end_is_exclusive() -> None:
    _, end = day_window_utc(DAY)
    rows = good(1, n=100, step_deg=0.0001) + [(1, end, *TOKYO_STATION)]
    assert reasons(clean(rows)) == [(1, "outside_day")]


def test_conflicting_duplicates_are_all_rejected() -> None:
    rows = good()
    vid, ts, lat, lon, *_ = rows[2]
    conflicting = (vid, ts, lat + 0.0001, lon, 20.0, 45.0, "vacant")
    result = clean([*rows, conflicting, rows[2]])
    assert sorted(r for _, r in reasons(result)) == sorted(
        ["conflicting_duplicate", "conflicting_duplicate", "duplicate"]
    )
    assert result.clean.height == len(rows) - 1


def test_single_gps_jump_middle_first_and_last() -> None:
    rows = good(n=8)
    far = (35.75, 139.65)  # ~13 km away, one minute later: ~800 km/h
    for i in (0, 4, 7):
        rows[i] = (1, rows[i][1], *far)
    result = clean(rows)
    assert reasons(result) == [(1, "gps_jump")] * 3
    assert result.clean.height == 5


def test_two_consecutive_jumped_pings() -> None:
    rows = good(n=8)
    rows[3] = (1, rows[3][1], 35.75, 139.65)
    rows[4] = (1, rows[4][1], 35.7501, 139.6501)
    result = clean(rows)
    assert reasons(result) == [(1, "gps_jump")] * 2
    assert result.clean.height == 6


def test_fast_but_plausible_movement_is_kept() -> None:
    # 0.01 degree per minute is ~1.4 km/min = ~85 km/h: the expressway, not a jump.
    rows = good(n=6, step_deg=0.007)
    assert clean(rows).rejected.height == 0


def test_gps_jump_is_judged_against_kept_neighbours() -> None:
    rows = good(n=6)
    # A duplicate of a far-away ping is rejected as duplicate first, the original as a jump.
    rows[3] = (1, rows[3][1], 35.75, 139.65)
    result = clean([*rows, rows[3]])
    assert sorted(r for _, r in reasons(result)) == ["duplicate", "gps_jump"]


def test_stuck_occupied_and_dispatched_runs() -> None:
    statuses = ["vacant"] * 2 + ["occupied"] * 20 + ["vacant"] * 2 + ["dispatched"] * 8 + ["vacant"]
    rows = track(1, DAY, statuses, every_minutes=10.0, step_deg=0.0005)
    result = clean(rows)
    # 20 occupied pings 10 min apart span 190 min > 180; 8 dispatched span 70 min > 60.
    assert reasons(result) == [(1, "stuck_status")] * 28
    assert result.clean["status"].to_list() == ["vacant"] * 5


def test_runs_within_limits_are_kept() -> None:
    statuses = ["vacant"] + ["occupied"] * 19 + ["dispatched"] * 7 + ["occupied"]
    rows = track(1, DAY, statuses, every_minutes=10.0, step_deg=0.0005)
    assert clean(rows).rejected.height == 0


# Real feeds ping every 10 s to 120 s; the neighbour rules must hold across that range.
INTERVALS_S = (10, 60, 120)


SOUTH_WEST = (35.62, 139.66)  # room to drive north-east, and to jump east, in the area


def cruising(
    interval_s: int, n: int, statuses: list[str] | None = None, kmh: float = 35.0
) -> list[tuple]:
    """A taxi driving north-east at ``kmh`` and pinging every ``interval_s`` seconds."""
    step = kmh / 3600 * interval_s / 111.2 / math.sqrt(2)
    statuses = statuses or ["vacant"] * n
    every = interval_s / 60
    return track(1, DAY, statuses, every_minutes=every, step_deg=step, origin=SOUTH_WEST)


def displaced(rows: list[tuple], indices: range, km_east: float) -> list[tuple]:
    out = list(rows)
    for i in indices:
        vehicle, ts, lat, lon, *rest = out[i]
        out[i] = (vehicle, ts, lat, lon + km_east / 90.4, *rest)
    return out


@pytest.mark.parametrize("interval_s", INTERVALS_S)
@pytest.mark.parametrize("run", [1, 2, 3, 5])
def test_a_gps_step_of_displaced_pings_is_a_jump(interval_s: int, run: int) -> None:
    # 12 km away: thousands of km/h at 10 s, still ~360 km/h at 120 s.
    rows = displaced(cruising(interval_s, 12), range(4, 4 + run), 12.0)
    result = clean(rows)
    assert reasons(result) == [(1, "gps_jump")] * run
    assert result.clean.height == 12 - run


@pytest.mark.parametrize("interval_s", INTERVALS_S)
def test_a_step_longer_than_the_limit_is_not_a_jump(interval_s: int) -> None:
    run = int(10 * 60 / interval_s) + 2  # just over max_jump_run_minutes
    rows = displaced(cruising(interval_s, run + 8), range(4, 4 + run), 12.0)
    assert reasons(clean(rows)).count((1, "gps_jump")) < run


@pytest.mark.parametrize("interval_s", INTERVALS_S)
def test_a_taxi_that_really_moved_keeps_its_pings(interval_s: int) -> None:
    # 100 km/h on the expressway at every interval, and a 2 km move after a 5 minute gap.
    assert clean(cruising(interval_s, 6, kmh=100.0)).rejected.height == 0
    gap = good(n=4) + [
        (1, at_minute(DAY, 68), TOKYO_STATION[0] + 0.02, TOKYO_STATION[1]),
        (1, at_minute(DAY, 69), TOKYO_STATION[0] + 0.0205, TOKYO_STATION[1]),
    ]
    assert clean(gap).rejected.height == 0


@pytest.mark.parametrize("interval_s", INTERVALS_S)
def test_single_spikes_at_every_interval(interval_s: int) -> None:
    rows = displaced(cruising(interval_s, 10), range(3, 4), 15.0)
    rows = displaced(rows, range(7, 8), 12.0)
    assert reasons(clean(rows)) == [(1, "gps_jump")] * 2


@pytest.mark.parametrize("interval_s", (60, 120))
def test_a_small_spike_fast_on_one_side_only_is_a_jump(interval_s: int) -> None:
    # 3 km off at 60 s: ~190 km/h on the way out, ~150 km/h back; the next ping is late,
    # so the way back is plausible. The neighbours' own track is a crawl.
    rows = cruising(interval_s, 10, kmh=10.0)
    rows = displaced(rows, range(4, 5), 3.0 * interval_s / 60)
    vehicle, ts, *rest = rows[5]
    rows[5] = (vehicle, ts + timedelta(seconds=interval_s * 0.6), *rest)
    result = clean(rows)
    assert reasons(result) == [(1, "gps_jump")]
    assert result.rejected["ts"].to_list() == [rows[4][1]]


def test_the_ping_before_a_spike_is_kept() -> None:
    # Fast into the spike, but the ping before it lies on the track: only the spike goes.
    rows = cruising(60, 10, kmh=30.0)
    rows = displaced(rows, range(5, 6), 2.6)
    result = clean(rows)
    assert result.rejected["ts"].to_list() == [rows[5][1]]


@pytest.mark.parametrize("interval_s", INTERVALS_S)
def test_stuck_runs_are_judged_on_time_not_pings(interval_s: int) -> None:
    per_hour = 3600 // interval_s
    stuck = ["vacant"] * 3 + ["occupied"] * (3 * per_hour + 2) + ["vacant"] * 3
    fare = ["vacant"] * 3 + ["occupied"] * (per_hour // 2) + ["vacant"] * 3
    # Parked: hours of pings stay in the area at any interval.
    stuck_rows = cruising(interval_s, 0, stuck, kmh=0.1)
    assert reasons(clean(stuck_rows)) == [(1, "stuck_status")] * (3 * per_hour + 2)
    assert clean(cruising(interval_s, 0, fare, kmh=0.1)).rejected.height == 0


def test_first_reason_wins() -> None:
    rows = good(n=4)
    _, ts, *_ = rows[0]
    _, end = day_window_utc(DAY)
    faulty = [
        (5, ts, 0.0, 0.0, -1.0),  # invalid speed beats zero coordinates
        (6, ts, 0.0, 0.0),  # zero coordinates beat outside area
        (7, end, 35.0, 135.0),  # outside the area beats outside the day
        (8, None, math.nan, 0.0),  # missing beats invalid
    ]
    result = clean(rows + faulty + [faulty[0]])
    assert reasons(result) == [
        (5, "invalid_value"),
        (6, "zero_coordinates"),
        (7, "outside_service_area"),
        (8, "missing_value"),
        (5, "duplicate"),
    ]


def test_rejected_rows_keep_raw_values_and_arrival_order() -> None:
    rows = good(n=3) + [(1, at_minute(DAY, 500), 0.0, 0.0, 12.5, 270.0, "occupied")]
    rejected = clean(rows).rejected
    assert rejected.drop("reason").equals(raw_probes(rows[3:]))


def test_empty_and_lazy_input() -> None:
    result = clean_probes(raw_probes([]).lazy(), DAY, AREA)
    assert result.clean.height == 0 and result.rejected.height == 0
    assert result.out_of_order_rows == 0


def test_rejected_counts_lists_every_reason() -> None:
    rows = good()
    counts = rejected_counts(clean([*rows, rows[0]]).rejected)
    assert list(counts) == list(REJECT_REASONS)
    assert counts["duplicate"] == 1 and sum(counts.values()) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_implied_speed_kmh": 0},
        {"max_occupied_minutes": -1},
        {"max_dispatched_minutes": math.nan},
        {"clock_skew_min_share": 0},
        {"clock_skew_min_share": 1.5},
        {"max_jump_run_minutes": 0},
        {"spike_detour_ratio": -1},
    ],
)
def test_rules_validate(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        CleaningRules(**kwargs)


# --- property: whatever arrives, nothing is lost and what is kept is sound -------------------

_start, _end = day_window_utc(DAY)
_floats = st.one_of(
    st.floats(35.55, 35.8),
    st.sampled_from([0.0, math.nan, math.inf, -math.inf]),
    st.none(),
)
_lons = st.one_of(
    st.floats(139.6, 139.9),
    st.sampled_from([0.0, math.nan, math.inf]),
    st.none(),
)
_row = st.tuples(
    st.one_of(
        st.integers(1, 4),
        st.sampled_from(["T-0043", "abboip", "-1", " padded", "", "a\x00b", "x" * 65]),
        st.none(),
    ),
    st.one_of(
        st.integers(-120, 24 * 60 + 120).map(lambda m: _start + timedelta(minutes=m)),
        st.none(),
    ),
    _floats,
    _lons,
    st.one_of(
        st.floats(-5, 200),
        st.sampled_from([math.nan, math.inf, 300.0, 301.0, 1e6]),
        st.none(),
    ),
    st.one_of(st.floats(-10, 370), st.just(math.nan), st.none()),
    st.one_of(
        st.sampled_from(PROBE_STATUSES),
        st.sampled_from(["VACANT", " Occupied ", "hired", "1", ""]),
        st.none(),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_row, max_size=40), dup_indices=st.lists(st.integers(0, 39), max_size=5))
def test_property_rows_in_equal_rows_out(rows: list[tuple], dup_indices: list[int]) -> None:
    rows = rows + [rows[i] for i in dup_indices if i < len(rows)]
    result = clean_probes(raw_probes(rows), DAY, AREA)
    kept = result.clean
    assert kept.height + result.rejected.height == len(rows)
    assert result.rejected["reason"].null_count() == 0
    # The real contracts: whatever cleaning keeps satisfies CleanProbes, and the quarantine
    # is a valid RejectedProbes, on any hostile frame.
    assert validate_contract(CleanProbes, kept).height == 0, validate_contract(CleanProbes, kept)
    assert validate_contract(RejectedProbes, result.rejected).height == 0
    lat_min, lat_max, lon_min, lon_max = AREA.snapped_bounds
    for row in kept.iter_rows(named=True):
        assert lat_min <= row["lat"] < lat_max and lon_min <= row["lon"] < lon_max
        assert _start <= row["ts"] < _end
        assert row["speed_kmh"] <= CleaningRules().max_speed_kmh
    assert kept.equals(kept.sort("vehicle_id", "ts"))
    # The tick's cleaning: the same rows, ids as codes into the sorted distinct ids.
    coded_raw, codes = encode_probes(raw_probes(rows))
    coded, ids = clean_probe_codes(coded_raw, codes, DAY, AREA, CleaningRules()), codes.ids
    assert coded["vehicle_id"].dtype == pl.UInt32
    assert coded.with_columns(ids.gather(coded["vehicle_id"]).alias("vehicle_id")).equals(kept)
