"""The rules of docs/triggers.md, one behaviour per test, on :class:`dpc_core.engine.Engine`.

Each test registers pipelines validated by the real pipeline.yaml model into an engine over a
fresh in-memory :class:`SqliteStore` and feeds it status events in the real AWS shape
(:func:`dpc_core.events.make_status_event`).
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers.engine import arn, ms

from dpc_core.engine import Decision, Engine, Outcome, window_of
from dpc_core.errors import ConditionTooDeep, DependencyCycle
from dpc_core.events import make_status_event
from dpc_core.loader import Positions, validate_document
from dpc_core.model import Pipeline
from dpc_core.store import PipelineSpec, Recorded, Slot, WindowState
from dpc_core.stores.sqlite import SqliteStore

A, B, C = "111111111111", "222222222222", "333333333333"
REGION = "eu-west-1"


def pipeline(name: str, account: str, executions: dict[str, Any] | None = None,
             **trigger: Any) -> Pipeline:
    """A pipeline validated by the real model (steps by the installed shell plugin)."""
    trig: dict[str, Any] = dict(trigger)
    if executions is not None:
        trig["executions"] = executions
    doc = {"name": name, "account": account, "trigger": trig,
           "steps": [{"name": "work", "type": "shell", "command": "true"}]}
    return validate_document(doc, Positions(), f"<{name}>")


def ref(name: str, account: str | None = None, *statuses: str) -> dict[str, Any]:
    """A condition reference; statuses default to SUCCEEDED."""
    out: dict[str, Any] = {"name": name, "status": list(statuses) or ["SUCCEEDED"]}
    if account is not None:
        out["account"] = account
    return out


def engine(*pipelines: Pipeline, store: SqliteStore | None = None) -> Engine:
    """An engine over an in-memory SQLite store with ``pipelines`` registered."""
    eng = Engine(store or SqliteStore(":memory:"))
    for p in pipelines:
        eng.register(p)
    return eng


def event(pipeline_name: str, account: str, run: str, status: str, start: str, *,
          redrive: int = 0, logical: str | None = None, arn_account: str | None = None,
          ) -> dict[str, Any]:
    """A status event of run ``run`` of ``account/pipeline_name`` started at ``start`` (UTC)."""
    ev = make_status_event(
        account=arn_account or account, region=REGION, pipeline=pipeline_name, execution=run,
        status=status, start_ms=ms(start), redrive_count=redrive,
        input={"dpc": {"logicalDate": logical}} if logical else None)
    ev["account"] = account  # the sender; differs from the ARN's account only when spoofed
    return ev


def feed(eng: Engine, *events: dict[str, Any]) -> list[Decision]:
    """Handle ``events`` in order; every decision made."""
    out: list[Decision] = []
    for ev in events:
        out.extend(eng.handle(ev).decisions)
    return out


def succeeded(name: str, account: str, run: str = "r1", start: str = "2026-11-26T03:00",
              **kw: Any) -> dict[str, Any]:
    """A SUCCEEDED event."""
    return event(name, account, run, "SUCCEEDED", start, **kw)


#: The case study: listings (A) and searches (B) scheduled, pipeline-x (C) needs both.
def case_study(**trigger: Any) -> Engine:
    """listings@A, searches@B scheduled; pipeline-x@C is allOf both SUCCEEDED (``SUCCESS``)."""
    return engine(
        pipeline("listings", A, schedule={"hour": 3}),
        pipeline("searches", B, schedule={"hour": 5}),
        pipeline("pipeline-x", C, {"allOf": [ref("listings", A, "SUCCESS"),
                                             ref("searches", B, "SUCCESS")]}, **trigger),
    )


def parents_of(decision: Decision) -> list[str]:
    """The parent execution ARNs of a decision, in order."""
    return [p.execution_arn for p in decision.parents]


# -- recording ---------------------------------------------------------------------------


def test_the_same_status_seen_twice_is_a_duplicate_and_triggers_once() -> None:
    eng = case_study()
    feed(eng, succeeded("listings", A))
    first = eng.handle(succeeded("searches", B))
    again = eng.handle(succeeded("searches", B))

    assert first.recorded is Recorded.NEW and len(first.decisions) == 1
    assert again.recorded is Recorded.DUPLICATE and again.decisions == []


def test_running_after_succeeded_of_the_same_redrive_is_stale() -> None:
    eng = case_study()
    feed(eng, succeeded("listings", A))
    late = eng.handle(event("listings", A, "r1", "RUNNING", "2026-11-26T03:00"))

    assert late.recorded is Recorded.STALE
    assert eng.store.get_run(arn("listings", A, "r1")).status == "SUCCEEDED"  # type: ignore[union-attr]
    # The stale RUNNING did not hide the success from pipeline-x.
    assert len(feed(eng, succeeded("searches", B))) == 1


def test_a_status_of_a_lower_redrive_count_is_stale() -> None:
    eng = case_study()
    feed(eng, event("listings", A, "r1", "FAILED", "2026-11-26T03:00"),
         event("listings", A, "r1", "RUNNING", "2026-11-26T03:00", redrive=1),
         event("listings", A, "r1", "SUCCEEDED", "2026-11-26T03:00", redrive=1))
    late = eng.handle(event("listings", A, "r1", "FAILED", "2026-11-26T03:00", redrive=0))

    assert late.recorded is Recorded.STALE
    run = eng.store.get_run(arn("listings", A, "r1"))
    assert run is not None and (run.status, run.redrive_count) == ("SUCCEEDED", 1)


def test_a_redriven_run_that_succeeds_satisfies_the_child() -> None:
    eng = case_study()
    feed(eng, event("listings", A, "r1", "FAILED", "2026-11-26T03:00"),
         succeeded("searches", B, start="2026-11-26T05:00"),
         event("listings", A, "r1", "RUNNING", "2026-11-26T03:00", redrive=1))
    [decision] = feed(eng, event("listings", A, "r1", "SUCCEEDED", "2026-11-26T03:00",
                                 redrive=1))

    assert parents_of(decision)[0] == arn("listings", A, "r1")


# -- windows -----------------------------------------------------------------------------


def test_daily_window_pairs_only_runs_of_the_same_day() -> None:
    eng = case_study()
    nothing = feed(eng, succeeded("listings", A, "d0", "2026-11-26T03:00"),
                   succeeded("searches", B, "d1", "2026-11-27T05:00"))
    [decision] = feed(eng, succeeded("listings", A, "d1", "2026-11-27T03:00"))

    assert nothing == []
    assert decision.window == "2026-11-27"


def test_hourly_window_pairs_only_runs_of_the_same_hour() -> None:
    eng = case_study(window="hourly")
    nothing = feed(eng, succeeded("listings", A, "h3", "2026-11-26T03:10"),
                   succeeded("searches", B, "h4", "2026-11-26T04:05"))
    [decision] = feed(eng, succeeded("listings", A, "h4", "2026-11-26T04:50"))

    assert nothing == []
    assert decision.window == "2026-11-26T04"


def test_the_window_is_the_start_date_in_the_childs_time_zone() -> None:
    # 23:30 UTC on the 26th is 00:30 on the 27th in Madrid (UTC+1 in November).
    eng = case_study(timezone="Europe/Madrid")
    [decision] = feed(eng, succeeded("listings", A, "r1", "2026-11-26T23:30"),
                      succeeded("searches", B, "r1", "2026-11-27T06:00"))

    assert decision.window == "2026-11-27"


def test_the_same_late_start_is_the_previous_day_for_a_utc_child() -> None:
    eng = case_study()
    decisions = feed(eng, succeeded("listings", A, "r1", "2026-11-26T23:30"),
                     succeeded("searches", B, "r1", "2026-11-27T06:00"))

    assert decisions == []


def test_the_logical_date_of_the_input_wins_over_the_start_date() -> None:
    eng = case_study()
    # A manual rerun for the 25th, started on the 26th, pairs with the 25th's searches run.
    [decision] = feed(eng, succeeded("searches", B, "d25", "2026-11-25T05:00"),
                      succeeded("listings", A, "rerun", "2026-11-26T10:00",
                                logical="2026-11-25"))

    assert decision.window == "2026-11-25"
    assert parents_of(decision) == [arn("listings", A, "rerun"), arn("searches", B, "d25")]


def test_an_hourly_child_takes_the_hour_of_a_logical_hour() -> None:
    eng = case_study(window="hourly")
    [decision] = feed(eng, succeeded("searches", B, "s", "2026-11-26T07:15"),
                      succeeded("listings", A, "l", "2026-11-26T09:00",
                                logical="2026-11-26T07"))

    assert decision.window == "2026-11-26T07"


# -- latest run per window -----------------------------------------------------------------


def test_a_newer_failed_run_hides_an_older_succeeded_run() -> None:
    eng = case_study()
    decisions = feed(eng, succeeded("listings", A, "r1", "2026-11-26T03:00"),
                     event("listings", A, "r2", "FAILED", "2026-11-26T04:00"),
                     succeeded("searches", B))

    assert decisions == []


def test_an_older_run_delivered_late_does_not_replace_the_newer_one() -> None:
    eng = case_study()
    feed(eng, succeeded("listings", A, "r2", "2026-11-26T04:00"))
    # r1 started earlier; its late FAILED must not become listings' latest run.
    feed(eng, event("listings", A, "r1", "FAILED", "2026-11-26T03:00"))
    [decision] = feed(eng, succeeded("searches", B))

    assert parents_of(decision)[0] == arn("listings", A, "r2")


def test_a_newer_run_that_is_running_holds_the_child_back() -> None:
    eng = case_study()
    decisions = feed(eng, succeeded("listings", A, "r1", "2026-11-26T03:00"),
                     event("listings", A, "r2", "RUNNING", "2026-11-26T04:00"),
                     succeeded("searches", B))

    assert decisions == []


# -- conditions --------------------------------------------------------------------------


def three_parents(condition: dict[str, Any], **trigger: Any) -> Engine:
    """p, q, r scheduled in account A; child in A with ``condition``."""
    return engine(*(pipeline(n, A, schedule={"hour": 1}) for n in "pqr"),
                  pipeline("child", A, condition, **trigger))


def test_allof_with_a_nested_anyof_needs_the_first_and_one_of_the_others() -> None:
    cond = {"allOf": [ref("p"), {"anyOf": [ref("q"), ref("r")]}]}
    eng = three_parents(cond)
    assert feed(eng, succeeded("p", A), event("q", A, "r1", "FAILED", "2026-11-26T03:00")) == []
    [decision] = feed(eng, succeeded("r", A))

    assert parents_of(decision) == [arn("p", A, "r1"), arn("r", A, "r1")]


def test_anyof_with_a_nested_allof_is_not_satisfied_by_half_of_the_allof() -> None:
    cond = {"anyOf": [ref("p", None, "FAILED"), {"allOf": [ref("q"), ref("r")]}]}
    eng = three_parents(cond)
    assert feed(eng, succeeded("q", A), succeeded("p", A)) == []
    [decision] = feed(eng, succeeded("r", A))

    assert parents_of(decision) == [arn("q", A, "r1"), arn("r", A, "r1")]


def test_operator_or_holds_when_only_the_anyof_list_holds() -> None:
    cond = {"allOf": [ref("p"), ref("q")], "anyOf": [ref("r")], "operator": "OR"}
    eng = three_parents(cond)
    [decision] = feed(eng, succeeded("r", A))

    assert parents_of(decision) == [arn("r", A, "r1")]


def test_operator_and_needs_both_lists() -> None:
    cond = {"allOf": [ref("p")], "anyOf": [ref("q"), ref("r")]}  # operator defaults to AND
    eng = three_parents(cond)
    assert feed(eng, succeeded("q", A)) == []
    assert len(feed(eng, succeeded("p", A))) == 1


def test_a_status_list_accepts_any_of_its_statuses() -> None:
    eng = three_parents({"anyOf": [ref("p", None, "FAILED", "TIMED_OUT")]})
    assert feed(eng, succeeded("p", A, "r1")) == []
    [decision] = feed(eng, event("p", A, "r2", "TIMED_OUT", "2026-11-26T04:00"))

    assert [p.status for p in decision.parents] == ["TIMED_OUT"]


def test_parents_name_only_runs_of_the_sub_blocks_that_hold() -> None:
    # q SUCCEEDED alone does not satisfy allOf [q, r]: it is not among the parent runs
    # that satisfied the condition (docs/triggers.md rule 6), p's run is.
    cond = {"anyOf": [ref("p"), {"allOf": [ref("q"), ref("r")]}]}
    eng = three_parents(cond)
    [decision] = feed(eng, succeeded("q", A), succeeded("p", A))

    assert parents_of(decision) == [arn("p", A, "r1")]


def test_rerun_on_new_parent_run_ignores_a_run_that_satisfies_no_holding_block() -> None:
    # After the trigger on p, q's success changes nothing the condition rests on:
    # the set of runs that satisfy the condition is still {p}.
    cond = {"anyOf": [ref("p"), {"allOf": [ref("q"), ref("r")]}]}
    eng = three_parents(cond, rerun="on-new-parent-run")
    assert len(feed(eng, succeeded("p", A))) == 1

    assert feed(eng, succeeded("q", A)) == []


def test_a_reference_without_account_means_the_childs_own_account() -> None:
    eng = engine(pipeline("p", A, schedule={"hour": 1}), pipeline("p", B, schedule={"hour": 1}),
                 pipeline("child", B, {"allOf": [ref("p")]}))
    assert feed(eng, succeeded("p", A)) == []  # the other account's p is another pipeline
    [decision] = feed(eng, succeeded("p", B))

    assert (decision.pipeline, decision.account) == ("child", B)
    assert decision.parents[0].account == B


# -- rerun ---------------------------------------------------------------------------------


def test_rerun_never_triggers_once_per_window() -> None:
    eng = case_study()
    first = feed(eng, succeeded("listings", A), succeeded("searches", B))
    again = feed(eng, succeeded("listings", A, "r2", "2026-11-26T11:00"))

    assert len(first) == 1 and again == []


def test_rerun_on_new_parent_run_triggers_again_naming_the_new_run() -> None:
    eng = case_study(rerun="on-new-parent-run")
    [first] = feed(eng, succeeded("listings", A), succeeded("searches", B))
    [second] = feed(eng, succeeded("listings", A, "r2", "2026-11-26T11:00"))

    assert parents_of(second) == [arn("listings", A, "r2"), arn("searches", B, "r1")]
    assert second.window == first.window
    assert second.execution_name != first.execution_name


def test_rerun_on_new_parent_run_does_not_retrigger_on_a_duplicate() -> None:
    eng = case_study(rerun="on-new-parent-run")
    feed(eng, succeeded("listings", A), succeeded("searches", B))

    assert feed(eng, succeeded("searches", B), succeeded("listings", A)) == []


# -- ownership and event shapes ------------------------------------------------------------


def test_an_event_whose_account_does_not_own_the_state_machine_is_rejected() -> None:
    eng = case_study()
    feed(eng, succeeded("searches", B))
    # Sent from account B, naming listings of account A: a spoof.
    spoof = succeeded("listings", B, arn_account=A)
    outcome = eng.handle(spoof)

    assert outcome.decisions == []
    assert outcome.rejected is not None and B in outcome.rejected
    assert eng.store.get_run(arn("listings", A, "r1")) is None  # nothing recorded


def test_an_event_for_a_pipeline_not_registered_in_its_account_is_rejected() -> None:
    eng = case_study()
    feed(eng, succeeded("searches", B))
    outcome = eng.handle(succeeded("listings", B))  # listings lives in A, not B

    assert outcome.decisions == []
    assert outcome.rejected is not None and "listings" in outcome.rejected


def test_an_event_of_another_source_is_skipped_with_a_reason() -> None:
    outcome = case_study().handle({"source": "aws.ec2", "detail-type": "EC2 Instance State",
                                   "account": A, "detail": {}})

    assert isinstance(outcome, Outcome)
    assert outcome.decisions == [] and outcome.skipped
    assert "not a Step Functions status event" in outcome.skipped


def test_a_status_event_without_a_status_is_rejected_as_bad_input_naming_the_field() -> None:
    ev = succeeded("listings", A)
    del ev["detail"]["status"]
    outcome = case_study().handle(ev)

    assert outcome.bad_input and outcome.recorded is None
    assert outcome.rejected is not None and "detail.status" in outcome.rejected


# -- registration ------------------------------------------------------------------------


def test_a_dependency_cycle_across_accounts_is_refused_with_its_path() -> None:
    eng = engine(pipeline("a", A, {"allOf": [ref("c", C)]}),
                 pipeline("b", B, {"allOf": [ref("a", A)]}))
    with pytest.raises(DependencyCycle) as caught:
        eng.register(pipeline("c", C, {"allOf": [ref("b", B)]}))

    # The path follows the data: c feeds a, a feeds b, b feeds c.
    assert caught.value.path == [f"{C}/c", f"{A}/a", f"{B}/b", f"{C}/c"]
    assert f"{C}/c -> {A}/a -> {B}/b -> {C}/c" in str(caught.value)
    assert eng.store.get_pipeline(f"{C}/c") is None


def test_a_pipeline_that_references_itself_is_a_cycle() -> None:
    with pytest.raises(DependencyCycle, match=f"{A}/self -> {A}/self"):
        engine(pipeline("self", A, {"anyOf": [ref("self", None, "FAILED")]}))


# -- decisions -----------------------------------------------------------------------------


def test_execution_names_are_deterministic_across_engines() -> None:
    stream = [succeeded("listings", A), succeeded("searches", B)]
    [one] = feed(case_study(), *stream)
    [two] = feed(case_study(), *reversed(stream))

    assert one.execution_name == two.execution_name


def test_execution_names_differ_per_window_and_per_child() -> None:
    eng = engine(pipeline("p", A, schedule={"hour": 1}),
                 pipeline("c1", A, {"allOf": [ref("p")]}),
                 pipeline("c2", A, {"allOf": [ref("p")]}))
    decisions = feed(eng, succeeded("p", A, "d0", "2026-11-26T01:00"),
                     succeeded("p", A, "d1", "2026-11-27T01:00"))

    assert len(decisions) == 4
    assert len({d.execution_name for d in decisions}) == 4


def test_the_run_input_carries_the_logical_date_and_the_parents() -> None:
    [decision] = feed(case_study(), succeeded("listings", A), succeeded("searches", B))
    dpc = decision.run_input()["dpc"]

    assert dpc["logicalDate"] == "2026-11-26"
    assert [p["executionArn"] for p in dpc["parents"]] == [arn("listings", A, "r1"),
                                                           arn("searches", B, "r1")]
    assert {p["status"] for p in dpc["parents"]} == {"SUCCEEDED"}


def test_the_claim_is_stored_with_the_decisions_name() -> None:
    eng = case_study()
    [decision] = feed(eng, succeeded("listings", A), succeeded("searches", B))
    [claim] = eng.store.claims(f"{C}/pipeline-x")

    assert (claim.window, claim.execution_name) == (decision.window, decision.execution_name)


# -- the parent -> children index ------------------------------------------------------------


class SpyStore(SqliteStore):
    """A SQLite store that remembers which child windows the engine touched."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.touched: list[str] = []

    def update_slot(self, child: str, window: str, parent: str, slot: Slot) -> WindowState:
        self.touched.append(child)
        return super().update_slot(child, window, parent, slot)

    def window_state(self, child: str, window: str) -> WindowState:
        self.touched.append(child)
        return super().window_state(child, window)


