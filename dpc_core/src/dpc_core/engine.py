"""The trigger engine: the one implementation of docs/triggers.md.

Every runtime calls :meth:`Engine.handle` with a status event and a store behind
it: the central trigger-manager Lambda (DynamoDB), the local runtime (SQLite) and
``dpc simulate`` (SQLite). Plain Python; no AWS imports.

On each event:

1. parse it: other shapes are skipped, a status event with bad fields (rule 8: insane
   integers, a status outside the five, malformed ARNs, a bad ``dpc.logicalDate``, input
   nested too deep) is rejected as bad input; nothing raises, whatever the JSON value;
2. check that the event's account owns the pipeline it names and that its
   ``executionArn`` is an execution of that state machine (rule 7); else rejected and
   reported *before* recording, so a forged event can neither stand in for another
   account's run nor make its real events look stale;
3. record the status idempotently (duplicates change nothing, stale statuses are
   dropped); the run log answers with the run as it was, which places the run in its one
   window: its first logical date, else its start; a run placed by its start moves when a
   later status brings its logical date, leaving its old window to the run before it;
4. for each child that references the pipeline (one registry read), put the run in the
   child's window as that parent's latest run, evaluate the condition and, when it holds
   and the ``rerun`` policy allows, *claim* the trigger with a compare-and-set on the
   window. Only the winner of the claim emits a decision.

Duplicates are re-evaluated (not skipped) so that a worker that died between
recording and claiming is completed by the redelivery; the claim keeps that safe.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from dpc_core.errors import BadEvent, ConditionTooDeep, DependencyCycle
from dpc_core.events import StatusEvent, is_status_shape
from dpc_core.model import MAX_CONDITION_DEPTH, Block, Pipeline, Ref, iter_refs
from dpc_core.store import (
    Claim,
    PipelineSpec,
    Recorded,
    RunRecord,
    Slot,
    TriggerStore,
    WindowState,
    pkey,
)


@dataclass(frozen=True)
class ParentRun:
    """A parent run that satisfied a child's condition."""

    pipeline: str
    account: str
    execution_arn: str
    status: str

    def to_dict(self) -> dict[str, str]:
        """The JSON shape of docs/triggers.md."""
        return {"pipeline": self.pipeline, "account": self.account,
                "executionArn": self.execution_arn, "status": self.status}


