"""Health of a child's window: what it waits on, whether it is blocked, whether it is late.

Plain functions over the engine's own data (the registry, the per-window latest parent
runs, the run log) through the :class:`~dpc_core.store.TriggerStore` interface, so the local
runtime (SQLite) and the central reconciler (DynamoDB) compute the same notices with the
same words. Conditions are evaluated by the engine's own :func:`~dpc_core.engine.evaluate`
(no trigger rule is written twice):

- **waiting on**: the references of the condition that do not hold now
  (:func:`~dpc_core.engine.explain`), with each parent's latest run and owner;
- **can it still hold** without a new parent run: a parent whose latest run in the window
  is terminal is fixed; a RUNNING one, or one that has not run, may still end in any
  status. AND/OR are monotone, so the condition can still hold iff it holds for some
  outcome of the open parents: the engine's ``evaluate`` is asked for each combination;
- **blocked downstream**: after a parent's run ends FAILED, TIMED_OUT or ABORTED, every
  child (transitively, across accounts) whose condition can no longer hold in its window
  and that has not already been triggered there; a pipeline found blocked counts as
  "will not run" for its own children. A fallback that the failure triggers is not
  blocked: its condition holds;
- **late**: the window's run has not succeeded by the pipeline's ``deadline``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dpc_core.deadlines import Deadline, deadline_at, parse_deadline
from dpc_core.engine import compile_condition, evaluate, explain, window_of
from dpc_core.model import Block, Ref, iter_refs
from dpc_core.store import PipelineSpec, RunRecord, Slot, TriggerStore, WindowState, split_pkey

#: Terminal statuses that are a failure (a parent's run ending so may block its children).
FAILED = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
ALL_STATUSES = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "RUNNING")
#: Open parents beyond this many are not enumerated: the condition is taken as able to hold
#: (no notice rather than a wrong one).
MAX_OPEN_PARENTS = 6
#: A run is at most this deep in a lineage for blocked notices (the registry refuses
#: cycles; this bounds the walk against a hostile registry all the same).
MAX_DEPTH = 1000

RunLookup = Callable[[str], RunRecord | None]


def owner_of(spec: PipelineSpec | None) -> str | None:
    """The owning team of a registered pipeline (``owner`` of its pipeline.yaml)."""
    if spec is None:
        return None
    owner = spec.info.get("owner")
    return str(owner) if owner else None


def contact_of(spec: PipelineSpec | None) -> str | None:
    """The owner's contact (``owner.contact`` of its pipeline.yaml), when given."""
    if spec is None:
        return None
    contact = spec.info.get("contact")
    return str(contact) if contact else None


def who(spec: PipelineSpec) -> str:
    """``pipeline-x (333333333333, rent-journey)``: a pipeline, its account and owner."""
    owner = owner_of(spec)
    return f"{spec.name} ({spec.account}" + (f", {owner})" if owner else ")")


def _hhmm(ms: int | None, tz: str) -> str:
    if ms is None:
        return "?"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(ZoneInfo(tz)).strftime("%H:%M")


def _verb(statuses: Iterable[str]) -> str:
    wanted = sorted(set(statuses))
    if wanted == ["SUCCEEDED"]:
        return "succeeds"
    return "ends " + " or ".join(wanted)


@dataclass(frozen=True)
class Waiting:
    """A parent that a child still waits on in a window, with its latest run there."""

    pipeline: str
    account: str
    owner: str | None
    wanted: tuple[str, ...]
    status: str | None  # of the latest run in the window; None: no run yet
    execution_arn: str | None
    start_ms: int | None
    stop_ms: int | None

    def text(self, tz: str = "UTC") -> str:
        """``listings (111111111111, core-data) RUNNING since 03:02`` (times in ``tz``)."""
        who = f"{self.pipeline} ({self.account}" + (f", {self.owner})" if self.owner else ")")
        if self.status is None:
            return f"{who} has not run"
        if self.status == "RUNNING":
            return f"{who} RUNNING since {_hhmm(self.start_ms, tz)}"
        return f"{who} {self.status} at {_hhmm(self.stop_ms or self.start_ms, tz)}"

    def to_dict(self) -> dict[str, object]:
        """JSON shape (``dpc local status --format json``)."""
        return {"pipeline": self.pipeline, "account": self.account, "owner": self.owner,
                "wanted": list(self.wanted), "status": self.status,
                "executionArn": self.execution_arn, "startMs": self.start_ms,
                "stopMs": self.stop_ms}