def test_only_children_that_reference_the_events_pipeline_are_evaluated() -> None:
    store = SpyStore()
    unrelated = [pipeline(f"other-{i}", B, {"allOf": [ref("q", A)]}) for i in range(20)]
    engine(pipeline("p", A, schedule={"hour": 1}), pipeline("q", A, schedule={"hour": 1}),
           pipeline("child", C, {"allOf": [ref("p", A)]}), *unrelated, store=store)
    store.touched.clear()
    eng = Engine(store)
    feed(eng, succeeded("p", A))

    assert set(store.touched) == {f"{C}/child"}


# -- rule 7: an event speaks only for its own state machine's runs ---------------------------


FORGED_ARNS = {
    "another_account": arn("listings", A, "sched-d0"),
    "another_region": f"arn:aws:states:us-east-1:{B}:execution:searches:sched-d0",
    "another_state_machine": arn("other-machine", B, "sched-d0"),
}


@pytest.mark.parametrize("forged", FORGED_ARNS.values(), ids=list(FORGED_ARNS))
def test_an_execution_arn_not_of_the_events_state_machine_is_rejected_before_recording(
        forged: str) -> None:
    eng = case_study()
    ev = event("searches", B, "sched-d0", "ABORTED", "2026-11-26T02:00", redrive=1000)
    ev["detail"]["executionArn"] = forged
    outcome = eng.handle(ev)

    assert outcome.rejected is not None and outcome.spoofed
    assert "not an execution of" in outcome.rejected
    assert outcome.recorded is None and eng.store.get_run(forged) is None


