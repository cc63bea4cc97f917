"""``channel: EMAIL``: SMTP locally, an SNS email subscription on AWS."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from dpc_core import hookimpl
from dpc_core.types import Notification, NotifierBackend, NotifierType

DPC_PLUGIN_API = 1

#: RFC 5321: a path is at most 256 octets with its angle brackets.
MAX_ADDRESS = 254


def validate_address(address: str) -> None:
    """An email address: ``local@domain.tld``, one ``@``, no spaces, at most 254 characters."""
    # Checked by hand in linear time: the regex this replaces backtracked quadratically
    # (a 40 KB address of dots took 16 s to refuse).
    local, at, domain = address.partition("@")
    if len(address) > MAX_ADDRESS:
        raise ValueError(f"an email address has at most {MAX_ADDRESS} characters (got "
                         f"{len(address):,})")
    ok = (at and local and "@" not in domain and "." in domain[1:-1]
          and not any(c.isspace() for c in address))
    if not ok:
        raise ValueError(f"{address!r} is not an email address")


def preview(note: Notification, address: str) -> str:
    """The email ``address`` gets for ``note``, by its subject."""
    return f"Email {address}: {note.summary()}"


def _factory(env: Mapping[str, str]) -> NotifierBackend:
    from dpc_notify_email.backend import SmtpBackend

    return SmtpBackend.from_env(env)


def _aws_subscriptions(scope, topic, addresses):  # type: ignore[no-untyped-def]
    from dpc_notify_email.aws import subscribe

    subscribe(scope, topic, addresses)


@hookimpl
def dpc_notifiers() -> Iterator[NotifierType]:
    """The EMAIL channel."""
    yield NotifierType(channel="EMAIL", factory=_factory, validate_address=validate_address,
                       aws_subscriptions=_aws_subscriptions,
                       description="email (SMTP locally, SNS on AWS)",
                       required_env=("DPC_SMTP_HOST",), secret_env=("DPC_SMTP_PASSWORD",),
                       preview=preview)
