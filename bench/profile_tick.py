"""Where the forecast tick's live demand spends its time: read + live_cell_demand, by stage.

Only the part of bench_forecast.py's pure tick that reads pings: the landing folder's
window read and ``live_cell_demand`` (clean_probes, derive_trip_events,
aggregate_cell_demand). The tick's day(s) are simulated once into a landing folder under
``--cache-dir`` (parquet, as bench_forecast writes them), so reruns skip the simulation.

Two tables, median / min / max over ``--repeats``:

- the real functions, as the tick calls them (``read_probes_window``, ``live_cell_demand``,
  and encode_probes + clean_probe_codes, derive_trip_events, aggregate_cell_demand on
  their own);
- ``--stages``: the same work cut into sub-stages (the read's two scans; clean_encoded's
  codes, sort, row rules, skew, the two jump passes, stuck status, output), timed by
  :func:`clean_stages`, a copy of clean_probe_codes with clocks between its steps.
  The copy is only a map of the cost: the first table times the real code.

``--reference PATH`` writes the tick's live demand to PATH the first time and, when PATH
exists, checks that this run's equals it (a speed change must not change a count).

    python bench/profile_tick.py [--tick 2026-05-03T18:00:00+09:00 --fleet 1000 --repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
from upath import UPath

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model import AREA, BUCKET_MINUTES, RESULTS_DIR, markdown  # noqa: E402

from taxi_assets import cleaning  # noqa: E402
from taxi_assets.calendar import day_window_utc  # noqa: E402
from taxi_assets.cleaning import (  # noqa: E402
    CleaningRules,
    DayCodes,
    as_raw_lazy,
    clean_probe_codes,
    encode_probes,
)
from taxi_assets.demand import aggregate_cell_demand  # noqa: E402
from taxi_assets.frames import RAW_PROBES_SCHEMA  # noqa: E402
from taxi_assets.serving import (  # noqa: E402
    days_touched,
    live_cell_demand,
    live_look_back,
    live_read_window,
    live_window,
)
from taxi_assets.simulation.landing import write_landing_days  # noqa: E402
from taxi_assets.sources.base import look_back_starts, select_window  # noqa: E402
from taxi_assets.sources.landing import (  # noqa: E402
    LandingFolderProbeSource,
    conform,
    probe_files_for_day,
    scan_by_time,
)
from taxi_assets.sources.simulated import SimulatedProbeSource  # noqa: E402
from taxi_assets.trips import derive_trip_events  # noqa: E402


class Clock:
    """Seconds per named stage of one repeat."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now

    def timed(self, stage: str, work: Callable[[], Any]) -> Any:
        self._last = time.perf_counter()
        result = work()
        self.lap(stage)
        return result


def read_stages(landing_dir: Path, day: date, tick: datetime, rules: CleaningRules, clock: Clock):
    """``LandingFolderProbeSource.read_probes_window`` for parquet files, scan by scan."""
    read_start, read_end = live_read_window(tick, BUCKET_MINUTES)
    clock.lap("-")
    files = probe_files_for_day(UPath(str(landing_dir)), day)
    scans = {path: scan_by_time(path) for path in files}
    clock.lap("read: list files + parquet schema")
    state = pl.concat(
        [
            scan.select("vehicle_id", pl.col("ts").dt.cast_time_unit("us"), "status")
            .filter(pl.col("ts") < read_end)
            .collect()
            for scan in scans.values()
        ],
        how="vertical_relaxed",
    )
    clock.lap("read: scan 1 (ids, ts, status up to the tick)")
    starts = look_back_starts(state, read_start, read_end, live_look_back(rules))
    clock.lap("read: look_back_starts")
    frames = [select_window(scan, read_start, read_end, starts) for path, scan in scans.items()]
    clock.lap("read: scan 2 (window + look-backs)")
    raw = pl.concat(
        [conform(f, RAW_PROBES_SCHEMA, path) for f, path in zip(frames, scans, strict=True)]
    )
    clock.lap("read: conform")
    return raw


