"""Events per second through the ``dpc simulate`` machinery, for N = 1,000 and 10,000 pipelines.

For each size: a synthetic organisation of N pipelines over M = N/10 accounts and K days of
status events (``bench/orggen.py``); the pipelines are validated by the real model and
registered into an engine over a SQLite file (as ``dpc simulate --db FILE`` does); the events
are parsed as ``dpc simulate`` parses them; then the engine handles them in order. Loading,
registration and parsing are reported separately from the event loop, whose figures are the
ones the targets are about (docs/triggers.md rule 2: an event's cost does not grow with N):

* per-event time at N = 10,000 / per-event time at N = 1,000   (target: <= 1.25)
* events/s at N = 10,000                                      (target: >= 5,000 on 2 cores)

Each size is measured for both engines in the same run, side by side (wall-clock events/s,
and CPU time per event, which other processes on a shared machine disturb least): the engine
of this working tree ("after") and the engine of an older commit ("before", default
:data:`BASELINE_COMMIT`, the engine before issue 13's hardening). The older ``engine.py``,
``events.py``, ``store.py``, ``errors.py`` and ``stores/sqlite.py`` are read with ``git show``
into a temporary package ``dpc_before`` (imports rewritten; the pipeline model stays the
current one), so both engines see the same organisation, the same events and the same
machine load. Both loops are the same code (batches of 500 events per transaction, as
``dpc simulate``), alternating which engine goes first; the best of ``--rounds`` is shown.

It also writes the smaller organisation as pipeline.yaml files plus an events.jsonl to a
temporary directory and times the real :func:`dpc_core.simulate.simulate` end to end.

Usage::

    .venv/bin/python bench/simulate_throughput.py [--days K] [--sizes 1000 10000] [--profile]
                                                  [--before COMMIT]

``--profile`` prints the cProfile of the event loop at the largest size.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import os
import pstats
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from orggen import (
    children_count,
    generate_events,
    generate_org,
    to_pipelines,
    write_events,
    write_org,
)

import dpc_core.engine
import dpc_core.events
import dpc_core.stores.sqlite
from dpc_core.simulate import simulate, stream_gc
from dpc_core.stores.sqlite import SqliteStore

REPO = Path(__file__).resolve().parents[1]
#: The engine before issue 13 (rule 7 on executionArn, one window per run, bad input, DST).
BASELINE_COMMIT = "deaa08f"
_BEFORE_FILES = ("engine.py", "events.py", "store.py", "errors.py", "stores/__init__.py",
                 "stores/sqlite.py")


@dataclass(frozen=True)
class Impl:
    """One engine implementation: its Engine, StatusEvent, SqliteStore and PipelineSpec."""

    label: str
    engine: ModuleType
    events: ModuleType
    sqlite: ModuleType
    store: ModuleType


def current() -> Impl:
    """The engine of this working tree."""
    import dpc_core.store

    return Impl("after", dpc_core.engine, dpc_core.events, dpc_core.stores.sqlite,
                dpc_core.store)


def at_commit(commit: str, into: Path) -> Impl:
    """The engine modules of ``commit``, importable as package ``dpc_before``."""
    pkg = into / "dpc_before"
    (pkg / "stores").mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    for name in _BEFORE_FILES:
        text = subprocess.run(["git", "-C", str(REPO), "show",
                               f"{commit}:dpc_core/src/dpc_core/{name}"],
                              capture_output=True, text=True, check=True).stdout
        for mod in ("engine", "events", "store", "errors", "stores"):
            text = text.replace(f"dpc_core.{mod}", f"dpc_before.{mod}")
        (pkg / name).write_text(text)
    sys.path.insert(0, str(into))
    engine = importlib.import_module("dpc_before.engine")
    return Impl(f"before ({commit})", engine, importlib.import_module("dpc_before.events"),
                importlib.import_module("dpc_before.stores.sqlite"),
                importlib.import_module("dpc_before.store"))


@dataclass
class Figures:
    """What one size measured (seconds unless said otherwise)."""

    n: int
    m: int
    events: int
    decisions: int
    children_mean: float
    children_max: int
    validate_s: float
    register_s: float
    parse_s: float
    handle_s: float
    handle_cpu_s: float = 0.0

    @property
    def per_event_us(self) -> float:
        """Microseconds per event in the engine loop."""
        return self.handle_s / self.events * 1e6

    @property
    def events_per_s(self) -> float:
        """Events per second in the engine loop."""
        return self.events / self.handle_s

    @property
    def cpu_us(self) -> float:
        """CPU microseconds per event in the engine loop (process time: what other work on a
        shared machine changes least)."""
        return self.handle_cpu_s / self.events * 1e6


@dataclass
class Prepared:
    """One size's organisation and events, generated and validated once for all runs."""

    n: int
    m: int
    raw: list[dict[str, Any]]
    specs_json: list[str]
    children_mean: float
    children_max: int
    validate_s: float


