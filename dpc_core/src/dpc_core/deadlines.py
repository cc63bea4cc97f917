"""``deadline`` of pipeline.yaml: when a window's run should have succeeded.

Two spellings:

- ``"06:00"``: a time of day, in the pipeline's ``trigger.timezone``, on the window's date
  (daily windows only: an hourly window has no date of its own to put it on);
- ``"+45m"``, ``"+2h"``, ``"+1h30m"``: an offset from the window's start (any window; a
  daily window starts at midnight of its date, so ``"+30h"`` is 06:00 the day after).

Plain Python, no engine imports: :mod:`dpc_core.model` validates with :func:`parse_deadline`
and :mod:`dpc_core.health` places a deadline on the clock with :func:`deadline_at`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_OFFSET = re.compile(r"\+(?:([0-9]{1,3})h)?(?:([0-9]{1,4})m)?")
#: An offset longer than this is surely a typo (a window's run a week late is not a deadline).
MAX_OFFSET_MINUTES = 7 * 24 * 60

DEADLINE_PATTERN = r"^(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]|\+(?:[0-9]{1,3}h)?(?:[0-9]{1,4}m)?)$"


class DeadlineError(ValueError):
    """A ``deadline`` that cannot be read; the message says what is accepted."""


@dataclass(frozen=True)
class Deadline:
    """A parsed deadline: ``minutes`` after local midnight (``offset`` False) or after the
    window's start (``offset`` True)."""

    minutes: int
    offset: bool

    def text(self) -> str:
        """The deadline as pipeline.yaml spells it."""
        if not self.offset:
            return f"{self.minutes // 60:02d}:{self.minutes % 60:02d}"
        h, m = divmod(self.minutes, 60)
        return "+" + (f"{h}h" if h else "") + (f"{m}m" if m or not h else "")


def parse_deadline(text: object, window: str = "daily") -> Deadline:
    """Read a deadline for a pipeline whose trigger has ``window`` (daily or hourly).

    Raises :class:`DeadlineError` naming the accepted forms.
    """
    if not isinstance(text, str):
        raise DeadlineError(f"must be a string such as \"06:00\" or \"+45m\", got {text!r}")
    value = text.strip()
    m = _TIME.fullmatch(value)
    if m:
        if window == "hourly":
            raise DeadlineError(
                f"{value!r} is a time of day, but an hourly window needs an offset from the "
                "window's start such as \"+45m\"")
        return Deadline(int(m[1]) * 60 + int(m[2]), offset=False)
    m = _OFFSET.fullmatch(value)
    if m and (m[1] or m[2]):
        minutes = int(m[1] or 0) * 60 + int(m[2] or 0)
        if minutes == 0 or minutes > MAX_OFFSET_MINUTES:
            raise DeadlineError(f"{value!r}: an offset must be more than 0 and at most 7 days "
                                "(\"+168h\")")
        return Deadline(minutes, offset=True)
    shown = value if len(value) <= 40 else value[:37] + "..."
    raise DeadlineError(f"{shown!r} is not a deadline: write a time of day \"HH:MM\" (daily "
                        "windows, in trigger.timezone) or an offset from the window's start "
                        "such as \"+45m\", \"+2h\" or \"+1h30m\"")


def window_start(window: str, tz: str) -> datetime:
    """The instant (UTC) a window starts: ``2026-11-26`` at local midnight,
    ``2026-11-26T05`` at 05:00 local, ``2026-11-01T01-05:00`` at 01:00 with that offset.

    That is the first instant whose local date (and hour, and UTC offset when the window
    names one) is the window's: when the wall-clock start does not exist (clocks jump over
    it) or belongs to another offset (Lord Howe goes back half an hour, so the second
    ``01`` hour, ``+10:30``, starts at 01:30), the window starts at the transition.
    """
    zone = ZoneInfo(tz)
    hour = int(window[11:13]) if len(window) >= 13 else None
    day = (int(window[:4]), int(window[5:7]), int(window[8:10]))
    naive = datetime(*day, hour or 0)
    offset = _named_offset(window[13:]) if len(window) > 13 else None

    def inside(instant: datetime) -> bool:
        local = instant.astimezone(zone)
        return ((local.year, local.month, local.day) == day
                and (hour is None or local.hour == hour)
                and (offset is None or local.utcoffset() == offset))

    # The usual case: the wall-clock start, read with the named offset or the zone's.
    first = ((naive - offset).replace(tzinfo=UTC) if offset is not None
             else naive.replace(tzinfo=zone).astimezone(UTC))
    if inside(first) and not inside(first - _SECOND):
        return first
    # A transition inside the window: its start is the first minute inside it (offsets
    # and transitions fall on whole minutes since 1972). The candidates span every
    # offset the zone has around that day.
    offsets = {naive.replace(tzinfo=zone, fold=f).utcoffset() or timedelta(0)
               for f in (0, 1)} | ({offset} if offset is not None else set())
    earliest = min((naive - off).replace(tzinfo=UTC) for off in offsets)
    earliest = earliest.replace(second=0, microsecond=0) - timedelta(hours=1)
    span = 26 * 60 if hour is None else 3 * 60
    for m in range(span):
        instant = earliest + timedelta(minutes=m)
        if inside(instant):
            return instant
    return first  # no instant has that name (an hour clocks jump over): its wall time


_SECOND = timedelta(seconds=1)


def _named_offset(text: str) -> timedelta:
    """``+10:30`` as a timedelta."""
    sign = -1 if text[0] == "-" else 1
    return sign * timedelta(hours=int(text[1:3]), minutes=int(text[4:6]))


def deadline_at(deadline: Deadline | str, window: str, tz: str, kind: str = "daily") -> datetime:
    """The instant (UTC) by which ``window``'s run should have succeeded. A
    :class:`DeadlineError` when that instant is outside the years 1 to 9999."""
    d = deadline if isinstance(deadline, Deadline) else parse_deadline(deadline, kind)
    try:
        return _deadline_at(d, window, tz)
    except OverflowError:  # e.g. "+30h" after 9999-12-31 west of UTC
        raise DeadlineError(f"the deadline {d.text()} of window {window} in {tz} falls "
                            "outside the years 1 to 9999") from None


def _deadline_at(d: Deadline, window: str, tz: str) -> datetime:
    start = window_start(window, tz)
    if d.offset:
        return start + timedelta(minutes=d.minutes)
    zone = ZoneInfo(tz)
    day = start.astimezone(zone)
    # Wall-clock time of that day (a time inside the spring gap lands an hour later, as
    # zoneinfo resolves it).
    local = datetime(day.year, day.month, day.day, d.minutes // 60, d.minutes % 60,
                     tzinfo=zone)
    return local.astimezone(UTC)