@dataclass(frozen=True)
class Decision:
    """Start ``pipeline`` in ``account`` for ``window`` as ``execution_name``."""

    pipeline: str
    account: str
    window: str
    execution_name: str
    parents: tuple[ParentRun, ...]
    generation: int = 1
    downstream: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``dpc simulate --format json``."""
        return {"pipeline": self.pipeline, "account": self.account, "window": self.window,
                "executionName": self.execution_name,
                "parents": [p.to_dict() for p in self.parents]}

    def run_input(self) -> dict[str, Any]:
        """The input of the child run: its logical date and the parents that caused it."""
        dpc: dict[str, Any] = {"logicalDate": self.window, "trigger": self.execution_name,
                               "parents": [p.to_dict() for p in self.parents]}
        if self.downstream:
            dpc["downstream"] = True
        return {"dpc": dpc}


@dataclass(frozen=True)
class Held:
    """A trigger a paused child did not take: its condition held for ``window`` and its
    ``rerun`` policy allowed a run, but the child is paused. The window's slots are kept
    (the parent runs stay recorded there), so :meth:`Engine.release` decides it again on
    resume, under the same rules."""

    pipeline: str  # the child's key, account/name
    window: str
    downstream: bool = False


@dataclass
class Outcome:
    """What handling one event did.

    ``skipped``: not a status event for the engine (another source, not an object).
    ``rejected``: a status event refused with the reason; ``bad_input`` when a field is
    not what docs/triggers.md allows (rule 8), ``spoofed`` when the sender does not own the
    state machine or the execution it names (rule 7). Neither is recorded.
    ``problems``: children that could not be evaluated (a stored condition the engine
    cannot use); the other children were.
    """

    decisions: list[Decision] = field(default_factory=list)
    recorded: Recorded | None = None
    rejected: str | None = None
    skipped: str | None = None
    run: RunRecord | None = None
    bad_input: bool = False
    spoofed: bool = False
    problems: list[str] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)


#: A run's error text is kept for people to read; longer texts are cut.
MAX_ERROR_CHARS = 4096


def _bad(reason: str) -> Outcome:
    return Outcome(rejected=reason, bad_input=True)


def _clip(text: str | None, limit: int = MAX_ERROR_CHARS) -> str | None:
    """``text`` cut to ``limit`` characters and storable as UTF-8 (JSON may carry lone
    surrogates, which neither SQLite nor DynamoDB accept)."""
    if text is None:
        return None
    text = text[:limit]
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


def condition_depth(condition: Any) -> int:
    """How many blocks deep a condition (as JSON) nests, counted as pipeline.yaml's model
    counts (its limit, :data:`dpc_core.model.MAX_CONDITION_DEPTH`, is the engine's); the
    model refuses deeper ones in files, the engine in specs stored by other paths.
    Iterative, so a hostile condition cannot exhaust the stack; stops past the limit."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(condition, 1)]
    while stack:
        block, level = stack.pop()
        if not isinstance(block, Mapping):
            continue
        deepest = max(deepest, level)
        if deepest > MAX_CONDITION_DEPTH:
            break
        for key in ("allOf", "anyOf"):
            items = block.get(key)
            if isinstance(items, list):
                # A block is what pipeline.yaml's model takes for one (see model._item_tag).
                stack.extend((it, level + 1) for it in items if isinstance(it, Mapping) and (
                    "allOf" in it or "anyOf" in it or "operator" in it))
    return deepest


def check_condition(spec: PipelineSpec) -> None:
    """Raise :class:`ConditionTooDeep` for a condition deeper than the engine accepts."""
    if spec.condition is not None and condition_depth(spec.condition) > MAX_CONDITION_DEPTH:
        raise ConditionTooDeep(f"{spec.key}: trigger.executions nests blocks deeper than "
                               f"{MAX_CONDITION_DEPTH} levels")


def execution_name(child: str, window: str, generation: int) -> str:
    """Deterministic execution name of a claimed trigger (Step Functions refuses a
    second execution of the same name, so a trigger delivered twice starts one run)."""
    digest = hashlib.sha256(f"{child}|{window}|{generation}".encode()).hexdigest()[:10]
    return f"dpc-{window.replace(':', '')}-g{generation}-{digest}"


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def window_of(start_ms: int, logical: str | None, window: str, tz: str) -> str:
    """The window a run belongs to for a child with ``window``/``tz``.

    The run's logical date (``dpc.logicalDate`` of its input) wins; otherwise the
    calendar date (or hour) of its start in the child's time zone. Hourly windows are
    hours of real time: a local hour that occurs twice (clocks go back) is two windows,
    named with their UTC offset (``2026-11-01T01-04:00``, ``2026-11-01T01-05:00``).
    """
    if logical:
        if window == "daily":
            return logical[:10]
        return _logical_hour(logical, tz)
    if start_ms >= _QUARTERS_FROM_MS:
        return _start_window(start_ms // 900_000, window == "daily", tz)
    return _start_window_at(start_ms / 1000, window == "daily", tz)


#: From 1973 on, every time zone's offsets and transitions fall on quarter hours of UTC
#: (Liberia's -00:44:30 ended in 1972), so one quarter hour of starts shares one window:
#: the window of a start is cached per quarter hour (the hot path, and the DST checks of
#: hourly windows are not free).
_QUARTERS_FROM_MS = 94_694_400_000


@lru_cache(maxsize=65_536)
def _start_window(quarter: int, daily: bool, tz: str) -> str:
    return _start_window_at(quarter * 900, daily, tz)


def _start_window_at(seconds: float, daily: bool, tz: str) -> str:
    dt = datetime.fromtimestamp(seconds, tz=UTC).astimezone(_zone(tz))
    if daily:
        # f-strings rather than strftime: the same text, at a fraction of the cost.
        return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}"
    return _hour_name(dt)


def _offset(dt: datetime) -> str:
    minutes = int((dt.utcoffset() or timedelta(0)).total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _repeated(dt: datetime) -> bool:
    """True when the local hour of ``dt`` (aware) ends inside a repeated interval, i.e.
    its wall clock times occur twice that day (the hour clocks go back over)."""
    probe = dt.replace(minute=59, second=59, microsecond=0)
    if probe.utcoffset() == probe.replace(fold=1 - probe.fold).utcoffset():
        return False  # the common case: one offset for this wall time
    # Two offsets: a repeated hour, or a wall time that does not exist (the spring gap),
    # which a round trip through UTC moves to another wall time.
    back = probe.astimezone(UTC).astimezone(probe.tzinfo)
    return back.replace(tzinfo=None) == probe.replace(tzinfo=None)


def _hour_name(dt: datetime) -> str:
    name = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}"
    return name + _offset(dt) if _repeated(dt) else name


@lru_cache(maxsize=4096)
def _logical_hour(logical: str, tz: str) -> str:
    """The hourly window of a logical date or hour in ``tz``: a wall-clock hour (a date
    alone is hour 00). In a repeated hour it names the occurrence whose UTC offset the
    logical hour carries, else the first; a skipped hour is the hour after it."""
    label = logical[:13] if len(logical) >= 13 else logical[:10] + "T00"
    try:
        wall = datetime(int(label[:4]), int(label[5:7]), int(label[8:10]), int(label[11:13]),
                        tzinfo=_zone(tz))
        if _repeated(wall):
            second = wall.replace(fold=1)
            if len(logical) > 13 and _offset(second) == logical[13:]:
                return _hour_name(second)
            return _hour_name(wall)
        real = wall.astimezone(UTC).astimezone(_zone(tz))
        return _hour_name(real)  # the same hour, or the one after a skipped hour
    except (ValueError, OverflowError):  # at the very ends of the calendar: the label
        return label


@lru_cache(maxsize=65536)
def _parse_condition(text: str) -> Block:
    import json

    return Block.model_validate(json.loads(text))


@dataclass(frozen=True)
class _CRef:
    ref: Ref
    key: str
    wanted: frozenset[str]


@dataclass(frozen=True)
class _CBlock:
    all_of: tuple[_CRef | _CBlock, ...] | None
    any_of: tuple[_CRef | _CBlock, ...] | None
    is_and: bool


def compile_condition(block: Block, own_account: str) -> _CBlock:
    """The condition with each reference resolved to its pipeline key and status set,
    done once per child so that evaluating it per event is plain tuple walking."""

    def item(it: Ref | Block) -> _CRef | _CBlock:
        if isinstance(it, Block):
            return compile_condition(it, own_account)
        return _CRef(it, pkey(it.account or own_account, it.name),
                     frozenset(s.value for s in it.status))

    return _CBlock(
        tuple(item(i) for i in block.all_of) if block.all_of is not None else None,
        tuple(item(i) for i in block.any_of) if block.any_of is not None else None,
        block.operator == "AND",
    )


Satisfied = list[tuple[Ref, str, Slot]]


def _holds(b: _CBlock, slots: Mapping[str, Slot]) -> tuple[bool, Satisfied]:
    def item(it: _CRef | _CBlock) -> tuple[bool, Satisfied]:
        if isinstance(it, _CBlock):
            return _holds(it, slots)
        slot = slots.get(it.key)
        if slot is not None and slot.status in it.wanted:
            return True, [(it.ref, it.key, slot)]
        return False, []

    parts: list[bool] = []
    runs: Satisfied = []
    # Every item is evaluated (no short-circuit) so all satisfying runs are known.
    if b.all_of is not None:
        results = [item(i) for i in b.all_of]
        ok = all(r[0] for r in results)
        parts.append(ok)
        if ok:
            runs += [x for r in results for x in r[1]]
    if b.any_of is not None:
        results = [item(i) for i in b.any_of]
        ok = any(r[0] for r in results)
        parts.append(ok)
        if ok:
            runs += [x for r in results if r[0] for x in r[1]]
    holds = all(parts) if b.is_and else any(parts)
    return holds, runs if holds else []


def evaluate(block: Block | _CBlock, slots: Mapping[str, Slot], own_account: str) -> tuple[
    bool, Satisfied
]:
    """Does ``block`` hold over the latest parent runs ``slots``? And which runs satisfy it.

    A run satisfies the condition only through items that hold inside blocks that hold:
    in ``anyOf [p, allOf [q, r]]`` with only p and q succeeded, p alone satisfied it.
    """
    compiled = block if isinstance(block, _CBlock) else compile_condition(block, own_account)
    return _holds(compiled, slots)


def spec_of(pipeline: Pipeline) -> PipelineSpec:
    """The registry entry of a validated pipeline."""
    acct = pipeline.account or ""
    t = pipeline.trigger
    cond = t.executions.model_dump(mode="json", by_alias=True, exclude_none=True) \
        if t.executions else None
    info: dict[str, Any] = {}
    if t.schedule is not None:
        info["schedule"] = t.schedule.expression()
    if pipeline.description:
        info["description"] = pipeline.description
    if pipeline.owner:
        info["owner"] = pipeline.owner
    if pipeline.contact:
        info["contact"] = pipeline.contact
    if pipeline.deadline:
        info["deadline"] = pipeline.deadline
    return PipelineSpec(account=acct, name=pipeline.name, condition=cond, window=t.window,
                        timezone=t.timezone, rerun=t.rerun,
                        parents=tuple(pkey(a, n) for a, n in pipeline.parents()), info=info)


def find_cycle(parents: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A dependency cycle in a graph given as node -> its parents, in data-flow order
    (``a -> b -> a`` means b waits on a and a on b), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in parents:
        if state.get(root):
            continue
        path: list[str] = [root]
        iters = [iter(parents.get(root, ()))]
        state[root] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
                continue
            mark = state.get(nxt)
            if mark == 1:
                loop = [*path[path.index(nxt):], nxt]
                return list(reversed(loop))
            if mark is None:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(parents.get(nxt, ())))
    return None


EventAdapter = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]


