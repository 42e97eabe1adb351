"""`taxi-assets run`: the main job over a window, with runs kept in the instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from taxi_assets import cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Dagster home with the repo's dagster.yaml, as `make run` prepares it."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("TAXI_ASSETS_DATA_DIR", str(tmp_path / "data"))
    return home


def test_run_is_the_whole_loop_from_data_to_forecast(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Three days of the default 1,000-taxi city, as `make run` uses it (the drift thresholds
    # are calibrated for it; a 40-taxi city wanders more from one day to the next): train on
    # the first, stop early on the second, evaluate on the third. One run checks both the
    # data path's summary and the model loop: each used to simulate its own 1,000-taxi days.
    args = ["run", "--start", "2026-05-01", "--days", "3", "--iterations", "100"]
    exit_code = cli.main(args)

    out = capsys.readouterr().out
    assert exit_code == 0, out
    days = ("2026-05-01", "2026-05-02", "2026-05-03")
    assert all(f"{day}  ok" in out for day in days), out
    assert "3 day(s):" in out and "street-hail" in out
    for reason in ("duplicate", "gps_jump", "stuck_status"):
        assert reason in out
    assert "0 schema anomalies and 0 drifted features" in out
    assert (tmp_path / "data" / "cell_demand" / "2026-05-03.parquet").exists()

    assert "train, evaluate, deploy (2026-05-03)  ok" in out
    assert "forecast tick 2026-05-03T18:00:00+09:00  ok" in out
    assert "forecast accuracy (2026-05-03)  ok" in out
    for predictor in ("model", "last_week", "historical_average", "oracle"):
        assert f"│ {predictor} " in out
    assert "Distance to the oracle" in out and "Production model: 2026-05-03-" in out
    assert "Cruising guidance: " in out and "replayed on what happened: " in out

    # The runs live in the instance the README names, so `dagster dev` shows them.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert sorted({run.job_name for run in runs}) == [
            "data_path_job",
            "forecast_job",
            "monitoring_job",
            "training_job",
        ]
        data_path_runs = [run for run in runs if run.job_name == "data_path_job"]
        assert sorted(run.tags["dagster/partition"] for run in data_path_runs) == list(days)
        assert all(run.is_success for run in runs)


def test_the_model_loop_needs_three_days(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert cli.main(["run", "--days", "2"]) == 2
    assert "needs at least 3 days" in capsys.readouterr().err


def test_run_without_dagster_home_explains_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert cli.main(["run", "--days", "1"]) == 2
    assert "DAGSTER_HOME is not set" in capsys.readouterr().err


def test_a_failed_check_is_printed_with_what_it_found(capsys: pytest.CaptureFixture[str]) -> None:
    @dg.asset(check_specs=[dg.AssetCheckSpec("contract", asset="speeds", blocking=True)])
    def speeds():
        yield dg.Output(1)
        yield dg.AssetCheckResult(
            check_name="contract",
            passed=False,
            description="Speeds broken: 1 of 3 rows fail, 1 failure case(s): speed_kmh x1",
        )

    defs = dg.Definitions(assets=[speeds], jobs=[dg.define_asset_job("speeds_job")])
    with dg.instance_for_test() as instance:
        assert not cli.run_job(instance, defs, "speeds_job", "speeds")
    printed = capsys.readouterr().out
    assert "  speeds  FAILED  run " in printed
    assert (
        "    check speeds:contract failed: Speeds broken: 1 of 3 rows fail, "
        "1 failure case(s): speed_kmh x1"
    ) in printed
