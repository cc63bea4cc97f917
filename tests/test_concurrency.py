"""Eight workers at once decide exactly what one worker in order decides, on both stores.

The delivery model is that of the central account on AWS: status events go through an
SQS FIFO queue whose message group is the state machine ARN, so the events of ONE
pipeline are handled in queue order while different pipelines are handled concurrently.
:class:`FifoPool` is that model in threads.

Which decisions are *deterministic* under such concurrency needs care: when two parents
of an ``anyOf`` child both succeed in a window, the one whose event is handled first is
the one that triggers it, and on AWS either order is correct. The generated organisation
therefore gives each ``anyOf`` block its parents from one "group" of which at most one
parent succeeds per day; ``allOf`` blocks are free (their decision is made by the last
parent to succeed, with every parent's one successful run of the window).
"""

from __future__ import annotations

import functools
import random
import threading
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from dpc_core.engine import Decision, Engine
from dpc_core.events import StatusEvent, make_status_event
from dpc_core.store import PipelineSpec, TriggerStore, pkey

WORKERS = 8
REGION = "eu-west-1"
DAY0_MS = 1_795_651_200_000  # 2026-11-26T00:00Z
DAY_MS = 86_400_000
HOUR_MS = 3_600_000


# -- the worker pool ----------------------------------------------------------------------

