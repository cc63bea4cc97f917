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

A channel whose variables are not set (``NotifierType.required_env``, or a factory that
raises :class:`ChannelNotConfigured`) is not an error where a ``console`` is given (the
local runtime): its notifications are printed there, as the channel would send them, and
recorded as delivered ``via="console"``. :meth:`Dispatcher.deliver` returns a
:class:`Delivery` per address, which the local runtime keeps in its state.

Secrets: the notifier plugins name the variables that hold their secrets
(``NotifierType.secret_env``). :class:`Secrets` holds their values (and those of variables
whose names look secret) and redacts them from any text; the dispatcher redacts every note
before a backend sees it and every reason it logs.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from dpc_core.errors import DpcError
from dpc_core.types import NOTICE_KINDS, Notification, NotifierBackend

if TYPE_CHECKING:
    from dpc_core.model import Notifications, NotificationType
    from dpc_core.plugins import Registry

log = logging.getLogger("dpc.notify")

#: Statuses of a run (or a step) that count as a failure for ``FAILURES_ONLY``.
FAILED_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})

#: Environment variables whose names look like secrets: their values are redacted too when
#: at least :data:`GUESSED_SECRET_MIN` characters long (shorter ones are likely not secrets
#: and would mangle text).
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|_KEY$)", re.IGNORECASE)

#: Secret-looking fragments redacted even when their value is not in the environment:
#: Slack tokens, ``apiKey=...`` query strings (OpsGenie integration URLs), auth headers.
_SECRET_PATTERNS = (
    re.compile(r"xox[abposre]-[A-Za-z0-9-]+"),
    re.compile(r"(?i)(api_?key=)[^&\s'\"]+"),
    re.compile(r"(?i)((?:GenieKey|Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+"),
)

REDACTED = "***"

#: A declared secret (``NotifierType.secret_env``) shorter than this refuses to start the
#: local runtime: replacing a 1–3 character value everywhere would mangle every text, and
#: not replacing it would leak it.
SECRET_MIN = 4
GUESSED_SECRET_MIN = 8


def wants(notification_type: NotificationType | str, note: Notification) -> bool:
    """Whether a pipeline with ``notifications.type = notification_type`` is told about ``note``.

    - ``FULL_EXECUTION``: pipeline start, every step start and end, the final status.
    - ``PIPELINE``: pipeline start and the final status.
    - ``FAILURES_ONLY``: a failed, timed-out or aborted run (one note, naming the step).

    Window notices (LATE, BLOCKED and their resolution) go to every target.
    """
    kind = getattr(notification_type, "value", notification_type)
    if note.kind in NOTICE_KINDS:
        return True  # a late or blocked window concerns every target, whatever its type
    if kind == "FULL_EXECUTION":
        return True
    if kind == "PIPELINE":
        return note.kind in ("PIPELINE_STARTED", "PIPELINE_FINISHED")
    if kind == "FAILURES_ONLY":
        # One message per failed run: its final status names the failed step, so the step's
        # own failure would only say the same thing twice.
        return note.kind == "PIPELINE_FINISHED" and note.status in FAILED_STATUSES
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


class ChannelNotConfigured(ValueError):
    """A channel's factory cannot build its backend because variables are not set.

    Raise it (with a message that names the variables) from ``NotifierType.factory``; the
    local runtime then prints the channel's notifications instead of failing them.
    """


class UnsafeSecret(DpcError):
    """A secret variable is set to a value too short to redact safely."""


@dataclass(frozen=True)
class Delivery:
    """What happened to one note at one address: ``via`` is ``channel`` (the real channel
    accepted it), ``console`` (the channel is not configured: printed instead) or
    ``failed`` (``reason`` says why). ``text`` is the redacted one-line preview."""

    channel: str
    address: str
    via: Literal["channel", "console", "failed"]
    text: str
    reason: str = ""
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class NotifyFailure:
    """One channel that could not be told about one notification, with the redacted reason."""

    channel: str
    addresses: tuple[str, ...]
    kind: str
    run_id: str
    reason: str


def declared_secret_names(registry: Registry | None) -> frozenset[str]:
    """Names of the variables the installed notifier plugins declare as their secrets."""
    if registry is None:
        return frozenset()
    return frozenset(n for t in registry.notifiers.values() for n in t.secret_env)


def secret_values(env: Mapping[str, str], names: Iterable[str] = ()) -> list[str]:
    """Values of the secret variables of ``env``: every one of ``names`` (declared secrets)
    that is set, and those whose names look secret (tokens, keys, passwords)."""
    declared = set(names)
    values = {v for k, v in env.items()
              if v and (k in declared or (_SECRET_NAME.search(k) and len(v) >= GUESSED_SECRET_MIN))}
    # Longest first, so a secret containing another is replaced whole.
    return sorted(values, key=len, reverse=True)


