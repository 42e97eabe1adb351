"""Re-infer the package's committed validation folder (taxi_assets/validation/schemas/) from
the simulator: the default ``taxi-assets run`` window (14 days of the 1,000-taxi city),
through the same pure functions the assets call.

The schemas are inferred as onboarding infers a real feed's. The drift thresholds keep the
values bench/calibrate_drift.py justified (README, "Data validation"), with the window's
largest normal distances recorded next to them for review.

    python bench/write_committed_validation.py            # prints what would change
    python bench/write_committed_validation.py --write    # then: git diff taxi_assets/validation
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta

import polars as pl

from taxi_assets.cleaning import clean_probes
from taxi_assets.demand import aggregate_cell_demand
from taxi_assets.features import HORIZONS, build_features, with_horizons
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets.simulation import CityConfig, simulate_day, simulate_weather
from taxi_assets.trips import derive_trip_events
from taxi_assets.validation.drift import DriftThresholds
from taxi_assets.validation.onboarding import (
    calibrate_validation_thresholds,
    infer_validation_schemas,
    validation_folder_changes,
    write_validation_folder,
)
from taxi_assets.validation.schema import SCHEMA_DIR
from taxi_assets.validation.thresholds import NOT_COMPARED_BETWEEN_DAYS, CalibratedThresholds

# From bench/calibrate_drift.py on 14 simulated days: above every normal day-to-day
# distance, below the feed breakages we must catch. Counts per cell are zero-inflated, so
# their histograms move little even when a whole kind of pickup disappears: they get a
# tighter Jensen-Shannon threshold. The status mix moves ~0.08 between a weekday and a
# holiday, so it gets a looser one. The 7-day same-slot mean sharpens while the history
# fills up from 1 to 7 days (0.067 between the third and fourth day of a fresh start).
COMMITTED_THRESHOLDS = DriftThresholds(
    numeric_js=0.015,
    categorical_linf=0.1,
    row_count_ratio_min=0.7,
    row_count_ratio_max=1.4,
    per_feature={
        "status": 0.15,
        "hails_mean_same_slot_7d": 0.08,
        "street_hail_pickups": 0.005,
        "app_booking_pickups": 0.005,
        "pickups": 0.005,
        "dropoffs": 0.005,
        "vacant_taxis": 0.005,
        "occupied_taxis": 0.005,
    },
    ignore=frozenset(NOT_COMPARED_BETWEEN_DAYS),
)


def simulated_window(start: date, days: int, fleet: int) -> dict[str, dict[str, pl.DataFrame]]:
    """asset -> day -> frame for clean_probes, cell_demand and training_features."""
    city = CityConfig(fleet_size=fleet)
    frames: dict[str, dict[str, pl.DataFrame]] = {
        "clean_probes": {},
        "cell_demand": {},
        "training_features": {},
    }
    weather: dict[str, pl.DataFrame] = {}
    for i in range(days):
        day = start + timedelta(days=i)
        key = day.isoformat()
        started = time.perf_counter()
        clean = clean_probes(simulate_day(city, day).probes, day, CENTRAL_TOKYO).clean
        demand = aggregate_cell_demand(clean, derive_trip_events(clean), day, CENTRAL_TOKYO)
        weather[key] = simulate_weather(city, day)
        frames["clean_probes"][key] = clean
        frames["cell_demand"][key] = demand
        # As the training_features asset: the day and the week before, rain of the day
        # and the day before (the first day of the window has neither).
        week = [(day - timedelta(days=back)).isoformat() for back in range(7, -1, -1)]
        history = pl.concat([frames["cell_demand"][k] for k in week if k in frames["cell_demand"]])
        rain = pl.concat([weather[k] for k in week[-2:] if k in weather])
        frames["training_features"][key] = build_features(
            history, rain, with_horizons(demand, HORIZONS), 15
        )
        print(f"  {day} in {time.perf_counter() - started:.1f}s", flush=True)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 4, 20))
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--fleet", type=int, default=1000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    frames = simulated_window(args.start, args.days, args.fleet)
    schemas = infer_validation_schemas(frames)
    measured = calibrate_validation_thresholds(frames, schemas)
    committed = CalibratedThresholds(
        thresholds=COMMITTED_THRESHOLDS,
        reference_partitions=measured.reference_partitions,
        margin=None,
        normal_max=measured.normal_max,
    )
    print(f"\nwhat the feed's own calibration would set:\n{measured.to_json()}")
    changes = validation_folder_changes(schemas, committed, SCHEMA_DIR)
    print("\n".join(changes) if changes else "unchanged")
    if args.write:
        for path in write_validation_folder(schemas, committed, SCHEMA_DIR):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
