"""Onboarding a feed: every landing file problem reported at once."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from taxi_assets.onboarding import landing_problems
from taxi_assets_tests.probe_builders import raw_probes, track

DAY = date(2026, 5, 1)
NEXT_DAY = date(2026, 5, 2)


def write_day(landing: Path, day: date, name: str, frame: pl.DataFrame) -> Path:
    folder = landing / "probes" / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    frame.write_csv(path) if name.endswith(".csv") else frame.write_parquet(path)
    return path


def test_every_problem_of_every_file_is_listed_with_its_file_and_column(tmp_path: Path) -> None:
    good = raw_probes(track(1, DAY, ["vacant", "occupied", "occupied", "vacant"]))
    write_day(tmp_path, DAY, "good.parquet", good)
    no_heading = write_day(tmp_path, DAY, "no_heading.parquet", good.drop("heading"))
    # Two faulty columns in one CSV: naive timestamps and speeds that are not numbers.
    text = good.with_columns(
        pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%S"), speed_kmh=pl.lit("fast")
    )
    bad_csv = write_day(tmp_path, DAY, "bad.csv", text)

    problems = landing_problems(tmp_path, [DAY, NEXT_DAY], weather_required=False)

    assert any(str(no_heading) in p and "missing column(s) heading" in p for p in problems)
    assert any(str(bad_csv) in p and "'ts'" in p and "time zone" in p for p in problems)
    assert any(str(bad_csv) in p and "'speed_kmh'" in p for p in problems)
    assert any("no probe files for 2026-05-02" in p for p in problems)
    assert not any("good.parquet" in p for p in problems)
    assert len(problems) == 4


def test_weather_files_are_checked_only_when_the_feed_has_weather(tmp_path: Path) -> None:
    write_day(tmp_path, DAY, "good.parquet", raw_probes(track(1, DAY, ["vacant", "occupied"])))

    assert landing_problems(tmp_path, [DAY], weather_required=False) == []
    (problem,) = landing_problems(tmp_path, [DAY], weather_required=True)
    assert "no weather file for 2026-05-01" in problem and "weather source to none" in problem