def short_secrets(env: Mapping[str, str], names: Iterable[str]) -> list[str]:
    """The declared secret variables of ``env`` set to fewer than :data:`SECRET_MIN`
    characters (an empty value counts as unset)."""
    return sorted(n for n in set(names) if 0 < len(env.get(n, "")) < SECRET_MIN)


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


@dataclass(frozen=True)
class Secrets:
    """The secrets the local runtime knows, and redaction of them from text and bytes.

    Build it with :meth:`from_env`, which refuses (:class:`UnsafeSecret`) a declared secret
    shorter than :data:`SECRET_MIN` characters.
    """

    names: frozenset[str] = frozenset()
    values: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str], registry: Registry | None) -> Secrets:
        """The secrets of ``env``: the notifier plugins' declared variables and variables
        whose names look secret."""
        names = declared_secret_names(registry)
        short = short_secrets(env, names)
        if short:
            raise UnsafeSecret(
                f"{', '.join(short)} {'is' if len(short) == 1 else 'are'} set to fewer than "
                f"{SECRET_MIN} characters: dpc redacts secrets from every log and message and "
                "cannot redact one that short without mangling text; set the real value, or "
                "unset the variable to leave the channel unconfigured")
        return cls(names, tuple(secret_values(env, names)))

    def redact(self, text: str) -> str:
        """``text`` without any secret (see :func:`redact`)."""
        return redact(text, self.values)

    def redact_optional(self, text: str | None) -> str | None:
        """:meth:`redact`, passing ``None`` through."""
        return None if text is None else redact(text, self.values)

    def redact_bytes(self, data: bytes) -> bytes:
        """``data`` (e.g. a line of a step's output) without any secret."""
        text = data.decode("utf-8", "surrogateescape")
        clean = self.redact(text)
        # The common case: bytes are kept exactly as the step wrote them.
        return data if clean == text else clean.encode("utf-8", "surrogateescape")

    def redact_note(self, note: Notification) -> Notification:
        """``note`` with its error (and anything else a step could have written) redacted."""
        if not note.error:
            return note
        return replace(note, error=self.redact(note.error))


def default_preview(channel: str, note: Notification, address: str) -> str:
    """The preview of a channel that has none of its own: the channel, address, summary."""
    return f"{channel} {address}: {note.summary()}"


def unconfigured_line(missing: Mapping[str, Iterable[str]]) -> str:
    """The one start-up line naming the channels that are not configured and what to set."""
    how = "; ".join(f"{channel}: set {' and '.join(names)}" for channel, names in
                    sorted(missing.items()))
    return (f"notifications: {', '.join(sorted(missing))} not configured, so they are printed "
            f"here and listed by `dpc local notifications` ({how}; see README)")


