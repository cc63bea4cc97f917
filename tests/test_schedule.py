"""Schedules: EventBridge cron and rate expressions and the instants they fire at."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from dpc_core.schedule import Cron, Rate, ScheduleError, cron_from_fields

MADRID = ZoneInfo("Europe/Madrid")


def at(text: str) -> datetime:
    """An aware UTC instant from ``YYYY-MM-DDTHH:MM``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(expr: str, after: str, tz: ZoneInfo | None = None) -> datetime | None:
    """The first firing of ``expr`` strictly after ``after`` (UTC)."""
    return Cron.parse(expr).next_after(at(after), tz or ZoneInfo("UTC"))


# -- cron fields of pipeline.yaml ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expression"),
    [
        ({"hour": "3"}, "cron(0 3 * * ? *)"),
        ({"minute": "30"}, "cron(30 * * * ? *)"),
        ({"hour": "3", "minute": "15"}, "cron(15 3 * * ? *)"),
        ({"weekDay": "MON"}, "cron(0 0 ? * MON *)"),
        ({"weekDay": "MON-FRI", "hour": "6"}, "cron(0 6 ? * MON-FRI *)"),
        ({"day": "1"}, "cron(0 0 1 * ? *)"),
        ({"day": "L", "hour": "23"}, "cron(0 23 L * ? *)"),
        ({"month": "6"}, "cron(0 0 1 6 ? *)"),
        ({"month": "JAN-MAR", "day": "15"}, "cron(0 0 15 JAN-MAR ? *)"),
        ({"hour": "3", "weekDay": "?"}, "cron(0 3 * * ? *)"),
    ],
)
def test_cron_fields_left_out_below_the_given_ones_take_their_first_value(
    fields: dict[str, str | None], expression: str
) -> None:
    assert cron_from_fields(fields).expression() == expression


def test_cron_fields_with_both_day_and_weekday_are_refused() -> None:
    with pytest.raises(ScheduleError, match="exactly one of day and weekDay"):
        cron_from_fields({"day": "1", "weekDay": "MON"})


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0 3 * * ? *", "cron(0 3 * * ? *)", "  cron(0 3 * * ? *) "])
def test_a_cron_is_accepted_with_or_without_the_cron_wrapper(text: str) -> None:
    assert Cron.parse(text).expression() == "cron(0 3 * * ? *)"


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("0 3 * * ?", "", "cron needs 6 fields"),
        ("0 3 1 * MON *", "", "exactly one of day and weekDay must be '?'"),
        ("0 3 * * * *", "", "exactly one of day and weekDay must be '?'"),
        ("60 3 * * ? *", "minute", "60 is out of range; use 0-59"),
        ("0 24 * * ? *", "hour", "24 is out of range; use 0-23"),
        ("0 3 32 * ? *", "day", "32 is out of range; use 1-31"),
        ("0 3 ? * 8 *", "weekDay", "8 is out of range"),
        ("0 3 * JANUARY ? *", "month", "'JANUARY' is not a valid value; use 1-12 or JAN-DEC"),
        ("0 3 ? * FUNDAY *", "weekDay", "'FUNDAY' is not a valid value"),
        ("0 3 ? * 6#6 *", "weekDay", "bad '#' occurrence"),
        ("0 18-6 * * ? *", "hour", "runs backwards"),
        ("0/0 3 * * ? *", "minute", "bad increment"),
        ("? 3 * * ? *", "minute", "'?' is only allowed in day or weekDay"),
        ("0 3 * * ? 1969", "year", "out of range; use 1970-2199"),
    ],
)
def test_a_bad_cron_names_the_field_at_fault(text: str, field: str, reason: str) -> None:
    with pytest.raises(ScheduleError) as err:
        Cron.parse(text)
    assert err.value.field == field
    assert reason in err.value.reason


