"""A tiny webhook receiver on 127.0.0.1 that records every POSTed JSON body.

Stands in for Slack's incoming webhook in tests: real HTTP over loopback, nothing leaves the
machine. Use it as a context manager, or through the ``webhook`` fixture of ``conftest.py``::

    def test_alert_is_posted(webhook: WebhookReceiver, monkeypatch) -> None:
        monkeypatch.setenv("TAXI_ASSETS_ALERT_WEBHOOK_URL", webhook.url)
        ...
        body = webhook.wait_for(1)[0]
        assert "text" in body

``url`` ends in a secret-looking path token (``/services/T000/B000/<token>``) so tests can
assert the token never leaks into logs; ``requests`` keeps each request's path and body;
``status`` (default 200) is what the receiver answers, so a test can make it fail.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    body: Any  # the parsed JSON, or the raw text when it was not JSON
    content_type: str


class WebhookReceiver:
    """An HTTP server on an ephemeral loopback port, recording POSTed bodies."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.token = secrets.token_hex(12)
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", errors="replace")
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw
                with receiver._lock:
                    receiver.requests.append(
                        ReceivedRequest(self.path, body, self.headers.get("Content-Type", ""))
                    )
                self.send_response(receiver.status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if receiver.status < 400 else b"invalid_token")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/services/T000/B000/{self.token}"

    @property
    def bodies(self) -> list[Any]:
        with self._lock:
            return [request.body for request in self.requests]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Any]:
        """The bodies once at least ``count`` arrived; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.bodies) >= count:
                return self.bodies
            time.sleep(0.05)
        raise AssertionError(f"expected {count} webhook call(s), got {len(self.bodies)}")

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