def _block(spec: PipelineSpec) -> Block | None:
    if spec.condition is None:
        return None
    return Block.model_validate(json.loads(json.dumps(spec.condition)))


def waiting_on(store: TriggerStore, child: PipelineSpec, window: str,
               run_of: RunLookup | None = None) -> list[Waiting]:
    """The parents ``child`` still waits on in ``window``: each reference of its condition
    that does not hold now, with the parent's latest run there and its owner. Empty when
    the condition holds (or the child has none)."""
    if child.condition is None:
        return []
    state = store.window_state(child.key, window)
    holds, refs = explain(child.condition, state.slots, child.account)
    if holds:
        return []
    run_of = run_of or store.get_run
    out: dict[str, Waiting] = {}
    for ref in refs:
        key = f"{ref.account}/{ref.pipeline}"
        if ref.holds or key in out:
            continue
        slot = state.slots.get(key)
        run = run_of(slot.arn) if slot is not None else None
        found = store.lookup(key)
        out[key] = Waiting(ref.pipeline, ref.account, owner_of(found[0] if found else None),
                           ref.statuses, ref.current, ref.execution_arn,
                           slot.start_ms if slot else None, run.stop_ms if run else None)
    return list(out.values())


def can_still_hold(condition: Block | dict[str, object], own_account: str,
                   slots: Mapping[str, Slot], fixed_absent: Iterable[str] = ()) -> bool:
    """Can the condition hold in this window without a new parent run?

    ``slots``: the latest run of each parent in the window. A terminal one is fixed; a
    RUNNING one may still end in any status; a parent with no run may still run and end in
    any status, unless its key is in ``fixed_absent`` (it will not run: it is blocked).
    """
    block = condition if isinstance(condition, Block) else Block.model_validate(condition)
    compiled = compile_condition(block, own_account)
    keys = sorted({f"{r.account or own_account}/{r.name}" for r in _refs(block)})
    absent = set(fixed_absent)
    fixed = {k: s for k, s in slots.items() if s.status != "RUNNING"}
    open_keys = [k for k in keys if k not in fixed and k not in absent]
    if len(open_keys) > MAX_OPEN_PARENTS:
        return True
    for outcome in itertools.product(ALL_STATUSES, repeat=len(open_keys)):
        trial = dict(fixed)
        for key, status in zip(open_keys, outcome, strict=True):
            trial[key] = Slot(f"possible:{key}", 0, status, 0)
        if evaluate(compiled, trial, own_account)[0]:
            return True
    return False


def _refs(block: Block) -> list[Ref]:
    return iter_refs(block)


@dataclass(frozen=True)
class Blocked:
    """A child that cannot run in ``window`` until ``cause``'s pipeline runs again."""

    child: PipelineSpec
    window: str
    cause: RunRecord  # the failed parent run at the root of the chain
    cause_owner: str | None
    via: tuple[str, ...]  # pipeline keys from the failed one down to the child's parent
    wanted: tuple[str, ...]  # what the root parent must reach (e.g. SUCCEEDED)

    @property
    def key(self) -> str:
        """``account/name`` of the blocked child."""
        return self.child.key

    def text(self) -> str:
        """The BLOCKED notice: the failed run, its owner, what happens next."""
        acct, name = split_pkey(self.cause.pipeline)
        parent = f"{name} ({acct}" + (f", {self.cause_owner})" if self.cause_owner else ")")
        run = self.cause.arn.rsplit(":", 1)[-1]
        tz = self.child.timezone
        text = (f"{who(self.child)} is blocked for {self.window}: "
                f"{parent} run {run} {self.cause.status} at "
                f"{_hhmm(self.cause.stop_ms or self.cause.start_ms, tz)}")
        if len(self.via) > 1:
            text += " (via " + " → ".join(split_pkey(k)[1] for k in self.via[1:]) + ")"
        date = self.cause.logical or self.window
        return (text + f"; {self.child.name} will run automatically when {name} "
                f"{_verb(self.wanted)} for {date[:13]}")


def _wanted_of(spec: PipelineSpec, parent: str) -> tuple[str, ...]:
    block = _block(spec)
    if block is None:
        return ("SUCCEEDED",)
    statuses: set[str] = set()
    for ref in _refs(block):
        if f"{ref.account or spec.account}/{ref.name}" == parent:
            statuses.update(s.value for s in ref.status)
    return tuple(sorted(statuses)) or ("SUCCEEDED",)


