"""Onboarding a feed: every landing file problem reported at once."""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from taxi_assets import cli
from taxi_assets.onboarding import landing_problems
from taxi_assets_tests.probe_builders import raw_probes, track

REPO = Path(__file__).resolve().parents[1]
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


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Dagster home with the repo's dagster.yaml and its own data folder."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("TAXI_ASSETS_DATA_DIR", str(tmp_path / "data"))
    for name in ("TAXI_ASSETS_VALIDATION_DIR", "TAXI_ASSETS_WEATHER_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    return home


# A fortnight after Golden Week: a weekend and weekdays to onboard on, then a Thursday.
REFERENCE_START, REFERENCE_DAYS = date(2026, 5, 8), 6
LATER_DAY = date(2026, 5, 14)
BROKEN_DAY = date(2026, 5, 15)


def test_a_feed_with_every_real_trait_goes_from_landing_files_to_a_forecast_by_the_cli(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # String ids, 60 s pings, a flapping meter, GPS steps, boundary re-entries, no
    # dispatch and no weather: the real_60s profile, delivered as CSV files.
    landing, validation = tmp_path / "landing", tmp_path / "validation"
    simulate = ["simulate", "--profile", "real_60s", "--fleet", "600", "--format", "csv"]
    days = str(REFERENCE_DAYS + 2)
    assert (
        cli.main(
            [*simulate, "--start", str(REFERENCE_START), "--days", days, "--out", str(landing)]
        )
        == 0
    )
    assert not (landing / "weather").exists()
    ids = pl.read_csv(landing / "probes" / str(LATER_DAY) / "probes.csv")["vehicle_id"]
    assert ids.dtype == pl.String and ids.str.starts_with("T-").all()
    feed = ["--landing-dir", str(landing), "--no-weather", "--validation-dir", str(validation)]

    onboarded = cli.main(
        ["onboard", "--start", str(REFERENCE_START), "--days", str(REFERENCE_DAYS), *feed]
    )
    out = capsys.readouterr().out
    assert onboarded == 0, out
    assert "every file of 6 day(s) reads cleanly" in out and "changes to review" in out
    # The feed's own vacant presence, for GuidanceConfig: 60 s pings hold a taxi passing
    # through for a minute, so a little above the 15 s simulator's 0.17 (0.21 at 60 taxis).
    presence = re.search(r"vacant presence (\d\.\d+) \(days", out)
    assert presence and 0.15 < float(presence.group(1)) < 0.3, out
    assert {p.name for p in validation.iterdir()} >= {
        "clean_probes.json",
        "cell_demand.json",
        "training_features.json",
        "drift_thresholds.json",
    }

    # A later day of the same feed passes the feed's own validation; the model trains on
    # the onboarded days, is judged by the default rules, and one tick is forecast.
    assert (
        cli.main(["run", "--start", str(LATER_DAY), "--days", "1", "--data-path-only", *feed]) == 0
    )
    out = capsys.readouterr().out
    assert "0 schema anomalies and 0 drifted features" in out, out
    assert "train, evaluate" not in out and "forecast tick" not in out, out  # data path only
    # 50 trees, not the default cap of 150: over half this test's time went to training,
    # and the default rules bless the smaller model too (the blessing is what is tested).
    trained = cli.main(
        ["train", "--day", str(LATER_DAY), "--window-days", str(REFERENCE_DAYS)]
        + ["--iterations", "50", *feed]
    )
    out = capsys.readouterr().out
    assert trained == 0 and "Blessed: True" in out, out
    assert cli.main(["forecast", "--tick", f"{LATER_DAY}T18:00", *feed]) == 0
    assert "Forecast tick: " in capsys.readouterr().out

    # A breakage of the feed still crosses the calibrated thresholds: half the fleet silent.
    broken = landing / "probes" / str(BROKEN_DAY) / "probes.csv"
    probes = pl.read_csv(broken, infer_schema=False)
    silent = probes["vehicle_id"].unique().sort()[::2]
    probes.filter(~pl.col("vehicle_id").is_in(silent)).write_csv(broken)
    assert (
        cli.main(["run", "--start", str(BROKEN_DAY), "--days", "1", "--data-path-only", *feed]) == 1
    )
    assert "drift" in capsys.readouterr().out