def test_a_forged_event_cannot_make_another_accounts_real_run_look_stale() -> None:
    # Scenario 11: B's event for its own state machine carries L's executionArn and
    # redriveCount 1000; L's real events must still count.
    eng = case_study()
    forged = event("searches", B, "sched-d0", "ABORTED", "2026-11-26T02:00", redrive=1000)
    forged["detail"]["executionArn"] = arn("listings", A, "sched-d0")
    decisions = feed(eng, forged,
                     event("listings", A, "sched-d0", "RUNNING", "2026-11-26T03:00"),
                     event("listings", A, "sched-d0", "SUCCEEDED", "2026-11-26T03:00"),
                     succeeded("searches", B, "sched-d0", "2026-11-26T05:00"))

    assert [parents_of(d) for d in decisions] == [
        [arn("listings", A, "sched-d0"), arn("searches", B, "sched-d0")]]


# -- one window per run ----------------------------------------------------------------------


def test_an_event_without_input_belongs_to_the_window_the_run_was_placed_in() -> None:
    # A rerun for D started on D+1; AWS leaves the input out of its SUCCEEDED event.
    eng = case_study()
    no_input = succeeded("listings", A, "rerun", "2026-11-27T09:00")
    del no_input["detail"]["input"]
    decisions = feed(eng,
                     event("listings", A, "rerun", "RUNNING", "2026-11-27T09:00",
                           logical="2026-11-26"),
                     no_input,
                     succeeded("searches", B, "d", "2026-11-26T05:00"))

    assert [(d.window, parents_of(d)) for d in decisions] == [
        ("2026-11-26", [arn("listings", A, "rerun"), arn("searches", B, "d")])]
    assert eng.store.window_state(f"{C}/pipeline-x", "2026-11-27") == WindowState()


