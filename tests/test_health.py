"""dpc_core.health and dpc_core.deadlines: waiting, blocked, late — over the real engine.

Pipelines are validated by the real pipeline.yaml model and registered into an engine over
an in-memory SQLite store; parents' runs arrive as real-shape status events, so the window
data the health functions read is exactly what the engine wrote.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from helpers.engine import arn, ms
from hypothesis import given, settings
from hypothesis import strategies as st

from dpc_core.deadlines import DeadlineError, deadline_at, parse_deadline, window_start
from dpc_core.engine import Engine, compile_condition, evaluate
from dpc_core.errors import ValidationFailed
from dpc_core.events import make_status_event
from dpc_core.health import (
    ALL_STATUSES,
    blocked_downstream,
    can_still_hold,
    due_ms,
    is_late,
    late_text,
    waiting_on,
)
from dpc_core.loader import Positions, validate_document
from dpc_core.model import Block, Pipeline
from dpc_core.store import Slot
from dpc_core.stores.sqlite import SqliteStore

A, B, C, D = "111111111111", "222222222222", "333333333333", "444444444444"
REGION = "eu-west-1"


def pipeline(name: str, account: str, executions: dict[str, Any] | None = None,
             **top: Any) -> Pipeline:
    doc: dict[str, Any] = {"name": name, "account": account,
                           "steps": [{"name": "work", "type": "shell", "command": "true"}]}
    trigger = dict(top.pop("trigger", {}))
    if executions is not None:
        trigger["executions"] = executions
    doc["trigger"] = trigger
    doc.update(top)
    return validate_document(doc, Positions(), f"<{name}>")


def ref(name: str, account: str, *statuses: str) -> dict[str, Any]:
    return {"name": name, "account": account, "status": list(statuses) or ["SUCCEEDED"]}


def event(name: str, account: str, run: str, status: str, start: str,
          stop: str | None = None, logical: str = "2026-11-26") -> dict[str, Any]:
    return make_status_event(account=account, region=REGION, pipeline=name, execution=run,
                             status=status, start_ms=ms(start),
                             stop_ms=ms(stop) if stop else None,
                             input={"dpc": {"logicalDate": logical}})


def case_study(**extra: Any) -> Engine:
    """listings (A), searches (B) → pipeline-x (C) → report (D); listings-fallback (C)."""
    eng = Engine(SqliteStore(":memory:"))
    eng.register_many([
        pipeline("listings", A, owner="core-data-availability"),
        pipeline("searches", B, owner={"team": "search", "contact": "search@example.com"}),
        pipeline("pipeline-x", C, {"allOf": [ref("listings", A), ref("searches", B)]},
                 owner="rent-journey", **extra),
        pipeline("listings-fallback", C, {"anyOf": [ref("listings", A, "FAILED", "TIMED_OUT")]}),
        pipeline("report", D, {"allOf": [ref("pipeline-x", C)]}, owner="bi"),
    ])
    return eng


def spec(eng: Engine, key: str) -> Any:
    found = eng.store.lookup(key)
    assert found is not None
    return found[0]


# -- waiting on --------------------------------------------------------------------------

def test_waiting_on_names_each_parent_not_yet_satisfied_with_status_time_and_owner() -> None:
    eng = case_study()
    eng.handle(event("listings", A, "l1", "RUNNING", "2026-11-26T03:02"))
    eng.handle(event("searches", B, "s1", "FAILED", "2026-11-26T05:00", "2026-11-26T05:07"))
    waits = waiting_on(eng.store, spec(eng, f"{C}/pipeline-x"), "2026-11-26")
    assert [w.text() for w in waits] == [
        f"listings ({A}, core-data-availability) RUNNING since 03:02",
        f"searches ({B}, search) FAILED at 05:07",
    ]


def test_waiting_on_is_empty_once_the_condition_holds() -> None:
    eng = case_study()
    eng.handle(event("listings", A, "l1", "SUCCEEDED", "2026-11-26T03:00"))
    eng.handle(event("searches", B, "s1", "SUCCEEDED", "2026-11-26T05:00"))
    assert waiting_on(eng.store, spec(eng, f"{C}/pipeline-x"), "2026-11-26") == []


def test_a_parent_that_has_not_run_is_named_as_such() -> None:
    eng = case_study()
    eng.handle(event("listings", A, "l1", "SUCCEEDED", "2026-11-26T03:00"))
    waits = waiting_on(eng.store, spec(eng, f"{C}/pipeline-x"), "2026-11-26")
    assert [w.text() for w in waits] == [f"searches ({B}, search) has not run"]


# -- can the condition still hold -----------------------------------------------------------

def slot(status: str) -> Slot:
    return Slot(f"arn:{status}", 1, status, 0)


def test_a_failed_parent_makes_an_all_of_impossible() -> None:
    cond = {"allOf": [ref("listings", A), ref("searches", B)]}
    assert not can_still_hold(cond, C, {f"{A}/listings": slot("FAILED")})


def test_a_running_or_absent_parent_may_still_succeed() -> None:
    cond = {"allOf": [ref("listings", A), ref("searches", B)]}
    assert can_still_hold(cond, C, {f"{A}/listings": slot("RUNNING")})
    assert can_still_hold(cond, C, {})


def test_an_any_of_holds_on_while_another_branch_can() -> None:
    cond = {"anyOf": [ref("listings", A), ref("searches", B)]}
    assert can_still_hold(cond, C, {f"{A}/listings": slot("FAILED")})
    assert not can_still_hold(cond, C, {f"{A}/listings": slot("FAILED"),
                                        f"{B}/searches": slot("ABORTED")})


def test_one_run_cannot_have_two_statuses_at_once() -> None:
    # listings must be SUCCEEDED and FAILED in the same window: never, whatever it does.
    cond = {"allOf": [ref("listings", A, "SUCCEEDED"), ref("listings", A, "FAILED")]}
    assert not can_still_hold(cond, C, {})


def test_a_parent_known_not_to_run_counts_as_fixed() -> None:
    cond = {"allOf": [ref("pipeline-x", C)]}
    assert can_still_hold(cond, D, {})
    assert not can_still_hold(cond, D, {}, fixed_absent=[f"{C}/pipeline-x"])


_STATUS = st.sampled_from([*ALL_STATUSES, None])
_KEYS = [f"{A}/p0", f"{A}/p1", f"{A}/p2"]


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    def item() -> dict[str, Any]:
        if depth < 2 and draw(st.booleans()):
            return draw(conditions(depth + 1))
        statuses = draw(st.lists(st.sampled_from(ALL_STATUSES), min_size=1, max_size=3,
                                 unique=True))
        return {"name": draw(st.sampled_from(["p0", "p1", "p2"])), "account": A,
                "status": statuses}

    block: dict[str, Any] = {}
    for key in draw(st.sampled_from([["allOf"], ["anyOf"], ["allOf", "anyOf"]])):
        block[key] = [item() for _ in range(draw(st.integers(1, 3)))]
    if len(block) == 2:
        block["operator"] = draw(st.sampled_from(["AND", "OR"]))
    return block


@settings(max_examples=300, deadline=None)
@given(conditions(), st.tuples(_STATUS, _STATUS, _STATUS), st.data())
def test_can_still_hold_agrees_with_the_engine_over_every_future(
        cond: dict[str, Any], now: tuple[str | None, ...], data: st.DataObject) -> None:
    """"Can still hold" is exactly: some outcome of the open parents (RUNNING or absent; a
    terminal one is fixed) makes the engine's own evaluation hold. And it is a real
    prediction: when it says no, no finishing of the open runs makes the engine trigger."""
    slots = {k: slot(s) for k, s in zip(_KEYS, now, strict=True) if s is not None}
    compiled = compile_condition(Block.model_validate(cond), C)
    open_keys = [k for k, s in zip(_KEYS, now, strict=True) if s in (None, "RUNNING")]
    futures = []
    for outcome in _product(len(open_keys)):
        trial = {k: v for k, v in slots.items() if v.status != "RUNNING"}
        trial.update({k: slot(s) for k, s in zip(open_keys, outcome, strict=True)})
        futures.append(evaluate(compiled, trial, C)[0])
    assert can_still_hold(cond, C, slots) == any(futures)
    # Once a terminal status is fixed, it stays: finishing a RUNNING parent never turns a
    # "cannot hold" into a trigger.
    if not can_still_hold(cond, C, slots):
        finished = {k: (slot(data.draw(st.sampled_from(ALL_STATUSES[:4])))
                        if v.status == "RUNNING" else v) for k, v in slots.items()}
        assert not evaluate(compiled, finished, C)[0]


def _product(n: int) -> list[tuple[str, ...]]:
    import itertools

    return list(itertools.product(ALL_STATUSES, repeat=n))


# -- blocked downstream --------------------------------------------------------------------

def test_a_failed_parent_blocks_its_child_and_the_childs_children_across_accounts() -> None:
    eng = case_study()
    eng.handle(event("searches", B, "s1", "SUCCEEDED", "2026-11-26T05:00"))
    eng.handle(event("listings", A, "l1", "FAILED", "2026-11-26T03:00", "2026-11-26T03:40"))
    failed = eng.store.get_run(arn("listings", A, "l1"))
    assert failed is not None
    blocked = blocked_downstream(eng.store, failed)
    assert [(b.key, b.window) for b in blocked] == [(f"{C}/pipeline-x", "2026-11-26"),
                                                    (f"{D}/report", "2026-11-26")]
    assert blocked[0].text() == (
        f"pipeline-x ({C}, rent-journey) is blocked for 2026-11-26: "
        f"listings ({A}, core-data-availability) run l1 FAILED at 03:40; "
        "pipeline-x will run automatically when listings succeeds for 2026-11-26")
    assert "(via pipeline-x)" in blocked[1].text()
    assert "report will run automatically when listings succeeds" in blocked[1].text()


def test_the_fallback_that_the_failure_triggers_is_not_blocked() -> None:
    eng = case_study()
    out = eng.handle(event("listings", A, "l1", "FAILED", "2026-11-26T03:00"))
    assert [d.pipeline for d in out.decisions] == ["listings-fallback"]
    failed = eng.store.get_run(arn("listings", A, "l1"))
    assert failed is not None
    assert "listings-fallback" not in {b.child.name for b in blocked_downstream(eng.store, failed)}


def test_a_child_whose_other_branch_can_still_hold_is_not_blocked() -> None:
    eng = Engine(SqliteStore(":memory:"))
    eng.register_many([pipeline("listings", A), pipeline("mirror", B),
                       pipeline("x", C, {"anyOf": [ref("listings", A), ref("mirror", B)]})])
    eng.handle(event("listings", A, "l1", "TIMED_OUT", "2026-11-26T03:00"))
    failed = eng.store.get_run(arn("listings", A, "l1"))
    assert failed is not None
    assert blocked_downstream(eng.store, failed) == []


def test_a_later_run_of_the_parent_already_under_way_means_nobody_is_blocked() -> None:
    eng = case_study()
    eng.handle(event("listings", A, "l2", "RUNNING", "2026-11-26T04:00"))
    eng.handle(event("listings", A, "l1", "FAILED", "2026-11-26T03:00"))  # late delivery
    failed = eng.store.get_run(arn("listings", A, "l1"))
    assert failed is not None
    assert blocked_downstream(eng.store, failed) == []


def test_a_success_is_never_a_block() -> None:
    eng = case_study()
    eng.handle(event("listings", A, "l1", "SUCCEEDED", "2026-11-26T03:00"))
    run = eng.store.get_run(arn("listings", A, "l1"))
    assert run is not None
    assert blocked_downstream(eng.store, run) == []


def test_a_child_already_triggered_in_the_window_is_not_blocked() -> None:
    eng = case_study()
    eng.handle(event("listings", A, "l1", "SUCCEEDED", "2026-11-26T03:00"))
    eng.handle(event("searches", B, "s1", "SUCCEEDED", "2026-11-26T05:00"))
    eng.handle(event("listings", A, "l2", "FAILED", "2026-11-26T07:00"))  # a later bad run
    failed = eng.store.get_run(arn("listings", A, "l2"))
    assert failed is not None
    assert f"{C}/pipeline-x" not in {b.key for b in blocked_downstream(eng.store, failed)}


# -- deadlines -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "window", "shown"), [
    ("06:00", "daily", "06:00"), ("+45m", "hourly", "+45m"), ("+2h", "daily", "+2h"),
    ("+1h30m", "hourly", "+1h30m"), ("+90m", "hourly", "+1h30m"),
])
def test_deadlines_that_read(text: str, window: str, shown: str) -> None:
    assert parse_deadline(text, window).text() == shown


@pytest.mark.parametrize(("text", "window", "says"), [
    ("06:00", "hourly", "hourly window needs an offset"), ("6am", "daily", "is not a deadline"),
    ("24:00", "daily", "is not a deadline"), ("+0m", "daily", "more than 0"),
    ("+999h", "daily", "at most 7 days"), (600, "daily", "must be a string"),
])
def test_deadlines_that_do_not(text: Any, window: str, says: str) -> None:
    with pytest.raises(DeadlineError, match=says):
        parse_deadline(text, window)


def test_a_deadline_is_a_time_of_day_in_the_windows_time_zone() -> None:
    at = deadline_at("06:00", "2026-11-26", "Europe/Madrid")
    assert at == datetime(2026, 11, 26, 5, 0, tzinfo=UTC)  # 06:00 CET


def test_an_offset_counts_from_the_window_start_even_in_a_repeated_hour() -> None:
    first = deadline_at("+30m", "2026-11-01T01-04:00", "America/New_York", "hourly")
    second = deadline_at("+30m", "2026-11-01T01-05:00", "America/New_York", "hourly")
    assert (second - first).total_seconds() == 3600
    assert first == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_lord_howes_second_half_hour_window_starts_when_clocks_go_back() -> None:
    """Lord Howe goes back from +11:00 to +10:30 at 02:00: the hour 01 at +10:30 is only
    its repeated half, 01:30-02:00, from 15:00Z (it was placed at 14:00Z)."""
    assert window_start("2026-04-05T01+10:30", "Australia/Lord_Howe") == \
        datetime(2026, 4, 4, 15, 0, tzinfo=UTC)
    assert window_start("2026-04-05T01+11:00", "Australia/Lord_Howe") == \
        datetime(2026, 4, 4, 14, 0, tzinfo=UTC)


#: Zones with half-hour and 45-minute offsets and DST, midnight transitions, a skipped day.
ZONES = ["Australia/Lord_Howe", "America/New_York", "Europe/Madrid", "America/St_Johns",
         "Asia/Kolkata", "Pacific/Chatham", "America/Sao_Paulo", "Asia/Tehran",
         "Australia/Adelaide", "Africa/Casablanca", "Pacific/Apia", "America/Havana",
         "Asia/Beirut", "UTC"]


def _transitions(tz: str, first: int, last: int) -> list[int]:
    """UTC seconds (on the quarter hour) where ``tz``'s offset changes, years first..last."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    t = int(datetime(first, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(last + 1, 1, 1, tzinfo=UTC).timestamp())
    found = []
    prev = datetime.fromtimestamp(t, zone).utcoffset()
    while t < end:
        t += 3600
        off = datetime.fromtimestamp(t, zone).utcoffset()
        if off != prev:
            lo = t - 3600
            while datetime.fromtimestamp(lo, zone).utcoffset() == prev:
                lo += 900
            found.append(lo)
            prev = off
    return found