def clean_stages(raw: pl.DataFrame, day: date, rules: CleaningRules, clock: Clock):
    """clean_probe_codes (the tick's cleaning) with a clock between its steps: a copy of
    its body and of cleaning._judge's."""
    c = cleaning
    clock.lap("-")
    delivered = as_raw_lazy(raw).collect()
    clock.lap("clean: as_raw_lazy")
    codes = DayCodes.of(delivered["vehicle_id"], delivered["status"])
    keyed = delivered.with_columns(codes.encode()).with_row_index(c._ROW)
    clock.lap("clean: codes (DayCodes + encode)")
    day_start, day_end = day_window_utc(day)
    ts = pl.col("ts")
    outside_day = ~((ts >= day_start) & (ts < day_end))
    ids, words = codes.ids, codes.words
    id_codes, word_codes = c._codes_of(ids), c._codes_of(words)
    keyed = c._in_vehicle_time_order(keyed, ids.len())
    clock.lap("clean: sort")
    mapped_status = c._status_of_code(words, word_codes, rules)
    copies = c._later_copies(keyed)
    clock.lap("clean: later copies")
    staged = keyed.with_columns(
        c._row_rules(
            AREA,
            rules,
            pl.lit(copies),
            id_codes.filter(c._unclean(ids)),
            mapped_status,
        )
    )
    alive = staged.filter(pl.col("reason").is_null()).drop("reason").with_columns(mapped_status)
    clock.lap("clean: row rules")
    skew_share = outside_day.mean().over("vehicle_id")
    same_key = (pl.col("vehicle_id") == pl.col("vehicle_id").shift(1)) & (ts == ts.shift(1))
    conflicting = same_key.fill_null(False) | same_key.shift(-1).fill_null(False)
    _, alive = c._split(
        alive,
        c._reason(
            (skew_share >= rules.clock_skew_min_share, "clock_skew"),
            (outside_day, "outside_day"),
            (conflicting, "conflicting_duplicate"),
        ),
    )
    clock.lap("clean: skew / outside_day / conflicting")
    alive = c._with_speed_in(alive)
    clock.lap("clean: speed in (haversine)")
    for n, max_step in enumerate((None, rules.max_jump_run_minutes), start=1):
        alive = c._refresh_speed_in(alive) if c._STALE in alive.columns else alive
        clock.lap(f"clean: jump pass {n}: speed in refreshed")
        jump = c._jump_flags(alive, rules.max_implied_speed_kmh, rules.spike_detour_ratio, max_step)
        alive = alive.with_columns(jump, jump.shift(1, fill_value=False).alias(c._STALE))
        clock.lap(f"clean: jump pass {n}: flags")
        _, alive = c._split(alive, c._reason((pl.col("_jump"), "gps_jump")))
        clock.lap(f"clean: jump pass {n}: split")
    status = pl.col("status")
    run_start = ~c._same_vehicle(-1) | (status != status.shift(1)).fill_null(True)
    run_end = ~c._same_vehicle(1) | (status != status.shift(-1)).fill_null(True)
    run_minutes = (
        pl.when(run_end).then(ts).backward_fill() - pl.when(run_start).then(ts).forward_fill()
    ).dt.total_microseconds() / c._US_PER_MINUTE
    stuck = ((status == "occupied") & (run_minutes > rules.max_occupied_minutes)) | (
        (status == "dispatched") & (run_minutes > rules.max_dispatched_minutes)
    )
    _, alive = c._split(alive, c._reason((stuck, "stuck_status")))
    clock.lap("clean: stuck status")
    clean = c._clean_of(alive, AREA)
    schema = {k: v for k, v in c.CLEAN_PROBES_SCHEMA.items() if k != "vehicle_id"}
    clean = clean.cast(schema)
    clock.lap("clean: output (cell, cast)")
    return clean


