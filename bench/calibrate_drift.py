"""Calibrate the drift thresholds: distances between normal consecutive days of the
simulated city, next to the distances that real feed breakages produce.

A good threshold sits above every normal day-to-day distance (weekday to holiday
included) and below the breakages we must catch. Prints one table per asset.

    python bench/calibrate_drift.py --days 14 --fleet 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta

import polars as pl

from taxi_assets.calendar import day_type
from taxi_assets.cleaning import clean_probes
from taxi_assets.demand import aggregate_cell_demand
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets.settings import ValidationSettings
from taxi_assets.simulation import CityConfig, simulate_day
from taxi_assets.trips import derive_trip_events
from taxi_assets.validation.drift import compare_statistics
from taxi_assets.validation.schema import load_schema
from taxi_assets.validation.statistics import compute_statistics

COUNTS = ["street_hail_pickups", "app_booking_pickups", "pickups", "dropoffs"]

# What a broken feed or pipeline does to a day, per asset.
BREAKAGES: dict[str, dict[str, Callable[[pl.DataFrame], pl.DataFrame]]] = {
    "clean_probes": {
        "status stuck at vacant": lambda f: f.with_columns(
            pl.lit("vacant").cast(f.schema["status"]).alias("status")
        ),
        "speed sent in mph": lambda f: f.with_columns(pl.col("speed_kmh") / 1.609),
        "positions 1 km north": lambda f: f.with_columns(pl.col("lat") + 0.009),
        "half the fleet silent": lambda f: f.filter(pl.col("vehicle_id").cast(pl.Int64) % 2 == 0),
        "heading in radians": lambda f: f.with_columns(pl.col("heading") / 57.3),
    },
    "cell_demand": {
        "no pickups detected": lambda f: f.with_columns(
            pl.lit(0, pl.Int32).alias(c) for c in [*COUNTS]
        ),
        "app bookings counted as hails": lambda f: f.with_columns(
            (pl.col("street_hail_pickups") + pl.col("app_booking_pickups")).alias(
                "street_hail_pickups"
            ),
            pl.lit(0, pl.Int32).alias("app_booking_pickups"),
        ),
        "supply double-counted": lambda f: f.with_columns(pl.col("vacant_taxis") * 2),
        "occupied taxis lost": lambda f: f.with_columns(
            pl.lit(0, pl.Int32).alias("occupied_taxis")
        ),
    },
}


def simulated_days(start: date, days: int, fleet: int) -> dict[str, list[pl.DataFrame]]:
    frames: dict[str, list[pl.DataFrame]] = {"clean_probes": [], "cell_demand": []}
    for i in range(days):
        day = start + timedelta(days=i)
        t0 = time.perf_counter()
        raw = simulate_day(CityConfig(fleet_size=fleet), day).probes
        clean = clean_probes(raw, day, CENTRAL_TOKYO).clean
        demand = aggregate_cell_demand(clean, derive_trip_events(clean), day, CENTRAL_TOKYO)
        frames["clean_probes"].append(clean)
        frames["cell_demand"].append(demand)
        print(f"  {day} ({day_type(day)}) in {time.perf_counter() - t0:.1f}s", flush=True)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 4, 27))
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--fleet", type=int, default=1000)
    args = parser.parse_args()
    print(f"nproc={os.cpu_count()}  simulated days from {args.start}, fleet {args.fleet}")
    frames = simulated_days(args.start, args.days, args.fleet)
    thresholds = ValidationSettings().thresholds()
    problems = []
    for asset, days in frames.items():
        schema = load_schema(asset)
        stats = [compute_statistics(f, schema.bin_edges(), schema.categorical) for f in days]
        normal = pl.concat(
            compare_statistics(today, yesterday, thresholds)
            for yesterday, today in zip(stats, stats[1:], strict=False)
        )
        normal_max = normal.group_by("feature", "metric").agg(
            normal_max=pl.col("distance").max(),
            threshold=pl.col("threshold").first(),
            normal_crossings=pl.col("crossed").sum(),
        )
        rows = []
        for name, breakage in BREAKAGES[asset].items():
            broken = compute_statistics(breakage(days[-1]), schema.bin_edges(), schema.categorical)
            comparison = compare_statistics(broken, stats[-2], thresholds)
            caught = comparison.filter("crossed")
            if caught.height == 0:
                problems.append(f"{asset}: '{name}' crosses no threshold")
            # compare_statistics sorts crossed features first, then by distance / threshold.
            shown = comparison.filter(pl.col("metric") != "row_count_ratio").row(0, named=True)
            if caught.height:
                shown = caught.row(0, named=True)
            rows.append(
                {
                    "breakage": name,
                    "feature": shown["feature"],
                    "metric": shown["metric"],
                    "distance": shown["distance"],
                    "threshold": shown["threshold"],
                    "caught": caught.height > 0,
                }
            )
        for feature, crossings in (
            normal_max.filter(pl.col("normal_crossings") > 0)
            .select("feature", "normal_crossings")
            .iter_rows()
        ):
            problems.append(
                f"{asset}: {feature} crossed its threshold on {crossings} normal day(s)"
            )
        with pl.Config(
            tbl_rows=200,
            tbl_width_chars=160,
            float_precision=4,
            tbl_hide_dataframe_shape=True,
            tbl_hide_column_data_types=True,
        ):
            print(f"\n{asset}: largest distance between consecutive normal days")
            print(normal_max.sort("feature"))
            print(f"{asset}: the same last day, broken, against the day before")
            print(pl.DataFrame(rows))
    print(
        "\n"
        + (
            "\n".join(problems)
            if problems
            else "Every breakage crosses a threshold; no normal day does."
        )
    )
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