def _without_input(ev: dict[str, Any]) -> dict[str, Any]:
    del ev["detail"]["input"]
    return ev


def test_a_run_placed_by_its_start_moves_to_its_logical_date_leaving_nothing_behind() -> None:
    # Scenario 12, with a child that waits on listings ABORTED and searches SUCCEEDED.
    eng = engine(
        pipeline("listings", A, schedule={"hour": 3}),
        pipeline("searches", B, schedule={"hour": 5}),
        pipeline("pipeline-x", C, {"allOf": [ref("listings", A), ref("searches", B)]}),
        pipeline("after-abort", C, {"allOf": [ref("listings", A, "ABORTED"),
                                              ref("searches", B)]}),
    )
    d = feed(eng,
             _without_input(event("listings", A, "backfill", "RUNNING", "2026-11-28T09:00")),
             _without_input(event("listings", A, "backfill", "ABORTED", "2026-11-28T09:00")),
             event("listings", A, "backfill", "RUNNING", "2026-11-28T09:00", redrive=1,
                   logical="2026-11-26"),
             event("listings", A, "backfill", "SUCCEEDED", "2026-11-28T09:00", redrive=1,
                   logical="2026-11-26"),
             succeeded("searches", B, "d0", "2026-11-26T05:00"),
             succeeded("searches", B, "d2", "2026-11-28T05:00"))

    assert [(x.pipeline, x.window) for x in d] == [("pipeline-x", "2026-11-26")]
    for child in ("pipeline-x", "after-abort"):
        left = eng.store.window_state(f"{C}/{child}", "2026-11-28").slots
        assert f"{A}/listings" not in left


