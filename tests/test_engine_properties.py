"""Property-based tests of the trigger engine: delivery accidents do not change decisions.

Random organisations (roots in three accounts; children with 1–4 distinct parents, any of
them cross-account, under nested ``allOf``/``anyOf`` blocks combined by ``AND`` or ``OR``;
daily or hourly windows, UTC or Europe/Madrid; both ``rerun`` policies) are validated by the
real pipeline.yaml model and registered into an :class:`Engine` over an in-memory
:class:`SqliteStore`. Random event streams (status events in the AWS shape, runs of every
pipeline, failures, redrives, manual reruns carrying ``dpc.logicalDate``) are fed to it.

The properties, and why each is stated the way it is
----------------------------------------------------

docs/triggers.md evaluates a reference against the *latest* run of a parent in a window, at the
moment an event arrives, and claims a trigger the first time the condition holds. So the
decisions of some streams legitimately depend on delivery order, and a property only means
something over streams where the contract says order cannot matter:

* References never name ``RUNNING``. Conditions are monotone (no negation), so a run going
  ``RUNNING`` can only make references false; a reference on ``RUNNING`` would let a run's
  start trigger children, making the position of that event matter.

(a) **Duplicates.** Any stream, with copies of any events delivered again anywhere *after*
    their original (a copy before the original is just the original delivered earlier).
    The decisions must be *identical*: same decisions, order, names and parents, for both
    ``rerun`` policies. Rule 1: a status seen again changes nothing.

(b) **Reordering the events of one run.** Only within one ``(run, redriveCount)`` group:
    reordering across redrives changes what happened (scenario 5: the fallback runs because
    ``FAILED`` was seen before the redrive; delivering the redrive's ``SUCCEEDED`` first makes
    ``FAILED`` stale). And only when the group's events are delivered together: if another
    pipeline's event came between this run's ``RUNNING`` and ``SUCCEEDED``, it would be
    evaluated against "parent running" in one order and "parent succeeded" in the other, and
    latest-run semantics rightly give different answers. Under those conditions a stale
    ``RUNNING`` and an early ``RUNNING`` both decide nothing, so decisions must be
    *identical*.

(c) **Interleaving different pipelines' events differently** (each pipeline's own events in
    start order). With several runs of a parent in one window, or a redrive, a reference can
    go true → false (a newer run starts, a ``FAILED`` run is redriven), and which of the
    other parents' events saw it true is the interleaving itself: e.g. P run 2 ``SUCCEEDED``,
    Q run 1 ``SUCCEEDED`` triggers ``allOf [P, Q]`` while Q run 1, Q run 2 ``RUNNING``, P run 2
    does not. So (c) uses streams with one run per pipeline per window and no redrives,
    where every reference only goes false → true, and ``rerun: never`` (how many times
    ``on-new-parent-run`` fires depends on how many distinct events the satisfying runs
    arrived in). Then a child triggers in a window iff its condition holds at the end, once,
    under the same deterministic name: the *set* of ``(pipeline, account, window,
    executionName)`` must be equal. Parents are compared only for children whose condition
    is a pure conjunction: with any ``anyOf`` or ``OR``, which alternatives had already
    succeeded when the condition first held is the interleaving itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from helpers.engine import epoch_ms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpc_core.engine import Engine
from dpc_core.events import make_status_event
from dpc_core.loader import Positions, validate_document
from dpc_core.stores.sqlite import SqliteStore

ACCOUNTS = ("111111111111", "222222222222", "333333333333")
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
DAY0 = datetime(2026, 11, 26, tzinfo=UTC)
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@dataclass(frozen=True)
class Org:
    """Pipeline documents (pipeline.yaml as dicts), parents before children."""

    docs: tuple[dict[str, Any], ...]

    def engine(self) -> Engine:
        """A fresh engine with every pipeline validated and registered."""
        eng = Engine(SqliteStore(":memory:"))
        for doc in self.docs:
            eng.register(validate_document(doc, Positions(), f"<{doc['name']}>"))
        return eng

    def conjunctive(self) -> set[tuple[str, str]]:
        """``(account, name)`` of children whose condition is a pure ``allOf`` tree."""
        def pure(block: dict[str, Any]) -> bool:
            return "anyOf" not in block and block.get("operator", "AND") == "AND" and all(
                pure(i) for i in block["allOf"] if "name" not in i)

        return {(d["account"], d["name"]) for d in self.docs
                if "executions" in d["trigger"] and pure(d["trigger"]["executions"])}


# -- organisations ---------------------------------------------------------------------------


def _ref(draw: st.DrawFn, parent: tuple[str, str], child_account: str) -> dict[str, Any]:
    account, name = parent
    statuses = draw(st.lists(st.sampled_from(TERMINAL), min_size=1, max_size=2, unique=True))
    if "SUCCEEDED" in statuses and draw(st.booleans()):
        statuses = ["SUCCESS" if s == "SUCCEEDED" else s for s in statuses]  # the synonym
    ref: dict[str, Any] = {"name": name, "status": statuses}
    if account != child_account or draw(st.booleans()):
        ref["account"] = account  # omitted only where the default (own account) is meant
    return ref


def _items(draw: st.DrawFn, parents: list[tuple[str, str]], child_account: str,
           depth: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    i = 0
    while i < len(parents):
        rest = len(parents) - i
        if depth < 2 and rest >= 2 and draw(st.booleans()):
            size = draw(st.integers(2, rest))
            items.append(_block(draw, parents[i:i + size], child_account, depth + 1))
            i += size
        else:
            items.append(_ref(draw, parents[i], child_account))
            i += 1
    return items


def _block(draw: st.DrawFn, parents: list[tuple[str, str]], child_account: str,
           depth: int = 0) -> dict[str, Any]:
    """A block that references each of ``parents`` exactly once."""
    kinds = ["allOf", "anyOf"] + (["both"] if len(parents) >= 2 else [])
    kind = draw(st.sampled_from(kinds))
    if kind != "both":
        return {kind: _items(draw, parents, child_account, depth)}
    cut = draw(st.integers(1, len(parents) - 1))
    block: dict[str, Any] = {"allOf": _items(draw, parents[:cut], child_account, depth),
                             "anyOf": _items(draw, parents[cut:], child_account, depth)}
    operator = draw(st.sampled_from(["AND", "OR", None]))
    if operator:
        block["operator"] = operator
    return block


@st.composite
def orgs(draw: st.DrawFn, reruns: tuple[str, ...] = ("never", "on-new-parent-run")) -> Org:
    """1–4 scheduled roots and 1–5 children, each child over 1–4 earlier pipelines."""
    docs: list[dict[str, Any]] = []
    keys: list[tuple[str, str]] = []
    step = [{"name": "work", "type": "shell", "command": "true"}]
    for i in range(draw(st.integers(1, 4))):
        account = draw(st.sampled_from(ACCOUNTS))
        docs.append({"name": f"p{i}", "account": account, "trigger": {"schedule": {"hour": 1}},
                     "steps": step})
        keys.append((account, f"p{i}"))
    for j in range(draw(st.integers(1, 5))):
        account = draw(st.sampled_from(ACCOUNTS))
        size = draw(st.integers(1, min(4, len(keys))))
        parents = draw(st.lists(st.sampled_from(keys), min_size=size, max_size=size,
                                unique=True))
        trigger: dict[str, Any] = {"executions": _block(draw, parents, account)}
        for field, choices in (("window", ("daily", "hourly")),
                               ("timezone", ("UTC", "Europe/Madrid")), ("rerun", reruns)):
            value = draw(st.sampled_from(choices))
            if value != choices[0] or draw(st.booleans()):
                trigger[field] = value
        docs.append({"name": f"c{j}", "account": account, "trigger": trigger, "steps": step})
        keys.append((account, f"c{j}"))
    return Org(tuple(docs))


# -- event streams -----------------------------------------------------------------------------

Event = dict[str, Any]
Group = list[Event]  # the events of one (run, redriveCount), in natural order


def _run_groups(draw: st.DrawFn, account: str, name: str, run: str, start: datetime,
                logical: str | None, redrives: bool) -> list[Group]:
    """RUNNING then a terminal status; maybe a redrive (same ARN, redriveCount 1)."""
    common = {"account": account, "region": "eu-west-1", "pipeline": name, "execution": run,
              "start_ms": epoch_ms(start),
              "input": {"dpc": {"logicalDate": logical}} if logical else None}
    status = draw(st.sampled_from(TERMINAL))
    groups = [[make_status_event(status="RUNNING", **common),
               make_status_event(status=status, stop_ms=epoch_ms(start) + 600_000, **common)]]
    if redrives and status != "SUCCEEDED" and draw(st.booleans()):
        again = draw(st.sampled_from(TERMINAL))
        groups.append([make_status_event(status="RUNNING", redrive_count=1, **common),
                       make_status_event(status=again, redrive_count=1,
                                         stop_ms=epoch_ms(start) + 1_200_000, **common)])
    return groups


def _pipeline_groups(draw: st.DrawFn, org: Org, days: int, *,
                     single_run: bool) -> list[list[Group]]:
    """For each pipeline, its groups in start order.

    ``single_run``: exactly one run per pipeline per day, started 01:00–20:00 UTC (one day
    in Madrid too), no redrive, no manual rerun. Otherwise 1–2 runs a day, redrives, and
    manual reruns for the day before (started later, carrying ``dpc.logicalDate``).
    """
    out: list[list[Group]] = []
    for doc in org.docs:
        runs: list[tuple[datetime, str | None]] = []
        for day in range(days):
            count = 1 if single_run else draw(st.integers(1, 2))
            hours = sorted(draw(st.lists(st.integers(1, 20), min_size=count, max_size=count)))
            for k, hour in enumerate(hours):
                runs.append((DAY0 + timedelta(days=day, hours=hour, minutes=k), None))
            if not single_run and day > 0 and draw(st.integers(0, 4)) == 0:
                logical = (DAY0 + timedelta(days=day - 1)).strftime("%Y-%m-%d")
                runs.append((DAY0 + timedelta(days=day, hours=21), logical))
        runs.sort(key=lambda r: r[0])
        groups: list[Group] = []
        for n, (start, logical) in enumerate(runs):
            groups += _run_groups(draw, doc["account"], doc["name"], f"run-{n}", start, logical,
                                  redrives=not single_run)
        out.append(groups)
    return out


def _interleave(draw: st.DrawFn, queues: list[list[Any]]) -> list[Any]:
    """A random merge that keeps each queue's own order."""
    queues = [list(q) for q in queues if q]
    merged: list[Any] = []
    while queues:
        i = draw(st.integers(0, len(queues) - 1))
        merged.append(queues[i].pop(0))
        if not queues[i]:
            queues.pop(i)
    return merged