def _check_window_start(seconds: int, tz: str, kind: str) -> None:
    from dpc_core.engine import window_of

    ms = seconds * 1000
    name = window_of(ms, None, kind, tz)
    start = int(window_start(name, tz).timestamp() * 1000)
    assert start <= ms, (name, tz)
    assert window_of(start, None, kind, tz) == name, (name, tz)
    assert window_of(start - 1000, None, kind, tz) != name, (name, tz)


@pytest.mark.parametrize("tz", ZONES)
def test_a_window_starts_at_its_first_instant_around_every_transition(tz: str) -> None:
    """Every instant on the quarter hour within 3 hours of each offset change of 2012-2030
    (and a day around for daily windows): its window starts at or before it, and that
    start is the window's first second. (From 2012: St. John's changed clocks at 00:01
    until 2011, off the quarter hours the engine's window cache relies on.)"""
    for t in _transitions(tz, 2012, 2030):
        for q in range(-12, 13):
            _check_window_start(t + q * 900, tz, "hourly")
        for q in range(-26, 27, 2):
            _check_window_start(t + q * 1800, tz, "daily")


@settings(max_examples=300, deadline=None)
@given(seconds=st.integers(int(datetime(2012, 1, 1, tzinfo=UTC).timestamp()),
                           int(datetime(2037, 12, 31, tzinfo=UTC).timestamp())),
       tz=st.sampled_from(ZONES), kind=st.sampled_from(["daily", "hourly"]))
