"""The landing-folder sensor: new or changed files run the data path for the days they cover.

A file is taken once per version (its size and modification time): the cursor remembers the
version of every file already handed to a run, and each run's key names the versions it was
requested for, so Dagster refuses a duplicate even if the cursor is reset. A file is left
alone while it may still be written: an in-flight name (``.*``, ``_*``, ``*.tmp``,
``*.part``, see :mod:`taxi_assets.sources.landing`), or a modification less than the settle
time ago (``TAXI_ASSETS_LANDING_SETTLE_SECONDS``, default 60), for uploaders that write the
final name directly. Files of the Tokyo day still in progress wait for the day to close
(the live forecast reads them meanwhile); the partition does not exist before that.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import PurePosixPath

import dagster as dg
from upath import UPath

from taxi_assets.calendar import TOKYO
from taxi_assets.jobs import data_path_job
from taxi_assets.partitions import PARTITIONS_START
from taxi_assets.sources.base import ProbeSource
from taxi_assets.sources.landing import LandingFolderProbeSource, is_complete_landing_file

SETTLE_SECONDS_ENV = "TAXI_ASSETS_LANDING_SETTLE_SECONDS"
DEFAULT_SETTLE_SECONDS = 60.0


@dataclass(frozen=True)
class LandingFile:
    """One complete-looking file of the landing folder and the Tokyo day it belongs to."""

    relative: str  # e.g. probes/2026-05-01/part-1.parquet
    day: date
    size: int
    modified: float  # POSIX seconds

    @property
    def version(self) -> str:
        return f"{self.size}:{self.modified:.6f}"


@dataclass
class LandingPlan:
    """What one tick decided: files per day to run, the new cursor, and what waits."""

    runs: dict[date, list[LandingFile]] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)
    settling: list[str] = field(default_factory=list)
    day_open: list[str] = field(default_factory=list)

    def run_key(self, day: date) -> str:
        versions = "|".join(f"{f.relative}@{f.version}" for f in self.runs[day])
        return f"landing:{day.isoformat()}:{hashlib.sha1(versions.encode()).hexdigest()[:16]}"


def _day_of(name: str) -> date | None:
    try:
        return date.fromisoformat(name)
    except ValueError:
        return None


def scan_landing_folder(landing_dir: UPath) -> list[LandingFile]:
    """Every complete-looking probe and weather file with its day, size and mtime."""
    candidates: list[tuple[UPath, date | None]] = []
    probes = landing_dir / "probes"
    if probes.exists():
        for folder in probes.iterdir():
            if folder.is_dir():
                candidates += [(path, _day_of(folder.name)) for path in folder.iterdir()]
    weather = landing_dir / "weather"
    if weather.exists():
        candidates += [(path, _day_of(path.stem)) for path in weather.iterdir()]
    found = []
    for path, day in candidates:
        if day is None or not path.is_file() or not is_complete_landing_file(path):
            continue
        stat = path.stat()
        relative = PurePosixPath(path.path).relative_to(PurePosixPath(landing_dir.path))
        found.append(LandingFile(str(relative), day, stat.st_size, float(stat.st_mtime)))
    return sorted(found, key=lambda f: f.relative)


def is_closed_day(day: date, now: datetime) -> bool:
    """A day has a partition once it has ended in Tokyo (and is not before the first one)."""
    return date.fromisoformat(PARTITIONS_START) <= day < now.astimezone(TOKYO).date()


def plan_landing_runs(
    files: Iterable[LandingFile], seen: Mapping[str, str], now: datetime, settle_seconds: float
) -> LandingPlan:
    """Which days to run for files that are new or changed since ``seen``.

    A file that is not taken yet (settling, day still open) stays out of the new cursor so a
    later tick sees it as new; files that disappeared drop out of it.
    """
    plan = LandingPlan()
    for landing_file in files:
        if seen.get(landing_file.relative) == landing_file.version:
            plan.seen[landing_file.relative] = landing_file.version
        elif now.timestamp() - landing_file.modified < settle_seconds:
            plan.settling.append(landing_file.relative)
            if landing_file.relative in seen:
                plan.seen[landing_file.relative] = seen[landing_file.relative]
        elif not is_closed_day(landing_file.day, now):
            plan.day_open.append(landing_file.relative)
        else:
            plan.runs.setdefault(landing_file.day, []).append(landing_file)
            plan.seen[landing_file.relative] = landing_file.version
    return plan


def settle_seconds_from_env(env: Mapping[str, str] | None = None) -> float:
    env = os.environ if env is None else env
    raw = env.get(SETTLE_SECONDS_ENV)
    if raw is None:
        return DEFAULT_SETTLE_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise ValueError(f"{SETTLE_SECONDS_ENV}={raw!r} is not a number of seconds >= 0")
    return seconds


@dg.sensor(
    name="landing_files_sensor",
    job=data_path_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Runs data_path_job for every closed Tokyo day whose probe or weather files in "
    "the landing folder are new or changed, once per file version; skips files still being "
    f"written (in-flight names, or modified within {SETTLE_SECONDS_ENV} seconds). Does "
    "nothing unless the probe source is the landing folder.",
)
def landing_files_sensor(
    context: dg.SensorEvaluationContext, probe_source: ProbeSource
) -> dg.SensorResult | dg.SkipReason:
    if not isinstance(probe_source, LandingFolderProbeSource):
        return dg.SkipReason(
            f"The probe source is {type(probe_source).__name__}, not the landing folder "
            "(TAXI_ASSETS_PROBE_SOURCE=landing): nothing to watch"
        )
    seen = json.loads(context.cursor) if context.cursor else {}
    files = scan_landing_folder(UPath(probe_source.landing_dir))
    now = datetime.fromtimestamp(time.time(), TOKYO)
    plan = plan_landing_runs(files, seen, now, settle_seconds_from_env())
    if plan.settling:
        context.log.info(f"Still being written, retried next tick: {', '.join(plan.settling)}")
    if plan.day_open:
        context.log.info(f"Day not closed yet, waiting: {', '.join(plan.day_open)}")
    requests = [
        dg.RunRequest(
            run_key=plan.run_key(day),
            partition_key=day.isoformat(),
            tags={
                "taxi_assets/trigger": "landing_files_sensor",
                "taxi_assets/landing_files": ",".join(f.relative for f in day_files)[:500],
            },
        )
        for day, day_files in sorted(plan.runs.items())
    ]
    cursor = json.dumps(plan.seen, sort_keys=True)
    if not requests:
        return dg.SensorResult(
            skip_reason=f"No new or changed landing files ({len(files)} known)", cursor=cursor
        )
    return dg.SensorResult(run_requests=requests, cursor=cursor)