class FifoPool:
    """Process ``items`` with ``workers`` threads, like SQS FIFO message groups: an item is
    only taken when no earlier item of its group is still waiting or in flight."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, items: Sequence[Any], group: Callable[[Any], Hashable],
            handle: Callable[[int, Any], None], setup: Callable[[int], Any] = lambda w: None,
            ) -> None:
        """``handle(worker_state, item)`` for every item; ``setup(worker)`` makes the
        per-thread state (e.g. one store connection per thread). Re-raises a worker error."""
        pending: dict[Hashable, deque[Any]] = defaultdict(deque)
        order: deque[Hashable] = deque()  # groups by their oldest waiting item
        for item in items:
            g = group(item)
            if not pending[g]:
                order.append(g)
            pending[g].append(item)
        busy: set[Hashable] = set()
        cond = threading.Condition()
        errors: list[BaseException] = []
        remaining = [len(items)]

        def take() -> tuple[Hashable, Any] | None:
            with cond:
                while True:
                    if errors or remaining[0] == 0:
                        return None
                    for g in order:  # the first free group in queue order
                        if g not in busy:
                            break
                    else:
                        cond.wait()
                        continue
                    order.remove(g)
                    busy.add(g)
                    return g, pending[g].popleft()

        ages = {id(item): i for i, item in enumerate(items)}

        def requeue(g: Hashable) -> None:
            # Keep ``order`` sorted by each group's oldest waiting item (queue order).
            age = ages[id(pending[g][0])]
            for i, other in enumerate(order):
                if ages[id(pending[other][0])] > age:
                    order.insert(i, g)
                    return
            order.append(g)

        def done(g: Hashable) -> None:
            with cond:
                busy.discard(g)
                remaining[0] -= 1
                if pending[g]:
                    requeue(g)
                cond.notify_all()

        def worker(w: int) -> None:
            state = setup(w)
            while (got := take()) is not None:
                g, item = got
                try:
                    handle(state, item)
                except BaseException as exc:
                    with cond:
                        errors.append(exc)
                        cond.notify_all()
                    return
                done(g)

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(self.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]


# -- a generated organisation and stream ---------------------------------------------------

def _ref(parent: str, statuses: tuple[str, ...] = ("SUCCEEDED",)) -> dict[str, Any]:
    account, name = parent.split("/")
    return {"name": name, "account": account, "status": list(statuses)}


def _parents_of(block: dict[str, Any]) -> list[str]:
    out = []
    for it in (block.get("allOf") or []) + (block.get("anyOf") or []):
        if "name" in it:
            out.append(pkey(it["account"], it["name"]))
        else:
            out.extend(_parents_of(it))
    return list(dict.fromkeys(out))


def make_org(rng: random.Random, n_parents: int = 30, n_children: int = 40,
             ) -> tuple[list[PipelineSpec], list[list[str]]]:
    """Parents, then children (allOf / anyOf / nested over 1–3 parents), and the anyOf
    groups (lists of parent keys of which at most one succeeds per day)."""
    accounts = [f"{100000000000 + i * 111111111:012d}" for i in range(6)]
    parents = [PipelineSpec(account=accounts[i % 6], name=f"parent-{i:02d}")
               for i in range(n_parents)]
    keys = [p.key for p in parents]
    free = keys[: n_parents * 2 // 3]
    grouped = keys[len(free):]
    groups: list[list[str]] = []
    i = 0
    while i < len(grouped):
        size = min(rng.choice((2, 3)), len(grouped) - i)
        groups.append(grouped[i:i + size])
        i += size
    specs = list(parents)
    for c in range(n_children):
        kind = rng.choice(("allOf", "allOf", "anyOf", "nested", "fallback"))
        rerun = rng.choice(("never", "never", "on-new-parent-run"))
        if kind == "allOf":
            cond: dict[str, Any] = {"allOf": [_ref(p) for p in
                                              rng.sample(keys, rng.randint(1, 3))]}
        elif kind == "anyOf":
            group = rng.choice(groups)
            cond = {"anyOf": [_ref(p) for p in rng.sample(group, rng.randint(1, len(group)))]}
        elif kind == "nested":
            group = rng.choice(groups)
            cond = {"allOf": [_ref(rng.choice(free)),
                              {"anyOf": [_ref(p) for p in rng.sample(group, 2)]}],
                    "operator": "AND"}
        else:  # a fallback of one parent: runs when it fails
            cond = {"anyOf": [_ref(rng.choice(keys), ("FAILED", "TIMED_OUT"))]}
            rerun = "never"
        specs.append(PipelineSpec(account=accounts[rng.randrange(6)], name=f"child-{c:02d}",
                                  condition=cond, rerun=rerun, parents=tuple(_parents_of(cond))))
    return specs, groups


def _runs_of_a_day(rng: random.Random, fate: str, spec: PipelineSpec, day: int
                   ) -> list[dict[str, Any]]:
    """The status events of one parent on one day, in the order Step Functions sends them."""
    start = DAY0_MS + day * DAY_MS + rng.randrange(20) * HOUR_MS + rng.randrange(3_600) * 1000

    def ev(execution: str, status: str, start_ms: int, stop: int | None = None,
           rc: int = 0) -> dict[str, Any]:
        return make_status_event(account=spec.account, region=REGION, pipeline=spec.name,
                                 execution=execution, status=status, start_ms=start_ms,
                                 stop_ms=stop, redrive_count=rc, event_id=uuid.uuid4().hex)

    r1, r2 = f"d{day}-r1", f"d{day}-r2"
    if fate == "ok":
        return [ev(r1, "RUNNING", start), ev(r1, "SUCCEEDED", start, start + 600_000)]
    if fate == "retry":  # a failed run, then a new run that succeeds
        later = start + HOUR_MS
        return [ev(r1, "RUNNING", start), ev(r1, "FAILED", start, start + 60_000),
                ev(r2, "RUNNING", later), ev(r2, "SUCCEEDED", later, later + 600_000)]
    if fate == "redrive":
        return [ev(r1, "RUNNING", start), ev(r1, "TIMED_OUT", start, start + 60_000),
                ev(r1, "RUNNING", start, None, 1), ev(r1, "SUCCEEDED", start, start + 900_000, 1)]
    if fate == "fail":
        return [ev(r1, "RUNNING", start), ev(r1, "FAILED", start, start + 60_000)]
    return []  # "skip": no run that day


def _merge(rng: random.Random, lists: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """A random interleaving that keeps the order inside each list."""
    queues = [deque(x) for x in lists if x]
    out: list[dict[str, Any]] = []
    while queues:
        q = rng.choice(queues)
        out.append(q.popleft())
        if not q:
            queues.remove(q)
    return out


def make_stream(rng: random.Random, specs: list[PipelineSpec], groups: list[list[str]],
                days: int = 3) -> list[StatusEvent]:
    """Day by day, each parent's runs, pipelines interleaved at random (each pipeline's
    own events in order), every event delivered 2–3 times.

    To make workers race on the same child window, the last status of each parent's day
    comes in a burst at the end of the day, and most copies follow their original
    closely: a redelivered success is then handled at the same time as the success of
    another parent of the same child, and both see the condition hold.
    """
    parents = [s for s in specs if not s.parents]
    grouped = {k for g in groups for k in g}
    merged: list[dict[str, Any]] = []
    for day in range(days):
        fates: dict[str, str] = {}
        for group in groups:  # at most one success per anyOf group and day
            lucky = rng.choice([*group, None])
            for k in group:
                fates[k] = rng.choice(("ok", "retry", "redrive")) if k == lucky else \
                    rng.choice(("fail", "skip"))
        runs = []
        for p in parents:
            fate = fates[p.key] if p.key in grouped else rng.choice(
                ("ok", "ok", "retry", "redrive", "fail", "skip"))
            runs.append(_runs_of_a_day(rng, fate, p, day))
        merged += _merge(rng, [r[:-1] for r in runs])
        merged += _merge(rng, [r[-1:] for r in runs])
    # Copies: mostly within a few places, some far later (after newer events).
    keyed = [(float(i), e) for i, e in enumerate(merged)]
    for i, e in enumerate(merged):
        keyed += [(rng.uniform(i, i + rng.choice((2, 2, 40))), e)
                  for _ in range(rng.choice((1, 2)))]
    stream = [e for _, e in sorted(keyed, key=lambda t: t[0])]
    return [StatusEvent.parse(e) for e in stream]


def decision_key(d: Decision) -> tuple[str, str, str, str, tuple[str, ...]]:
    """What must be equal between the runs: child, window, name and parent runs."""
    return (d.pipeline, d.account, d.window, d.execution_name,
            tuple(sorted(p.execution_arn for p in d.parents)))


Workload = tuple[list[PipelineSpec], list[StatusEvent], Counter[Any]]


@functools.cache
def workload(days: int) -> Workload:
    """The organisation, a stream of ``days`` days, and the decisions of one worker
    handling it in order (on an in-memory SQLite store: the contract suite shows that
    both stores decide alike).

    DynamoDB gets one day (moto spends milliseconds per request, several times that on a
    busy machine); every child window of that day still sees its parents race.
    """
    from dpc_core.stores.sqlite import SqliteStore

    rng = random.Random(20261126)
    specs, groups = make_org(rng)
    stream = make_stream(rng, specs, groups, days)
    engine = Engine(SqliteStore(":memory:"))
    for s in specs:
        engine.register(s)
    expected: Counter[Any] = Counter()
    for ev in stream:
        expected.update(decision_key(d) for d in engine.handle(ev).decisions)
    return specs, stream, expected


SQLITE_DAYS, DYNAMODB_DAYS = 3, 1


def run_concurrently(stream: list[StatusEvent], make_store: Callable[[int], TriggerStore],
                     ) -> tuple[Counter[Any], TriggerStore]:
    """All events through :class:`FifoPool` with 8 workers, one engine per worker."""
    got: Counter[Any] = Counter()
    lock = threading.Lock()

    def handle(engine: Engine, ev: StatusEvent) -> None:
        decisions = engine.handle(ev).decisions
        with lock:
            got.update(decision_key(d) for d in decisions)

    FifoPool(WORKERS).run(stream, group=lambda ev: ev.detail.state_machine_arn,
                          handle=handle, setup=lambda w: Engine(make_store(w)))
    return got, make_store(-1)


def assert_claimed_once_each(store: TriggerStore, decisions: Counter[Any]) -> None:
    claimed = Counter((c.child, c.window, c.generation) for c in store.claims())
    assert all(n == 1 for n in claimed.values())
    assert sum(claimed.values()) == sum(decisions.values())


# -- the tests -----------------------------------------------------------------------------

@pytest.mark.parametrize("days", [SQLITE_DAYS, DYNAMODB_DAYS])
def test_the_stream_is_big_and_redundant_enough_to_race(days: int) -> None:
    _, stream, expected = workload(days)
    unique = {(e.detail.execution_arn, e.detail.status.value, e.detail.redrive_count)
              for e in stream}
    assert len(stream) >= 2 * len(unique) and len(unique) > 50 * days
    # Children triggered (the allOf/anyOf windows that parents race on), per day.
    assert len({(k[0], k[1], k[2]) for k in expected}) > 15 * days


def test_the_pool_keeps_each_groups_queue_order() -> None:
    rng = random.Random(7)
    items = [(rng.randrange(5), i) for i in range(400)]
    seen: dict[int, list[int]] = defaultdict(list)
    active: set[int] = set()
    overlap = [False]
    lock = threading.Lock()

    def handle(_: None, item: tuple[int, int]) -> None:
        with lock:
            assert item[0] not in active  # never two items of a group at once
            active.add(item[0])
            overlap[0] = overlap[0] or len(active) > 1
        threading.Event().wait(0.0005)
        with lock:
            active.discard(item[0])
            seen[item[0]].append(item[1])

    FifoPool(WORKERS).run(items, group=lambda it: it[0], handle=handle)
    for g, indexes in seen.items():
        assert indexes == [i for gg, i in items if gg == g]
    assert overlap[0], "different groups never ran at the same time"


def test_eight_workers_on_one_sqlite_file_decide_as_one_worker_in_order(
        tmp_path: Path) -> None:
    from dpc_core.stores.sqlite import SqliteStore

    specs, stream, expected = workload(SQLITE_DAYS)
    db = tmp_path / "dpc.db"
    setup = Engine(SqliteStore(db))
    for s in specs:
        setup.register(s)
    got, store = run_concurrently(stream, lambda w: SqliteStore(db))  # a connection each
    assert got == expected
    assert_claimed_once_each(store, got)


@pytest.fixture
def atomic_moto() -> Iterator[Any]:
    """moto's in-process DynamoDB, with each request applied atomically.

    Real DynamoDB applies every single-item (conditional) write atomically; moto's
    backend takes no lock, so a condition check and the write after it could interleave
    with another thread's. Serialising moto's request handling restores the guarantee the
    store relies on, and nothing more: the workers' requests still interleave freely.
    """
    import boto3
    from moto import mock_aws
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.process_request
    lock = threading.Lock()

    def process_request(self: Any, request: Any) -> Any:
        with lock:
            return original(self, request)

    with pytest.MonkeyPatch.context() as mp, mock_aws():
        mp.setattr(BotocoreStubber, "process_request", process_request)
        yield boto3.client("dynamodb", region_name=REGION)


def test_eight_workers_on_one_dynamodb_decide_as_one_worker_in_order(
        atomic_moto: Any) -> None:
    from dpc_core.stores.dynamodb import DynamoStore, create_tables

    specs, stream, expected = workload(DYNAMODB_DAYS)
    tables = create_tables(atomic_moto, "conc-")
    setup = Engine(DynamoStore(atomic_moto, tables))
    for s in specs:
        setup.register(s)
    # One store per worker over one shared (thread-safe) boto3 client.
    got, store = run_concurrently(stream, lambda w: DynamoStore(atomic_moto, tables))
    assert got == expected
    assert_claimed_once_each(store, got)


class _Gated:
    """A store whose ``update_slot`` and ``claim`` wait on the test's gates."""

    def __init__(self, store: TriggerStore, before_update: threading.Event | None,
                 after_update: threading.Event | None, before_claim: threading.Barrier) -> None:
        self._store = store
        self._gates = (before_update, after_update, before_claim)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def update_slot(self, *args: Any) -> Any:
        before, after, _ = self._gates
        if before is not None:
            assert before.wait(30)
        state = self._store.update_slot(*args)
        if after is not None:
            after.set()
        return state

    def claim(self, *args: Any) -> bool:
        self._gates[2].wait(30)
        return self._store.claim(*args)