def test_a_window_starts_at_its_first_instant(seconds: int, tz: str, kind: str) -> None:
    _check_window_start(seconds, tz, kind)


def test_a_window_is_late_only_past_its_deadline_and_without_success() -> None:
    eng = case_study(deadline="06:00")
    x = spec(eng, f"{C}/pipeline-x")
    assert due_ms(x, "2026-11-26") == ms("2026-11-26T06:00")
    assert not is_late(x, "2026-11-26", ms("2026-11-26T05:59"), succeeded=False)
    assert is_late(x, "2026-11-26", ms("2026-11-26T06:00"), succeeded=False)
    assert not is_late(x, "2026-11-26", ms("2026-11-26T09:00"), succeeded=True)
    assert not is_late(spec(eng, f"{A}/listings"), "2026-11-26", ms("2026-11-27T00:00"), False)


def test_the_late_notice_says_which_parents_it_still_waits_on() -> None:
    eng = case_study(deadline="06:00")
    eng.handle(event("listings", A, "l1", "RUNNING", "2026-11-26T03:02"))
    eng.handle(event("searches", B, "s1", "FAILED", "2026-11-26T05:00", "2026-11-26T05:07"))
    x = spec(eng, f"{C}/pipeline-x")
    text = late_text(x, "2026-11-26", waiting_on(eng.store, x, "2026-11-26"))
    assert text == (f"pipeline-x ({C}, rent-journey) has not succeeded for 2026-11-26 by its "
                    f"deadline 06:00 UTC; waiting on listings ({A}, core-data-availability) "
                    f"RUNNING since 03:02; searches ({B}, search) FAILED at 05:07")


