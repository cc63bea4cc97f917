"""The notification policy: which events a pipeline's ``notifications`` block asks for, and a
dispatcher that hands them to the channel plugins without ever hurting the run.

``wants`` is the policy (``FULL_EXECUTION``, ``PIPELINE``, ``FAILURES_ONLY``); ``Dispatcher``
is what a runtime calls::

    dispatcher = Dispatcher(get_registry(), os.environ)
    failures = dispatcher.notify(pipeline.notifications, note)   # never raises

A notifier backend (``NotifierType.factory(env)``) may raise :class:`DeliveryError` (or
anything else) when it cannot deliver; the dispatcher catches it, logs it on the
``dpc.notify`` logger with secrets redacted, and returns it as a :class:`NotifyFailure`.
A backend that must see every final status to resolve what it opened (OpsGenie closes its
alert when a later run succeeds) sets ``receives_all_final_statuses = True``: it then gets
``PIPELINE_FINISHED`` notes even when the pipeline's type would not notify them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dpc_core.types import Notification, NotifierBackend

if TYPE_CHECKING:
    from dpc_core.model import Notifications, NotificationType
    from dpc_core.plugins import Registry

log = logging.getLogger("dpc.notify")

#: Statuses of a run (or a step) that count as a failure for ``FAILURES_ONLY``.
FAILED_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})

#: Environment variables whose values are secrets, wherever they appear.
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|_KEY$)", re.IGNORECASE)

#: Secret-looking fragments redacted even when their value is not in the environment:
#: Slack tokens, ``apiKey=...`` query strings (OpsGenie integration URLs), auth headers.
_SECRET_PATTERNS = (
    re.compile(r"xox[abposre]-[A-Za-z0-9-]+"),
    re.compile(r"(?i)(api_?key=)[^&\s'\"]+"),
    re.compile(r"(?i)((?:GenieKey|Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+"),
)

REDACTED = "***"


def wants(notification_type: NotificationType | str, note: Notification) -> bool:
    """Whether a pipeline with ``notifications.type = notification_type`` is told about ``note``.

    - ``FULL_EXECUTION``: pipeline start, every step start and end, the final status.
    - ``PIPELINE``: pipeline start and the final status.
    - ``FAILURES_ONLY``: a failed, timed-out or aborted run, and a failed step.
    """
    kind = getattr(notification_type, "value", notification_type)
    if kind == "FULL_EXECUTION":
        return True
    if kind == "PIPELINE":
        return note.kind in ("PIPELINE_STARTED", "PIPELINE_FINISHED")
    if kind == "FAILURES_ONLY":
        return note.kind in ("PIPELINE_FINISHED", "STEP_FINISHED") and (
            note.status in FAILED_STATUSES
        )
    raise ValueError(f"unknown notification type {kind!r}")


class DeliveryError(Exception):
    """A backend could not deliver a notification to some addresses.

    Backends try every address first and raise one of these at the end, so one bad address
    does not starve the others.
    """

    def __init__(self, channel: str, problems: Mapping[str, str]) -> None:
        self.channel = channel
        self.problems = dict(problems)
        listed = "; ".join(f"{addr}: {why}" for addr, why in self.problems.items())
        super().__init__(f"{channel}: {listed}")


@dataclass(frozen=True)
class NotifyFailure:
    """One channel that could not be told about one notification, with the redacted reason."""

    channel: str
    addresses: tuple[str, ...]
    kind: str
    run_id: str
    reason: str


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Values of the environment variables that hold secrets (tokens, keys, passwords)."""
    return sorted(
        (v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 8),
        key=len,
        reverse=True,  # longest first so a secret containing another is replaced whole
    )


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret value and secret-looking token replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(
            lambda m: (m.group(1) if m.groups() else "") + REDACTED, text
        )
    return text


@dataclass
class Dispatcher:
    """Sends notifications to the channels of a pipeline's ``notifications`` block.

    Backends are built lazily from the registry, once per channel, with ``env`` (``os.environ``
    locally). :meth:`notify` never raises and returns what could not be delivered.
    """

    registry: Registry
    env: Mapping[str, str]
    _backends: dict[str, NotifierBackend | Exception] = field(default_factory=dict, repr=False)
    _logged: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def notify(self, notifications: Notifications, note: Notification) -> list[NotifyFailure]:
        """Deliver ``note`` to every target of ``notifications`` that wants it.

        Returns the failures (empty when all went well); each is also logged as a warning on
        ``dpc.notify``. Never raises: notifying must not fail or block a pipeline.
        """
        failures: list[NotifyFailure] = []
        try:
            wanted = wants(notifications.type, note)
            for target in notifications.targets:
                failure = self._deliver(target.channel, tuple(target.addresses), note, wanted)
                if failure is not None:
                    failures.append(failure)
        except Exception as exc:  # the policy itself must not hurt the run either
            failures.append(self._fail("*", (), note, exc))
        return failures

    def backend(self, channel: str) -> NotifierBackend:
        """The backend of ``channel``, built on first use; raises when it cannot be built."""
        cached = self._backends.get(channel)
        if cached is None:
            try:
                cached = self._build(channel)
            except Exception as exc:
                cached = exc
            self._backends[channel] = cached
        if isinstance(cached, Exception):
            raise cached
        return cached

    def _build(self, channel: str) -> NotifierBackend:
        notifier = self.registry.notifiers.get(channel)
        if notifier is None:
            from dpc_core.plugins import KNOWN_PROVIDERS

            dist = KNOWN_PROVIDERS.get(("channel", channel))
            hint = f"; install {dist}" if dist else ""
            raise LookupError(f"no installed plugin provides channel {channel!r}{hint}")
        return notifier.factory(self.env)

    def _deliver(
        self, channel: str, addresses: tuple[str, ...], note: Notification, wanted: bool
    ) -> NotifyFailure | None:
        try:
            if not wanted:
                if note.kind != "PIPELINE_FINISHED":
                    return None
                # Only a backend that resolves what it opened needs the unwanted final status;
                # one that cannot even be built is not worth a failure for a note nobody wants.
                try:
                    backend = self.backend(channel)
                except Exception:
                    return None
                if not getattr(backend, "receives_all_final_statuses", False):
                    return None
            else:
                backend = self.backend(channel)
            backend.send(note, addresses)
        except Exception as exc:
            return self._fail(channel, addresses, note, exc)
        return None

    def _fail(
        self, channel: str, addresses: tuple[str, ...], note: Notification, exc: Exception
    ) -> NotifyFailure:
        reason = redact(f"{type(exc).__name__}: {exc}", secret_values(self.env))
        # The same failure again (a channel that is not configured fails every note of
        # every run) is logged once as a warning, then at debug level only.
        seen = (channel, reason.split(": ", 1)[0] if "Error" in reason else reason)
        level = logging.DEBUG if seen in self._logged else logging.WARNING
        self._logged.add(seen)
        # No traceback: frames and exception chains can carry request headers with tokens.
        log.log(
            level,
            "could not notify %s of %s for %s run %s: %s",
            channel, note.kind, note.pipeline, note.run_id, reason,
        )
        return NotifyFailure(channel, addresses, note.kind, note.run_id, reason)
