"""``dpc simulate``: the engine, offline, over pipeline files and a JSONL event stream.

Two kinds of bad input, handled differently on purpose:

* **A line that does not parse** (not UTF-8, not JSON, JSON nested deeper than
  :data:`MAX_LINE_DEPTH`, longer than :data:`MAX_LINE_BYTES`, or not a JSON object): the
  *file* is broken (a wrong file, a truncated copy, another encoding) and no EventBridge
  delivery looks like that. Like a broken pipeline.yaml, it stops the simulation before
  any decision: exit 2, ``FILE:LINE:COL: message``, no traceback (docs/triggers.md, ``dpc
  simulate``: "JSON that does not parse ... exits 2").
* **A well-formed event with bad fields** (an unknown status, a ``startDate`` that is
  not a sane integer, a malformed ARN, a bad ``dpc.logicalDate``, ...): that is what
  the engine meets in production, and rule 8 says what it does there: the event is
  rejected and reported, and the events after it are processed as usual. Simulate does
  the same: each such event is reported on stderr as ``FILE:LINE: rejected: bad status
  event: FIELD: ...``, the other events are decided and printed; and because
  docs/triggers.md counts these as bad input too ("an unknown status ... exits 2"), the
  command then states how many events were rejected as bad input and exits 2. Events
  refused by rule 7 (spoofed, unregistered) and events of other sources are normal
  traffic: reported and counted, exit 0.
"""

from __future__ import annotations

import gc
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpc_core.engine import Decision, Engine
from dpc_core.errors import BadEvent, Problem, ValidationFailed
from dpc_core.events import StatusEvent, is_status_shape
from dpc_core.jsonlimits import TooDeep, loads
from dpc_core.loader import load_pipelines
from dpc_core.model import Pipeline
from dpc_core.plugins import Registry, get_registry
from dpc_core.stores.sqlite import SqliteStore

#: An EventBridge event is at most 256 KiB; a line four times that is not one.
MAX_LINE_BYTES = 1 << 20
#: JSON nesting accepted on one line (real status events nest 3 levels).
MAX_LINE_DEPTH = 64
#: Lines (blank ones included) and bytes of one event file: simulate and inject keep the
#: decoded events in memory, so an endless input (``yes '{}'``) must end somewhere.
MAX_EVENT_LINES = 1_000_000
MAX_EVENTS_BYTES = 1 << 30


@dataclass
class SimulationResult:
    """Decisions in decision order, and what was skipped or rejected (with reasons)."""

    decisions: list[Decision] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    reports: list[str] = field(default_factory=list)

    @property
    def bad_input(self) -> int:
        """How many events were rejected as bad input (docs/triggers.md rule 8)."""
        return self.counts["bad input"]


def _problem(file: str, line: int, column: int, message: str) -> ValidationFailed:
    return ValidationFailed([Problem(file, line, column, "", message)])