def test_a_bad_deadline_in_pipeline_yaml_names_the_field() -> None:
    with pytest.raises(ValidationFailed) as err:
        pipeline("x", C, trigger={"window": "hourly"}, deadline="06:00")
    assert "deadline" in str(err.value) and "offset" in str(err.value)


def test_owner_is_a_team_or_a_team_with_a_contact() -> None:
    p = pipeline("x", C, owner={"team": "search", "contact": "search@example.com"})
    assert (p.owner, p.contact) == ("search", "search@example.com")
    assert pipeline("y", C, owner="bi").owner == "bi"
    with pytest.raises(ValidationFailed, match="owner"):
        pipeline("z", C, owner={"contact": "nobody"})


def test_the_owner_is_shown_in_every_lineage_view() -> None:
    from dpc_core.lineage import build_graph, render

    eng = case_study()
    graph = build_graph(eng.store.pipelines())
    assert "listings [111111111111]  owner core-data-availability" in render(graph, "text")
    assert "owner search <search@example.com>" in render(graph, "text")
    assert "owner rent-journey" in render(graph, "mermaid")
    assert "owner bi" in render(graph, "dot")
    owners = {n["name"]: n["info"].get("owner") for n in graph.to_dict()["nodes"]}
    assert owners["listings"] == "core-data-availability"  # JSON: the registry info


def test_editors_see_deadline_and_owner_in_the_schema() -> None:
    """`dpc schema` (what editors validate with) takes what the model takes."""
    import subprocess
    import sys
    from pathlib import Path

    import jsonschema

    dpc = Path(sys.executable).parent / "dpc"
    schema = json.loads(subprocess.run([str(dpc), "schema"], capture_output=True, text=True,
                                       timeout=120, check=True).stdout)
    base = {"name": "x", "account": C, "steps": [{"name": "a", "type": "shell",
                                                  "command": "true"}]}
    ok = [{"deadline": "06:00", "owner": {"team": "bi", "contact": "bi@example.com"}},
          {"deadline": "+1h30m", "owner": "bi"}]
    for extra in ok:
        jsonschema.validate({**base, **extra}, schema)
    for extra in ({"deadline": "6am"}, {"deadline": "24:00"}, {"owner": {"contact": "x"}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**base, **extra}, schema)