@pytest.mark.parametrize(
    ("text", "expression", "seconds"),
    [
        ("rate(5 minutes)", "rate(5 minutes)", 300),
        ("rate(1 hour)", "rate(1 hour)", 3600),
        ("2 days", "rate(2 days)", 172800),
    ],
)
def test_a_rate_parses_to_its_expression_and_period(
    text: str, expression: str, seconds: int
) -> None:
    rate = Rate.parse(text)
    assert (rate.expression(), rate.seconds) == (expression, seconds)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("rate(5 weeks)", "is not a rate"),
        ("every 5 minutes", "is not a rate"),
        ("rate(0 minutes)", "at least 1"),
        ("rate(5 minute)", "write 'rate(5 minutes)'"),
        ("rate(1 hours)", "write 'rate(1 hour)'"),
    ],
)
def test_a_bad_rate_says_how_to_write_it(text: str, reason: str) -> None:
    with pytest.raises(ScheduleError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        Rate.parse(text)


# -- next firing -----------------------------------------------------------------------------


def test_a_daily_cron_fires_later_the_same_day() -> None:
    assert fires("0 3 * * ? *", "2026-11-26T02:00") == at("2026-11-26T03:00")


def test_a_cron_fires_strictly_after_the_given_instant() -> None:
    assert fires("0 3 * * ? *", "2026-11-26T03:00") == at("2026-11-27T03:00")


def test_increments_fire_on_each_step() -> None:
    assert fires("0/15 * * * ? *", "2026-11-26T10:07") == at("2026-11-26T10:15")


def test_weekday_ranges_skip_the_weekend() -> None:
    # 2026-11-28 is a Saturday.
    assert fires("0 8 ? * MON-FRI *", "2026-11-28T09:00") == at("2026-11-30T08:00")


def test_sunday_is_weekday_1() -> None:
    assert fires("0 8 ? * 1 *", "2026-11-26T00:00") == at("2026-11-29T08:00")


def test_l_in_day_is_the_last_day_of_the_month() -> None:
    assert fires("0 0 L * ? *", "2026-02-10T00:00") == at("2026-02-28T00:00")


def test_w_in_day_is_the_nearest_weekday_before_a_saturday() -> None:
    # 2026-08-15 is a Saturday: the nearest weekday is Friday the 14th.
    assert fires("0 9 15W * ? *", "2026-08-01T00:00") == at("2026-08-14T09:00")


def test_w_in_day_does_not_leave_the_month() -> None:
    # 2026-08-01 is a Saturday: 1W is Monday the 3rd, not Friday July 31st.
    assert fires("0 9 1W * ? *", "2026-07-31T00:00") == at("2026-08-03T09:00")


def test_hash_in_weekday_is_the_nth_weekday_of_the_month() -> None:
    # Third Friday of November 2026.
    assert fires("0 9 ? * 6#3 *", "2026-11-01T00:00") == at("2026-11-20T09:00")


def test_l_after_a_weekday_is_its_last_occurrence_in_the_month() -> None:
    assert fires("0 9 ? * 6L *", "2026-11-01T00:00") == at("2026-11-27T09:00")


def test_a_day_that_only_some_years_have_waits_for_one() -> None:
    assert fires("0 3 29 2 ? *", "2026-03-01T00:00") == at("2028-02-29T03:00")


def test_a_schedule_restricted_to_past_years_never_fires() -> None:
    assert fires("0 3 * * ? 2020", "2026-03-01T00:00") is None


# -- time zones and daylight saving time ---------------------------------------------------


def test_local_time_follows_the_zone_offset_in_winter() -> None:
    # Madrid is UTC+1 in March before the switch.
    assert fires("0 3 * * ? *", "2026-03-27T12:00", MADRID) == at("2026-03-28T02:00")


def test_local_time_follows_the_zone_offset_across_the_spring_switch() -> None:
    # DST starts 2026-03-29 in Madrid: 03:00 local is now UTC+2.
    assert fires("0 3 * * ? *", "2026-03-28T02:30", MADRID) == at("2026-03-29T01:00")


def test_a_local_time_skipped_by_the_spring_switch_still_fires_that_day() -> None:
    # 02:30 does not exist on 2026-03-29 in Madrid; the run is not lost.
    first = fires("30 2 * * ? *", "2026-03-28T12:00", MADRID)
    assert first is not None and first.date() == at("2026-03-29T00:00").date()
    assert fires("30 2 * * ? *", first.isoformat()[:16], MADRID) == at("2026-03-30T00:30")


def test_a_local_time_repeated_by_the_autumn_switch_fires_once() -> None:
    # 02:30 happens twice on 2026-10-25 in Madrid (UTC+2, then UTC+1): fire on the first.
    assert fires("30 2 * * ? *", "2026-10-25T00:00", MADRID) == at("2026-10-25T00:30")
    assert fires("30 2 * * ? *", "2026-10-25T00:30", MADRID) == at("2026-10-26T01:30")


def test_a_rate_ticks_from_its_anchor() -> None:
    rate = Rate.parse("rate(5 minutes)")
    assert rate.next_after(at("2026-11-26T10:07"), at("2026-11-26T10:00")) == at(
        "2026-11-26T10:10")


# -- the JSON Schema patterns agree with the parser -------------------------------------------

import re  # noqa: E402 - kept with the tests that use it

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dpc_core.schedule import (  # noqa: E402
    FIELD_NAMES,
    check_field,
    cron_pattern,
    field_pattern,
    rate_pattern,
)

_CRON_ALPHABET = "0123456789*?,-/#LW JANFEBMARSUNMONTUEDECjansun "
_token = st.text(_CRON_ALPHABET, max_size=12)


def _parses(check: object, text: str) -> bool:
    try:
        check(text)  # type: ignore[operator]
    except ScheduleError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(FIELD_NAMES), text=_token)
