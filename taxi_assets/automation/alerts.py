"""Alerts: what went wrong, said once, in words a person on call can act on.

An :class:`Alert`, its text, its Slack-compatible payload; the alert log
(``<DAGSTER_HOME>/alerts/alerts.jsonl``), the record every alert lands in on this machine;
and :class:`SentAlerts`, the memory that stops the same failure from being sent twice.

The log is JSON lines (one alert per line, with its ``text`` as a person would read it) so
it reads with ``tail``/``grep`` and parses with ``jq`` alike.

The "sent once" memory lives in the Dagster instance's own storage (its key-value table,
SQLite locally, PostgreSQL in production), not in a file: a pod restarted without a volume
still knows what it sent, and a sensor whose cursor was reset, or a second sensor (or
daemon) reading the same failures, finds the key and sends nothing.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from sqlalchemy import exc as sqlalchemy_errors

ALERT_LOG_RELATIVE = Path("alerts") / "alerts.jsonl"
REDACTED = "***"
# Slack truncates a section's text at 3,000 characters; long errors are cut well before.
MAX_ERROR_CHARS = 1500


@dataclass(frozen=True)
class Alert:
    """One failure worth a person's attention: a failed asset check or a failed run."""

    kind: str  # "asset_check" or "run_failure"
    dedupe_key: str
    severity: str  # "ERROR" or "WARN"
    title: str
    run_id: str
    run_url: str
    asset: str | None = None
    check: str | None = None
    partition: str | None = None
    check_description: str | None = None
    result_description: str | None = None
    counts: Mapping[str, float] = field(default_factory=dict)
    job: str | None = None
    failed_steps: Sequence[str] = ()
    error: str | None = None
    occurred_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def text(self) -> str:
        """The alert as plain text: the Slack fallback, the email body, the log's ``text``."""
        lines = [f"[{self.severity}] {self.title}"]
        if self.asset:
            lines.append(f"asset: {self.asset}")
        if self.check:
            lines.append(f"check: {self.check}")
        if self.partition:
            lines.append(f"partition: {self.partition}")
        if self.check_description:
            lines.append(f"what it checks: {self.check_description}")
        if self.result_description:
            lines.append(f"result: {self.result_description}")
        if self.counts:
            lines.append(f"counts: {format_counts(self.counts)}")
        if self.job:
            lines.append(f"job: {self.job}")
        if self.failed_steps:
            lines.append("failed steps: " + ", ".join(self.failed_steps))
        if self.error:
            lines.append(f"error: {_shorten(self.error)}")
        lines.append(f"run: {self.run_url}")
        return "\n".join(lines)


def format_counts(counts: Mapping[str, float]) -> str:
    return ", ".join(f"{key}={_number(value)}" for key, value in counts.items())


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + " …"


def slack_payload(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` (notifications, and clients without blocks)
    plus Block Kit blocks. Mattermost, Rocket.Chat and Teams' Slack-compatible hooks read
    ``text``."""
    emoji = ":red_circle:" if alert.severity == "ERROR" else ":large_orange_circle:"
    fields = [
        f"*{label}*\n{value}"
        for label, value in (
            ("Asset", alert.asset),
            ("Check", alert.check),
            ("Partition", alert.partition),
            ("Severity", alert.severity),
            ("Job", alert.job),
            ("Failed steps", ", ".join(alert.failed_steps) or None),
        )
        if value
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150]}},
    ]
    if fields:
        blocks.append(
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields[:10]]}
        )
    details = [
        text
        for text in (
            alert.check_description and f"*What it checks:* {alert.check_description}",
            alert.result_description and f"*Result:* {alert.result_description}",
            alert.counts and f"*Counts:* {format_counts(alert.counts)}",
            alert.error and f"*Error:*\n```{_shorten(alert.error)}```",
        )
        if text
    ]
    if details:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(details)}})
    blocks.append(
        {"type": "section", "text": {"type": "mrkdwn", "text": f"<{alert.run_url}|Open the run>"}}
    )
    return {"text": f"{emoji} {alert.title}\n{alert.run_url}", "blocks": blocks}


def redact(text: str, secrets: Sequence[str | None]) -> str:
    """``text`` with every secret replaced: error messages of HTTP and SMTP libraries quote
    URLs and server replies, and a webhook URL is itself the credential."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class AlertLog:
    """The alert log file: every alert this machine sent, one JSON object per line.

    Writers take an exclusive lock on a sibling ``.lock`` file while appending, so lines of
    two sensors never interleave. Whether an alert is new is :class:`SentAlerts`' decision.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextmanager
    def locked(self) -> Iterator[AlertLog]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(self.path.suffix + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def append(self, alert: Alert, deliveries: Mapping[str, str]) -> dict[str, Any]:
        entry = log_entry(alert, deliveries)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return entry


def log_entry(alert: Alert, deliveries: Mapping[str, str]) -> dict[str, Any]:
    """The alert as the log (and the instance's sent-alert record) keep it."""
    entry = {**asdict(alert), "deliveries": dict(deliveries), "text": alert.text()}
    entry["failed_steps"] = list(alert.failed_steps)
    entry["counts"] = dict(alert.counts)
    return entry


# Keys of the instance's key-value table that hold a sent alert (next to Dagster's own).
SENT_ALERT_PREFIX = "taxi_assets/alert_sent/"


class SentAlerts:
    """Which alerts were sent, in the instance's storage, shared by every process using it.

    :meth:`claim` is one INSERT into the key-value table, whose keys are unique: of two
    sensors claiming the same alert at once the database lets exactly one through, on
    SQLite and PostgreSQL alike. (Dagster's public ``set_cursor_values`` is an upsert,
    which cannot say who was first; the INSERT goes through the run storage's own table.)
    """

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.storage = instance.run_storage

    @staticmethod
    def _key(dedupe_key: str) -> str:
        return SENT_ALERT_PREFIX + dedupe_key

    def claim(self, dedupe_key: str, record: Mapping[str, Any]) -> bool:
        """True if this caller is the first to claim ``dedupe_key`` (and should send)."""
        from dagster._core.storage.runs.schema import KeyValueStoreTable

        row = {"key": self._key(dedupe_key), "value": json.dumps(record, ensure_ascii=False)}
        with self.storage.connect() as connection:  # type: ignore[attr-defined]
            try:
                connection.execute(KeyValueStoreTable.insert().values([row]))
            except sqlalchemy_errors.IntegrityError:
                return False
        return True

    def record(self, dedupe_key: str, record: Mapping[str, Any]) -> None:
        """What became of a claimed alert (its deliveries), replacing the claim's record."""
        self.storage.set_cursor_values(
            {self._key(dedupe_key): json.dumps(record, ensure_ascii=False)}
        )

    def get(self, dedupe_key: str) -> dict[str, Any] | None:
        key = self._key(dedupe_key)
        value = self.storage.get_cursor_values({key}).get(key)
        return None if value is None else json.loads(value)
