"""Events per second through the ``dpc simulate`` machinery, for N = 1,000 and 10,000 pipelines.

For each size: a synthetic organisation of N pipelines over M = N/10 accounts and K days of
status events (``bench/orggen.py``); the pipelines are validated by the real model and
registered into an engine over a SQLite file (as ``dpc simulate --db FILE`` does); the events
are parsed as ``dpc simulate`` parses them; then the engine handles them in order. Loading,
registration and parsing are reported separately from the event loop, whose figures are the
ones the targets are about (TRIGGERS.md rule 2: an event's cost does not grow with N):

* per-event time at N = 10,000 / per-event time at N = 1,000   (target: <= 1.25)
* events/s at N = 10,000                                      (target: >= 5,000 on 2 cores)

It also writes the smaller organisation as pipeline.yaml files plus an events.jsonl to a
temporary directory and times the real :func:`dpc_core.simulate.simulate` end to end.

Usage::

    .venv/bin/python bench/simulate_throughput.py [--days K] [--sizes 1000 10000] [--profile]

``--profile`` prints the cProfile of the event loop at the largest size.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from orggen import (
    children_count,
    generate_events,
    generate_org,
    to_pipelines,
    write_events,
    write_org,
)

from dpc_core.events import StatusEvent
from dpc_core.simulate import build_engine, handle_stream, simulate, stream_gc
from dpc_core.stores.sqlite import SqliteStore


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

    @property
    def per_event_us(self) -> float:
        """Microseconds per event in the engine loop."""
        return self.handle_s / self.events * 1e6

    @property
    def events_per_s(self) -> float:
        """Events per second in the engine loop."""
        return self.events / self.handle_s


def measure(n: int, days: int, workdir: Path, profile: bool = False,
            in_memory: bool = False) -> Figures:
    """Generate, validate, register, parse, then time the engine over the events."""
    m = max(1, n // 10)
    docs = generate_org(n, m, seed=n)
    raw = generate_events(docs, days, seed=n)
    counts = children_count(docs)

    t0 = time.perf_counter()
    pipelines = to_pipelines(docs)
    t1 = time.perf_counter()
    store = SqliteStore(":memory:" if in_memory else workdir / f"engine-{n}.db", exclusive=True)
    engine = build_engine(pipelines, store)
    t2 = time.perf_counter()
    events = [StatusEvent.parse(e) for e in raw]
    t3 = time.perf_counter()

    decisions = 0
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    start = time.perf_counter()
    # The same loop as `dpc simulate` (batched transactions).
    with stream_gc():
        for _, _, outcome in handle_stream(engine, list(enumerate(events))):
            decisions += len(outcome.decisions)
    handle_s = time.perf_counter() - start
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    store.close()
    return Figures(n, m, len(events), decisions, sum(counts.values()) / n,
                   max(counts.values(), default=0), t1 - t0, t2 - t1, t3 - t2, handle_s)


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
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--days", type=int, default=3, help="days of events per size")
    ap.add_argument("--profile", action="store_true", help="cProfile the largest size")
    args = ap.parse_args()

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="dpc-bench-") as tmp:
        work = Path(tmp)
        for in_memory, label in ((True, "in-memory SQLite (`dpc simulate` default)"),
                                 (False, "SQLite file in WAL mode (`dpc simulate --db FILE`)")):
            print(f"-- store: {label}")
            results = []
            for n in args.sizes:
                f = measure(n, args.days, work, in_memory=in_memory,
                            profile=args.profile and n == max(args.sizes))
                results.append(f)
                print(f"N={f.n:>6} M={f.m:>5}  events={f.events:>6}  "
                      f"decisions={f.decisions:>6}  children/pipeline mean="
                      f"{f.children_mean:.2f} max={f.children_max}")
                print(f"    validate {f.validate_s:7.2f}s  register {f.register_s:7.2f}s  "
                      f"parse {f.parse_s:6.2f}s ({f.events / f.parse_s:,.0f} ev/s)")
                print(f"    engine   {f.handle_s:7.2f}s  {f.per_event_us:7.1f} us/event  "
                      f"{f.events_per_s:8,.0f} events/s")
            if len(results) >= 2:
                small, large = results[0], results[-1]
                ratio = large.per_event_us / small.per_event_us
                print(f"per-event time ratio N={large.n} / N={small.n}: {ratio:.2f} "
                      f"(target <= 1.25: {'met' if ratio <= 1.25 else 'MISSED'})")
                print(f"events/s at N={large.n}: {large.events_per_s:,.0f} "
                      f"(target >= 5,000: {'met' if large.events_per_s >= 5000 else 'MISSED'})")
        n = min(args.sizes)
        lines, decided, seconds = end_to_end(n, args.days, work)
        print(f"simulate() end to end, N={n}, files on disk: {lines} events, {decided} "
              f"decisions in {seconds:.2f}s ({lines / seconds:,.0f} events/s incl. loading)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