def test_a_run_that_moves_away_gives_its_old_window_back_to_the_previous_run() -> None:
    eng = case_study()
    decisions = feed(
        eng,
        succeeded("listings", A, "daily", "2026-11-28T03:00"),
        _without_input(event("listings", A, "backfill", "ABORTED", "2026-11-28T09:00")),
        succeeded("searches", B, "d2", "2026-11-28T05:00"),  # not yet: backfill is latest
        event("listings", A, "backfill", "RUNNING", "2026-11-28T09:00", redrive=1,
              logical="2026-11-26"),
    )
    # The move hands 2026-11-28 back to the daily run, which now completes the window.
    assert [(d.window, parents_of(d)) for d in decisions] == [
        ("2026-11-28", [arn("listings", A, "daily"), arn("searches", B, "d2")])]


def test_the_first_logical_date_of_a_run_sticks() -> None:
    eng = case_study()
    decisions = feed(eng,
                     event("listings", A, "r", "RUNNING", "2026-11-27T09:00",
                           logical="2026-11-26"),
                     succeeded("listings", A, "r", "2026-11-27T09:00", logical="2026-11-20"),
                     succeeded("searches", B, "d", "2026-11-26T05:00"))

    assert [d.window for d in decisions] == ["2026-11-26"]


# -- rule 8: bad fields are bad input, never an exception -----------------------------------


