"""The simulated city delivered as a landing folder: a feed to onboard, test and demo with.

Writes what a partner's export would: ``probes/<day>/probes.<format>`` per Tokyo day and,
when the feed profile has weather, ``weather/<day>.<format>``. CSV timestamps carry their
UTC offset, as the landing source requires.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Literal

import polars as pl

from taxi_assets.sources.simulated import SimulatedProbeSource

FileFormat = Literal["parquet", "csv"]


def _write(frame: pl.DataFrame, path: Path, file_format: FileFormat) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if file_format == "csv":
        timestamps = [name for name, dtype in frame.schema.items() if dtype == pl.Datetime]
        text = frame.with_columns(
            pl.col(timestamps).dt.strftime("%Y-%m-%dT%H:%M:%S%.6f%:z"),
            pl.col(pl.Enum).cast(pl.String),
        )
        text.write_csv(path)
    else:
        frame.write_parquet(path)
    return path


def write_landing_days(
    source: SimulatedProbeSource,
    days: Sequence[date],
    landing_dir: Path,
    file_format: FileFormat = "parquet",
) -> list[Path]:
    """Write each day's simulated probes (and weather, when the feed has it) as landing
    files under ``landing_dir``; returns the files written."""
    written = []
    for day in days:
        probes = source.read_probes(day).probes
        folder = landing_dir / "probes" / day.isoformat()
        written.append(_write(probes, folder / f"probes.{file_format}", file_format))
        weather = source.read_weather(day)
        if weather.height:
            path = landing_dir / "weather" / f"{day.isoformat()}.{file_format}"
            written.append(_write(weather, path, file_format))
    return written
