"""Alerts end to end: a real failed contract check of ours, the real sensors on a real
instance, a webhook receiver and an SMTP server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from taxi_assets.automation.alert_sensors import (
    asset_check_alert_sensor,
    check_failure_alert,
    run_failure_alert_sensor,
)
from taxi_assets.automation.alerts import Alert, AlertLog, SentAlerts, redact
from taxi_assets.automation.channels import (
    SMTP_PASSWORD_ENV,
    WEBHOOK_URL_ENV,
    AlertChannels,
    alert_resources,
)
from taxi_assets.calendar import day_window_utc
from taxi_assets.definitions import ASSET_MODULES, defs
from taxi_assets.sources.landing import LandingFolderProbeSource
from taxi_assets_tests.smtp_server import SmtpServer, running_smtp_server
from taxi_assets_tests.webhook_receiver import WebhookReceiver

DAY = date(2026, 5, 1)
UI = "http://dagster.example.test:3000"
SMTP_USER = "alerts"
SMTP_PASSWORD = "s3cret-smtp-pa55word"
WEATHER_FAILURE = (
    "Weather broken: 3 of 24 rows fail, 3 failure case(s): "
    "rain_mm_per_h greater_than_or_equal_to(0) x3 (e.g. '-1.0', '-0.5', '-2.0')"
)


def write_weather_with_negative_rain(landing: Path, day: date = DAY) -> None:
    """A weather delivery that reads fine but breaks the contract (rain below 0 in 3 hours)."""
    folder = landing / "weather"
    folder.mkdir(parents=True, exist_ok=True)
    day_start, day_end = day_window_utc(day)
    hours = pl.datetime_range(day_start, day_end, "1h", closed="left", eager=True, time_zone="UTC")
    rain = [-1.0, -0.5, -2.0] + [0.0] * 21
    pl.DataFrame({"hour_start": hours, "rain_mm_per_h": rain}).write_parquet(
        folder / f"{day}.parquet"
    )


def materialize_bad_weather(
    tmp_path: Path, resources: dict, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    landing = tmp_path / "landing"
    write_weather_with_negative_rain(landing)
    result = dg.materialize(
        dg.load_assets_from_modules(list(ASSET_MODULES)),
        partition_key=DAY.isoformat(),
        resources={**resources, "probe_source": LandingFolderProbeSource(landing_dir=str(landing))},
        instance=instance,
        selection="weather",
        raise_on_error=False,
    )
    assert not result.success  # the contract check is blocking: the run fails
    return result


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with running_smtp_server(SMTP_USER, SMTP_PASSWORD) as server:
        yield server


@pytest.fixture
def channels(
    webhook: WebhookReceiver,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> AlertChannels:
    monkeypatch.setenv(WEBHOOK_URL_ENV, webhook.url)
    monkeypatch.setenv(SMTP_PASSWORD_ENV, SMTP_PASSWORD)
    return AlertChannels(
        ui_base_url=UI,
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_user=SMTP_USER,
        smtp_starttls=False,
        email_from="taxi-assets@example.test",
        email_to=["oncall@example.test", "data@example.test"],
    )


def tick(
    sensor: dg.SensorDefinition,
    instance: dg.DagsterInstance,
    channels: AlertChannels,
    cursor: str | None,
) -> dg.SensorEvaluationContext:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        repository_def=defs.get_repository_def(),
        resources={"alerts": channels},
    )
    sensor.evaluate_tick(context)
    return context


def log_entries(instance: dg.DagsterInstance) -> list[dict]:
    return AlertLog(Path(instance.root_directory) / "alerts" / "alerts.jsonl").entries()


def test_a_failed_check_is_alerted_once_on_every_channel_even_when_read_again(
    tmp_path: Path,
    small_city_resources: dict,
    instance: dg.DagsterInstance,
    channels: AlertChannels,
    webhook: WebhookReceiver,
    smtp_server: SmtpServer,
) -> None:
    run_id = materialize_bad_weather(tmp_path, small_city_resources, instance).run_id

    first = tick(asset_check_alert_sensor, instance, channels, cursor=None)
    # The next tick, a tick after a cursor reset, and a tick from the very beginning (a second
    # sensor) all read the same evaluation: none of them may send it again.
    tick(asset_check_alert_sensor, instance, channels, cursor=first.cursor)
    tick(asset_check_alert_sensor, instance, channels, cursor=None)
    tick(asset_check_alert_sensor, instance, channels, cursor="-1")

    (entry,) = [e for e in log_entries(instance) if e["kind"] == "asset_check"]
    assert entry["asset"] == "weather"
    assert entry["check"] == "contract"
    assert entry["partition"] == DAY.isoformat()
    assert entry["severity"] == "ERROR"
    assert entry["check_description"].startswith("Pandera contract Weather: Hourly rain")
    # The column, the rule and the counts, in the alert as in the UI's check description.
    assert entry["result_description"] == WEATHER_FAILURE
    assert entry["counts"] == {"failure_count": 3, "failing_rows": 3, "rows_checked": 24}
    assert entry["run_url"] == f"{UI}/runs/{run_id}"
    assert entry["deliveries"] == {"alert_log": "written", "webhook": "sent", "email": "sent"}
    assert f"run: {UI}/runs/{run_id}" in entry["text"]

    (body,) = webhook.bodies
    # Slack incoming-webhook shape: `text` for notifications plus Block Kit blocks.
    assert isinstance(body["text"], str) and "weather:contract failed" in body["text"]
    assert body["blocks"][0]["type"] == "header"
    assert all(block["type"] in {"header", "section"} for block in body["blocks"])
    fields = " ".join(f["text"] for f in body["blocks"][1]["fields"])
    assert "weather" in fields and "contract" in fields and DAY.isoformat() in fields
    assert "failure_count=3" in json.dumps(body)
    assert WEATHER_FAILURE in json.dumps(body["blocks"])
    assert f"<{UI}/runs/{run_id}|Open the run>" in json.dumps(body)

    ((sender, recipients, content),) = smtp_server.handler.messages
    assert sender == "taxi-assets@example.test"
    assert recipients == ["oncall@example.test", "data@example.test"]
    mail = email.message_from_string(content, policy=email.policy.default)
    assert mail["Subject"] == "[taxi_assets ERROR] Check weather:contract failed for 2026-05-01"
    assert mail.get_content().replace("\r\n", "\n") == entry["text"] + "\n"
    assert WEATHER_FAILURE in mail.get_content()


def test_a_failed_contract_names_column_rule_and_counts_in_the_ui_and_the_run_log(
    tmp_path: Path, small_city_resources: dict, instance: dg.DagsterInstance
) -> None:
    result = materialize_bad_weather(tmp_path, small_city_resources, instance)
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.description == WEATHER_FAILURE  # what the UI shows for the check
    # Dagster's own step error only says "weather: contract"; the run log (the console)
    # carries the description too.
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert f"Check weather:contract failed: {WEATHER_FAILURE}" in messages


def test_a_passed_check_is_not_alerted_and_the_cursor_moves_past_it(
    tmp_path: Path,
    small_city_resources: dict,
    instance: dg.DagsterInstance,
    channels: AlertChannels,
    webhook: WebhookReceiver,
) -> None:
    landing = tmp_path / "landing"
    write_weather_with_negative_rain(landing)
    weather_file = landing / "weather" / f"{DAY}.parquet"
    pl.read_parquet(weather_file).with_columns(pl.lit(0.0).alias("rain_mm_per_h")).write_parquet(
        weather_file
    )
    result = dg.materialize(
        dg.load_assets_from_modules(list(ASSET_MODULES)),
        partition_key=DAY.isoformat(),
        resources={
            **small_city_resources,
            "probe_source": LandingFolderProbeSource(landing_dir=str(landing)),
        },
        instance=instance,
        selection="weather",
    )
    assert result.success
    context = tick(asset_check_alert_sensor, instance, channels, cursor=None)
    assert int(context.cursor) > 0
    assert webhook.bodies == []
    assert log_entries(instance) == []


def test_a_failed_run_is_alerted_with_its_step_and_error_once(
    tmp_path: Path,
    small_city_resources: dict,
    instance: dg.DagsterInstance,
    channels: AlertChannels,
    webhook: WebhookReceiver,
) -> None:
    # The first tick only places the cursor (Dagster's run-status sensors start "now").
    start = dg.build_sensor_context(instance=instance, resources={"alerts": channels})
    run_failure_alert_sensor.evaluate_tick(start)
    run_id = materialize_bad_weather(tmp_path, small_city_resources, instance).run_id

    for _ in range(2):  # the same cursor twice: a replayed tick, or a second sensor
        context = dg.build_sensor_context(
            instance=instance, cursor=start.cursor, resources={"alerts": channels}
        )
        run_failure_alert_sensor.evaluate_tick(context)

    (entry,) = [e for e in log_entries(instance) if e["kind"] == "run_failure"]
    assert entry["run_id"] == run_id
    assert entry["failed_steps"] == ["weather"]
    assert "blocking asset check failed" in entry["error"]
    # ... and what the check found, which Dagster's step error leaves out.
    assert f"weather:contract: {WEATHER_FAILURE}" in entry["error"]
    assert entry["partition"] == DAY.isoformat()
    assert entry["run_url"] == f"{UI}/runs/{run_id}"
    (body,) = webhook.bodies
    assert "failed for 2026-05-01" in body["text"]
    assert "weather" in json.dumps(body["blocks"])


def test_secrets_never_reach_the_alert_log_sensor_logs_or_the_instance(
    tmp_path: Path,
    small_city_resources: dict,
    instance: dg.DagsterInstance,
    channels: AlertChannels,
    webhook: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # The webhook refuses (as Slack does for a revoked hook): the failure is recorded,
    # redacted, and the email still goes out.
    webhook.status = 403
    caplog.set_level(logging.DEBUG)
    materialize_bad_weather(tmp_path, small_city_resources, instance)
    start = dg.build_sensor_context(instance=instance, resources={"alerts": channels})
    run_failure_alert_sensor.evaluate_tick(start)
    tick(asset_check_alert_sensor, instance, channels, cursor=None)
    materialize_bad_weather(tmp_path / "again", small_city_resources, instance)
    context = dg.build_sensor_context(
        instance=instance, cursor=start.cursor, resources={"alerts": channels}
    )
    run_failure_alert_sensor.evaluate_tick(context)

    entries = log_entries(instance)
    assert {e["kind"] for e in entries} == {"asset_check", "run_failure"}
    assert all(e["deliveries"]["webhook"].startswith("failed: HTTPError") for e in entries)
    assert all(e["deliveries"]["email"] == "sent" for e in entries)
    token = webhook.token
    printed = capfd.readouterr()  # Dagster's loggers write to stderr, not to logging's root
    places = {
        "alert log": (Path(instance.root_directory) / "alerts" / "alerts.jsonl").read_text(),
        "sensor and run logs": caplog.text + printed.err + printed.out,
        "resource config": json.dumps(channels.model_dump()),
        "instance events": "".join(
            str(event) for run in instance.get_runs() for event in instance.all_logs(run.run_id)
        ),
    }
    # Not vacuous: the places hold what the sensors and runs said.
    assert "webhook failed: HTTPError: HTTP Error 403" in places["sensor and run logs"]
    assert "Weather broken: 3 of 24 rows fail" in places["instance events"]
    for place, text in places.items():
        assert token not in text, place
        assert SMTP_PASSWORD not in text, place


def test_redact_removes_every_secret_occurrence() -> None:
    url = "https://hooks.slack.com/services/T0/B0/abc123"
    message = f"<urlopen error {url}> while posting to {url}"
    assert redact(message, [url, None, ""]) == "<urlopen error ***> while posting to ***"


def test_two_sensors_racing_on_one_failure_send_it_once(
    tmp_path: Path,
    webhook: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(WEBHOOK_URL_ENV, webhook.url)
    alert = Alert(
        kind="run_failure",
        dedupe_key="run_failure:abc",
        severity="ERROR",
        title="Run of data_path_job failed",
        run_id="abc",
        run_url=f"{UI}/runs/abc",
    )
    channels = AlertChannels(ui_base_url=UI)
    barrier = threading.Barrier(4)
    outcomes: list[bool] = []

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:

        def send() -> None:
            barrier.wait()
            outcomes.append(channels.dispatch(alert, instance).duplicate)

        threads = [threading.Thread(target=send) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(outcomes) == [False, True, True, True]
    assert len(webhook.bodies) == 1
    assert len(AlertLog(tmp_path / "alerts" / "alerts.jsonl").entries()) == 1


def test_a_restarted_pod_without_the_alert_log_file_does_not_alert_again(
    tmp_path: Path, webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "sent once" memory is the instance's storage: a new process over the same
    storage, whose local alert log is gone (no volume in Kubernetes), sends nothing."""
    monkeypatch.setenv(WEBHOOK_URL_ENV, webhook.url)
    alert = Alert(
        kind="run_failure",
        dedupe_key="run_failure:restart",
        severity="ERROR",
        title="Run of daily_job failed",
        run_id="restart",
        run_url=f"{UI}/runs/restart",
    )
    channels = AlertChannels(ui_base_url=UI)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert not channels.dispatch(alert, instance).duplicate
        assert SentAlerts(instance).get("run_failure:restart")["deliveries"] == {
            "alert_log": "written",
            "webhook": "sent",
        }
    (tmp_path / "alerts" / "alerts.jsonl").unlink()  # the pod's disk is gone
    with dg.instance_for_test(temp_dir=str(tmp_path)) as restarted:
        assert channels.dispatch(alert, restarted).duplicate
    assert len(webhook.bodies) == 1