def _flat(groups: list[Group]) -> list[Event]:
    return [ev for g in groups for ev in g]


def decide(org: Org, stream: list[Event]) -> list[dict[str, Any]]:
    """Every decision of a fresh engine over ``stream``, as ``dpc simulate`` prints it."""
    eng = org.engine()
    out = []
    for ev in stream:
        outcome = eng.handle(ev)
        assert outcome.rejected is None and outcome.skipped is None
        out.extend(d.to_dict() for d in outcome.decisions)
    return out


# -- (a) duplicates --------------------------------------------------------------------------


@st.composite
def with_duplicates(draw: st.DrawFn) -> tuple[Org, list[Event], list[Event]]:
    """An org, a stream, and the stream with copies delivered after their originals."""
    org = draw(orgs())
    per_pipeline = _pipeline_groups(draw, org, draw(st.integers(1, 2)), single_run=False)
    stream = _interleave(draw, [_flat(g) for g in per_pipeline])
    keyed = [(float(i), ev) for i, ev in enumerate(stream)]
    for _ in range(draw(st.integers(1, 12))):
        i = draw(st.integers(0, len(stream) - 1))
        gap = draw(st.integers(1, len(stream)))
        keyed.append((i + gap - 0.5, stream[i]))  # strictly after the original
    keyed.sort(key=lambda k: k[0])
    return org, stream, [ev for _, ev in keyed]