def _with(**detail: Any) -> dict[str, Any]:
    ev = succeeded("listings", A)
    ev["detail"].update(detail)
    return ev


BAD_FIELDS = {
    "start_in_year_10000": {"startDate": 253_402_300_800_000},
    "start_negative": {"startDate": -1},
    "start_true": {"startDate": True},
    "start_float": {"startDate": 1.5e12},
    "start_string": {"startDate": "1795662000000"},
    "stop_in_year_10000": {"stopDate": 10**17},
    "redrive_above_2_63": {"redriveCount": 2**63 + 1},
    "redrive_true": {"redriveCount": True},
    "status_outside_the_five": {"status": "SUCCESS"},
    "status_not_a_string": {"status": ["SUCCEEDED"]},
    "execution_arn_malformed": {"executionArn": "arn:aws:states:::"},
    "execution_arn_with_newline": {"executionArn": arn("listings", A, "a\nb")},
    "execution_arn_lone_surrogate": {"executionArn": arn("listings", A, "a\ud800")},
    "state_machine_arn_too_long": {"stateMachineArn": "arn:aws:states:eu-west-1:"
                                                      f"{A}:stateMachine:{'x' * 300}"},
    "input_not_a_string": {"input": {"dpc": {"logicalDate": "2026-11-26"}}},
    "input_nested_10000_deep": {"input": '{"dpc": 1, "x": ' + "[" * 10_000 + "]" * 10_000
                                + "}"},
    "logical_date_garbage": {"input": '{"dpc": {"logicalDate": "garbage"}}'},
    "logical_date_compact": {"input": '{"dpc": {"logicalDate": "20261126"}}'},
    "logical_date_object": {"input": '{"dpc": {"logicalDate": {"a": 1}}}'},
    "logical_date_shell": {"input": '{"dpc": {"logicalDate": "$(id)>x;#"}}'},
    "logical_date_february_30": {"input": '{"dpc": {"logicalDate": "2026-02-30"}}'},
    "logical_hour_24": {"input": '{"dpc": {"logicalDate": "2026-11-26T24"}}'},
    "logical_date_with_time": {"input": '{"dpc": {"logicalDate": "2026-11-26T07:00:00Z"}}'},
    "logical_date_arabic_digits": {"input": '{"dpc": {"logicalDate": '
                                            '"\u0662\u0660\u0662\u0666-11-26"}}'},
    "arn_account_arabic_digits": {
        "executionArn": "arn:aws:states:eu-west-1:\u0661" + "1" * 11 + ":execution:listings:r",
        "stateMachineArn": "arn:aws:states:eu-west-1:\u0661" + "1" * 11
                           + ":stateMachine:listings"},
}


@pytest.mark.parametrize("fields", BAD_FIELDS.values(), ids=list(BAD_FIELDS))
def test_an_event_with_a_bad_field_is_rejected_as_bad_input_and_the_next_is_processed(
        fields: dict[str, Any]) -> None:
    eng = case_study()
    outcome = eng.handle(_with(**fields))

    assert outcome.bad_input and outcome.rejected and outcome.decisions == []
    assert outcome.recorded is None
    assert eng.store.get_run(arn("listings", A, "r1")) is None
    # The engine goes on as usual.
    assert len(feed(eng, succeeded("listings", A), succeeded("searches", B))) == 1