def test_two_workers_that_see_one_window_hold_at_once_trigger_it_once_on_dynamodb(
        atomic_moto: Any) -> None:
    """The claim, not luck, makes it once: both workers evaluate the complete window
    before either claims (DynamoDB has no transaction around an event; SQLite's
    transaction never lets two events of one store interleave like this)."""
    from dpc_core.stores.dynamodb import DynamoStore, create_tables

    tables = create_tables(atomic_moto, "race-")
    p1, p2 = PipelineSpec(account="111111111111", name="p1"), \
        PipelineSpec(account="222222222222", name="p2")
    child = PipelineSpec(account="333333333333", name="child", parents=(p1.key, p2.key),
                         condition={"allOf": [_ref(p1.key), _ref(p2.key)]})
    setup = Engine(DynamoStore(atomic_moto, tables))
    for s in (p1, p2, child):
        setup.register(s)

    def success(p: PipelineSpec) -> StatusEvent:
        return StatusEvent.parse(make_status_event(
            account=p.account, region=REGION, pipeline=p.name, execution="d0",
            status="SUCCEEDED", start_ms=DAY0_MS + HOUR_MS, stop_ms=DAY0_MS + 2 * HOUR_MS))

    setup.handle(success(p1))
    # Worker 1 completes the window with p2's success; worker 2 handles a redelivered p1
    # success right after worker 1's slot update; both then claim at the same moment.
    p2_in, claim_together = threading.Event(), threading.Barrier(2)
    workers = [(Engine(_Gated(DynamoStore(atomic_moto, tables), None, p2_in,
                              claim_together)), success(p2)),  # type: ignore[arg-type]
               (Engine(_Gated(DynamoStore(atomic_moto, tables), p2_in, None,
                              claim_together)), success(p1))]  # type: ignore[arg-type]
    decided: list[Decision] = []

    def work(engine: Engine, event: StatusEvent) -> None:
        decided.extend(engine.handle(event).decisions)

    threads = [threading.Thread(target=work, args=w) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [d.pipeline for d in decided] == ["child"]
    assert len(DynamoStore(atomic_moto, tables).claims()) == 1