def run_functions(source, days, tick, rules) -> tuple[dict[str, float], pl.DataFrame]:
    clock = Clock()
    read_start, read_end = live_read_window(tick, BUCKET_MINUTES)
    look_back = live_look_back(rules)
    raw = clock.timed(
        "read_probes_window",
        lambda: {
            d: source.read_probes_window(d, read_start, read_end, look_back).probes for d in days
        },
    )
    live = clock.timed(
        "live_cell_demand", lambda: live_cell_demand(raw, tick, AREA, rules, BUCKET_MINUTES)
    )
    # Its parts on their own as live_cell_demand calls them (it also slices the window first).
    start, end = live_window(tick, BUCKET_MINUTES)
    in_window = (pl.col("ts") >= start) & (pl.col("ts") < end)
    for day, frame in raw.items():
        clock.lap("-")
        coded, codes = encode_probes(frame)
        cleaned = clean_probe_codes(coded, codes, day, AREA, rules)
        clock.lap("  encode_probes + clean_probe_codes")
        events = derive_trip_events(cleaned, rules.trips)
        clock.lap("  derive_trip_events")
        aggregate_cell_demand(
            cleaned.filter(in_window), events.filter(in_window), day, AREA, BUCKET_MINUTES
        )
        clock.lap("  aggregate_cell_demand")
    clock.seconds.pop("-", None)
    clock.seconds["read + live_cell_demand"] = (
        clock.seconds["read_probes_window"] + clock.seconds["live_cell_demand"]
    )
    clock.seconds["pings read"] = float(sum(f.height for f in raw.values()))
    return clock.seconds, live


def run_stages(landing_dir: Path, days, tick, rules) -> dict[str, float]:
    clock = Clock()
    for day in days:
        raw = read_stages(landing_dir, day, tick, rules, clock)
        cleaned = clean_stages(raw, day, rules, clock)
        clock.lap("-")
        derive_trip_events(cleaned, rules.trips)
        clock.lap("derive_trip_events")
    clock.seconds.pop("-", None)
    return clock.seconds


def summarize(runs: list[dict[str, float]]) -> list[list[str]]:
    rows = []
    for stage in runs[0]:
        values = [run[stage] for run in runs]
        fmt = "{:,.0f}" if stage == "pings read" else "{:.3f}"
        rows.append(
            [stage, *(fmt.format(v) for v in (statistics.median(values), min(values), max(values)))]
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tick", default="2026-05-03T18:00:00+09:00", help="ISO 8601, with zone")
    parser.add_argument("--fleet", type=int, default=1000, help="simulated taxis")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median)")
    parser.add_argument("--stages", action="store_true", help="also time the sub-stages")
    parser.add_argument("--reference", type=Path, help="live demand to write, or to equal")
    parser.add_argument(
        "--cache-dir", type=Path, default=RESULTS_DIR / "tick_cache", help="landing days"
    )
    args = parser.parse_args(argv)
    tick = datetime.fromisoformat(args.tick)
    if tick.tzinfo is None:
        parser.error(f"--tick {args.tick} has no time zone")
    rules = CleaningRules()
    read_start, read_end = live_read_window(tick, BUCKET_MINUTES)
    days = days_touched(read_start, read_end)
    landing_dir = args.cache_dir / f"fleet{args.fleet}-seed{args.seed}"
    missing = [d for d in days if not probe_files_for_day_local(landing_dir, d)]
    if missing:
        t0 = time.perf_counter()
        source = SimulatedProbeSource(fleet_size=args.fleet, seed=args.seed)
        write_landing_days(source, missing, landing_dir)
        print(f"simulated {', '.join(map(str, missing))} in {time.perf_counter() - t0:.1f} s")
    source = LandingFolderProbeSource(landing_dir=str(landing_dir))

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"tick={tick.isoformat()} fleet={args.fleet} repeats={args.repeats} load={load}")
    runs, live = [], None
    for _ in range(args.repeats):
        seconds, live = run_functions(source, days, tick, rules)
        runs.append(seconds)
    print(markdown(["function", "median s", "min s", "max s"], summarize(runs)))
    if args.stages:
        stage_runs = [run_stages(landing_dir, days, tick, rules) for _ in range(args.repeats)]
        print()
        print(markdown(["stage", "median s", "min s", "max s"], summarize(stage_runs)))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load after: {load}")
    if args.reference and live is not None:
        if args.reference.exists():
            expected = pl.read_parquet(args.reference)
            same = expected.equals(live)
            print(f"live demand equals {args.reference}: {same}")
            if not same:
                raise SystemExit(1)
        else:
            args.reference.parent.mkdir(parents=True, exist_ok=True)
            live.write_parquet(args.reference)
            print(f"live demand written to {args.reference} ({live.height:,} rows)")


def probe_files_for_day_local(landing_dir: Path, day: date) -> bool:
    return (landing_dir / "probes" / day.isoformat()).is_dir()


if __name__ == "__main__":
    main()