class Engine:
    """Decides, exactly once, which children may run after a status event."""

    def __init__(self, store: TriggerStore, adapters: Iterable[tuple[str, str, EventAdapter]] = (),
                 paused: Callable[[str], bool] | None = None):
        self.store = store
        # Whether a child (by key) is paused: its triggers are held (Outcome.held), not
        # claimed, until release() decides them again.
        self.paused = paused
        # Extra event sources from plugins: (source, detail-type) -> to_status_event.
        self.adapters = {(s, d): f for s, d, f in adapters}
        # Parsed conditions by child key, with the condition object they were parsed from:
        # stores hand back the same spec object while it is unchanged, so an identity check
        # skips re-serialising the condition on every evaluation (the hot path).
        # A condition the engine cannot use is cached as the reason (a string).
        self._blocks: dict[str, tuple[object, _CBlock | str]] = {}

    # -- registry ---------------------------------------------------------------

    def register(self, pipeline: Pipeline | PipelineSpec) -> PipelineSpec:
        """Register a pipeline; refuse one that closes a dependency cycle or whose condition
        nests deeper than :data:`MAX_CONDITION_DEPTH` blocks."""
        spec = pipeline if isinstance(pipeline, PipelineSpec) else spec_of(pipeline)
        check_condition(spec)
        cycle = self._cycle_through(spec)
        if cycle:
            raise DependencyCycle(cycle)
        self.store.put_pipeline(spec)
        return spec

    def register_many(self, pipelines: Iterable[Pipeline | PipelineSpec]) -> list[PipelineSpec]:
        """Register many pipelines at once, with one cycle check over the whole graph.

        Linear in pipelines + edges (registering one at a time walks every ancestor of
        each, which is quadratic on deep lineages). All or nothing: a cycle registers none.
        """
        specs = [p if isinstance(p, PipelineSpec) else spec_of(p) for p in pipelines]
        for spec in specs:
            check_condition(spec)
        # A store may offer the registered graph without decoding the specs about to be
        # replaced, and a batch write (SqliteStore: a first start registers 10,000).
        known = getattr(self.store, "pipeline_parents", None)
        graph = known({s.key for s in specs}) if known is not None else {
            s.key: s.parents for s in self.store.pipelines()}
        graph.update((s.key, s.parents) for s in specs)
        cycle = find_cycle(graph)
        if cycle:
            raise DependencyCycle(cycle)
        put_many = getattr(self.store, "put_pipelines", None)
        with self.store.transaction():
            if put_many is not None:
                put_many(specs)
            else:
                for spec in specs:
                    self.store.put_pipeline(spec)
        return specs

    def _cycle_through(self, spec: PipelineSpec) -> list[str] | None:
        # Walk upwards from the new pipeline's parents: reaching it again is a cycle.
        target = spec.key
        stack: list[tuple[str, list[str]]] = [(p, [target, p]) for p in spec.parents]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            if node == target:
                return list(reversed(path))
            if node in seen:
                continue
            seen.add(node)
            parent_spec = self.store.get_pipeline(node)
            if parent_spec is not None:
                stack.extend((p, [*path, p]) for p in parent_spec.parents)
        return None

    # -- events -----------------------------------------------------------------

    def handle(self, raw: Any) -> Outcome:
        """Process one event (a decoded EventBridge event, or a parsed :class:`StatusEvent`).

        Never raises because of the event, whatever JSON value it is: other shapes come
        back ``skipped``, bad fields and spoofed events ``rejected`` (docs/triggers.md rules 7
        and 8), before anything is recorded. Store failures (a DynamoDB outage) do raise:
        the caller retries, and rule 1 makes the retry harmless.
        """
        if isinstance(raw, StatusEvent):
            event = raw
        else:
            if not isinstance(raw, Mapping):
                return Outcome(skipped="not an EventBridge event (a JSON object expected)")
            source, detail_type = raw.get("source"), raw.get("detail-type")
            adapter = self.adapters.get((source, detail_type)) if isinstance(
                source, str) and isinstance(detail_type, str) else None
            if adapter is not None:
                try:
                    converted = adapter(raw)
                except Exception as exc:  # a plugin's parser must not stop the engine
                    return _bad(f"event of source {source!r} could not be read: "
                                f"{type(exc).__name__}: {_clip(str(exc), 300)}")
                if converted is None:
                    return Outcome(skipped="event source adapter ignored the event")
                raw = converted
            try:
                event = StatusEvent.parse(raw)
            except BadEvent as exc:
                if is_status_shape(raw):
                    return _bad(str(exc))
                return Outcome(skipped=str(exc))
        try:
            # Read from the input before anything is recorded: bad input changes nothing.
            logical, downstream = event.logical_date, event.downstream
        except BadEvent as exc:
            return _bad(f"bad status event: {exc}")
        with self.store.transaction():
            return self._handle(event, logical, downstream)

    def _handle(self, ev: StatusEvent, logical: str | None, downstream: bool) -> Outcome:
        key = pkey(ev.account, ev.pipeline)
        d = ev.detail
        # Rule 7, before recording: a sender speaks only for its own state machines' runs.
        if ev.arn_account != ev.account:
            return Outcome(rejected=f"event from account {ev.account} names {ev.pipeline!r} of "
                           f"account {ev.arn_account}; ignored", spoofed=True)
        # The execution must be one of that state machine's (same partition, region,
        # account and name): both ARNs passed their patterns, so the execution ARN without
        # its run name is the state machine ARN with ":execution:" for ":stateMachine:".
        if d.execution_arn.rsplit(":", 1)[0] != d.state_machine_arn.replace(
                ":stateMachine:", ":execution:", 1):
            return Outcome(rejected=f"event from account {ev.account}: executionArn "
                           f"{d.execution_arn!r} is not an execution of "
                           f"{d.state_machine_arn!r}; rejected before recording",
                           spoofed=True)
        found = self.store.lookup(key)
        if found is None:
            return Outcome(rejected=f"no pipeline {ev.pipeline!r} is registered in account "
                           f"{ev.account}; ignored")
        _, children = found
        error = d.error or d.cause
        run = RunRecord(arn=d.execution_arn, pipeline=key, status=d.status.value,
                        redrive_count=d.redrive_count, start_ms=d.start_date,
                        logical=logical, stop_ms=d.stop_date,
                        error=error if error is None else _clip(error))
        recorded, prior = self.store.record(run)
        out = Outcome(recorded=recorded, run=run)
        if recorded is Recorded.STALE:
            return out
        if prior is None:  # the common case: a run seen for the first time
            start, place, moved = run.start_ms, logical, False
        else:
            start, place, moved = self._placement(run, recorded, prior)
            if (start, place) != (run.start_ms, run.logical):
                out.run = run = replace(run, start_ms=start, logical=place)
        slot = Slot(run.arn, start, run.status, run.redrive_count)
        windows: dict[tuple[str, str], str] = {}  # children mostly share window and zone
        blocks = self._blocks
        for child in children:
            wkey = (child.window, child.timezone)
            if wkey not in windows:
                windows[wkey] = window_of(start, place, child.window, child.timezone)
            cached = blocks.get(child.name + child.account)
            if cached is not None and cached[0] is child.condition and \
                    type(cached[1]) is _CBlock:
                block = cached[1]
            else:
                compiled = self._block(child, out)
                if compiled is None:
                    continue
                block = compiled
            if moved:
                left = window_of(start, None, child.window, child.timezone)
                if left != windows[wkey]:
                    decision = self._leave(child, block, key, left, run.arn, start, out)
                    if decision is not None:
                        out.decisions.append(decision)
            state = self.store.update_slot(child.key, windows[wkey], key, slot)
            decision = self._decide(child, block, windows[wkey], state, downstream, out)
            if decision is not None:
                out.decisions.append(decision)
        return out

    def release(self, child_key: str, held: Iterable[tuple[str, bool]]) -> list[Decision]:
        """Decide again the windows a paused child held (``(window, downstream)`` pairs,
        from :attr:`Outcome.held`), now that it is resumed: each window's condition over
        its kept slots and the child's ``rerun`` policy decide, as for an event (a window
        already triggered with ``rerun: never`` stays so; ``on-new-parent-run`` runs once
        for parent runs it has not run for). A child still paused holds them again."""
        decisions: list[Decision] = []
        with self.store.transaction():
            child = self.store.get_pipeline(child_key)
            if child is None:
                return decisions
            out = Outcome()
            block = self._block(child, out)
            if block is None:
                return decisions
            for window, downstream in dict.fromkeys(held):
                state = self.store.window_state(child.key, window)
                decision = self._decide(child, block, window, state, downstream, out)
                if decision is not None:
                    decisions.append(decision)
        return decisions

    @staticmethod
    def _placement(run: RunRecord, recorded: Recorded,
                   prior: RunRecord | None) -> tuple[int, str | None, bool]:
        """``(start, logical, moved)`` of a run: one logical date per run (docs/triggers.md
        "Words"). The first start and logical date recorded stick; an event without input
        belongs where the run was placed; a run placed by its start moves when a new
        status brings ``dpc.logicalDate``."""
        if prior is None:
            return run.start_ms, run.logical, False
        if prior.logical is not None:
            return prior.start_ms, prior.logical, False
        if run.logical is not None and recorded is Recorded.NEW:
            return prior.start_ms, run.logical, True
        return prior.start_ms, None, False

    def _leave(self, child: PipelineSpec, block: _CBlock, parent: str, window: str,
               arn: str, start: int, out: Outcome | None = None) -> Decision | None:
        """Take run ``arn`` out of ``window`` (it moved to its logical date): the parent's
        latest other run there takes its slot back, and the window is evaluated again."""
        state = self.store.window_state(child.key, window)
        held = state.slots.get(parent)
        if held is None or held.arn != arn:
            return None
        # Runs placed in this window started before the moving run (it held the slot as
        # the latest); three days back covers a day in any time zone.
        latest: RunRecord | None = None
        for r in self.store.runs_of(parent, since_ms=max(0, start - 3 * 86_400_000)):
            if r.arn == arn or (r.start_ms, r.arn) > (start, arn):
                continue
            if window_of(r.start_ms, r.logical, child.window, child.timezone) != window:
                continue
            if latest is None or (r.start_ms, r.arn) > (latest.start_ms, latest.arn):
                latest = r
        back = None if latest is None else Slot(latest.arn, latest.start_ms, latest.status,
                                                latest.redrive_count)
        state = self.store.replace_slot(child.key, window, parent, arn, back)
        return None if back is None else self._decide(child, block, window, state, False, out)

    def _block(self, child: PipelineSpec, out: Outcome) -> _CBlock | None:
        """The compiled condition of ``child`` (None, with a problem noted, when unusable)."""
        if child.condition is None:
            return None
        # Keyed by name + account (no separator needed: accounts are 12 digits), cheaper
        # than the ``key`` property on the hot path.
        bkey = child.name + child.account
        cached = self._blocks.get(bkey)
        if cached is None or cached[0] is not child.condition:
            try:
                if condition_depth(child.condition) > MAX_CONDITION_DEPTH:
                    raise ValueError(f"nests blocks deeper than {MAX_CONDITION_DEPTH} levels")
                import json

                compiled: _CBlock | str = compile_condition(
                    _parse_condition(json.dumps(child.condition, sort_keys=True)),
                    child.account)
            except (ValueError, TypeError, RecursionError) as exc:
                compiled = f"{type(exc).__name__}: {_clip(str(exc), 300)}"
            cached = (child.condition, compiled)
            self._blocks[bkey] = cached
        if isinstance(cached[1], str):
            out.problems.append(f"child {child.key} not evaluated: its condition is not "
                                f"usable: {cached[1]}")
            return None
        return cached[1]

    def _decide(self, child: PipelineSpec, block: _CBlock, window: str, state: WindowState,
                downstream: bool, out: Outcome | None = None) -> Decision | None:
        for _ in range(100):  # compare-and-set retries; a handful at most in practice
            holds, satisfied = evaluate(block, state.slots, child.account)
            if not holds:
                return None
            runs = tuple(dict.fromkeys(s.arn for _, _, s in satisfied))
            # A run started with `dpc rerun --downstream` re-runs its children as if they
            # had `rerun: on-new-parent-run`, and passes the flag on to them.
            rerun = "on-new-parent-run" if downstream else child.rerun
            if state.generation > 0:
                if rerun == "never":
                    return None
                if not set(runs) - set(state.last_runs):
                    return None
            if self.paused is not None and self.paused(child.key):
                # Held, not lost: the slots stay, release() decides the window on resume.
                if out is not None:
                    out.held.append(Held(child.key, window, downstream))
                return None
            generation = state.generation + 1
            parents = tuple(dict.fromkeys(
                ParentRun(r.name, key.split("/", 1)[0], s.arn, s.status)
                for r, key, s in satisfied))
            name = execution_name(child.key, window, generation)
            claim = Claim(child.key, window, generation, name,
                          tuple(p.to_dict() for p in parents), downstream)
            if self.store.claim(child.key, window, state, claim):
                return Decision(child.name, child.account, window, name, parents, generation,
                                downstream)
            state = self.store.window_state(child.key, window)
        raise RuntimeError(f"claim on {child.key} {window} kept failing")  # pragma: no cover


@dataclass(frozen=True)
class RefState:
    """One reference of a condition and whether it holds (for ``dpc status``)."""

    pipeline: str
    account: str
    statuses: tuple[str, ...]
    current: str | None
    execution_arn: str | None
    holds: bool


def explain(condition: dict[str, Any], slots: Mapping[str, Slot], own_account: str) -> tuple[
    bool, list[RefState]
]:
    """Whether a condition holds over ``slots``, and the state of each of its references."""
    import json

    block = _parse_condition(json.dumps(condition, sort_keys=True))
    holds, _ = evaluate(block, slots, own_account)
    states = []
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    for ref in iter_refs(block):
        account = ref.account or own_account
        ident = (account, ref.name, tuple(s.value for s in ref.status))
        if ident in seen:
            continue
        seen.add(ident)
        slot = slots.get(pkey(account, ref.name))
        wanted = tuple(s.value for s in ref.status)
        states.append(RefState(ref.name, account, wanted, slot.status if slot else None,
                               slot.arn if slot else None,
                               slot is not None and slot.status in wanted))
    return holds, states