@pytest.mark.parametrize("value", [None, 0, -1.5, "event", True, [], [{"source": "aws.states"}],
                                   {"source": ["aws.states"], "detail-type": {}}])
def test_a_json_value_that_is_not_an_event_is_skipped(value: Any) -> None:
    outcome = case_study().handle(value)
    assert outcome.skipped and outcome.decisions == []


def test_a_deeply_nested_event_does_not_raise() -> None:
    deep: Any = "x"
    for _ in range(100_000):
        deep = [deep]
    for ev in ({"source": deep, "detail-type": deep}, _with(executionArn=deep),
               {**succeeded("listings", A), "detail": deep}):
        outcome = case_study().handle(ev)
        assert outcome.decisions == [] and (outcome.skipped or outcome.rejected)


def test_an_event_adapter_that_raises_makes_the_event_bad_input() -> None:
    def broken(raw: Any) -> Any:
        raise KeyError("detail")

    eng = Engine(SqliteStore(":memory:"), adapters=[("dpc.custom", "Run Status", broken)])
    outcome = eng.handle({"source": "dpc.custom", "detail-type": "Run Status"})
    assert outcome.bad_input and outcome.rejected and "KeyError" in outcome.rejected


def _nested(levels: int) -> dict[str, Any]:
    block: dict[str, Any] = {"allOf": [ref("listings", A)]}
    for _ in range(levels - 1):
        block = {"anyOf": [block]}
    return block


def test_a_condition_nested_32_levels_deep_is_accepted() -> None:
    eng = engine(pipeline("listings", A, schedule={"hour": 3}))
    eng.register(PipelineSpec(C, "deep", condition=_nested(32), parents=(f"{A}/listings",)))
    assert len(feed(eng, succeeded("listings", A))) == 1


def test_a_condition_nested_deeper_than_32_levels_is_refused_at_registration() -> None:
    eng = engine(pipeline("listings", A, schedule={"hour": 3}))
    spec = PipelineSpec(C, "deep", condition=_nested(33), parents=(f"{A}/listings",))
    with pytest.raises(ConditionTooDeep):
        eng.register(spec)
    with pytest.raises(ConditionTooDeep):
        eng.register_many([spec])


def test_a_stored_condition_too_deep_to_use_skips_that_child_and_no_other() -> None:
    # Written to the store behind the engine's back (another registration path).
    eng = case_study()
    eng.store.put_pipeline(PipelineSpec(C, "deep", condition=_nested(40),
                                        parents=(f"{A}/listings",)))
    outcome = eng.handle(succeeded("searches", B))
    outcome = eng.handle(succeeded("listings", A))

    assert [d.pipeline for d in outcome.decisions] == ["pipeline-x"]
    assert any(f"{C}/deep" in p for p in outcome.problems)


# -- hourly windows across DST -----------------------------------------------------------------


def test_the_repeated_hour_when_clocks_go_back_is_two_windows() -> None:
    # New York, 2026-11-01: 01:00-01:59 EDT (05:xx UTC), then 01:00-01:59 EST (06:xx UTC).
    eng = case_study(window="hourly", timezone="America/New_York")
    decisions = feed(eng,
                     succeeded("listings", A, "l1", "2026-11-01T05:10"),
                     succeeded("searches", B, "s1", "2026-11-01T05:20"),
                     succeeded("listings", A, "l2", "2026-11-01T06:10"),
                     succeeded("searches", B, "s2", "2026-11-01T06:20"))

    assert [(d.window, parents_of(d)) for d in decisions] == [
        ("2026-11-01T01-04:00", [arn("listings", A, "l1"), arn("searches", B, "s1")]),
        ("2026-11-01T01-05:00", [arn("listings", A, "l2"), arn("searches", B, "s2")]),
    ]
    assert len({d.execution_name for d in decisions}) == 2


def test_the_skipped_spring_hour_is_no_window() -> None:
    # New York, 2026-03-08: 01:59 EST is followed by 03:00 EDT.
    day = ms("2026-03-08T00:00")
    hours = {window_of(day + minute * 60_000, None, "hourly", "America/New_York")
             for minute in range(24 * 60)}
    assert "2026-03-08T02" not in hours and "2026-03-08T03" in hours
    assert not any(len(h) > 13 for h in hours)


@pytest.mark.parametrize(("logical", "window"), [
    ("2026-11-01T01", "2026-11-01T01-04:00"),  # no offset: the first of the two
    ("2026-11-01T01-04:00", "2026-11-01T01-04:00"),
    ("2026-11-01T01-05:00", "2026-11-01T01-05:00"),
    ("2026-11-01T03", "2026-11-01T03"),
    ("2026-03-08T02", "2026-03-08T03"),  # the skipped hour is the hour after it
    ("2026-11-01", "2026-11-01T00"),
])
def test_a_logical_hour_names_its_window_in_the_childs_time_zone(logical: str,
                                                                  window: str) -> None:
    assert window_of(0, logical, "hourly", "America/New_York") == window