def read_events(path: Path, registry: Registry | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, event)`` for each non-blank line: a :class:`StatusEvent` when the
    line is a valid status event, else the decoded object (the engine skips other
    sources and rejects status events with bad fields, and the caller reports them).

    A line that does not parse raises :class:`ValidationFailed` naming file and line
    (see the module docstring for why the two cases differ).
    """
    del registry  # other sources' events are handed to the engine's adapters as they are
    for lineno, event, problem in scan_events(path):
        if problem is not None:
            raise ValidationFailed([problem])
        yield lineno, event


def scan_events(path: Path) -> Iterator[tuple[int, Any, Problem | None]]:
    """Each non-blank line of a JSONL event file, in one bounded pass: ``(line, event,
    None)`` (as :func:`read_events` yields them), or ``(line, None, problem)`` for a line
    that does not parse, and reading goes on.

    What makes the file itself unreadable raises :class:`ValidationFailed`: it cannot be
    opened, a line longer than :data:`MAX_LINE_BYTES` (no newline in sight: ``/dev/zero``,
    a binary file), more than :data:`MAX_EVENT_LINES` lines or :data:`MAX_EVENTS_BYTES`
    bytes. Memory and time are bounded by these whatever the file is.
    """
    file = str(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise _problem(file, 1, 1, f"cannot read file: {exc}") from None
    with handle:
        lineno = 0
        total = 0
        while True:
            # readline with a limit: a huge line is refused without reading it whole.
            try:
                data = handle.readline(MAX_LINE_BYTES + 1)
            except OSError as exc:
                raise _problem(file, lineno + 1, 1, f"cannot read file: {exc}") from None
            if not data:
                return
            lineno += 1
            total += len(data)
            if len(data) > MAX_LINE_BYTES and not data.endswith(b"\n"):
                raise _problem(file, lineno, 1, f"line longer than {MAX_LINE_BYTES} bytes "
                               "(an EventBridge event is at most 256 KiB): not an event file")
            if lineno > MAX_EVENT_LINES or total > MAX_EVENTS_BYTES:
                raise _problem(file, lineno, 1, f"more than {MAX_EVENT_LINES:,} lines or "
                               f"{MAX_EVENTS_BYTES >> 20:,} MiB in one event file; split it")
            problem = None
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                problem = Problem(file, lineno, exc.start + 1,
                                  "", f"not UTF-8: {exc.reason} (byte {exc.start + 1})")
            else:
                if not line.strip():
                    continue
                try:
                    raw = loads(line, max_depth=MAX_LINE_DEPTH)
                except TooDeep as exc:
                    problem = Problem(file, lineno, 1, "", f"invalid JSON: {exc}")
                except json.JSONDecodeError as exc:
                    problem = Problem(file, lineno, exc.colno, "", f"invalid JSON: {exc.msg}")
                else:
                    if not isinstance(raw, dict):
                        problem = Problem(file, lineno, 1, "", "each line must be one "
                                          "EventBridge event (a JSON object)")
            if problem is not None:
                yield lineno, None, problem
                continue
            if is_status_shape(raw):
                try:
                    yield lineno, StatusEvent.parse(raw), None
                    continue
                except BadEvent:
                    pass  # the engine rejects it as bad input, with the same reason
            yield lineno, raw, None


def build_engine(pipelines: Iterable[Pipeline], store: Any = None,
                 registry: Registry | None = None) -> Engine:
    """An engine over ``store`` (fresh in-memory SQLite by default) with ``pipelines``."""
    reg = registry or get_registry()
    engine = Engine(store or SqliteStore(":memory:", exclusive=True),
                    adapters=[(t.source, t.detail_type, t.to_status_event)
                              for t in reg.trigger_sources.values()])
    engine.register_many(pipelines)
    return engine


def simulate(pipeline_dirs: Iterable[Path], events: Path, store: Any = None) -> SimulationResult:
    """Load and validate everything first, then feed the events in file order.

    Raises :class:`ValidationFailed` for pipeline files or event lines that do not parse;
    events with bad fields are rejected and reported in the result (``bad_input``).
    """
    reg = get_registry()
    pipelines = load_pipelines(pipeline_dirs, require_account=True, check_refs=True, registry=reg)
    stream = list(read_events(events, reg))  # a line that does not parse decides nothing
    engine = build_engine(pipelines, store, reg)
    result = SimulationResult()
    with stream_gc():
        for lineno, _event, outcome in handle_stream(engine, stream):
            if outcome.skipped:
                result.counts["skipped"] += 1
                result.reports.append(f"{events}:{lineno}: skipped: {outcome.skipped}")
            elif outcome.rejected:
                kind = "bad input" if outcome.bad_input else "rejected"
                result.counts[kind] += 1
                result.reports.append(f"{events}:{lineno}: rejected: {outcome.rejected}")
            else:
                result.counts[outcome.recorded.value if outcome.recorded else "processed"] += 1
            result.reports.extend(f"{events}:{lineno}: {p}" for p in outcome.problems)
            result.decisions.extend(outcome.decisions)
    return result


@contextmanager
def stream_gc() -> Iterator[None]:
    """Garbage-collector settings for a long stream of events over a loaded registry.

    The registry, models and caches are long-lived: ``gc.freeze()`` takes what exists
    out of the collector's sight, and a higher first threshold stops full collections
    from rescanning a heap that only grows (their cost grew with the organisation and
    made the per-event time grow with it). Restored on exit.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def handle_stream(engine: Engine, stream: list[tuple[int, Any]],
                  size: int = 500) -> Iterator[tuple[int, Any, Any]]:
    """``(line, event, outcome)`` for each event of ``stream``, in order."""
    # One transaction per batch of events rather than per event: the engine's own
    # transaction() joins the outer one; decisions are the same, commits are fewer.
    for start in range(0, len(stream), size):
        with engine.store.transaction():
            batch = [(n, e, engine.handle(e)) for n, e in stream[start:start + size]]
        yield from batch


def format_table(decisions: list[Decision]) -> str:
    """A human-readable table of decisions."""
    rows = [("PIPELINE", "ACCOUNT", "WINDOW", "EXECUTION", "PARENTS")]
    for d in decisions:
        parents = ", ".join(
            f"{p.pipeline}@{p.account}:{p.status}:{p.execution_arn.rsplit(':', 1)[-1]}"
            for p in d.parents)
        rows.append((d.pipeline, d.account, d.window, d.execution_name, parents))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(widths[i]) if i < 4 else c for i, c in enumerate(r))
                     for r in rows)


def decisions_json(decisions: Iterable[Decision]) -> Iterator[str]:
    """One JSON object per line (``--format json``)."""
    for d in decisions:
        yield json.dumps(d.to_dict(), separators=(", ", ": "))
