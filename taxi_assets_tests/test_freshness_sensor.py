"""The forecast freshness sensor on a test instance: quiet while ticks succeed, one alert
through the alert channels once none has for 15 minutes, not repeated."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from taxi_assets.automation.channels import AlertChannels
from taxi_assets.automation.freshness_sensor import (
    forecast_freshness_sensor,
    last_forecast_tick,
    stale_forecast_alert,
)
from taxi_assets.definitions import defs
from taxi_assets_tests.webhook_receiver import WebhookReceiver


@pytest.fixture
def test_instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def channels(tmp_path: Path, webhook: WebhookReceiver, monkeypatch) -> AlertChannels:
    monkeypatch.setenv("TAXI_ASSETS_ALERT_WEBHOOK_URL", webhook.url)
    return AlertChannels(alert_log_path=str(tmp_path / "alerts.jsonl"))


def forecast_succeeded(instance: dg.DagsterInstance, tick: datetime) -> None:
    """A demand_forecast materialization of ``tick``, with the metadata the asset records."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "demand_forecast", metadata={"tick": dg.MetadataValue.timestamp(tick)}
        )
    )


def evaluate(instance: dg.DagsterInstance, channels: AlertChannels) -> str:
    context = dg.build_sensor_context(
        instance=instance, repository_def=defs.get_repository_def(), resources={"alerts": channels}
    )
    result = forecast_freshness_sensor.evaluate_tick(context)
    return result.skip_message or ""


def alert_log(channels: AlertChannels) -> list[dict]:
    path = Path(channels.alert_log_path or "")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_fresh_forecast_raises_nothing(
    test_instance: dg.DagsterInstance, channels: AlertChannels, webhook: WebhookReceiver
) -> None:
    forecast_succeeded(test_instance, datetime.now(UTC) - timedelta(minutes=4))
    assert "the forecast is fresh" in evaluate(test_instance, channels)
    assert alert_log(channels) == []
    assert webhook.bodies == []


def test_fifteen_minutes_without_a_tick_alerts_once_through_the_channels(
    test_instance: dg.DagsterInstance, channels: AlertChannels, webhook: WebhookReceiver
) -> None:
    last = (datetime.now(UTC) - timedelta(minutes=22)).replace(microsecond=0)
    forecast_succeeded(test_instance, last)
    assert last_forecast_tick(test_instance)[0] == last  # type: ignore[index]
    evaluate(test_instance, channels)
    message = evaluate(test_instance, channels)  # the next tick finds it already sent
    assert "already alerted" in message
    (entry,) = alert_log(channels)
    assert entry["kind"] == "forecast_freshness"
    assert entry["asset"] == "demand_forecast"
    assert entry["title"] == "No forecast tick succeeded for 15 minutes"
    assert f"22 minutes old ({last.isoformat()})" in entry["text"]
    assert entry["deliveries"]["webhook"] == "sent"
    assert len(webhook.bodies) == 1
    assert "No forecast tick succeeded" in webhook.bodies[0]["text"]

    # A tick succeeds, then the forecast stalls again: a new spell, a new alert.
    forecast_succeeded(test_instance, datetime.now(UTC) - timedelta(minutes=16))
    evaluate(test_instance, channels)
    assert len(alert_log(channels)) == 2


def test_an_instance_that_never_forecast_is_alerted() -> None:
    now = datetime(2026, 5, 3, 9, 0, tzinfo=UTC)
    channels = AlertChannels()
    alert = stale_forecast_alert(None, now, channels)
    assert alert is not None
    assert "no forecast tick has ever succeeded" in alert.text()
    assert alert.dedupe_key == "forecast_freshness:never"
    fresh = (now - timedelta(minutes=15), "run-1")
    assert stale_forecast_alert(fresh, now, channels) is None  # 15 minutes exactly: fresh
    stale = (now - timedelta(minutes=15, seconds=1), "run-1")
    assert stale_forecast_alert(stale, now, channels).run_url.endswith("/runs/run-1")  # type: ignore[union-attr]