def test_without_webhook_or_smtp_the_alert_log_still_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(WEBHOOK_URL_ENV, raising=False)
    channels = alert_resources({})["alerts"]
    evaluation = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("cell_demand"),
        check_name="contract",
        passed=False,
        metadata={"failure_count": 7},
        severity=dg.AssetCheckSeverity.WARN,
        description="7 failure cases",
    )
    alert = check_failure_alert(evaluation, "r1", 0.0, None, channels.run_url("r1"))
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        delivery = channels.dispatch(alert, instance)
    assert delivery.deliveries == {"alert_log": "written"}
    (entry,) = AlertLog(tmp_path / "alerts" / "alerts.jsonl").entries()
    assert entry["severity"] == "WARN"
    assert entry["run_url"] == "http://localhost:3000/runs/r1"


def test_alert_settings_come_from_the_environment() -> None:
    channels = alert_resources(
        {
            "TAXI_ASSETS_UI_URL": "https://dagster.internal/",
            "TAXI_ASSETS_SMTP_HOST": "smtp.internal",
            "TAXI_ASSETS_SMTP_PORT": "2525",
            "TAXI_ASSETS_ALERT_EMAIL_FROM": "a@x",
            "TAXI_ASSETS_ALERT_EMAIL_TO": "b@x, c@x",
            "TAXI_ASSETS_SMTP_STARTTLS": "false",
        }
    )["alerts"]
    assert channels.run_url("r") == "https://dagster.internal/runs/r"
    assert (channels.smtp_port, channels.email_to, channels.smtp_starttls) == (
        2525,
        ["b@x", "c@x"],
        False,
    )
    with pytest.raises(ValueError, match="TAXI_ASSETS_SMTP_PORT='smtp'"):
        alert_resources({"TAXI_ASSETS_SMTP_PORT": "smtp"})
