"""Onboarding a new probe feed: every landing file checked at once, before any run.

A new feed's first problems are usually in its files (a column named differently, ids
that are not ids, timestamps without a zone), and a person fixing an export wants all of
them in one list, not one failed run per problem. :func:`landing_problems` reads every
file of a window through the landing source's own parsing, column by column, and returns
every problem it finds, each naming its file and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl
from upath import UPath

from taxi_assets.frames import RAW_PROBES_SCHEMA, WEATHER_SCHEMA
from taxi_assets.sources.base import ProbeSourceError
from taxi_assets.sources.landing import (
    LANDING_SUFFIXES,
    conform,
    probe_files_for_day,
    read_table_file,
)


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
