"""Schedules: EventBridge cron and rate expressions, parsed once, used by both runtimes.

The AWS side synthesizes :func:`Schedule.expression`; the local runtime fires at
:func:`Schedule.next_after`. Both come from the same parsed fields, so a pipeline
fires at the same instants locally and on AWS.

Supported cron syntax (EventBridge): six fields ``minute hour day-of-month month
day-of-week year``; ``*``, ``?``, lists ``a,b``, ranges ``a-b``, increments ``a/n``
and ``*/n``, month names ``JAN``–``DEC``, weekday names ``SUN``–``SAT`` (1 = SUN),
``L`` (last day of month; ``nL`` last weekday n of the month), ``W`` (nearest weekday)
and ``#`` (``6#3`` = third Friday). One of day-of-month / day-of-week must be ``?``.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
WEEKDAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
FIELD_NAMES = ("minute", "hour", "day", "month", "weekDay", "year")
_BOUNDS = {
    "minute": (0, 59),
    "hour": (0, 23),
    "day": (1, 31),
    "month": (1, 12),
    "weekDay": (1, 7),
    "year": (1970, 2199),
}
# Matched against the stripped text with fullmatch; no two adjacent parts can take the
# same characters, so a long run of spaces cannot make it backtrack quadratically (the
# previous `\s*\)?\s*$` could).
_RATE = re.compile(r"(?:rate\(\s*)?([0-9]+)\s+(minutes?|hours?|days?)(?:\s*\))?")
#: The largest rate value (``rate(999999 minutes)``); beyond it a number is a typo.
MAX_RATE = 999_999


class ScheduleError(ValueError):
    """A cron or rate expression EventBridge would refuse.

    ``field`` names the cron field at fault (``""`` when the whole expression is),
    ``reason`` says what is wrong without repeating the field name.
    """

    def __init__(self, reason: str, field: str = "") -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


def _allowed_values(field: str) -> str:
    lo, hi = _BOUNDS[field]
    if field == "month":
        return f"{lo}-{hi} or JAN-DEC"
    if field == "weekDay":
        return f"{lo}-{hi} (1 = SUN) or SUN, MON, TUE, WED, THU, FRI, SAT"
    return f"{lo}-{hi}"


def _int(token: str) -> int | None:
    """An ASCII decimal number (leading zeros allowed), or None.

    ``str.isdigit`` alone would take ``'²'`` or ``'٣'``, which ``int`` then refuses or
    EventBridge does not know; a number too long to mean anything saturates rather than
    making ``int`` parse thousands of digits.
    """
    if not token or not token.isascii() or not token.isdigit():
        return None
    digits = token.lstrip("0") or "0"
    return int(digits) if len(digits) <= 9 else 10**9


def _num(token: str, field: str) -> int:
    names = MONTHS if field == "month" else WEEKDAYS if field == "weekDay" else {}
    if token.upper() in names:
        return names[token.upper()]
    value = _int(token)
    if value is None:
        shown = token if len(token) <= 40 else token[:37] + "..."
        raise ScheduleError(f"{shown!r} is not a valid value; use {_allowed_values(field)}", field)
    lo, hi = _BOUNDS[field]
    if not lo <= value <= hi:
        raise ScheduleError(f"{value} is out of range; use {_allowed_values(field)}", field)
    return value


def _parse_set(text: str, field: str) -> frozenset[int] | None:
    """The allowed values of a plain field, or None for ``*``."""
    if text == "*":
        return None
    lo, hi = _BOUNDS[field]
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ScheduleError(f"empty list item in {text!r}", field)
        base, slash, step_s = part.partition("/")
        step = 1
        if slash:  # `0/` with no increment is no cron EventBridge takes
            step = _int(step_s) or 0
            if step == 0:
                raise ScheduleError(f"bad increment in {part!r}; write e.g. '*/15' or '0/5'", field)
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = _num(a, field), _num(b, field)
            if end < start:
                raise ScheduleError(
                    f"range {base!r} runs backwards; write the smaller value first", field
                )
        else:
            start = _num(base, field)
            end = hi if step_s else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


def check_field(name: str, text: str) -> None:
    """Check one cron field (``minute`` … ``year``) on its own; raises :class:`ScheduleError`.

    Rules that involve two fields (day vs weekDay) are checked by :meth:`Cron.parse`.
    """
    if text == "?":
        if name not in ("day", "weekDay"):
            raise ScheduleError("'?' is only allowed in day or weekDay", name)
        return
    if name == "day":
        Cron._day_matcher(text)
    elif name == "weekDay":
        Cron._wday_matcher(text)
    else:
        _parse_set(text, name)


@dataclass(frozen=True)
class Cron:
    """A parsed EventBridge cron expression."""

    fields: tuple[str, str, str, str, str, str]

    @classmethod
    def parse(cls, text: str) -> Cron:
        """Parse ``"0 3 * * ? *"`` or ``"cron(0 3 * * ? *)"``."""
        body = text.strip()
        if body.startswith("cron(") and body.endswith(")"):
            body = body[5:-1]
        parts = body.split()
        if len(parts) != 6:
            raise ScheduleError(
                f"cron needs 6 fields (minute hour day month weekDay year), got {len(parts)}"
            )
        cron = cls(tuple(parts))  # type: ignore[arg-type]
        cron._validate()
        return cron

    def _validate(self) -> None:
        _, _, day, _, wday, _ = self.fields
        if (day == "?") == (wday == "?"):
            raise ScheduleError(
                "exactly one of day and weekDay must be '?' (EventBridge cannot combine a day "
                f"of the month with a day of the week; got day {day!r}, weekDay {wday!r})"
            )
        for name, text in zip(FIELD_NAMES, self.fields, strict=True):
            check_field(name, text)

    @staticmethod
    def _day_matcher(text: str) -> object:
        if text == "L":
            return "L"
        if text.endswith("W"):
            return ("W", _num(text[:-1], "day"))
        return _parse_set(text, "day")

    @staticmethod
    def _wday_matcher(text: str) -> object:
        if "#" in text:
            a, b = text.split("#", 1)
            if not 1 <= (_int(b) or 0) <= 5:
                raise ScheduleError(
                    f"bad '#' occurrence in {text!r}; write DAY#N with N 1-5 (6#3 = third Friday)",
                    "weekDay",
                )
            return ("#", _num(a, "weekDay"), int(b))
        if text.endswith("L") and text != "L":
            return ("L", _num(text[:-1], "weekDay"))
        if text == "L":
            return frozenset({7})
        return _parse_set(text, "weekDay")

    def _day_ok(self, d: date) -> bool:
        _, _, day, month, wday, year = self.fields
        months = _parse_set(month, "month")
        years = _parse_set(year, "year")
        if months is not None and d.month not in months:
            return False
        if years is not None and d.year not in years:
            return False
        last = calendar.monthrange(d.year, d.month)[1]
        if day != "?":
            m = self._day_matcher(day)
            if m == "L":
                return d.day == last
            if isinstance(m, tuple):
                target = min(m[1], last)
                t = d.replace(day=target)
                if t.weekday() == 5:
                    t = t - timedelta(days=1) if target > 1 else t + timedelta(days=2)
                elif t.weekday() == 6:
                    t = t + timedelta(days=1) if target < last else t - timedelta(days=2)
                return d == t
            return m is None or d.day in m  # type: ignore[operator]
        aws_wd = (d.weekday() + 1) % 7 + 1  # Monday=0 -> 2, Sunday=6 -> 1
        m = self._wday_matcher(wday)
        if isinstance(m, tuple) and m[0] == "#":
            return bool(aws_wd == m[1] and (d.day - 1) // 7 + 1 == m[2])
        if isinstance(m, tuple) and m[0] == "L":
            return aws_wd == m[1] and d.day + 7 > last
        return m is None or aws_wd in m  # type: ignore[operator]

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        """First instant strictly after ``after`` (aware) that matches, in UTC."""
        minutes = _parse_set(self.fields[0], "minute") or frozenset(range(60))
        hours = _parse_set(self.fields[1], "hour") or frozenset(range(24))
        local = after.astimezone(tz)
        d = local.date()
        for _ in range(366 * 5):
            if self._day_ok(d):
                for h in sorted(hours):
                    for mi in sorted(minutes):
                        cand = datetime(d.year, d.month, d.day, h, mi, tzinfo=tz)
                        if cand.astimezone(UTC) > after:
                            return cand.astimezone(UTC)
            d += timedelta(days=1)
        return None

    def expression(self) -> str:
        """The EventBridge schedule expression, ``cron(...)``."""
        return "cron(" + " ".join(self.fields) + ")"


@dataclass(frozen=True)
class Rate:
    """A fixed-rate schedule, ``rate(5 minutes)``."""

    value: int
    unit: str

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Parse ``"rate(5 minutes)"`` or ``"5 minutes"``."""
        m = _RATE.fullmatch(text.strip())
        if not m:
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise ScheduleError(
                f"{shown!r} is not a rate; write e.g. 'rate(5 minutes)' "
                "(units: minute(s), hour(s), day(s))"
            )
        value, unit = _int(m.group(1)) or 0, m.group(2)
        if value > MAX_RATE:
            raise ScheduleError(f"rate value must be at most {MAX_RATE:,} (got {m.group(1)})")
        if value < 1:
            raise ScheduleError(f"rate value must be at least 1 (got {value})")
        singular = unit.rstrip("s")
        if (value == 1) != (unit == singular):
            right = f"{value} {singular}" if value == 1 else f"{value} {singular}s"
            raise ScheduleError(
                f"write 'rate({right})': EventBridge takes '{singular}' with 1 and "
                f"'{singular}s' otherwise"
            )
        return cls(value, singular)

    @property
    def seconds(self) -> int:
        """Period in seconds."""
        return self.value * {"minute": 60, "hour": 3600, "day": 86400}[self.unit]

    def next_after(self, after: datetime, anchor: datetime) -> datetime:
        """First tick strictly after ``after``, counting from ``anchor``."""
        elapsed = (after - anchor).total_seconds()
        n = int(elapsed // self.seconds) + 1 if elapsed >= 0 else 0
        return anchor + timedelta(seconds=n * self.seconds)

    def expression(self) -> str:
        """The EventBridge schedule expression, ``rate(...)``."""
        unit = self.unit if self.value == 1 else self.unit + "s"
        return f"rate({self.value} {unit})"


def cron_from_fields(fields: dict[str, str | None]) -> Cron:
    """Build a cron from the ``minute hour day month weekDay year`` keys of pipeline.yaml.

    Fields left out below the most significant given one default to their first
    value (``hour: 3`` alone means 03:00, not every minute of hour 3, unlike
    ``aws_cdk.Schedule.cron``; ``month: 6`` alone means June 1st at 00:00); fields
    above it default to every value. ``weekDay`` ranks with ``day``, and when it is
    given ``day`` is ``?``.
    """
    week_day = fields.get("weekDay")
    by_week_day = week_day not in (None, "?")
    rank = {"minute": 0, "hour": 1, "day": 2, "weekDay": 2, "month": 3, "year": 4}
    given = [name for name in FIELD_NAMES if fields.get(name) not in (None, "?")]
    top = max((rank[n] for n in given), default=-1)
    first = {"minute": "0", "hour": "0", "day": "1", "month": "1"}
    out: list[str] = []
    for name in FIELD_NAMES:
        value = fields.get(name)
        if name == "weekDay":
            out.append(str(value) if by_week_day else "?")
        elif name == "day" and by_week_day:
            out.append("?" if value is None else str(value))
        elif value is not None:
            out.append(str(value))
        elif rank[name] < top:
            out.append(first[name])
        else:
            out.append("*")
    return Cron.parse(" ".join(out))


# -- The same syntax as JSON Schema patterns, for editors ------------------------------------
#
# Editors check pipeline.yaml against ``dpc schema`` with ECMA-262 regular expressions. The
# patterns below accept every field and expression the parser above accepts (a test checks
# that on random input); what no regular expression can say (a range that runs backwards)
# is left to ``dpc validate``. Each pattern is written so that no two adjacent parts can
# match the same characters, which keeps backtracking engines linear.

_NUMBERS = {
    "minute": "[0-9]|[1-5][0-9]",
    "hour": "[0-9]|1[0-9]|2[0-3]",
    "day": "[1-9]|[12][0-9]|3[01]",
    "month": "[1-9]|1[0-2]",
    "weekDay": "[1-7]",
    "year": "19[7-9][0-9]|2[01][0-9][0-9]",
}


def _any_case(word: str) -> str:
    # JSON Schema patterns take no flags: spell case-insensitivity out.
    return "".join(f"[{c.upper()}{c.lower()}]" for c in word)


def _value_pattern(field: str) -> str:
    names = MONTHS if field == "month" else WEEKDAYS if field == "weekDay" else {}
    alternatives = [f"0*(?:{_NUMBERS[field]})", *(_any_case(n) for n in names)]
    return "(?:" + "|".join(alternatives) + ")"


def _set_pattern(field: str) -> str:
    value = _value_pattern(field)
    item = rf"(?:\*|{value}(?:-{value})?)(?:/0*[1-9][0-9]*)?"
    return rf"{item}(?:,{item})*"


def _field_core(field: str) -> str:
    """One cron field without ``?``."""
    if field == "day":
        return rf"(?:L|0*(?:{_NUMBERS['day']})W|{_set_pattern('day')})"
    if field == "weekDay":
        value = _value_pattern("weekDay")
        return rf"(?:L|{value}#0*[1-5]|{value}L|{_set_pattern('weekDay')})"
    return f"(?:{_set_pattern(field)})"


def field_pattern(field: str) -> str:
    """JSON Schema pattern of one cron field of pipeline.yaml (``hour: "3,15"``)."""
    core = _field_core(field)
    if field in ("day", "weekDay"):
        core = rf"(?:\?|{core})"
    return rf"^\s*{core}\s*$"


def field_range(field: str) -> tuple[int, int]:
    """The numbers a cron field takes when YAML reads it as an integer (``hour: 3``)."""
    return _BOUNDS[field]


def cron_pattern() -> str:
    """JSON Schema pattern of ``cron:`` (``"0 3 * * ? *"`` or ``"cron(0 3 * * ? *)"``)."""
    f = {name: _field_core(name) for name in FIELD_NAMES}
    # Exactly one of day and weekDay is `?`.
    days = rf"(?:{f['day']}\s+{f['month']}\s+\?|\?\s+{f['month']}\s+{f['weekDay']})"
    body = rf"{f['minute']}\s+{f['hour']}\s+{days}\s+{f['year']}"
    return rf"^\s*(?:cron\(\s*{body}\s*\)|{body})\s*$"


def rate_pattern() -> str:
    """JSON Schema pattern of ``rate:`` (``"rate(5 minutes)"``, ``"1 hour"``)."""
    one = r"0*1\s+(?:minute|hour|day)"
    more = r"0*(?:[2-9]|[1-9][0-9]{1,5})\s+(?:minutes|hours|days)"
    return rf"^\s*(?:rate\(\s*)?(?:{one}|{more})(?:\s*\)\s*|\s*)$"
