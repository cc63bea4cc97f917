"""The trigger engine: the one implementation of TRIGGERS.md.

Every runtime calls :meth:`Engine.handle` with a status event and a store behind
it: the central trigger-manager Lambda (DynamoDB), the local runtime (SQLite) and
``dpc simulate`` (SQLite). Plain Python; no AWS imports.

On each event:

1. parse it (other shapes are refused with a reason) and check that the event's
   account owns the pipeline it names (else: rejected, reported, nothing triggered);
2. record the status idempotently (duplicates change nothing, stale statuses are
   dropped);
3. for each child that references the pipeline (one registry read), put the run
   in the child's window as that parent's latest run, evaluate the condition and,
   when it holds and the ``rerun`` policy allows, *claim* the trigger with a
   compare-and-set on the window. Only the winner of the claim emits a decision.

Duplicates are re-evaluated (not skipped) so that a worker that died between
recording and claiming is completed by the redelivery; the claim keeps that safe.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from dpc_core.errors import BadEvent, DependencyCycle
from dpc_core.events import StatusEvent
from dpc_core.model import Block, Pipeline, Ref, iter_refs
from dpc_core.store import (
    Claim,
    PipelineSpec,
    Recorded,
    RunRecord,
    Slot,
    TriggerStore,
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
        """The JSON shape of TRIGGERS.md."""
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


@dataclass
class Outcome:
    """What handling one event did."""

    decisions: list[Decision] = field(default_factory=list)
    recorded: Recorded | None = None
    rejected: str | None = None
    skipped: str | None = None
    run: RunRecord | None = None


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
    calendar date (or hour) of its start in the child's time zone.
    """
    if logical:
        if window == "daily":
            return logical[:10]
        return logical[:13] if len(logical) >= 13 else logical[:10] + "T00"
    dt = datetime.fromtimestamp(start_ms / 1000, tz=UTC).astimezone(_zone(tz))
    # f-strings rather than strftime: the same text, at a fraction of the cost (hot path).
    day = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}"
    return day if window == "daily" else f"{day}T{dt.hour:02d}"


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

    def __init__(self, store: TriggerStore, adapters: Iterable[tuple[str, str, EventAdapter]] = ()):
        self.store = store
        # Extra event sources from plugins: (source, detail-type) -> to_status_event.
        self.adapters = {(s, d): f for s, d, f in adapters}
        # Parsed conditions by child key, with the condition object they were parsed from:
        # stores hand back the same spec object while it is unchanged, so an identity check
        # skips re-serialising the condition on every evaluation (the hot path).
        self._blocks: dict[str, tuple[object, _CBlock]] = {}

    # -- registry ---------------------------------------------------------------

    def register(self, pipeline: Pipeline | PipelineSpec) -> PipelineSpec:
        """Register a pipeline; refuse one that closes a dependency cycle."""
        spec = pipeline if isinstance(pipeline, PipelineSpec) else spec_of(pipeline)
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
        graph = {s.key: s.parents for s in self.store.pipelines()}
        graph.update((s.key, s.parents) for s in specs)
        cycle = find_cycle(graph)
        if cycle:
            raise DependencyCycle(cycle)
        with self.store.transaction():
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

    def handle(self, raw: Mapping[str, Any] | StatusEvent) -> Outcome:
        """Process one event; never raises for bad events (they come back as ``skipped``)."""
        if not isinstance(raw, StatusEvent):
            adapter = self.adapters.get((str(raw.get("source")), str(raw.get("detail-type"))))
            if adapter is not None:
                converted = adapter(raw)
                if converted is None:
                    return Outcome(skipped="event source adapter ignored the event")
                raw = converted
            try:
                event = StatusEvent.parse(raw)
            except BadEvent as exc:
                return Outcome(skipped=str(exc))
        else:
            event = raw
        with self.store.transaction():
            return self._handle(event)

    def _handle(self, ev: StatusEvent) -> Outcome:
        key = pkey(ev.account, ev.pipeline)
        if ev.arn_account != ev.account:
            return Outcome(rejected=f"event from account {ev.account} names {ev.pipeline!r} of "
                           f"account {ev.arn_account}; ignored")
        found = self.store.lookup(key)
        if found is None:
            return Outcome(rejected=f"no pipeline {ev.pipeline!r} is registered in account "
                           f"{ev.account}; ignored")
        _, children = found
        d = ev.detail
        run = RunRecord(arn=d.execution_arn, pipeline=key, status=d.status.value,
                        redrive_count=d.redrive_count, start_ms=d.start_date,
                        logical=ev.logical_date, stop_ms=d.stop_date,
                        error=d.error or d.cause)
        recorded = self.store.record_run(run)
        out = Outcome(recorded=recorded, run=run)
        if recorded is Recorded.STALE:
            return out
        slot = Slot(run.arn, run.start_ms, run.status, run.redrive_count)
        downstream = ev.downstream
        windows: dict[tuple[str, str], str] = {}  # children mostly share window and zone
        for child in children:
            wkey = (child.window, child.timezone)
            if wkey not in windows:
                windows[wkey] = window_of(run.start_ms, run.logical, child.window,
                                          child.timezone)
            decision = self._evaluate_child(child, key, windows[wkey], slot, downstream)
            if decision is not None:
                out.decisions.append(decision)
        return out

    def _evaluate_child(self, child: PipelineSpec, parent: str, window: str,
                        slot: Slot, downstream: bool = False) -> Decision | None:
        if child.condition is None:
            return None
        cached = self._blocks.get(child.key)
        if cached is not None and cached[0] is child.condition:
            block = cached[1]
        else:
            import json

            block = compile_condition(
                _parse_condition(json.dumps(child.condition, sort_keys=True)), child.account)
            self._blocks[child.key] = (child.condition, block)
        state = self.store.update_slot(child.key, window, parent, slot)
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

