"""Calibrate the drift thresholds: distances between normal consecutive days of the
simulated city, next to the distances that real feed breakages produce.

A good threshold sits above every normal day-to-day distance (weekday to holiday
included) and below the breakages we must catch. Prints one table per asset, for two sets
of thresholds:

- the validation folder's (``TAXI_ASSETS_VALIDATION_DIR``, default the committed ones);
- the ones :func:`calibrate_drift_thresholds` derives from the feed's own first days (what
  onboarding writes), checked on the days after them (``--holdout-days``).

Every simulated day is also checked against the folder's schemas: a valid day of the same
feed, or of another seed (``--seed``), must have no anomaly.

    python bench/calibrate_drift.py --days 14 --fleet 1000
    python bench/calibrate_drift.py --days 14 --fleet 1000 --holdout-days 5 --seed 7

Exit 1 if a breakage crosses no threshold, a normal day crosses one, or a day has anomalies.
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
from taxi_assets.validation.drift import DriftThresholds, compare_statistics
from taxi_assets.validation.schema import find_anomalies, load_schema, schema_path
from taxi_assets.validation.statistics import compute_statistics
from taxi_assets.validation.thresholds import (
    DEFAULT_MARGIN,
    calibrate_drift_thresholds,
    consecutive_day_distances,
)

COUNTS = ["street_hail_pickups", "app_booking_pickups", "pickups", "dropoffs"]

# What a broken feed or pipeline does to a day, per asset.
BREAKAGES: dict[str, dict[str, Callable[[pl.DataFrame], pl.DataFrame]]] = {
    "clean_probes": {
        "status stuck at vacant": lambda f: f.with_columns(
            pl.lit("vacant").cast(f.schema["status"]).alias("status")
        ),
        "speed sent in mph": lambda f: f.with_columns(pl.col("speed_kmh") / 1.609),
        "positions 1 km north": lambda f: f.with_columns(pl.col("lat") + 0.009),
        # Hashing keeps it meaningful for integer and string vehicle ids alike.
        "half the fleet silent": lambda f: f.filter(pl.col("vehicle_id").hash(7) % 2 == 0),
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
TABLE = pl.Config(
    tbl_rows=200,
    tbl_width_chars=160,
    float_precision=4,
    tbl_hide_dataframe_shape=True,
    tbl_hide_column_data_types=True,
)


def simulated_days(
    start: date, days: int, fleet: int, seed: int
) -> dict[str, dict[str, pl.DataFrame]]:
    """asset -> day -> frame."""
    frames: dict[str, dict[str, pl.DataFrame]] = {"clean_probes": {}, "cell_demand": {}}
    for i in range(days):
        day = start + timedelta(days=i)
        t0 = time.perf_counter()
        raw = simulate_day(CityConfig(seed=seed, fleet_size=fleet), day).probes
        clean = clean_probes(raw, day, CENTRAL_TOKYO).clean
        demand = aggregate_cell_demand(clean, derive_trip_events(clean), day, CENTRAL_TOKYO)
        frames["clean_probes"][day.isoformat()] = clean
        frames["cell_demand"][day.isoformat()] = demand
        print(f"  {day} ({day_type(day)}) in {time.perf_counter() - t0:.1f}s", flush=True)
    return frames


def judge(
    label: str,
    asset: str,
    days: dict[str, pl.DataFrame],
    checked_days: list[str],
    thresholds: DriftThresholds,
    problems: list[str],
) -> None:
    """Normal consecutive days of ``checked_days`` must not cross; every breakage of the
    last day must, against the day before it."""
    schema = load_schema(asset, schema_path(asset, ValidationSettings().folder()))

    def stats(frame: pl.DataFrame) -> pl.DataFrame:
        return compute_statistics(frame, schema.bin_edges(), schema.categorical, schema.excluded)

    by_day = {key: stats(days[key]) for key in checked_days}
    normal = pl.concat(
        compare_statistics(by_day[today], by_day[yesterday], thresholds)
        for yesterday, today in zip(checked_days, checked_days[1:], strict=False)
    )
    normal_max = normal.group_by("feature", "metric").agg(
        normal_max=pl.col("distance").max(),
        threshold=pl.col("threshold").first(),
        normal_crossings=pl.col("crossed").sum(),
    )
    rows = []
    last, before_last = checked_days[-1], checked_days[-2]
    for name, breakage in BREAKAGES[asset].items():
        broken = stats(breakage(days[last]))
        comparison = compare_statistics(broken, by_day[before_last], thresholds)
        caught = comparison.filter("crossed")
        if caught.height == 0:
            problems.append(f"{label}: {asset}: '{name}' crosses no threshold")
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
            f"{label}: {asset}: {feature} crossed its threshold on {crossings} normal day(s)"
        )
    with TABLE:
        print(f"\n[{label}] {asset}: largest distance between consecutive normal days")
        print(normal_max.sort("feature"))
        print(f"[{label}] {asset}: the last day ({last}), broken, against {before_last}")
        print(pl.DataFrame(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 4, 27))
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--fleet", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--holdout-days",
        type=int,
        default=0,
        help="calibrate on the first days, judge the calibration on these last days "
        "(0: calibrate and judge on all days)",
    )
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN)
    args = parser.parse_args()
    if args.days - args.holdout_days < 2 or (args.holdout_days and args.holdout_days < 2):
        parser.error("need at least 2 calibration days and 0 or at least 2 held-out days")
    print(
        f"nproc={os.cpu_count()}  simulated days from {args.start}, fleet {args.fleet}, "
        f"seed {args.seed}"
    )
    frames = simulated_days(args.start, args.days, args.fleet, args.seed)
    settings = ValidationSettings()
    problems: list[str] = []

    print(f"\nSchema anomalies against {settings.folder()} (every day must have none):")
    for asset, days in frames.items():
        schema = load_schema(asset, schema_path(asset, settings.folder()))
        for key, frame in days.items():
            anomalies = find_anomalies(frame, schema, CENTRAL_TOKYO)
            if anomalies.height:
                problems.append(f"{asset} {key}: {anomalies.height} schema anomalies")
                with TABLE:
                    print(f"  {asset} {key}:\n{anomalies}")
    print("  (none)" if not any("schema anomalies" in p for p in problems) else "")

    keys = sorted(frames["clean_probes"])
    for asset, days in frames.items():
        judge("folder", asset, days, keys, settings.thresholds(), problems)

    calibration_days = keys[: len(keys) - args.holdout_days]
    judged_days = keys[len(keys) - args.holdout_days :] if args.holdout_days else keys
    distances = pl.concat(
        consecutive_day_distances(
            {key: days[key] for key in calibration_days},
            load_schema(asset, schema_path(asset, settings.folder())),
        )
        for asset, days in frames.items()
    )
    calibrated = calibrate_drift_thresholds(distances, margin=args.margin)
    label = f"calibrated on {calibration_days[0]}..{calibration_days[-1]} x{args.margin}"
    print(f"\n{label}:\n{calibrated.to_json()}")
    for asset, days in frames.items():
        judge(label, asset, days, judged_days, calibrated.thresholds, problems)

    print(
        "\n"
        + (
            "\n".join(problems)
            if problems
            else "Every breakage crosses a threshold; no normal day does; no schema anomaly."
        )
    )
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