@SETTINGS
@given(with_duplicates())
def test_duplicated_events_change_no_decision(case: tuple[Org, list[Event], list[Event]]) -> None:
    org, stream, duplicated = case
    assert decide(org, duplicated) == decide(org, stream)


@settings(SETTINGS, max_examples=50)
@given(orgs(), st.data())
def test_the_whole_stream_delivered_twice_decides_nothing_more(org: Org,
                                                               data: st.DataObject) -> None:
    per_pipeline = _pipeline_groups(data.draw, org, 1, single_run=False)
    stream = _interleave(data.draw, [_flat(g) for g in per_pipeline])
    assert decide(org, stream + stream) == decide(org, stream)


# -- (b) reordering the events of one run ------------------------------------------------------


@st.composite
def with_reordered_runs(draw: st.DrawFn) -> tuple[Org, list[Event], list[Event]]:
    """An org, a stream of whole groups, and the same with groups' events reordered."""
    org = draw(orgs())
    per_pipeline = _pipeline_groups(draw, org, draw(st.integers(1, 2)), single_run=False)
    groups = _interleave(draw, per_pipeline)
    reordered = [draw(st.permutations(g)) for g in groups]
    return org, _flat(groups), _flat(reordered)


@SETTINGS
@given(with_reordered_runs())
def test_reordering_the_events_of_one_run_changes_no_decision(
        case: tuple[Org, list[Event], list[Event]]) -> None:
    org, stream, reordered = case
    assert decide(org, reordered) == decide(org, stream)


# -- (c) interleaving pipelines differently ------------------------------------------------------


@st.composite
def two_interleavings(draw: st.DrawFn) -> tuple[Org, list[Event], list[Event]]:
    """An org (``rerun: never``) and two interleavings of one run per pipeline per day."""
    org = draw(orgs(reruns=("never",)))
    per_pipeline = [_flat(g) for g in
                    _pipeline_groups(draw, org, draw(st.integers(1, 2)), single_run=True)]
    return org, _interleave(draw, per_pipeline), _interleave(draw, per_pipeline)


@SETTINGS
@given(two_interleavings())
def test_interleaving_pipelines_differently_triggers_the_same_runs(
        case: tuple[Org, list[Event], list[Event]]) -> None:
    org, one, other = case
    first, second = decide(org, one), decide(org, other)

    def triggers(decisions: list[dict[str, Any]]) -> set[tuple[str, ...]]:
        return {(d["pipeline"], d["account"], d["window"], d["executionName"])
                for d in decisions}

    assert triggers(first) == triggers(second)
    assert len(first) == len(triggers(first))  # rerun: never, so once per window

    def conjunctive(decisions: list[dict[str, Any]]) -> dict[tuple[str, ...], list[str]]:
        keep = org.conjunctive()
        return {(d["pipeline"], d["account"], d["window"]):
                sorted(p["executionArn"] for p in d["parents"])
                for d in decisions if (d["account"], d["pipeline"]) in keep}

    assert conjunctive(first) == conjunctive(second)