@dataclass
class Dispatcher:
    """Sends notifications to the channels of a pipeline's ``notifications`` block.

    Backends are built lazily from the registry, once per channel, with ``env`` (``os.environ``
    locally). :meth:`deliver` and :meth:`notify` never raise. With a ``console``, a channel
    that is not configured is printed there instead of failing.
    """

    registry: Registry
    env: Mapping[str, str]
    console: Callable[[str], None] | None = None
    secrets: Secrets | None = None
    _backends: dict[str, NotifierBackend | Exception] = field(default_factory=dict, repr=False)
    _logged: set[tuple[str, str]] = field(default_factory=set, repr=False)
    #: Alerts (channel, address, key) whose opening was printed and not yet their closing
    #: (``NotifierType.alert``); the local runtime seeds it from its recorded deliveries.
    shown_open: set[tuple[str, str, str]] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        if self.secrets is None:
            names = declared_secret_names(self.registry)
            self.secrets = Secrets(names, tuple(secret_values(self.env, names)))

    def notify(self, notifications: Notifications, note: Notification) -> list[NotifyFailure]:
        """Deliver ``note`` to every target of ``notifications`` that wants it.

        Returns the failures (empty when all went well); each is also logged as a warning on
        ``dpc.notify``. Never raises: notifying must not fail or block a pipeline.
        """
        failures: dict[tuple[str, str], NotifyFailure] = {}
        for d in self.deliver(notifications, note):
            if d.via == "failed":
                key = (d.channel, d.reason)
                prev = failures.get(key)
                addresses = (*prev.addresses, d.address) if prev else (d.address,)
                failures[key] = NotifyFailure(d.channel, addresses, note.kind, note.run_id,
                                              d.reason)
        return [replace(f, addresses=tuple(a for a in f.addresses if a)) for f in
                failures.values()]

    def deliver(self, notifications: Notifications, note: Notification) -> list[Delivery]:
        """Deliver ``note`` to every target that wants it; one :class:`Delivery` per address
        that was sent, printed or failed (nothing for a target that sends nothing)."""
        assert self.secrets is not None
        note = self.secrets.redact_note(note)
        out: list[Delivery] = []
        try:
            wanted = wants(notifications.type, note)
            for target in notifications.targets:
                out.extend(self._deliver(target.channel, tuple(target.addresses), note, wanted))
        except Exception as exc:  # the policy itself must not hurt the run either
            out.append(self._fail("*", (), note, exc)[0])
        return out

    def unconfigured(self, channels: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Of ``channels``, those whose ``required_env`` is not all set: channel -> the
        variables to set."""
        missing: dict[str, tuple[str, ...]] = {}
        for channel in channels:
            notifier = self.registry.notifiers.get(channel)
            if notifier is None:
                continue
            unset = tuple(n for n in notifier.required_env if not self.env.get(n, "").strip())
            if unset:
                missing[channel] = unset
        return missing

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
            hint = self.registry.missing_hint("channel", channel)
            raise LookupError(f"channel {channel!r} is not available: {hint}")
        unset = self.unconfigured([channel]).get(channel)
        if unset:
            raise ChannelNotConfigured(f"set {' and '.join(unset)} to send {channel} "
                                       "notifications")
        return notifier.factory(self.env)

    def _preview(self, channel: str, note: Notification, address: str) -> str | None:
        notifier = self.registry.notifiers.get(channel)
        text: str | None
        try:
            if notifier is not None and notifier.preview is not None:
                text = notifier.preview(note, address)
            else:
                text = default_preview(channel, note, address)
        except Exception:  # a plugin's preview must not cost the delivery itself
            text = default_preview(channel, note, address)
        assert self.secrets is not None
        return None if text is None else self.secrets.redact(text)

    def _deliver(
        self, channel: str, addresses: tuple[str, ...], note: Notification, wanted: bool
    ) -> list[Delivery]:
        backend: NotifierBackend | None = None
        try:
            if not wanted:
                if note.kind != "PIPELINE_FINISHED":
                    return []
                # Only a backend that resolves what it opened needs the unwanted final status;
                # one that cannot even be built (or only prints) has nothing open to resolve.
                try:
                    backend = self.backend(channel)
                except ChannelNotConfigured:
                    # Printed instead: the close of an alert whose opening was printed.
                    if self.console is None:
                        return []
                    return self._print(channel, addresses, note, closes_only=True)
                except Exception:
                    return []
                if not getattr(backend, "receives_all_final_statuses", False):
                    return []
            else:
                backend = self.backend(channel)
        except ChannelNotConfigured as exc:
            if self.console is None:
                return self._fail(channel, addresses, note, exc)
            return self._print(channel, addresses, note)
        except Exception as exc:
            return self._fail(channel, addresses, note, exc)
        previews = [(a, self._preview(channel, note, a)) for a in addresses]
        try:
            backend.send(note, addresses)
        except DeliveryError as exc:
            # Some addresses failed: the others were delivered.
            failed = {a for a in addresses if a in exc.problems} or set(addresses)
            out = [Delivery(channel, a, "channel", text) for a, text in previews
                   if text is not None and a not in failed]
            return out + self._fail(channel, tuple(a for a in addresses if a in failed),
                                    note, exc)
        except Exception as exc:
            return self._fail(channel, addresses, note, exc)
        return [Delivery(channel, a, "channel", text) for a, text in previews if text is not None]

    def alert_of(self, channel: str, note: Notification) -> tuple[str, str] | None:
        """``NotifierType.alert`` of ``channel`` for ``note`` (None when it has none)."""
        notifier = self.registry.notifiers.get(channel)
        if notifier is None or notifier.alert is None:
            return None
        try:
            return notifier.alert(note)
        except Exception:  # a plugin's hook must not cost the delivery itself
            return None

    def remember_printed(self, channel: str, address: str, note: Notification) -> bool:
        """Account for a printed ``note`` in :attr:`shown_open`; False for the close of an
        alert whose opening was never printed (not worth printing)."""
        what = self.alert_of(channel, note)
        if what is None:
            return True
        action, key = what
        if action == "open":
            self.shown_open.add((channel, address, key))
            return True
        if (channel, address, key) not in self.shown_open:
            return False
        self.shown_open.discard((channel, address, key))
        return True

    def _print(self, channel: str, addresses: tuple[str, ...],
               note: Notification, closes_only: bool = False) -> list[Delivery]:
        assert self.console is not None
        if closes_only and (self.alert_of(channel, note) or ("",))[0] != "close":
            return []
        out = []
        for address in addresses:
            if not self.remember_printed(channel, address, note):
                continue
            text = self._preview(channel, note, address)
            if text is None:
                continue
            out.append(Delivery(channel, address, "console", text))
            lines = [text]
            if note.error and note.kind == "PIPELINE_FINISHED":
                lines.append(f"    error: {note.error[:500]}")
            self.console("\n".join(lines))
        return out

    def _fail(
        self, channel: str, addresses: tuple[str, ...], note: Notification, exc: Exception
    ) -> list[Delivery]:
        assert self.secrets is not None
        reason = self.secrets.redact(f"{type(exc).__name__}: {exc}")
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
        return [Delivery(channel, a, "failed", self._preview(channel, note, a) or "", reason)
                for a in (addresses or ("",))]
