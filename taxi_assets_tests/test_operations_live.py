"""Operating the platform as the on-call engineer does, against a real webserver and daemon.

Each test drives ``dagster-webserver`` over the GraphQL API the UI calls (the buttons are
named in the docstrings) while ``dagster-daemon`` runs the queue, backfills, sensors and
schedules: a run whose middle step fails is re-executed from failure after the cause is
fixed; a backfill with one broken day fails that day alone and its failures are
re-executed; the command line backfills too; the sensors and schedules are ticked and the
runs they request checked; a failed check reaches a loopback webhook exactly once; and a
person's click on *Materialize* in headless Chromium runs to success.

The probe source is a landing folder holding the same simulated 60-taxi day shifted to
every date: consecutive days are then alike, so the drift checks (calibrated for 1,000
taxis; a 60-taxi city wanders more from day to day) pass with their real thresholds and a
failure in these tests is the one the test caused.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from playwright.sync_api import expect

from taxi_assets.automation.alerts import AlertLog
from taxi_assets.automation.channels import WEBHOOK_URL_ENV
from taxi_assets.calendar import TOKYO
from taxi_assets.definitions import EXECUTOR_ENV
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets_tests.browser import browser_page
from taxi_assets_tests.dagster_services import (
    LOCATION_NAME,
    VENV_BIN,
    WORKSPACE,
    DagsterServices,
    running_dagster,
)
from taxi_assets_tests.progress_wait import Look
from taxi_assets_tests.test_alerts import write_weather_with_negative_rain
from taxi_assets_tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.services

FIRST_LANDED_DAY = date(2026, 4, 10)
LANDED_DAYS = 20
SIMULATED_DAY = date(2026, 4, 28)
FLEET = 60
# Runs launched here fail on purpose: the instance's automatic run retries (if dagster.yaml
# enables them) would re-execute them before the test could look.
NO_RETRIES = {"dagster/max_retries": "0"}
DATA_PATH_UPSTREAM_STEPS = {
    "raw_probes",
    "weather",
    "clean_and_quarantine_probes",
    "clean_probes_statistics",
    "trip_events",
    "cell_demand",
    "cell_demand_statistics",
}
FEATURE_STEPS = {"training_features", "training_features_statistics"}


def landed_day(offset: int) -> str:
    return (FIRST_LANDED_DAY + timedelta(days=offset)).isoformat()


def probe_file(landing: Path, day: str) -> Path:
    return landing / "probes" / day / "feed.parquet"


def land_days(landing: Path, first: date, days: int) -> pl.DataFrame:
    """Write one simulated day's probes and weather as the landing files of ``days``
    consecutive dates (timestamps shifted); return the simulated day's probes."""
    source = SimulatedProbeSource(fleet_size=FLEET, seed=7)
    probes = source.read_probes(SIMULATED_DAY).probes
    weather = source.read_weather(SIMULATED_DAY)
    (landing / "weather").mkdir(parents=True, exist_ok=True)
    for offset in range(days):
        day = first + timedelta(days=offset)
        shift = pl.duration(days=(day - SIMULATED_DAY).days)
        write_probes(probes.with_columns(pl.col("ts") + shift), probe_file(landing, str(day)))
        weather.with_columns(pl.col("hour_start") + shift).write_parquet(
            landing / "weather" / f"{day}.parquet"
        )
    return probes


def write_probes(probes: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    probes.write_parquet(path)


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("landing")
    land_days(folder, FIRST_LANDED_DAY, LANDED_DAYS)
    return folder


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookReceiver]:
    """The Slack-compatible webhook the daemon's alert sensors post to."""
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def dagster_live(
    tmp_path_factory: pytest.TempPathFactory, landing: Path, webhook: WebhookReceiver
) -> Iterator[DagsterServices]:
    root = tmp_path_factory.mktemp("live")
    env = {
        "TAXI_ASSETS_PROBE_SOURCE": "landing",
        "TAXI_ASSETS_LANDING_DIR": str(landing),
        WEBHOOK_URL_ENV: webhook.url,
        # Files here are written whole before a sensor looks: no need to wait for them.
        "TAXI_ASSETS_LANDING_SETTLE_SECONDS": "0",
        # The tests share days of a 60-taxi city, launched out of order: drift compares with
        # the previous day only, not a validated day a week back, whose small-fleet noise
        # would cross the 1,000-taxi thresholds (the look-back is tested in
        # test_validation_assets).
        "TAXI_ASSETS_DRIFT_LOOKBACK_DAYS": "1",
        # Every run's steps in its run worker, whoever launches it (the UI, a backfill, the
        # command line, a sensor, a re-execution): a process per step, each loading the code
        # location, made a 60-taxi day take 54-68 s instead of 3-7 s here.
        EXECUTOR_ENV: "in_process",
    }
    with running_dagster(root, env) as services:
        yield services


