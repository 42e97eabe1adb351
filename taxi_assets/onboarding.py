"""Onboarding a new probe feed (``taxi-assets onboard``): from a landing folder to days
that pass validation, with the feed's own schemas and drift thresholds to review.

A new feed's first problems are usually in its files (a column named differently, ids
that are not ids, timestamps without a zone), and a person fixing an export wants all of
them in one list, not one failed run per problem. :func:`landing_problems` reads every
file of a window through the landing source's own parsing, column by column, and returns
every problem it finds, each naming its file and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
from upath import UPath

from taxi_assets.frames import RAW_PROBES_SCHEMA, WEATHER_SCHEMA
from taxi_assets.guidance import GuidanceParams
from taxi_assets.job_runs import assets_in_groups, execute_job, failed_steps, run_job
from taxi_assets.jobs import DATA_PATH_GROUPS, VALIDATION_GROUP, data_path_job, validation_job
from taxi_assets.sources.base import ProbeSourceError
from taxi_assets.sources.landing import (
    LANDING_SUFFIXES,
    conform,
    probe_files_for_day,
    read_table_file,
)
from taxi_assets.validation.onboarding import onboard_validation_folder


def file_problems(path: UPath, schema: pl.Schema) -> list[str]:
    """Every problem of one landing file against ``schema``: unreadable, missing columns,
    and each column the source could not parse (one message per column)."""
    try:
        frame = read_table_file(path)
    except ProbeSourceError as error:
        return [str(error)]
    missing = [name for name in schema if name not in frame.columns]
    problems = []
    if missing:
        try:
            conform(frame, schema, path)
        except ProbeSourceError as error:
            problems.append(str(error))
    for name, dtype in schema.items():
        if name in missing:
            continue
        try:
            conform(frame.select(name), pl.Schema({name: dtype}), path)
        except ProbeSourceError as error:
            problems.append(str(error))
    return problems


def landing_problems(
    landing_dir: str | UPath, days: Sequence[date], weather_required: bool
) -> list[str]:
    """Every problem of the window's landing files, in day and file order; empty when every
    day has probe files that the source can read (and weather, when it is required)."""
    root = UPath(landing_dir)
    problems: list[str] = []
    for day in days:
        files = probe_files_for_day(root, day)
        if not files:
            problems.append(
                f"no probe files for {day} under {root / 'probes' / day.isoformat()} "
                "(expected *.parquet or *.csv)"
            )
        for path in files:
            problems += file_problems(path, RAW_PROBES_SCHEMA)
        if weather_required:
            weather = [root / "weather" / f"{day.isoformat()}{s}" for s in LANDING_SUFFIXES]
            found = [path for path in weather if path.exists()]
            if not found:
                problems.append(
                    f"no weather file for {day} under {root / 'weather'} "
                    f"(expected {day}.parquet or .csv, or set the weather source to none)"
                )
            for path in found[:1]:
                problems += file_problems(path, WEATHER_SCHEMA)
    return problems


def vacant_presence_line(instance: dg.DagsterInstance, days: Sequence[date]) -> str:
    """The guidance's vacant presence measured on the feed's days (cell_demand's metadata):
    the deployment sets ``GuidanceConfig.vacant_presence`` from it (the default is the
    simulator's)."""
    measured = []
    for day in days:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("cell_demand"), asset_partitions=[day.isoformat()]
            ),
            limit=1,
            ascending=False,
        ).records
        materialization = records[0].asset_materialization if records else None
        value = materialization.metadata.get("vacant_presence") if materialization else None
        if value is not None:
            measured.append(float(value.value))
    if not measured:
        return "vacant presence: not measured (no vacant pings in these days)"
    mean = sum(measured) / len(measured)
    return (
        f"vacant presence {mean:.3f} (days {min(measured):.3f}..{max(measured):.3f}): set "
        f"GuidanceConfig.vacant_presence on cruising_guidance to it (default "
        f"{GuidanceParams.vacant_presence}, the simulator's)"
    )


def onboard_feed(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    days: Sequence[date],
    landing_dir: str | None,
    data_dir: Path,
    validation_dir: Path,
    weather_required: bool,
) -> int:
    """Onboard a feed over its reference ``days``; 0 when those days now pass validation.

    1. every landing file of the window is checked, all problems listed at once;
    2. the data path runs over the days, all but its validation (no schemas yet);
    3. the schemas and drift thresholds are inferred from the feed's own days and written
       to ``validation_dir``, with a line per change to review;
    4. the days are validated again against that folder, so training may use them.
    """
    print(f"1/4 Landing files of {days[0]}..{days[-1]}")
    if landing_dir is not None:
        problems = landing_problems(landing_dir, days, weather_required)
        if problems:
            print(f"  {len(problems)} problem(s), fix them and run onboard again:")
            print("\n".join(f"  - {problem}" for problem in problems))
            return 1
        print(f"  every file of {len(days)} day(s) reads cleanly")
    else:
        print("  not a landing folder: the source checks its own input on every run")

    print("2/4 Data path over the reference days (validation waits for step 3)")
    # Without the feed's schemas the statistics would fail on every day: they run in step 4.
    data_assets = assets_in_groups(
        defs, [group for group in DATA_PATH_GROUPS if group != VALIDATION_GROUP]
    )
    results = {
        day: execute_job(
            instance, defs, data_path_job.name, str(day), partition=day, asset_selection=data_assets
        )
        for day in days
    }
    failed = {day: result for day, result in results.items() if not result.success}
    if failed:
        print("  the data path failed before validation; see these runs in the UI:")
        for day, result in failed.items():
            print(
                f"  - {day}: run {result.run_id[:8]}, failed steps "
                + ", ".join(failed_steps(result))
            )
        return 1

    print("  " + vacant_presence_line(instance, days))

    print(f"3/4 Schemas and drift thresholds from the feed's own days, into {validation_dir}")
    onboarded = onboard_validation_folder(
        data_dir, [day.isoformat() for day in days], directory=validation_dir, write=True
    )
    print("  changes to review:" if onboarded.changes else "  nothing changed")
    print("\n".join(f"  {line}" for line in onboarded.changes))
    print("  written: " + ", ".join(path.name for path in onboarded.written))

    print("4/4 Validating the reference days against the new folder")
    validated = [
        run_job(instance, defs, validation_job.name, str(day), partition=day) for day in days
    ]
    if not all(validated):
        print("  some days still fail validation: their runs in the UI say which check and why")
        return 1
    print(
        f"Onboarded: {len(days)} day(s) validated. Review the folder (git diff {validation_dir} "
        f"if it is under version control); training can start, e.g. `taxi-assets train --day "
        f"{days[-1]}` for a model evaluated on the last day."
    )
    return 0