def test_a_child_run_in_a_repeated_hour_carries_a_logical_date_its_children_accept() -> None:
    eng = case_study(window="hourly", timezone="America/New_York")
    (decision,) = feed(eng, succeeded("listings", A, "l2", "2026-11-01T06:10"),
                       succeeded("searches", B, "s2", "2026-11-01T06:20"))
    child_run = event("pipeline-x", C, decision.execution_name, "SUCCEEDED",
                      "2026-11-01T06:30", logical=decision.run_input()["dpc"]["logicalDate"])
    outcome = eng.handle(child_run)
    assert not outcome.rejected and outcome.recorded is Recorded.NEW


@pytest.mark.parametrize("tz", ["America/New_York", "Europe/Madrid", "Australia/Lord_Howe",
                                "Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham"])
@pytest.mark.parametrize("window", ["daily", "hourly"])
def test_the_window_of_a_start_is_the_same_for_every_minute_of_its_quarter_hour(
        tz: str, window: str) -> None:
    # window_of caches per quarter hour of UTC; check it against the uncached computation
    # on every minute of the days clocks change in 2026 (both hemispheres).
    from dpc_core.engine import _start_window_at

    for day in ("2026-03-08T00:00", "2026-03-29T00:00", "2026-04-05T00:00",
                "2026-09-27T00:00", "2026-10-04T00:00", "2026-10-25T00:00",
                "2026-11-01T00:00"):
        first = ms(day) - 14 * 3_600_000
        for minute in range(0, 52 * 60, 7):
            start = first + minute * 60_000 + 59_999
            assert window_of(start, None, window, tz) == _start_window_at(
                start / 1000, window == "daily", tz), (tz, window, start)


# -- paused children -------------------------------------------------------------------


def paused_case_study(**trigger: Any) -> tuple[Engine, set[str]]:
    """The case study with a set of paused keys the engine consults."""
    paused: set[str] = set()
    eng = case_study(**trigger)
    eng.paused = paused.__contains__
    return eng, paused


X = f"{C}/pipeline-x"


def test_a_paused_child_holds_its_trigger_and_releases_it_once_on_resume() -> None:
    eng, paused = paused_case_study()
    paused.add(X)
    eng.handle(succeeded("listings", A, "l1"))
    out = eng.handle(succeeded("searches", B, "s1", "2026-11-26T05:00"))
    assert out.decisions == []
    assert [(h.pipeline, h.window) for h in out.held] == [(X, "2026-11-26")]
    # Held, not lost: the window's slots keep both parent runs.
    paused.discard(X)
    (decision,) = eng.release(X, [(h.window, h.downstream) for h in out.held])
    assert decision.window == "2026-11-26"
    assert parents_of(decision) == [arn("listings", A, "l1"), arn("searches", B, "s1")]
    # Released once: a second release (or a duplicate event) triggers nothing more.
    assert eng.release(X, [("2026-11-26", False)]) == []
    assert feed(eng, succeeded("searches", B, "s1", "2026-11-26T05:00")) == []


def test_a_release_follows_rerun_never_for_a_window_already_triggered() -> None:
    eng, paused = paused_case_study()
    feed(eng, succeeded("listings", A, "l1"), succeeded("searches", B, "s1", "2026-11-26T05:00"))
    paused.add(X)
    out = eng.handle(succeeded("listings", A, "l2", "2026-11-26T09:00"))
    assert out.decisions == [] and out.held == []  # never: nothing to hold
    paused.discard(X)
    assert eng.release(X, [("2026-11-26", False)]) == []


def test_a_release_follows_on_new_parent_run_with_the_latest_runs() -> None:
    eng, paused = paused_case_study(rerun="on-new-parent-run")
    feed(eng, succeeded("listings", A, "l1"), succeeded("searches", B, "s1", "2026-11-26T05:00"))
    paused.add(X)
    held = [*eng.handle(succeeded("listings", A, "l2", "2026-11-26T09:00")).held,
            *eng.handle(succeeded("listings", A, "l3", "2026-11-26T10:00")).held]
    assert len(held) == 2  # two new parent runs while paused
    paused.discard(X)
    # One run on resume, for the window's latest parent runs (not one per held event).
    (decision,) = eng.release(X, [(h.window, h.downstream) for h in held])
    assert parents_of(decision) == [arn("listings", A, "l3"), arn("searches", B, "s1")]


def test_a_release_while_still_paused_holds_again() -> None:
    eng, paused = paused_case_study()
    paused.add(X)
    feed(eng, succeeded("listings", A, "l1"), succeeded("searches", B, "s1", "2026-11-26T05:00"))
    assert eng.release(X, [("2026-11-26", False)]) == []
    paused.discard(X)
    assert len(eng.release(X, [("2026-11-26", False)])) == 1
