"""Where alerts go: the alert log always, a Slack-compatible webhook and email when set up.

Secrets (the webhook URL, which is itself the credential, and the SMTP password) are read
from environment variables at the moment of sending. The ``alerts`` resource only holds the
*names* of those variables, so the UI's resource view, run config and every log line show
the name, never the value; delivery errors are redacted before they are logged.

Environment variables (read by :func:`alert_resources`; secrets at send time):

- ``TAXI_ASSETS_UI_URL``: base URL of the Dagster UI for run links (default
  ``http://localhost:3000``).
- ``TAXI_ASSETS_ALERT_LOG``: the alert log file (default
  ``<DAGSTER_HOME>/alerts/alerts.jsonl``).
- ``TAXI_ASSETS_ALERT_WEBHOOK_URL`` (secret): a Slack (or compatible) incoming webhook.
- ``TAXI_ASSETS_SMTP_HOST``, ``TAXI_ASSETS_SMTP_PORT`` (587), ``TAXI_ASSETS_SMTP_USER``,
  ``TAXI_ASSETS_SMTP_PASSWORD`` (secret), ``TAXI_ASSETS_SMTP_STARTTLS`` (``true``),
  ``TAXI_ASSETS_ALERT_EMAIL_FROM``, ``TAXI_ASSETS_ALERT_EMAIL_TO`` (comma-separated).
"""

from __future__ import annotations

import json
import os
import smtplib
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from taxi_assets.automation.alerts import (
    ALERT_LOG_RELATIVE,
    Alert,
    AlertLog,
    SentAlerts,
    log_entry,
    redact,
    slack_payload,
)

WEBHOOK_URL_ENV = "TAXI_ASSETS_ALERT_WEBHOOK_URL"
SMTP_PASSWORD_ENV = "TAXI_ASSETS_SMTP_PASSWORD"
DEFAULT_UI_URL = "http://localhost:3000"


@dataclass(frozen=True)
class SlackWebhookChannel:
    url: str = field(repr=False)
    timeout_seconds: float = 10.0

    def send(self, alert: Alert) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(slack_payload(alert)).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
            response.read()


@dataclass(frozen=True)
class SmtpChannel:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = True
    timeout_seconds: float = 10.0

    def message(self, alert: Alert) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = f"[taxi_assets {alert.severity}] {alert.title}"
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(alert.text())
        return message

    def send(self, alert: Alert) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.user and self.password:
                smtp.login(self.user, self.password)
            smtp.send_message(self.message(alert))


@dataclass(frozen=True)
class Delivery:
    """What happened to one alert: ``duplicate`` when the log already had its key."""

    alert: Alert
    duplicate: bool
    deliveries: Mapping[str, str]

    def summary(self) -> str:
        if self.duplicate:
            return f"{self.alert.dedupe_key}: already alerted, not sent again"
        done = ", ".join(f"{name} {outcome}" for name, outcome in self.deliveries.items())
        return f"{self.alert.dedupe_key}: {done}"


class AlertChannels(dg.ConfigurableResource):
    """The alert channels: the alert log always; a webhook and email when configured.

    Secret values are not fields: ``webhook_url_env`` and ``smtp_password_env`` name the
    environment variables that hold them.
    """

    ui_base_url: str = Field(
        default=DEFAULT_UI_URL, description="Dagster UI base URL, for links to runs."
    )
    alert_log_path: str | None = Field(
        default=None, description="Alert log file (default <DAGSTER_HOME>/alerts/alerts.jsonl)."
    )
    webhook_url_env: str = Field(
        default=WEBHOOK_URL_ENV,
        description="Name of the environment variable holding the Slack-compatible webhook URL.",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server; no email when unset.")
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password_env: str = Field(
        default=SMTP_PASSWORD_ENV,
        description="Name of the environment variable holding the SMTP password.",
    )
    smtp_starttls: bool = True
    email_from: str | None = None
    email_to: list[str] = Field(default_factory=list)
    timeout_seconds: float = 10.0

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_base_url.rstrip('/')}/runs/{run_id}"

    def alert_log(self, instance_root: str | Path) -> AlertLog:
        return AlertLog(self.alert_log_path or Path(instance_root) / ALERT_LOG_RELATIVE)

    def _secrets(self) -> tuple[str | None, str | None]:
        return os.environ.get(self.webhook_url_env) or None, (
            os.environ.get(self.smtp_password_env) or None
        )

    def channels(self) -> dict[str, Any]:
        webhook_url, smtp_password = self._secrets()
        channels: dict[str, Any] = {}
        if webhook_url:
            channels["webhook"] = SlackWebhookChannel(webhook_url, self.timeout_seconds)
        if self.smtp_host and self.email_from and self.email_to:
            channels["email"] = SmtpChannel(
                host=self.smtp_host,
                port=self.smtp_port,
                sender=self.email_from,
                recipients=tuple(self.email_to),
                user=self.smtp_user,
                password=smtp_password,
                starttls=self.smtp_starttls,
                timeout_seconds=self.timeout_seconds,
            )
        return channels

    def dispatch(self, alert: Alert, instance: dg.DagsterInstance) -> Delivery:
        """Send ``alert`` on every configured channel unless it was already sent, and log it.

        The alert is claimed in the instance's storage first (:class:`SentAlerts`): of two
        sensors, daemons or pods dispatching it, one sends, the other finds it claimed. A
        channel that fails does not stop the others; its error (redacted) is recorded in the
        alert log and the instance next to the alert, which are written whatever happens.
        """
        sent = SentAlerts(instance)
        if not sent.claim(alert.dedupe_key, log_entry(alert, {})):
            return Delivery(alert, duplicate=True, deliveries={})
        secrets = self._secrets()
        deliveries = {"alert_log": "written"}
        for name, channel in self.channels().items():
            try:
                channel.send(alert)
                deliveries[name] = "sent"
            except Exception as error:  # any failure of one channel must not lose the alert
                deliveries[name] = redact(f"failed: {type(error).__name__}: {error}", secrets)
        log = self.alert_log(instance.root_directory)
        with log.locked():
            entry = log.append(alert, deliveries)
        sent.record(alert.dedupe_key, entry)
        return Delivery(alert, duplicate=False, deliveries=deliveries)


def _port(raw: str) -> int:
    if not raw.isdigit():
        raise ValueError(f"TAXI_ASSETS_SMTP_PORT={raw!r} is not a port number")
    return int(raw)


def alert_resources(env: Mapping[str, str] | None = None) -> dict[str, AlertChannels]:
    """The ``alerts`` resource from ``TAXI_ASSETS_*`` variables (secrets stay in the env)."""
    env = os.environ if env is None else env
    recipients = [a.strip() for a in env.get("TAXI_ASSETS_ALERT_EMAIL_TO", "").split(",")]
    return {
        "alerts": AlertChannels(
            ui_base_url=env.get("TAXI_ASSETS_UI_URL", DEFAULT_UI_URL),
            alert_log_path=env.get("TAXI_ASSETS_ALERT_LOG") or None,
            smtp_host=env.get("TAXI_ASSETS_SMTP_HOST") or None,
            smtp_port=_port(env.get("TAXI_ASSETS_SMTP_PORT", "587")),
            smtp_user=env.get("TAXI_ASSETS_SMTP_USER") or None,
            smtp_starttls=env.get("TAXI_ASSETS_SMTP_STARTTLS", "true").lower()
            not in ("0", "false", "no"),
            email_from=env.get("TAXI_ASSETS_ALERT_EMAIL_FROM") or None,
            email_to=[a for a in recipients if a],
        )
    }
