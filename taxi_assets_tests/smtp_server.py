"""A loopback SMTP server that requires a login, for the alert e-mail tests (aiosmtpd)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from taxi_assets_tests.loopback import LOOPBACK, free_port


class RecordingHandler:
    """Keeps every accepted message as (sender, recipients, raw content)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd API)
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode("utf-8"))
        )
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    controller: Controller
    handler: RecordingHandler
    logins: list[bool] = field(default_factory=list)  # each login attempt: did it succeed

    @property
    def port(self) -> int:
        return self.controller.port


@contextmanager
def running_smtp_server(user: str, password: str) -> Iterator[SmtpServer]:
    """An SMTP server on 127.0.0.1 that accepts mail only after AUTH as ``user``."""
    handler = RecordingHandler()
    logins: list[bool] = []

    def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        logins.append(ok)
        return AuthResult(success=ok)

    warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
    controller = Controller(
        handler,
        hostname=LOOPBACK,
        port=free_port(),
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,  # loopback only; production servers use STARTTLS
    )
    controller.start()
    try:
        yield SmtpServer(controller, handler, logins)
    finally:
        controller.stop()