def launch_day(
    services: DagsterServices, day: str, asset_selection: list[str] | None = None
) -> str:
    return services.launch_run(
        "data_path_job",
        tags={"dagster/partition": day, **NO_RETRIES},
        asset_selection=asset_selection,
    )


def materialized(services: DagsterServices, asset: str) -> set[str]:
    with services.instance() as instance:
        return set(instance.get_materialized_partitions(dg.AssetKey(asset)))


def test_reexecute_from_failure_reruns_only_the_failed_step_and_its_dependents(
    dagster_live: DagsterServices,
) -> None:
    """A stored history file the features read is broken: the run fails in its middle, at
    ``training_features``; once the file is restored, *Re-execute from failure* runs the
    features and their statistics only, reading the day's demand the parent stored."""
    services = dagster_live
    # Two days before: only the features read it (the statistics compare with yesterday).
    history_day, day = landed_day(0), landed_day(2)
    history = services.launch_run("data_path_job", tags={"dagster/partition": history_day})
    assert services.wait_for_run(history)["status"] == "SUCCESS", services.step_failures(history)

    history_file = services.data_dir / "cell_demand" / f"{history_day}.parquet"
    intact = history_file.read_bytes()
    history_file.write_bytes(intact[: len(intact) // 2])  # a copy cut short

    parent = launch_day(services, day)
    parent_run = services.wait_for_run(parent)
    assert parent_run["status"] == "FAILURE"
    statuses = {s["stepKey"]: s["status"] for s in parent_run["stepStats"]}
    assert {step: statuses[step] for step in DATA_PATH_UPSTREAM_STEPS} == dict.fromkeys(
        DATA_PATH_UPSTREAM_STEPS, "SUCCESS"
    )
    failures = services.step_failures(parent)
    assert set(failures) == {"training_features"}, failures
    assert "training_features_statistics" not in services.steps_with_event(parent, "STEP_START")

    history_file.write_bytes(intact)
    child = services.reexecute_run(parent, "FROM_FAILURE")
    child_run = services.wait_for_run(child)

    assert child_run["status"] == "SUCCESS", services.step_failures(child)
    assert child_run["parentRunId"] == parent and child_run["rootRunId"] == parent
    assert services.steps_with_event(child, "STEP_START") == FEATURE_STEPS
    assert services.steps_with_event(child, "STEP_SUCCESS") == FEATURE_STEPS
    # The re-executed features read what the parent stored, history included.
    with services.instance() as instance:
        features = instance.get_latest_materialization_event(dg.AssetKey("training_features"))
    assert features is not None and features.run_id == child
    assert features.asset_materialization.partition == day
    assert features.asset_materialization.metadata["history_days"].value == 1


def test_backfills_from_the_ui_and_the_command_line_fail_a_broken_day_alone(
    dagster_live: DagsterServices, landing: Path
) -> None:
    """A backfill over two days (the UI's *Launch backfill*) whose first day's probe file
    lacks a required column: the other day materializes, the broken one fails at
    ``raw_probes``; once the file is fixed, re-executing the backfill's failures re-runs
    that day only, from its failed step, and completes the range. Meanwhile
    ``dagster job backfill --from --to --noprompt`` backfills one more day from the
    command line. (Both share the run queue, one backfill run at a time: two days show a
    broken day failing alone as well as three did, and one day shows the command line's
    backfill as well as two. Launching them together keeps the daemon's 30-second backfill
    iterations from adding up.)"""
    services = dagster_live
    days = [landed_day(offset) for offset in (10, 11)]
    broken_day = days[0]
    good_file = probe_file(landing, broken_day)
    probes = pl.read_parquet(good_file)
    write_probes(probes.drop("heading"), good_file)

    backfill_id = services.launch_backfill("data_path_job", days, tags=NO_RETRIES)
    cli_days = [landed_day(15)]
    cli_output = backfill_from_the_command_line(services, cli_days[0], cli_days[-1])
    backfill = services.wait_for_backfill(backfill_id)

    runs = {tag_value(run, "dagster/partition"): run for run in backfill["runs"]}
    assert sorted(runs) == days
    assert {day: runs[day]["status"] for day in days} == {
        broken_day: "FAILURE",
        days[1]: "SUCCESS",
    }
    failed_run = runs[broken_day]["runId"]
    failures = services.step_failures(failed_run)
    assert set(failures) == {"raw_probes"}
    assert "missing column(s) heading" in failures["raw_probes"]
    assert str(good_file) in failures["raw_probes"]
    stored = materialized(services, "training_features")
    assert set(days[1:]) <= stored and broken_day not in stored

    write_probes(probes, good_file)
    retry_id = services.reexecute_backfill(backfill_id, "FROM_FAILURE")
    retry = services.wait_for_backfill(retry_id)

    # Only the failed day is re-executed, as a child of its failed run, from raw_probes:
    # its weather, which succeeded, is reused.
    assert [tag_value(run, "dagster/partition") for run in retry["runs"]] == [broken_day]
    retry_run = retry["runs"][0]
    assert retry_run["status"] == "SUCCESS", services.step_failures(retry_run["runId"])
    assert retry_run["parentRunId"] == failed_run
    started = services.steps_with_event(retry_run["runId"], "STEP_START")
    assert "raw_probes" in started and "weather" not in started
    assert set(days) <= materialized(services, "training_features")
    assert set(days) <= materialized(services, "training_features_statistics")

    # The command line's backfill: a run for the day of its range, through the same queue.
    cli_backfill_id = cli_output.rsplit("Launched backfill job `", 1)[1].split("`")[0]
    cli_runs = services.wait_for_backfill(cli_backfill_id)["runs"]
    assert sorted(tag_value(run, "dagster/partition") for run in cli_runs) == cli_days
    assert all(run["status"] == "SUCCESS" for run in cli_runs), [
        services.step_failures(run["runId"]) for run in cli_runs
    ]
    assert set(cli_days) <= materialized(services, "training_features")


def backfill_from_the_command_line(services: DagsterServices, first: str, last: str) -> str:
    """Run ``dagster job backfill`` against the services' instance; return its output."""
    result = subprocess.run(
        [
            str(VENV_BIN / "dagster"),
            "job",
            "backfill",
            "-w",
            str(WORKSPACE),
            "-j",
            "data_path_job",
            "--from",
            first,
            "--to",
            last,
            "--tags",
            json.dumps(NO_RETRIES),
            "--noprompt",
        ],
        env=services.env,
        cwd=WORKSPACE.parent,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Launched backfill job" in result.stdout, result.stdout
    return result.stdout


def tag_value(run: dict, key: str) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)


def partition_of(request: dict) -> str | None:
    return tag_value(request, "dagster/partition")


def test_the_landing_sensor_and_the_schedules_request_their_runs_when_ticked(
    dagster_live: DagsterServices, landing: Path
) -> None:
    """*Test sensor* and *Test schedule* on the code server, then the daemon's own tick of
    the landing sensor, switched on from the cursor of what was already handed over: a
    corrected file for one day starts that day's run, and only that one."""
    services = dagster_live
    sensor = "landing_files_sensor"
    first = services.sensor_dry_run(sensor)
    assert sorted(map(partition_of, first["runRequests"])) == [
        landed_day(offset) for offset in range(LANDED_DAYS)
    ]
    assert len({r["runKey"] for r in first["runRequests"]}) == LANDED_DAYS
    again = services.sensor_dry_run(sensor, cursor=first["cursor"])
    assert again["runRequests"] == []
    assert again["skipReason"] == f"No new or changed landing files ({2 * LANDED_DAYS} known)"

    # A corrected delivery replaces one day's probes (a few pings fewer): a new version.
    changed_day = landed_day(5)
    path = probe_file(landing, changed_day)
    probes = pl.read_parquet(path)
    write_probes(probes.head(probes.height - 25), path)
    services.set_sensor_cursor(sensor, first["cursor"])
    switched_on = time.time()
    services.start_sensor(sensor)
    try:
        tick = services.wait_for_sensor_tick(sensor, after=switched_on - 1)
    finally:
        services.stop_sensor(sensor)

    assert tick["status"] == "SUCCESS", tick
    (run_id,) = tick["runIds"]
    run = services.wait_for_run(run_id)
    assert run["status"] == "SUCCESS", services.step_failures(run_id)
    assert partition_of(run) == changed_day
    assert tag_value(run, "dagster/sensor_name") == sensor
    assert tag_value(run, "taxi_assets/landing_files") == f"probes/{changed_day}/feed.parquet"
    assert changed_day in materialized(services, "training_features")

    # The nightly schedule at 00:30 Tokyo asks for the day that just closed, end to end.
    night = datetime(2026, 4, 21, 0, 30, tzinfo=TOKYO).timestamp()
    (daily,) = services.schedule_dry_run("daily_training_schedule", night)["runRequests"]
    assert daily["runKey"] == "daily:2026-04-20"
    assert partition_of(daily) == "2026-04-20"
    assert tag_value(daily, "taxi_assets/trigger") == "daily_training_schedule"
    # The forecast's next tick after 18:03 is 18:05, and the run forecasts that instant.
    evening = datetime(2026, 4, 28, 18, 3, tzinfo=TOKYO).timestamp()
    (forecast,) = services.schedule_dry_run("forecast_every_5_minutes", evening)["runRequests"]
    assert forecast["runKey"] == "forecast:2026-04-28T18:05:00+09:00"
    assert "tick: 2026-04-28T18:05:00+09:00\n" in forecast["runConfigYaml"]


def test_a_failed_check_is_alerted_once_by_the_daemon_to_the_webhook(
    dagster_live: DagsterServices, landing: Path, webhook: WebhookReceiver
) -> None:
    """A day's weather delivery breaks its contract: the blocking check fails the run, and
    the daemon's ``asset_check_alert_sensor`` posts exactly one alert for it (the run
    failure gets its own), however many times the sensors tick after."""
    services = dagster_live
    day = landed_day(18)
    write_weather_with_negative_rain(landing, date.fromisoformat(day))

    run_id = launch_day(services, day, asset_selection=["weather"])
    assert services.wait_for_run(run_id)["status"] == "FAILURE"

    def alerts_about_the_run() -> tuple[list[dict], list[dict]]:
        bodies = [b for b in webhook.bodies if run_id in json.dumps(b)]
        check = [b for b in bodies if "weather:contract failed" in b["text"]]
        return check, [b for b in bodies if b not in check]

    def look() -> Look[bool]:
        # The alerts come from the daemon's sensor ticks: they are the progress.
        check, run_failure = alerts_about_the_run()
        return Look(
            done=True if check and run_failure else None,
            progress=services.latest_sensor_ticks(),
            summary=f"{len(check)} check and {len(run_failure)} run-failure alert(s) "
            f"about the run; webhook bodies {len(webhook.bodies)}",
        )

    services.wait_on_progress(look, "the check and run-failure alerts")
    delivered = time.time()
    for sensor in ("asset_check_alert_sensor", "run_failure_alert_sensor"):
        services.wait_for_sensor_tick(sensor, after=delivered)

    check_alerts, run_alerts = alerts_about_the_run()
    assert len(check_alerts) == 1 and len(run_alerts) == 1, webhook.bodies
    fields = " ".join(f["text"] for f in check_alerts[0]["blocks"][1]["fields"])
    assert "weather" in fields and "contract" in fields and day in fields
    assert "failure_count=3" in json.dumps(check_alerts[0])
    log = AlertLog(services.home / "alerts" / "alerts.jsonl").entries()
    (entry,) = [e for e in log if e["kind"] == "asset_check" and e["partition"] == day]
    assert entry["deliveries"] == {"alert_log": "written", "webhook": "sent"}
    assert webhook.token not in json.dumps(log)


def test_a_user_materializes_an_asset_from_the_graph_in_a_browser(
    dagster_live: DagsterServices, tmp_path: Path
) -> None:
    """Headless Chromium, as a person: open the ingestion group's lineage graph, click the
    ``weather`` node, *Materialize selected*, type one day, *Launch 1 run*, follow the
    toast's *View* to the run page and see it succeed."""
    services = dagster_live
    day = landed_day(7)
    with browser_page(screenshot_on_failure=tmp_path / "ui.png") as page:
        page.set_default_timeout(60_000)
        # A first visit is greeted, at some moment, by "Join the Dagster community": a
        # person skips it, whenever it shows up.
        page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
        page.goto(f"{services.url}/locations/{LOCATION_NAME}/asset-groups/ingestion/lineage")
        page.get_by_text("weather", exact=True).click()
        page.get_by_role("button", name="Materialize selected…").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("Launch runs to materialize weather")
        dialog.get_by_text("Show all partitions").click()  # the landed days are months back
        partitions = dialog.locator("input").first
        partitions.fill(day)
        partitions.press("Enter")
        dialog.get_by_role("button", name="Launch 1 run").click()
        expect(page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))).to_be_visible()
        page.get_by_role("link", name="View", exact=True).click()
        page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
        run_id = page.url.rsplit("/", 1)[1]
        # Waited on by its progress, then the page must show what the run did.
        run = services.wait_for_run(run_id)
        # The run is over: reload rather than wait on the page's own polling (on a loaded
        # machine its refresh came after the 5 s default of expect), then give it the
        # page's 60 s to render.
        page.reload()
        expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=60_000)

    assert run["status"] == "SUCCESS" and partition_of(run) == day
    assert day in materialized(services, "weather")
