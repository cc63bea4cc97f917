"""Email delivery over SMTP (the local runtime; on AWS the SNS email subscriptions deliver).

One message per notification to all addresses, ``multipart/alternative`` with a plain-text
and an HTML part. Messages of one run share a thread: the run's start has a Message-ID made
from the run id and every later message refers to it. Every message's Message-ID is stable
(from the run id, or from ``Notification.key``), so a message sent again after the runtime
stopped mid-send is the same message to a mail store or client that drops duplicate
Message-IDs; SMTP itself has no idempotency, so a second copy may still be delivered.

Environment: ``DPC_SMTP_HOST`` (required: the channel is off without it),
``DPC_SMTP_PORT`` (default 25, or 465 with ``DPC_SMTP_SSL=1``),
``DPC_SMTP_STARTTLS=1`` to upgrade the connection, ``DPC_SMTP_SSL=1`` for implicit TLS,
``DPC_SMTP_USER`` / ``DPC_SMTP_PASSWORD`` to log in,
``DPC_SMTP_FROM`` (default ``dpc@localhost``), ``DPC_NOTIFY_TIMEOUT`` (seconds, default 10).
"""

from __future__ import annotations

import hashlib
import html
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from dpc_core.notify import ChannelNotConfigured, DeliveryError
from dpc_core.types import Notification

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send: read from the environment by :meth:`SmtpBackend.from_env`."""

    host: str = "localhost"
    port: int = 25
    starttls: bool = False
    ssl: bool = False
    user: str | None = None
    password: str | None = None
    sender: str = "dpc@localhost"
    timeout: float = 10.0

    def __repr__(self) -> str:
        # The password must not reach logs through a repr.
        return (f"SmtpSettings(host={self.host!r}, port={self.port}, starttls={self.starttls}, "
                f"ssl={self.ssl}, user={self.user!r}, sender={self.sender!r})")


def run_thread_id(note: Notification) -> str:
    """The Message-ID of a run's first email, which every later email of the run refers to."""
    digest = hashlib.sha256(f"{note.account}/{note.pipeline}/{note.run_id}".encode()).hexdigest()
    return f"<dpc-run-{digest[:32]}@dpc.local>"


def plain_text(note: Notification) -> str:
    """The text/plain body."""
    lines = [note.summary(), "", *_facts_text(note), *note.details()]
    return "\n".join(lines) + "\n"


def _facts(note: Notification) -> list[tuple[str, str]]:
    facts = [("Pipeline", note.pipeline), ("Account", note.account),
             ("Logical date", note.logical_date), ("Status", note.status)]
    if note.step:
        facts.append(("Failed step" if note.kind == "PIPELINE_FINISHED" else "Step", note.step))
    if note.duration_s is not None:
        facts.append(("Duration", f"{note.duration_s:.1f}s"))
    return facts


def _facts_text(note: Notification) -> list[str]:
    return [f"{k}: {v}" for k, v in _facts(note)]


def html_body(note: Notification) -> str:
    """The text/html body: the same facts as a table, the error preformatted."""
    e = html.escape
    color = "#c0392b" if note.failed else "#27ae60" if note.status == "SUCCEEDED" else "#2c3e50"
    rows = "".join(f"<tr><th align='left'>{e(k)}</th><td>{e(v)}</td></tr>"
                   for k, v in [*_facts(note), ("Run", note.run_id)])
    parts = [f"<html><body><h2 style='color:{color}'>{e(note.summary())}</h2>",
             f"<table>{rows}</table>"]
    if note.error:
        parts.append(f"<h3>Error</h3><pre>{e(note.error)}</pre>")
    if note.parents:
        items = "".join(
            f"<li>{e(str(p.get('pipeline')))} ({e(str(p.get('account')))}) "
            f"{e(str(p.get('status', '')))} <code>{e(str(p.get('executionArn', '')))}</code></li>"
            for p in note.parents)
        parts.append(f"<h3>Triggered by</h3><ul>{items}</ul>")
    parts.append("</body></html>")
    return "".join(parts)


def build_message(note: Notification, sender: str, addresses: Sequence[str]) -> EmailMessage:
    """The email for ``note``: headers, a plain-text part and an HTML alternative."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(addresses)
    msg["Subject"] = note.summary()
    msg["Date"] = formatdate(localtime=False)
    thread = run_thread_id(note)
    if note.kind == "PIPELINE_STARTED":
        msg["Message-ID"] = thread
    else:
        # The same notification sent again (a retry after the runtime stopped mid-send)
        # has the same Message-ID, by which mail stores and clients drop the second copy.
        msg["Message-ID"] = (f"<dpc-{hashlib.sha256(note.key.encode()).hexdigest()[:32]}"
                             "@dpc.local>") if note.key else make_msgid(domain="dpc.local")
        msg["In-Reply-To"] = thread
        msg["References"] = thread
    msg["X-Dpc-Run-Id"] = note.run_id
    msg.set_content(plain_text(note))
    msg.add_alternative(html_body(note), subtype="html")
    return msg


class SmtpBackend:
    """Sends each notification as one email to every address of the target."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpBackend:
        """Read :class:`SmtpSettings` from the environment (see the module docstring)."""
        if not env.get("DPC_SMTP_HOST"):
            # No default server: "connection refused on localhost:25" on every step of
            # every run tells a user less than saying what to set.
            raise ChannelNotConfigured(
                "set DPC_SMTP_HOST (and DPC_SMTP_PORT, DPC_SMTP_FROM, ...) to the SMTP "
                "server that sends dpc's emails")
        use_ssl = env.get("DPC_SMTP_SSL", "").lower() in _TRUE
        port = env.get("DPC_SMTP_PORT") or ("465" if use_ssl else "25")
        try:
            port_number = int(port)
        except ValueError:
            raise ValueError(f"DPC_SMTP_PORT must be a port number, not {port!r}") from None
        return cls(SmtpSettings(
            host=env["DPC_SMTP_HOST"],
            port=port_number,
            starttls=env.get("DPC_SMTP_STARTTLS", "").lower() in _TRUE,
            ssl=use_ssl,
            user=env.get("DPC_SMTP_USER") or None,
            password=env.get("DPC_SMTP_PASSWORD") or None,
            sender=env.get("DPC_SMTP_FROM") or "dpc@localhost",
            timeout=float(env.get("DPC_NOTIFY_TIMEOUT", "10")),
        ))

    def send(self, note: Notification, addresses: Sequence[str]) -> None:
        """Send one email to ``addresses``; raise :class:`~dpc_core.notify.DeliveryError`
        naming the addresses the server refused (the others still get it)."""
        if not addresses:
            return
        s = self.settings
        msg = build_message(note, s.sender, addresses)
        context = ssl.create_default_context()
        smtp: smtplib.SMTP = (smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
                              if s.ssl else smtplib.SMTP(s.host, s.port, timeout=s.timeout))
        try:
            if s.starttls:
                smtp.starttls(context=context)
            if s.user:
                smtp.login(s.user, s.password or "")
            refused = smtp.send_message(msg, from_addr=s.sender, to_addrs=list(addresses))
        except smtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
        if refused:
            raise DeliveryError("EMAIL", {addr: f"refused: {code} {reply.decode(errors='replace')}"
                                          for addr, (code, reply) in refused.items()})