def prepare(n: int, days: int) -> Prepared:
    """Generate and validate an organisation of ``n`` pipelines and ``days`` of events."""
    m = max(1, n // 10)
    docs = generate_org(n, m, seed=n)
    raw = generate_events(docs, days, seed=n)
    counts = children_count(docs)
    t0 = time.perf_counter()
    pipelines = to_pipelines(docs)
    validate_s = time.perf_counter() - t0
    specs = [dpc_core.engine.spec_of(p).to_json() for p in pipelines]
    return Prepared(n, m, raw, specs, sum(counts.values()) / n,
                    max(counts.values(), default=0), validate_s)


def measure(prep: Prepared, workdir: Path, impl: Impl, profile: bool = False,
            in_memory: bool = False) -> Figures:
    """Register, parse, then time ``impl``'s engine over the events (a fresh store)."""
    t1 = time.perf_counter()
    specs = [impl.store.PipelineSpec.from_json(text) for text in prep.specs_json]
    path = ":memory:" if in_memory else workdir / f"engine-{prep.n}-{time.time_ns()}.db"
    store = impl.sqlite.SqliteStore(path, exclusive=True)
    engine = impl.engine.Engine(store)
    engine.register_many(specs)
    t2 = time.perf_counter()
    events = [impl.events.StatusEvent.parse(e) for e in prep.raw]
    t3 = time.perf_counter()

    decisions = 0
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    start, cpu = time.perf_counter(), time.process_time()
    with stream_gc():
        for outcome in _loop(engine, events):
            decisions += len(outcome.decisions)
    handle_s = time.perf_counter() - start
    handle_cpu_s = time.process_time() - cpu
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    store.close()
    return Figures(prep.n, prep.m, len(events), decisions, prep.children_mean,
                   prep.children_max, prep.validate_s, t2 - t1, t3 - t2, handle_s, handle_cpu_s)


def calls_per_event(prep: Prepared, impl: Impl) -> float:
    """Python function calls per event of ``impl``'s engine loop (in-memory store)."""
    store = impl.sqlite.SqliteStore(":memory:", exclusive=True)
    engine = impl.engine.Engine(store)
    engine.register_many([impl.store.PipelineSpec.from_json(t) for t in prep.specs_json])
    events = [impl.events.StatusEvent.parse(e) for e in prep.raw]
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in _loop(engine, events):
        pass
    profiler.disable()
    store.close()
    return float(pstats.Stats(profiler).total_calls) / len(events)  # type: ignore[attr-defined]


def _loop(engine: Any, events: list[Any], size: int = 500) -> Any:
    # The loop of `dpc simulate` (dpc_core.simulate.handle_stream), written once here so
    # that both implementations run exactly the same code around their engine.
    for start in range(0, len(events), size):
        with engine.store.transaction():
            batch = [engine.handle(e) for e in events[start:start + size]]
        yield from batch


def end_to_end(n: int, days: int, workdir: Path) -> tuple[int, int, float]:
    """Write files and run the real ``simulate()`` on them: (events, decisions, seconds)."""
    docs = generate_org(n, seed=n)
    root = write_org(docs, workdir / f"org-{n}")
    events = write_events(generate_events(docs, days, seed=n), workdir / f"events-{n}.jsonl")
    lines = sum(1 for _ in events.open())
    start = time.perf_counter()
    result = simulate([root], events, SqliteStore(workdir / f"simulate-{n}.db", exclusive=True))
    return lines, len(result.decisions), time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print its figures, before and after side by side."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--days", type=int, default=3, help="days of events per size")
    ap.add_argument("--profile", action="store_true", help="cProfile the largest size")
    ap.add_argument("--rounds", type=int, default=3, help="runs per engine; best is shown")
    ap.add_argument("--before", default=BASELINE_COMMIT,
                    help="commit whose engine is the baseline (default: %(default)s)")
    args = ap.parse_args()

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="dpc-bench-") as tmp:
        work = Path(tmp)
        impls = [at_commit(args.before, work / "before"), current()]
        preps = [prepare(n, args.days) for n in args.sizes]
        for in_memory, label in ((True, "in-memory SQLite (`dpc simulate` default)"),
                                 (False, "SQLite file in WAL mode (`dpc simulate --db FILE`)")):
            print(f"-- store: {label}")
            afters: list[Figures] = []
            for prep in preps:
                # Alternate the two engines, best of --rounds: load changes hit both alike.
                best: dict[str, Figures] = {}
                for r in range(args.rounds):
                    # Each round swaps who goes first (the one after inherits the heap).
                    for impl in impls if r % 2 == 0 else impls[::-1]:
                        f = measure(prep, work, impl, in_memory=in_memory,
                                    profile=(args.profile and r == 0 and impl.label == "after"
                                             and prep.n == max(args.sizes)))
                        if impl.label not in best or f.handle_s < best[impl.label].handle_s:
                            best[impl.label] = f
                before, after = best[impls[0].label], best["after"]
                print(f"N={prep.n:>6} M={prep.m:>5}  events={after.events:>6}  "
                      f"children/pipeline mean={after.children_mean:.2f} "
                      f"max={after.children_max}  (best of {args.rounds})")
                for name, f in best.items():
                    print(f"    {name:<18} engine {f.handle_s:6.2f}s {f.per_event_us:7.1f} "
                          f"us/event {f.events_per_s:8,.0f} events/s  {f.cpu_us:6.1f} "
                          f"us CPU/event  decisions {f.decisions:>6}  parse "
                          f"{f.events / f.parse_s:8,.0f} ev/s")
                line = (f"    after/before: events/s {after.events_per_s / before.events_per_s:.2f}"
                        f", CPU per event {after.cpu_us / before.cpu_us:.2f}")
                if prep.n >= 10_000:
                    line += (f"   target >= 5,000 events/s at N=10,000: "
                             f"{'met' if after.events_per_s >= 5000 else 'MISSED'}")
                print(line)
                afters.append(after)
            if len(afters) >= 2:
                small, large = afters[0], afters[-1]
                ratio = large.per_event_us / small.per_event_us
                print(f"after: per-event time ratio N={large.n} / N={small.n}: {ratio:.2f} "
                      f"(target <= 1.25: {'met' if ratio <= 1.25 else 'MISSED'}); CPU "
                      f"{large.cpu_us / small.cpu_us:.2f}")
        # Timings on a shared machine move with its load; the number of Python function
        # calls per event does not, and tracks the interpreter work of the hot path.
        calls = {impl.label: calls_per_event(preps[0], impl) for impl in impls}
        print(f"Python calls per event at N={preps[0].n} (cProfile, load-independent): "
              + ", ".join(f"{k} {v:.1f}" for k, v in calls.items()))
        n = min(args.sizes)
        lines, decided, seconds = end_to_end(n, args.days, work)
        print(f"simulate() end to end (after), N={n}, files on disk: {lines} events, {decided} "
              f"decisions in {seconds:.2f}s ({lines / seconds:,.0f} events/s incl. loading)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
