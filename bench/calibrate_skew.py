"""Calibrate the training-serving skew threshold (``ValidationSettings.skew_js_threshold``).

Runs forecast ticks across the last day of a ``make run`` (its data folder and instance,
its production model) and records each feature's Jensen-Shannon divergence against the
training rows of the same slot: the normal range. Then breaks one tick's features the ways
a live path breaks (supply counted twice, trips no longer derived, half the feed, stored
history missing) and measures the same. Exits 1 if a breakage stays below the threshold
or a normal tick crosses it.

    make run   # first: data, a production model
    .venv/bin/python bench/calibrate_skew.py
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import date, datetime, time, timedelta

import dagster as dg
import polars as pl

from taxi_assets.calendar import TOKYO
from taxi_assets.cli import DEFAULT_DAYS, DEFAULT_START
from taxi_assets.definitions import build_definitions
from taxi_assets.features import DAILY_FEATURES
from taxi_assets.model.registry import ArtifactStore
from taxi_assets.resources import resources_for_environment
from taxi_assets.settings import ValidationSettings
from taxi_assets.storage import StoredPartitions
from taxi_assets.validation.skew import feature_skew, same_slot_reference

TICK_TIMES = (time(3, 0), time(8, 0), time(12, 30), time(18, 0), time(23, 0))
SUPPLY = ["vacant_prev_1", "vacant_mean_prev_1h", "vacant_yesterday"]
LIVE_HAILS = ["hails_prev_1", "hails_prev_2", "hails_prev_3", "hails_prev_4"]
LIVE_MEANS = ["hails_mean_prev_1h", "hails_mean_prev_3h"]
# Measured but not required to cross: on sparse counts, halving the live hails moves the
# tick's distribution less than the threshold allows (the nightly drift check on
# cell_demand catches a feed that lost half its pings: row counts and counts per cell).
BLIND_SPOTS = {
    "half the live feed": lambda f: f.with_columns(pl.col([*LIVE_HAILS, *LIVE_MEANS]) / 2),
}
BREAKAGES = {
    "supply counted twice": lambda f: f.with_columns(pl.col(SUPPLY) * 2),
    "trips no longer derived live": lambda f: f.with_columns(
        pl.col([*LIVE_HAILS, *LIVE_MEANS, "app_bookings_prev_1", "dropoffs_prev_1"]) * 0
    ),
    "stored history missing": lambda f: f.with_columns(
        pl.lit(None, pl.Float32).alias(name) for name in DAILY_FEATURES
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    last_day = DEFAULT_START + timedelta(days=DEFAULT_DAYS - 1)
    parser.add_argument("--day", type=date.fromisoformat, default=last_day)
    args = parser.parse_args()
    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = os.path.abspath(".dagster_home")
    resources = resources_for_environment()
    defs = build_definitions(resources)
    artifacts: ArtifactStore = resources["artifacts"]
    stored: StoredPartitions = resources["stored"]
    threshold = ValidationSettings().skew_js_threshold
    print(f"{platform.node()}  nproc={os.cpu_count()}  python={platform.python_version()}")

    normal = []
    with dg.DagsterInstance.get() as instance:
        for tick_time in TICK_TIMES:
            tick = datetime.combine(args.day, tick_time, tzinfo=TOKYO)
            result = defs.resolve_job_def("forecast_job").execute_in_process(
                instance=instance,
                run_config={"ops": {"demand_forecast": {"config": {"tick": tick.isoformat()}}}},
                raise_on_error=False,
            )
            if not result.success:
                print(f"forecast at {tick} failed: run `make run` first", file=sys.stderr)
                return 2
            features = artifacts.forecast_features(tick)
            version = artifacts.production_pointer()["model_version"]
            days = artifacts.manifest(version)["partitions_used"]
            training = pl.concat([stored.scan("training_features", day) for day in days])
            skew = feature_skew(features, same_slot_reference(training, features), threshold)
            worst = skew.row(0, named=True)
            normal.append((f"normal tick {tick_time:%H:%M}", worst))
        broken = []
        base_tick = datetime.combine(args.day, time(18, 0), tzinfo=TOKYO)
        base = artifacts.forecast_features(base_tick)
        reference = same_slot_reference(training, base)
        for name, breakage in BREAKAGES.items():
            skew = feature_skew(breakage(base), reference, threshold)
            broken.append((name, skew.row(0, named=True)))
        blind = [
            (
                f"{name} (blind spot)",
                feature_skew(breakage(base), reference, threshold).row(0, named=True),
            )
            for name, breakage in BLIND_SPOTS.items()
        ]

    print(f"\nthreshold (ValidationSettings.skew_js_threshold) = {threshold}")
    print(f"{'case':32s} {'worst feature':26s} {'distance':>8s}  crossed")
    for case, worst in [*normal, *broken, *blind]:
        print(f"{case:32s} {worst['feature']:26s} {worst['distance']:8.4f}  {worst['crossed']}")
    false_alarms = [case for case, worst in normal if worst["crossed"]]
    missed = [case for case, worst in broken if not worst["crossed"]]
    if false_alarms or missed:
        print(f"\nfalse alarms: {false_alarms or 'none'}; missed: {missed or 'none'}")
    return 1 if false_alarms or missed else 0


if __name__ == "__main__":
    sys.exit(main())
