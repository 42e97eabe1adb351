"""``taxi-assets``: run the main job over a window of days and summarize what it made;
``taxi-assets schema infer`` re-infers an asset's data schema for review.

The runs go into the Dagster instance at ``$DAGSTER_HOME``, so ``dagster dev`` shows them
with their metadata afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl

from taxi_assets.definitions import build_definitions
from taxi_assets.frames import REJECT_REASONS
from taxi_assets.jobs import data_path_job
from taxi_assets.metadata import latest_materialization_metadata
from taxi_assets.resources import SettingsError, resources_for_environment
from taxi_assets.validation.schema_cli import SCHEMA_ASSETS, infer_command

# A week with a national holiday (Showa Day, Wed 29 April) and a weekend, so the summary
# shows weekday, holiday and weekend demand side by side.
DEFAULT_START = date(2026, 4, 27)
DEFAULT_DAYS = 7


def run_data_path(
    instance: dg.DagsterInstance, defs: dg.Definitions, days: Sequence[date]
) -> list[bool]:
    """Materialize the data path for each day, one run per day; return which succeeded."""
    job = defs.resolve_job_def(data_path_job.name)
    outcomes = []
    for day in days:
        started = time.monotonic()
        result = job.execute_in_process(
            partition_key=day.isoformat(),
            instance=instance,
            raise_on_error=False,
            # Step-level DEBUG events stay in the instance (and the UI); the terminal gets
            # the INFO lines: pings read, kept and rejected per day.
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )
        status = "ok" if result.success else "FAILED"
        print(
            f"  {day}  {status}  run {result.run_id[:8]}  {time.monotonic() - started:.1f}s",
            flush=True,
        )
        outcomes.append(result.success)
    return outcomes


def latest_metadata(instance: dg.DagsterInstance, asset: str, day: date) -> dict[str, object]:
    return latest_materialization_metadata(instance, asset, day.isoformat())


def summary_table(instance: dg.DagsterInstance, days: Sequence[date]) -> pl.DataFrame:
    """Per day: pings, kept, rejected by reason, cells and pickups, read back from the
    instance (what the UI shows), not from memory."""
    rows = []
    for day in days:
        clean = latest_metadata(instance, "clean_probes", day)
        rejected = latest_metadata(instance, "rejected_probes", day)
        demand = latest_metadata(instance, "cell_demand", day)
        validations = [
            latest_metadata(instance, f"{asset}_statistics", day)
            for asset in ("clean_probes", "cell_demand")
        ]
        rows.append(
            {
                "day": day.isoformat(),
                "weekday": day.strftime("%a"),
                "pings": clean.get("raw_rows"),
                "kept": clean.get("rows"),
                "rejected": rejected.get("rows"),
                **{reason: rejected.get(f"rejected_{reason}") for reason in REJECT_REASONS},
                "cells": demand.get("cells"),
                "cells_with_pickups": demand.get("cells_with_pickups"),
                "street_hails": demand.get("street_hail_pickups"),
                "app_bookings": demand.get("app_booking_pickups"),
                "anomalies": sum(int(v.get("anomalies", 0)) for v in validations),
                "drifted": sum(int(v.get("features_drifted", 0)) for v in validations),
            }
        )
    return pl.DataFrame(rows)


def print_summary(table: pl.DataFrame) -> None:
    totals = table.select(pl.exclude("day", "weekday", "cells").sum())
    with pl.Config(
        tbl_rows=100,
        tbl_cols=30,
        tbl_width_chars=200,
        tbl_hide_dataframe_shape=True,
        thousands_separator=True,
        tbl_hide_column_data_types=True,
    ):
        print("\nDays:")
        print(
            table.select(
                "day",
                "weekday",
                "pings",
                "kept",
                "rejected",
                "cells",
                "cells_with_pickups",
                "street_hails",
                "app_bookings",
                "anomalies",
                "drifted",
            )
        )
        print("\nRejected pings by reason (all days):")
        print(
            totals.select(*REJECT_REASONS).transpose(
                include_header=True, header_name="reason", column_names=["rows"]
            )
        )
    n = table.height
    total = totals.row(0, named=True)
    print(
        f"\n{n} day(s): {total['pings'] or 0:,} pings, {total['kept'] or 0:,} kept, "
        f"{total['rejected'] or 0:,} rejected; {table['cells'].max()} cells; "
        f"{total['street_hails'] or 0:,} street-hail and {total['app_bookings'] or 0:,} "
        f"app-booked pickups; {total['anomalies'] or 0} schema anomalies and "
        f"{total['drifted'] or 0} drifted features"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="taxi-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialize the data path for a window of days")
    run.add_argument(
        "--start",
        type=date.fromisoformat,
        default=DEFAULT_START,
        help=f"first Tokyo day (default {DEFAULT_START})",
    )
    run.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help=f"number of days (default {DEFAULT_DAYS})"
    )
    run.add_argument(
        "--fleet",
        type=int,
        default=None,
        help="simulated fleet size (default: TAXI_ASSETS_SIM_FLEET_SIZE or 1000)",
    )
    schema = sub.add_parser("schema", help="the committed data schemas of the assets")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True)
    infer = schema_sub.add_parser(
        "infer",
        help="re-infer an asset's schema from stored partitions and show what would change",
        description=(
            "Infer the schema from <data-dir>/<asset>/<day>.parquet for the window and print "
            "what changes against the committed one. Without --write: a dry run that exits 1 "
            "if the schema would change, 0 if not. With --write: save it, then review "
            "`git diff` and commit."
        ),
    )
    infer.add_argument("--asset", required=True, choices=sorted(SCHEMA_ASSETS))
    infer.add_argument("--start", type=date.fromisoformat, required=True, help="first day")
    infer.add_argument("--days", type=int, required=True, help="number of days")
    infer.add_argument(
        "--data-dir", type=Path, default=None, help="default: TAXI_ASSETS_DATA_DIR or data"
    )
    infer.add_argument("--write", action="store_true", help="save the inferred schema")
    infer.add_argument(
        "--schema-dir",
        type=Path,
        default=None,
        help="folder of <asset>.json (default: the committed taxi_assets/validation/schemas)",
    )
    args = parser.parse_args(argv)
    if args.command == "schema":
        return infer_command(
            args.asset, args.start, args.days, args.data_dir, args.write, args.schema_dir
        )

    if not os.environ.get("DAGSTER_HOME"):
        print(
            "DAGSTER_HOME is not set: set it to the instance folder (make run does: .dagster_home)",
            file=sys.stderr,
        )
        return 2
    env = dict(os.environ)
    if args.fleet is not None:
        env["TAXI_ASSETS_SIM_FLEET_SIZE"] = str(args.fleet)
    try:
        defs = build_definitions(resources_for_environment(env))
    except SettingsError as error:
        print(f"settings: {error}", file=sys.stderr)
        return 2
    days = [args.start + timedelta(days=i) for i in range(args.days)]
    print(
        f"Materializing data_path_job for {days[0]}..{days[-1]} "
        f"into DAGSTER_HOME={os.environ['DAGSTER_HOME']}"
    )
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        outcomes = run_data_path(instance, defs, days)
        print_summary(summary_table(instance, days))
    print(f"Finished in {time.monotonic() - started:.0f}s; open the UI with `make ui`.")
    return 0 if all(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
