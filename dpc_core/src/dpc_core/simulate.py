"""``dpc simulate``: the engine, offline, over pipeline files and a JSONL event stream."""

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
from dpc_core.events import DETAIL_TYPE, SOURCE, StatusEvent
from dpc_core.loader import load_pipelines
from dpc_core.model import Pipeline
from dpc_core.plugins import Registry, get_registry
from dpc_core.stores.sqlite import SqliteStore


@dataclass
class SimulationResult:
    """Decisions in decision order, and what was skipped or rejected (with reasons)."""

    decisions: list[Decision] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    reports: list[str] = field(default_factory=list)


def read_events(path: Path, registry: Registry | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, event)`` for each non-blank line; a line that is not a valid event
    of a known source raises :class:`ValidationFailed` naming file and line.

    Events of other sources are yielded as plain dicts (the engine skips and counts them).
    """
    reg = registry
    sources = {(t.source, t.detail_type) for t in reg.trigger_sources.values()} if reg else set()
    file = str(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ValidationFailed([Problem(file, 1, 1, "", f"cannot read file: {exc}")]) from None
    with handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValidationFailed([Problem(file, lineno, exc.colno, "",
                                                f"invalid JSON: {exc.msg}")]) from None
            if not isinstance(raw, dict):
                raise ValidationFailed([Problem(file, lineno, 1, "", "each line must be one "
                                                "EventBridge event (a JSON object)")])
            if raw.get("source") == SOURCE and raw.get("detail-type") == DETAIL_TYPE:
                try:
                    yield lineno, StatusEvent.parse(raw)
                except BadEvent as exc:
                    raise ValidationFailed([Problem(file, lineno, 1, "", str(exc))]) from None
            elif (raw.get("source"), raw.get("detail-type")) in sources:
                yield lineno, raw
            else:
                yield lineno, raw


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
    """Load and validate everything first, then feed the events in file order."""
    reg = get_registry()
    pipelines = load_pipelines(pipeline_dirs, require_account=True, check_refs=True, registry=reg)
    stream = list(read_events(events, reg))  # all-or-nothing: bad input decides nothing
    engine = build_engine(pipelines, store, reg)
    result = SimulationResult()
    with stream_gc():
        for lineno, _event, outcome in handle_stream(engine, stream):
            if outcome.skipped:
                result.counts["skipped"] += 1
                result.reports.append(f"{events}:{lineno}: skipped: {outcome.skipped}")
            elif outcome.rejected:
                result.counts["rejected"] += 1
                result.reports.append(f"{events}:{lineno}: rejected: {outcome.rejected}")
            else:
                result.counts[outcome.recorded.value if outcome.recorded else "processed"] += 1
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
