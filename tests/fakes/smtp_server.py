"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives.

    with FakeSmtp() as smtp:
        ... send to smtp.host:smtp.port ...
        smtp.messages[0]["Subject"]

Optional: ``credentials=(user, password)`` requires AUTH; ``tls=(certfile, keyfile)`` offers
STARTTLS and requires it before anything is sent.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    """One message as the server got it: the SMTP envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    authenticated_as: str | None


@dataclass
class _Recorder:
    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        parsed = message_from_bytes(raw if isinstance(raw, bytes) else raw.encode(),
                                    policy=policy.default)
        login = session.auth_data.login.decode() if isinstance(
            session.auth_data, LoginPassword) else None
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos),
                                      parsed, login))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


def _free_port() -> int:
    # aiosmtpd's Controller needs a concrete port to check it is up.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeSmtp:
    """aiosmtpd on 127.0.0.1, stopped when the ``with`` block ends."""

    host = "127.0.0.1"

    def __init__(self, credentials: tuple[str, str] | None = None,
                 tls: tuple[str, str] | None = None) -> None:
        self._recorder = _Recorder()
        self.port = _free_port()
        kwargs: dict[str, Any] = {}
        if credentials is not None:
            user, password = credentials

            def authenticate(server: SMTP, session: Session, envelope: Envelope,
                             mechanism: str, auth_data: Any) -> AuthResult:
                ok = (isinstance(auth_data, LoginPassword)
                      and auth_data.login.decode() == user
                      and auth_data.password.decode() == password)
                return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

            kwargs.update(authenticator=authenticate, auth_required=True,
                          auth_require_tls=tls is not None)
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            kwargs.update(tls_context=context, require_starttls=True)
        self._controller = Controller(self._recorder, hostname=self.host, port=self.port, **kwargs)

    @property
    def received(self) -> list[Received]:
        """Everything accepted so far, in order."""
        return list(self._recorder.received)

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._controller.stop()