def test_a_cron_field_the_parser_takes_matches_its_schema_pattern(name: str, text: str) -> None:
    accepted = _parses(lambda t: check_field(name, t.strip()), text)
    matched = re.search(field_pattern(name), text) is not None
    if accepted:
        assert matched, (name, text)
    elif matched:
        # What a pattern cannot say: a range that runs backwards.
        with pytest.raises(ScheduleError, match="runs backwards"):
            check_field(name, text.strip())


@settings(max_examples=300, deadline=None)
@given(fields=st.lists(st.sampled_from(
    ["0", "3", "*", "?", "1-5", "*/15", "MON", "L", "6#3", "15W", "2026", "JAN", "99", "x"]),
    min_size=5, max_size=7), wrap=st.booleans())
def test_a_cron_expression_the_parser_takes_matches_the_schema_pattern(
    fields: list[str], wrap: bool
) -> None:
    text = " ".join(fields)
    text = f"cron({text})" if wrap else text
    assert _parses(Cron.parse, text) == (re.search(cron_pattern(), text) is not None), text


@pytest.mark.parametrize("text", [
    "rate(1 hour)", "5 minutes", " rate( 2 days ) ", "rate(5 minutes", "01 day",
    "rate(0 minutes)", "rate(1 hours)", "rate(2 hour)", "rate(1000000 days)", "rate(5 weeks)",
    "rate(5 minutes)   x", "rate(" + " " * 50 + "x",
])
def test_a_rate_the_parser_takes_matches_the_schema_pattern(text: str) -> None:
    assert _parses(Rate.parse, text) == (re.search(rate_pattern(), text) is not None)


def test_the_rate_regex_is_linear_on_long_runs_of_spaces() -> None:
    import time

    started = time.process_time()
    for text in ("rate(5 minutes" + " " * 50_000 + "x", " " * 50_000 + "x",
                 "5" + " " * 50_000 + "x"):
        with pytest.raises(ScheduleError):
            Rate.parse(text)
    assert time.process_time() - started < 0.5


@pytest.mark.parametrize("text", ["²", "٣", "1" * 5000, "0/", "*/0"])
def test_a_cron_number_is_ascii_digits_and_bounded(text: str) -> None:
    with pytest.raises(ScheduleError):
        check_field("minute", text)


def test_a_huge_increment_is_a_valid_cron_field_that_parses_at_once() -> None:
    check_field("minute", "*/" + "9" * 5000)
