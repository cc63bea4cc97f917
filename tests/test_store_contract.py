"""The contract of a trigger store: every adapter (SQLite, DynamoDB under moto) passes
the same tests, and the engine decides the case study identically on each."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dpc_core.store import (
    Claim,
    PipelineSpec,
    Recorded,
    RunRecord,
    Slot,
    TriggerStore,
    WindowState,
)

CASE_STUDY = Path(__file__).resolve().parents[1] / "examples" / "seed"
SCENARIOS = sorted(p.name.removesuffix(".jsonl") for p in (CASE_STUDY / "events").glob("*.jsonl"))

A, B, C = "111111111111", "222222222222", "333333333333"
ARN = "arn:aws:states:eu-west-1:111111111111:execution:listings:"


@pytest.fixture(scope="module")
def dynamodb_client() -> Iterator[object]:
    """One moto DynamoDB for the module (each test gets its own tables in it)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("dynamodb", region_name="eu-west-1")


@pytest.fixture(params=["sqlite", "sqlite-exclusive", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TriggerStore]:
    """A fresh, empty store of each kind (SQLite also in its exclusive, write-behind mode,
    which `dpc simulate` and the local runtime use)."""
    if request.param.startswith("sqlite"):
        from dpc_core.stores.sqlite import SqliteStore

        sqlite_store = SqliteStore(tmp_path / "dpc.db",
                                   exclusive=request.param == "sqlite-exclusive")
        yield sqlite_store
        sqlite_store.close()
    else:
        from dpc_core.stores.dynamodb import DynamoStore, create_tables

        client = request.getfixturevalue("dynamodb_client")
        yield DynamoStore(client, create_tables(client, f"t{uuid.uuid4().hex[:12]}-"))


def spec(account: str, name: str, *parents: str, rerun: str = "never") -> PipelineSpec:
    """A pipeline whose condition is allOf SUCCEEDED over ``parents`` (``account/name``)."""
    cond = None
    if parents:
        cond = {"allOf": [{"name": p.split("/")[1], "account": p.split("/")[0],
                           "status": ["SUCCEEDED"]} for p in parents]}
    return PipelineSpec(account=account, name=name, condition=cond, rerun=rerun,
                        parents=tuple(parents), info={"owner": "team"})


def run(name: str, status: str, rc: int = 0, start: int = 1_000, **kw: object) -> RunRecord:
    return RunRecord(arn=ARN + name, pipeline=f"{A}/listings", status=status,
                     redrive_count=rc, start_ms=start, **kw)  # type: ignore[arg-type]


# -- registry ---------------------------------------------------------------------------

def test_a_registered_pipeline_reads_back_equal(store: TriggerStore) -> None:
    s = spec(C, "x", f"{A}/listings", f"{B}/searches")
    store.put_pipeline(s)
    assert store.get_pipeline(f"{C}/x") == s


def test_an_unknown_pipeline_reads_as_none(store: TriggerStore) -> None:
    assert store.get_pipeline(f"{C}/nope") is None
    assert store.lookup(f"{C}/nope") is None


def test_lookup_returns_the_pipeline_and_the_children_that_reference_it(
        store: TriggerStore) -> None:
    parent = spec(A, "listings")
    x = spec(C, "x", f"{A}/listings", f"{B}/searches")
    y = spec(B, "y", f"{A}/listings")
    other = spec(C, "z", f"{B}/searches")
    for s in (parent, x, y, other):
        store.put_pipeline(s)
    assert store.lookup(f"{A}/listings") == (parent, [y, x])  # children by key


def test_lookup_of_an_unregistered_parent_is_none_even_with_children(
        store: TriggerStore) -> None:
    store.put_pipeline(spec(C, "x", f"{A}/listings"))
    assert store.lookup(f"{A}/listings") is None


def test_replacing_a_child_moves_its_edges_and_refreshes_its_spec(store: TriggerStore) -> None:
    store.put_pipeline(spec(A, "listings"))
    store.put_pipeline(spec(B, "searches"))
    store.put_pipeline(spec(C, "x", f"{A}/listings"))
    replaced = spec(C, "x", f"{B}/searches", rerun="on-new-parent-run")
    store.put_pipeline(replaced)
    assert store.lookup(f"{A}/listings") == (spec(A, "listings"), [])
    assert store.lookup(f"{B}/searches") == (spec(B, "searches"), [replaced])


def test_deleting_a_child_removes_it_from_its_parents_lookup(store: TriggerStore) -> None:
    store.put_pipeline(spec(A, "listings"))
    store.put_pipeline(spec(C, "x", f"{A}/listings"))
    assert store.delete_pipeline(C, "x") is True
    assert store.get_pipeline(f"{C}/x") is None
    assert store.lookup(f"{A}/listings") == (spec(A, "listings"), [])


def test_deleting_an_unknown_pipeline_reports_false(store: TriggerStore) -> None:
    assert store.delete_pipeline(C, "nope") is False


def test_pipelines_lists_every_registered_pipeline_by_key(store: TriggerStore) -> None:
    specs = [spec(C, "x", f"{A}/listings"), spec(A, "listings"), spec(B, "searches")]
    for s in specs:
        store.put_pipeline(s)
    assert list(store.pipelines()) == sorted(specs, key=lambda s: s.key)


# -- run log ----------------------------------------------------------------------------

def test_a_first_status_is_new_and_reads_back(store: TriggerStore) -> None:
    r = run("r1", "RUNNING", logical="2026-11-26")
    assert store.record_run(r) is Recorded.NEW
    assert store.get_run(r.arn) == r


def test_the_same_status_again_is_a_duplicate(store: TriggerStore) -> None:
    store.record_run(run("r1", "RUNNING"))
    assert store.record_run(run("r1", "RUNNING")) is Recorded.DUPLICATE


def test_a_terminal_status_advances_a_running_run(store: TriggerStore) -> None:
    store.record_run(run("r1", "RUNNING", logical="2026-11-26"))
    done = run("r1", "FAILED", stop_ms=2_000, error="States.TaskFailed")
    assert store.record_run(done) is Recorded.NEW
    got = store.get_run(done.arn)
    assert got is not None
    assert (got.status, got.stop_ms, got.error) == ("FAILED", 2_000, "States.TaskFailed")
    assert got.logical == "2026-11-26"  # the first logical date sticks


def test_running_after_succeeded_is_stale(store: TriggerStore) -> None:
    store.record_run(run("r1", "SUCCEEDED", stop_ms=2_000))
    assert store.record_run(run("r1", "RUNNING")) is Recorded.STALE
    got = store.get_run(ARN + "r1")
    assert got is not None and got.status == "SUCCEEDED"


def test_another_terminal_status_of_the_same_redrive_is_stale(store: TriggerStore) -> None:
    store.record_run(run("r1", "FAILED"))
    assert store.record_run(run("r1", "SUCCEEDED")) is Recorded.STALE


def test_a_redrive_advances_a_failed_run(store: TriggerStore) -> None:
    store.record_run(run("r1", "FAILED", stop_ms=2_000, error="boom"))
    assert store.record_run(run("r1", "RUNNING", rc=1)) is Recorded.NEW
    got = store.get_run(ARN + "r1")
    assert got is not None
    assert (got.status, got.redrive_count, got.stop_ms, got.error) == ("RUNNING", 1, None, None)


def test_a_status_of_a_lower_redrive_count_is_stale(store: TriggerStore) -> None:
    store.record_run(run("r1", "RUNNING", rc=1))
    assert store.record_run(run("r1", "FAILED", rc=0)) is Recorded.STALE
    assert store.record_run(run("r1", "RUNNING", rc=0)) is Recorded.STALE


def test_runs_of_lists_a_pipelines_runs_from_a_start_oldest_first(store: TriggerStore) -> None:
    for name, start in (("c", 3_000), ("a", 1_000), ("b", 2_000)):
        store.record_run(run(name, "RUNNING", start=start))
    store.record_run(RunRecord(arn="arn:other", pipeline=f"{B}/searches", status="RUNNING",
                               redrive_count=0, start_ms=2_500))
    assert [r.arn for r in store.runs_of(f"{A}/listings")] == [ARN + "a", ARN + "b", ARN + "c"]
    assert [r.arn for r in store.runs_of(f"{A}/listings", since_ms=2_000)] == [
        ARN + "b", ARN + "c"]


def was(prior: RunRecord | None) -> tuple[str, int, int, str | None] | None:
    """What the engine reads of the run as it was: status, redrive count, start, logical."""
    return None if prior is None else (prior.status, prior.redrive_count, prior.start_ms,
                                       prior.logical)


def test_record_returns_nothing_before_a_first_status(store: TriggerStore) -> None:
    assert store.record(run("r1", "RUNNING", start=1_000)) == (Recorded.NEW, None)


def test_record_returns_the_run_as_it_was_before(store: TriggerStore) -> None:
    store.record(run("r1", "RUNNING", start=1_000))
    recorded, prior = store.record(run("r1", "FAILED", start=1_000, logical="2026-11-26"))
    assert (recorded, was(prior)) == (Recorded.NEW, ("RUNNING", 0, 1_000, None))
    recorded, prior = store.record(run("r1", "FAILED", start=1_000))
    assert (recorded, was(prior)) == (Recorded.DUPLICATE, ("FAILED", 0, 1_000, "2026-11-26"))
    recorded, prior = store.record(run("r1", "RUNNING", start=1_000))
    assert (recorded, was(prior)) == (Recorded.STALE, ("FAILED", 0, 1_000, "2026-11-26"))
    assert prior is not None and prior.arn == ARN + "r1"


def test_the_first_start_and_logical_date_of_a_run_stick(store: TriggerStore) -> None:
    store.record(run("r1", "RUNNING", start=1_000))
    store.record(run("r1", "FAILED", start=1_000, logical="2026-11-26"))
    # A later status claiming another start and logical date changes neither.
    recorded, prior = store.record(run("r1", "RUNNING", rc=1, start=9_000,
                                       logical="2026-11-20"))
    assert recorded is Recorded.NEW and was(prior) == ("FAILED", 0, 1_000, "2026-11-26")
    got = store.get_run(ARN + "r1")
    assert got is not None and (got.start_ms, got.logical) == (1_000, "2026-11-26")
    assert was(store.record(run("r1", "SUCCEEDED", rc=1))[1]) == ("RUNNING", 1, 1_000,
                                                                  "2026-11-26")


# -- windows ----------------------------------------------------------------------------

CHILD, WIN, P1, P2 = f"{C}/x", "2026-11-26", f"{A}/listings", f"{B}/searches"


def test_an_untouched_window_is_empty(store: TriggerStore) -> None:
    assert store.window_state(CHILD, WIN) == WindowState()


def test_a_first_slot_is_stored_and_bumps_the_version(store: TriggerStore) -> None:
    s = Slot(ARN + "r1", 1_000, "RUNNING", 0)
    state = store.update_slot(CHILD, WIN, P1, s)
    assert state == WindowState({P1: s}, version=1, generation=0)
    assert store.window_state(CHILD, WIN) == state


def test_slots_of_different_parents_live_side_by_side(store: TriggerStore) -> None:
    s1, s2 = Slot(ARN + "r1", 1_000, "SUCCEEDED", 0), Slot("arn:s", 5, "RUNNING", 0)
    store.update_slot(CHILD, WIN, P1, s1)
    assert store.update_slot(CHILD, WIN, P2, s2) == WindowState({P1: s1, P2: s2}, 2, 0)


def test_a_later_started_run_takes_the_slot(store: TriggerStore) -> None:
    store.update_slot(CHILD, WIN, P1, Slot(ARN + "r1", 1_000, "SUCCEEDED", 0))
    later = Slot(ARN + "r2", 2_000, "RUNNING", 0)
    assert store.update_slot(CHILD, WIN, P1, later).slots[P1] == later


def test_the_same_run_moving_on_advances_its_slot(store: TriggerStore) -> None:
    store.update_slot(CHILD, WIN, P1, Slot(ARN + "r1", 1_000, "RUNNING", 0))
    done = Slot(ARN + "r1", 1_000, "SUCCEEDED", 0)
    state = store.update_slot(CHILD, WIN, P1, done)
    assert (state.slots[P1], state.version) == (done, 2)


def test_a_redrive_of_the_same_run_keeps_its_place(store: TriggerStore) -> None:
    store.update_slot(CHILD, WIN, P1, Slot(ARN + "r1", 1_000, "FAILED", 0))
    redriven = Slot(ARN + "r1", 1_000, "RUNNING", 1)
    assert store.update_slot(CHILD, WIN, P1, redriven).slots[P1] == redriven


def test_an_older_run_does_not_take_the_slot(store: TriggerStore) -> None:
    later = Slot(ARN + "r2", 2_000, "SUCCEEDED", 0)
    store.update_slot(CHILD, WIN, P1, later)
    state = store.update_slot(CHILD, WIN, P1, Slot(ARN + "r1", 1_000, "SUCCEEDED", 0))
    assert (state.slots[P1], state.version) == (later, 1)


def test_a_stale_status_of_the_slots_run_changes_nothing(store: TriggerStore) -> None:
    done = Slot(ARN + "r1", 1_000, "SUCCEEDED", 0)
    store.update_slot(CHILD, WIN, P1, done)
    state = store.update_slot(CHILD, WIN, P1, Slot(ARN + "r1", 1_000, "RUNNING", 0))
    assert (state.slots[P1], state.version) == (done, 1)


def test_equal_start_times_are_ordered_by_arn(store: TriggerStore) -> None:
    store.update_slot(CHILD, WIN, P1, Slot(ARN + "b", 1_000, "SUCCEEDED", 0))
    state = store.update_slot(CHILD, WIN, P1, Slot(ARN + "a", 1_000, "SUCCEEDED", 0))
    assert state.slots[P1].arn == ARN + "b"


def test_replace_slot_removes_the_slot_of_the_run_named(store: TriggerStore) -> None:
    other = Slot("arn:s", 5, "SUCCEEDED", 0)
    store.update_slot(CHILD, WIN, P2, other)
    store.update_slot(CHILD, WIN, P1, Slot(ARN + "r2", 2_000, "ABORTED", 0))
    state = store.replace_slot(CHILD, WIN, P1, ARN + "r2", None)
    assert state == WindowState({P2: other}, version=3, generation=0)
    assert store.window_state(CHILD, WIN) == state


def test_replace_slot_gives_the_slot_to_another_run(store: TriggerStore) -> None:
    store.update_slot(CHILD, WIN, P1, Slot(ARN + "r2", 2_000, "ABORTED", 0))
    back = Slot(ARN + "r1", 1_000, "SUCCEEDED", 0)
    state = store.replace_slot(CHILD, WIN, P1, ARN + "r2", back)
    assert (state.slots, state.version) == ({P1: back}, 2)
    assert store.window_state(CHILD, WIN) == state


def test_replace_slot_leaves_a_slot_held_by_another_run_alone(store: TriggerStore) -> None:
    held = Slot(ARN + "r3", 3_000, "RUNNING", 0)
    store.update_slot(CHILD, WIN, P1, held)
    state = store.replace_slot(CHILD, WIN, P1, ARN + "r2", None)
    assert (state.slots, state.version) == ({P1: held}, 1)
    assert store.replace_slot(CHILD, "2026-11-30", P1, ARN + "r2", None) == WindowState()


def test_a_claim_on_a_state_seen_before_a_slot_was_replaced_loses(store: TriggerStore) -> None:
    seen = store.update_slot(CHILD, WIN, P1, Slot(ARN + "r1", 1_000, "SUCCEEDED", 0))
    store.replace_slot(CHILD, WIN, P1, ARN + "r1", None)
    assert store.claim(CHILD, WIN, seen, claim_of(1, ARN + "r1")) is False


# -- claims -----------------------------------------------------------------------------

def claim_of(generation: int, *arns: str, window: str = WIN) -> Claim:
    parents = tuple({"pipeline": "listings", "account": A, "executionArn": a,
                     "status": "SUCCEEDED"} for a in arns)
    return Claim(CHILD, window, generation, f"dpc-{window}-g{generation}", parents)


def test_a_claim_on_the_state_seen_wins_and_records_the_trigger(store: TriggerStore) -> None:
    seen = store.update_slot(CHILD, WIN, P1, Slot(ARN + "r1", 1_000, "SUCCEEDED", 0))
    assert store.claim(CHILD, WIN, seen, claim_of(1, ARN + "r1")) is True
    after = store.window_state(CHILD, WIN)
    assert (after.generation, after.last_runs, after.version) == (1, (ARN + "r1",), 1)
    assert store.claims(CHILD) == [claim_of(1, ARN + "r1")]


def test_a_claim_keeps_the_downstream_flag_of_a_rerun(store: TriggerStore) -> None:
    seen = store.update_slot(CHILD, WIN, P1, Slot(ARN + "r1", 1_000, "SUCCEEDED", 0))
    claim = Claim(CHILD, WIN, 1, "dpc-g1", claim_of(1, ARN + "r1").parents, downstream=True)
    assert store.claim(CHILD, WIN, seen, claim) is True
    assert store.claims(CHILD) == [claim]


def test_a_second_claim_on_the_same_seen_state_loses(store: TriggerStore) -> None:
    seen = store.update_slot(CHILD, WIN, P1, Slot(ARN + "r1", 1_000, "SUCCEEDED", 0))
    assert store.claim(CHILD, WIN, seen, claim_of(1, ARN + "r1")) is True
    assert store.claim(CHILD, WIN, seen, claim_of(1, ARN + "r1")) is False
    assert len(store.claims(CHILD)) == 1


def test_a_claim_on_a_window_that_moved_since_it_was_seen_loses(store: TriggerStore) -> None:
    seen = store.update_slot(CHILD, WIN, P1, Slot(ARN + "r1", 1_000, "SUCCEEDED", 0))
    store.update_slot(CHILD, WIN, P2, Slot("arn:s", 5, "SUCCEEDED", 0))
    assert store.claim(CHILD, WIN, seen, claim_of(1, ARN + "r1")) is False
    assert store.window_state(CHILD, WIN).generation == 0
    assert store.claims() == []


def test_a_claim_on_a_window_never_written_loses(store: TriggerStore) -> None:
    assert store.claim(CHILD, WIN, WindowState(), claim_of(1, ARN + "r1")) is False


def test_a_later_generation_claims_on_top_of_the_first(store: TriggerStore) -> None:
    seen = store.update_slot(CHILD, WIN, P1, Slot(ARN + "r1", 1_000, "SUCCEEDED", 0))
    store.claim(CHILD, WIN, seen, claim_of(1, ARN + "r1"))
    seen = store.update_slot(CHILD, WIN, P1, Slot(ARN + "r2", 2_000, "SUCCEEDED", 0))
    assert seen.generation == 1
    assert store.claim(CHILD, WIN, seen, claim_of(2, ARN + "r2")) is True
    assert [c.generation for c in store.claims(CHILD)] == [1, 2]
    assert store.window_state(CHILD, WIN).last_runs == (ARN + "r2",)


def test_claims_list_oldest_first_and_filter_by_child(store: TriggerStore) -> None:
    other = Claim(f"{B}/y", WIN, 1, "dpc-y", ())
    for child, window, c in ((CHILD, "2026-11-27", claim_of(1, ARN + "r1", window="2026-11-27")),
                             (other.child, WIN, other),
                             (CHILD, WIN, claim_of(1, ARN + "r2"))):
        seen = store.update_slot(child, window, P1, Slot(ARN + "r", 1, "SUCCEEDED", 0))
        assert store.claim(child, window, seen, c)
    assert [(c.child, c.window) for c in store.claims()] == [
        (CHILD, "2026-11-27"), (other.child, WIN), (CHILD, WIN)]
    assert [c.window for c in store.claims(CHILD)] == ["2026-11-27", WIN]


# -- the engine over the case study -----------------------------------------------------

@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_engine_decides_each_case_study_scenario_as_expected(
        store: TriggerStore, scenario: str) -> None:
    from dpc_core.simulate import simulate

    events = CASE_STUDY / "events" / f"{scenario}.jsonl"
    expected = json.loads((CASE_STUDY / "events" / f"{scenario}.expected.json").read_text())
    result = simulate([CASE_STUDY], events, store=store)
    got = [{"pipeline": d.pipeline, "account": d.account, "window": d.window,
            "parents": [p.execution_arn for p in d.parents]} for d in result.decisions]
    want = [{k: e[k] for k in ("pipeline", "account", "window", "parents")} for e in expected]
    assert got == want
    # Exactly the decisions were claimed, once each.
    assert sorted((c.child, c.window, c.execution_name) for c in store.claims()) == sorted(
        (f"{d.account}/{d.pipeline}", d.window, d.execution_name) for d in result.decisions)