def blocked_downstream(store: TriggerStore, failed: RunRecord) -> list[Blocked]:
    """Every pipeline downstream of ``failed`` (a run that ended FAILED, TIMED_OUT or
    ABORTED, as the run log holds it) that cannot run in its window without a new run of
    ``failed``'s pipeline: its direct children whose condition can no longer hold, and
    transitively their children. Children already triggered in that window are left out;
    so is a fallback that the failure satisfies. Each child once, nearest first."""
    if failed.status not in FAILED:
        return []
    root_key = failed.pipeline
    out: list[Blocked] = []
    seen: set[tuple[str, str]] = set()
    root = store.lookup(root_key)
    if root is None:
        return []
    # (parent key, how its windows are found: (start, logical)), path from the root
    frontier: list[tuple[str, int, str | None, tuple[str, ...], tuple[str, ...]]] = [
        (root_key, failed.start_ms, failed.logical, (root_key,), ())]
    blocked_keys: set[str] = set()
    owner = owner_of(root[0])
    depth = 0
    while frontier and depth < MAX_DEPTH:
        depth += 1
        nxt: list[tuple[str, int, str | None, tuple[str, ...], tuple[str, ...]]] = []
        for parent, start, logical, path, wanted in frontier:
            found = store.lookup(parent)
            if found is None:
                continue
            for child in found[1]:
                if child.condition is None:
                    continue
                window = window_of(start, logical, child.window, child.timezone)
                if (child.key, window) in seen:
                    continue
                state: WindowState = store.window_state(child.key, window)
                if state.generation > 0:
                    continue  # already triggered in this window
                if parent == root_key:
                    slot = state.slots.get(root_key)
                    if slot is None or slot.arn != failed.arn:
                        continue  # a later run of the parent is in charge of this window
                try:
                    if can_still_hold(child.condition, child.account, state.slots,
                                      blocked_keys - set(state.slots)):
                        continue
                except ValueError:
                    continue  # a condition the engine cannot use is the engine's report
                seen.add((child.key, window))
                blocked_keys.add(child.key)
                want = wanted or _wanted_of(child, root_key)
                out.append(Blocked(child, window, failed, owner, path, want))
                nxt.append((child.key, 0, window, (*path, child.key), want))
        frontier = nxt
    return out


def deadline_of(spec: PipelineSpec) -> Deadline | None:
    """The registered pipeline's deadline, or None (none set, or unreadable)."""
    text = spec.info.get("deadline")
    if not text:
        return None
    try:
        return parse_deadline(text, spec.window)
    except ValueError:
        return None


def due_ms(spec: PipelineSpec, window: str) -> int | None:
    """When ``window`` of ``spec`` is due (epoch ms), or None without a deadline."""
    d = deadline_of(spec)
    if d is None:
        return None
    return int(deadline_at(d, window, spec.timezone, spec.window).timestamp() * 1000)


def is_late(spec: PipelineSpec, window: str, now_ms: int, succeeded: bool) -> bool:
    """Is ``window`` late for ``spec`` at ``now_ms``: past its deadline with no succeeded run."""
    due = due_ms(spec, window)
    return due is not None and not succeeded and now_ms >= due


def current_window(spec: PipelineSpec, now_ms: int) -> str:
    """The window that ``now_ms`` falls in for ``spec`` (its window kind and time zone)."""
    return window_of(now_ms, None, spec.window, spec.timezone)


def late_text(spec: PipelineSpec, window: str, waiting: list[Waiting]) -> str:
    """The LATE notice: the deadline missed and why (the parents still waited on)."""
    d = deadline_of(spec)
    tz = spec.timezone
    when = d.text() if d is not None else "?"
    text = (f"{who(spec)} has not succeeded for {window} by its deadline "
            f"{when} {tz}")
    if waiting:
        return text + "; waiting on " + "; ".join(w.text(tz) for w in waiting)
    return text + "; its parents are done: its own run is late"


def window_succeeded(store: TriggerStore, spec: PipelineSpec, window: str) -> bool:
    """Has a run of ``spec`` placed in ``window`` succeeded (the engine's run log)?"""
    from dpc_core.deadlines import window_start

    try:
        start = int(window_start(window, spec.timezone).timestamp() * 1000)
    except (ValueError, KeyError):
        start = 0
    # Runs of a window start around it (a backfill or a late rerun much later: any time
    # after); two days back covers a logical date in any time zone.
    for run in store.runs_of(spec.key, since_ms=max(0, start - 2 * 86_400_000)):
        if run.status == "SUCCEEDED" and window_of(run.start_ms, run.logical, spec.window,
                                                   spec.timezone) == window:
            return True
    return False
