"""Street hails recovered by the data path vs the simulator's ground truth, per feed profile.

    python bench/bench_feed_profiles.py --fleet 300 [--day 2026-05-01] [--profile real_60s ...]

Each profile simulates the same city day (default fault rates) and shows it through its
feed: ping intervals, meter flaps, GPS steps, re-entries, dispatch. The day goes through
``clean_probes`` and ``derive_trips`` with the default settings, and every derived street
hail is matched to a true one of the same vehicle that it follows by at most the maximum
pickup gap (``simulation.recovery``). Recall: true hails recovered; precision: derived
hails that are true. Taxis with a skewed clock or a stuck meter lose their hails to the
quarantine; that loss is part of the figures.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import polars as pl

from taxi_assets.calendar import day_window_utc
from taxi_assets.cleaning import CleaningRules, clean_probes
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets.simulation import CityConfig, simulate_day
from taxi_assets.simulation.feed import FEED_PROFILES
from taxi_assets.simulation.recovery import street_hail_recovery
from taxi_assets.trips import derive_trips

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data_path import machine  # noqa: E402

# join_asof cannot check sortedness within its 'by' groups; the frames are sorted on time.
warnings.filterwarnings("ignore", message="Sortedness of columns cannot be checked")


def ping_interval_quantiles(probes: pl.DataFrame) -> tuple[float, float, float]:
    """Median, 95th and 99th percentile seconds between consecutive pings of a vehicle."""
    gaps = (
        probes.unique(["vehicle_id", "ts"])
        .sort("vehicle_id", "ts")
        .select(pl.col("ts").diff().dt.total_seconds(fractional=True).over("vehicle_id"))
        .to_series()
        .drop_nulls()
    )
    # Off-duty breaks and +/- 1 day stale replays are not ping intervals.
    gaps = gaps.filter((gaps > 0) & (gaps < 1800))
    return tuple(float(gaps.quantile(q) or 0.0) for q in (0.5, 0.95, 0.99))  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fleet", type=int, default=300)
    parser.add_argument("--day", type=date.fromisoformat, default=date(2026, 5, 1))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--profile", action="append", choices=sorted(FEED_PROFILES), help="(repeatable)"
    )
    args = parser.parse_args(argv)
    profiles = args.profile or list(FEED_PROFILES)
    rules = CleaningRules()
    print(machine(), flush=True)
    print(
        f"day={args.day}  fleet={args.fleet}  seed={args.seed}  "
        f"match tolerance={rules.trips.max_pickup_gap_s:.0f} s  default settings"
    )
    header = (
        f"{'profile':<26} {'p50/p95/p99 s':>15} {'true':>6} {'derived':>8} {'matched':>8} "
        f"{'recall':>7} {'precision':>9} {'flaps':>6} {'short':>6} {'reentry':>7} "
        f"{'skipped':>7} {'secs':>5}"
    )
    print(header)
    day_end = day_window_utc(args.day)[1]
    for name in profiles:
        start = time.perf_counter()
        config = CityConfig(seed=args.seed, fleet_size=args.fleet, feed_profile=name)
        simulated = simulate_day(config, args.day)
        cleaned = clean_probes(simulated.probes, args.day, CENTRAL_TOKYO, rules)
        derived = derive_trips(cleaned.clean, rules.trips, CENTRAL_TOKYO)
        recovery = street_hail_recovery(
            derived.events, simulated.trips, day_end, rules.trips.max_pickup_gap_s
        )
        seconds = time.perf_counter() - start
        p50, p95, p99 = ping_interval_quantiles(simulated.probes)
        print(
            f"{name:<26} {f'{p50:.0f}/{p95:.0f}/{p99:.0f}':>15} {recovery.true_hails:>6} "
            f"{recovery.derived_hails:>8} {recovery.matched:>8} {recovery.recall:>7.1%} "
            f"{recovery.precision:>9.1%} {derived.debounced_vacant_gaps:>6} "
            f"{derived.debounced_short_fares:>6} {derived.boundary_reentries:>7} "
            f"{derived.gap_skipped_pickups:>7} {seconds:>5.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
