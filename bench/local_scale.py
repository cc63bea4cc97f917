"""Local runtime at organisation scale: 10,000 pipelines in one workspace.

    python bench/local_scale.py [--pipelines 10000] [--roots 60] [--edits 5] [--only-start]

Generates an organisation with bench/orggen.py (no-op shell steps), then runs the real
`dpc local up` as a subprocess and prints:
- time to ready, cold (first start: every pipeline.yaml parsed) and warm (a restart:
  unchanged files are not parsed again);          target warm <= 2 s
  (``--only-start``: only these two, ``--starts N`` times each on fresh workspaces)
- one-file edit applied: a pipeline.yaml rewritten -> the runtime's console says it
  applied the change;                                target <= 1 s
- trigger latency: parent SUCCEEDED (its stop) -> child run created by the engine
  (and -> child RUNNING, which adds waiting for a free executor slot);  target p99 <= 5 ms
- resident memory idle and under load;              target <= 300 MiB
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from local_latency import percentile, rss_mib
from orggen import generate_org, write_org

from dpc_core.cli.local import queue_run

DPC = str(Path(sys.executable).parent / "dpc")
DAY = "2026-11-26"


class Up:
    """`dpc local up` with its console lines timestamped as they arrive."""

    def __init__(self, ws: Path) -> None:
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([DPC, "local", "up", "--no-schedule", "-w", str(ws)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        self.lines: list[tuple[float, str]] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(900):
            raise TimeoutError("runtime not ready")
        self.ready_wall = self.lines[-1][0] - self.t0
        self.ready_line = self.lines[-1][1].strip()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.perf_counter(), line))
            if "ready in" in line:
                self.ready.set()

    def wait_line(self, text: str, after: float, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, line in list(self.lines):
                if t >= after and text in line:
                    return t
            time.sleep(0.002)
        raise TimeoutError(f"no console line with {text!r}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=120)


def starts(docs: list[dict], times: int) -> None:
    """Cold then warm start, ``times`` times (a fresh workspace each time): medians."""
    cold, warm = [], []
    for _ in range(times):
        with tempfile.TemporaryDirectory() as tmp:
            ws = write_org(docs, Path(tmp) / "org")
            for label, took in (("cold", cold), ("warm", warm)):
                up = Up(ws)
                took.append(up.ready_wall)
                print(f"{label} start: ready {up.ready_wall:.2f} s wall ({up.ready_line})")
                up.stop()
    print(f"median of {times}: cold {statistics.median(cold):.2f} s, "
          f"warm {statistics.median(warm):.2f} s wall to the ready line")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pipelines", type=int, default=10_000)
    ap.add_argument("--roots", type=int, default=60, help="root pipelines started by hand")
    ap.add_argument("--edits", type=int, default=5)
    ap.add_argument("--via", choices=("api", "cli"), default="api",
                    help="start roots through dpc_core's queue_run (what `dpc local start` "
                    "calls) in this process, or by running `dpc local start` for each (each "
                    "Python start-up then competes with the runtime for the 2 cores)")
    ap.add_argument("--spacing", type=float, default=0.2,
                    help="seconds between two roots started through the API")
    ap.add_argument("--only-start", action="store_true",
                    help="only the cold and warm starts (no edits, no runs)")
    ap.add_argument("--starts", type=int, default=1,
                    help="with --only-start: repeat the cold and warm starts this many times "
                    "(each on a fresh copy of the workspace) and print the medians")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"{args.pipelines} pipelines")
    docs = generate_org(args.pipelines, seed=1)
    for d in docs:
        d["steps"] = [{"name": "work", "type": "shell", "command": "true"}]
    if args.only_start:
        starts(docs, args.starts)
        return
    with tempfile.TemporaryDirectory() as tmp:
        ws = write_org(docs, Path(tmp) / "org")

        cold = Up(ws)
        print(f"cold start (every file parsed): ready {cold.ready_wall:.2f} s wall "
              f"({cold.ready_line})")
        cold.stop()

        up = Up(ws)
        print(f"warm start (restart, files unchanged): ready {up.ready_wall:.2f} s wall, "
              f"process start included ({up.ready_line})")
        time.sleep(2)
        print(f"resident memory idle: {rss_mib(up.proc.pid):.0f} MiB")

        # One-file edits: the console says `~account/name` once the change is applied.
        took = []
        for i in range(args.edits):
            doc = docs[(i * 997) % len(docs)]
            path = ws / doc["account"] / doc["name"] / "pipeline.yaml"
            doc["description"] = f"edit {i}"
            t = time.perf_counter()
            path.write_text(json.dumps(doc))  # JSON is YAML
            done = up.wait_line(f"~{doc['account']}/{doc['name']}", t)
            took.append(done - t)
            time.sleep(0.5)
        if took:
            print(f"one-file edit applied: median {statistics.median(took) * 1000:.0f} ms, "
                  f"max {max(took) * 1000:.0f} ms ({len(took)} edits)")

        # Trigger latency over the organisation's own conditions: start root pipelines by
        # hand; their children (and theirs) are triggered as the conditions hold.
        peak = [0.0]
        busy = threading.Event()

        def sample() -> None:
            while not busy.is_set():
                peak[0] = max(peak[0], rss_mib(up.proc.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample)
        sampler.start()
        roots = [d for d in docs if "schedule" in d["trigger"]][:args.roots]
        for d in roots:
            if args.via == "cli":
                subprocess.run([DPC, "local", "start", d["name"], "--date", DAY, "-w", str(ws)],
                               capture_output=True, check=True)
            else:  # what `dpc local start` does, without starting a Python process each time
                queue_run(ws, d["name"], DAY, "manual")
                time.sleep(args.spacing)
        conn = sqlite3.connect(ws / ".dpc" / "state.db")
        while True:
            time.sleep(1)
            pending = conn.execute(
                "SELECT (SELECT COUNT(*) FROM lr_runs WHERE status IN ('PENDING','RUNNING')) + "
                "(SELECT COUNT(*) FROM lr_outbox WHERE done_ms IS NULL)").fetchone()[0]
            if not pending:
                break
        busy.set()
        sampler.join()
        stops = {arn: stop for arn, stop in conn.execute(
            "SELECT arn, stop_ms FROM lr_runs WHERE stop_ms IS NOT NULL")}
        created, started = [], []
        for c_ms, s_ms, parents in conn.execute(
                "SELECT created_ms, start_ms, parents FROM lr_runs WHERE reason = 'trigger'"):
            last = max((stops.get(p["executionArn"], 0) for p in json.loads(parents)),
                       default=0)
            if last:
                created.append(c_ms - last)
                started.append(s_ms - last)
        # Where the time goes: the parent's terminal event waits in the outbox until the
        # engine loop takes it (queue), then the engine decides and creates the child in
        # one transaction (done_ms of the event = created_ms of the child).
        # (a RUNNING event names its parents' SUCCEEDED too: the status is read, not matched)
        waits = [done - queued for queued, done, payload in conn.execute(
            "SELECT created_ms, done_ms, payload FROM lr_outbox WHERE kind = 'event' AND "
            "done_ms IS NOT NULL") if json.loads(payload)["detail"]["status"] == "SUCCEEDED"]
        total = conn.execute("SELECT COUNT(*) FROM lr_runs").fetchone()[0]
        conn.close()
        up.stop()
        print(f"{total} runs ({len(created)} triggered) from {len(roots)} roots started by hand")
        if created:
            for label, vals in (("-> child created", created), ("-> child RUNNING", started)):
                print(f"trigger latency, parent SUCCEEDED {label}: p50 "
                      f"{statistics.median(vals):.0f} ms, p99 {percentile(vals, 99):.0f} ms, "
                      f"max {max(vals):.0f} ms")
        if waits:
            print(f"SUCCEEDED event committed -> decided by the engine: p50 "
                  f"{statistics.median(waits):.0f} ms, p99 {percentile(waits, 99):.0f} ms "
                  f"({len(waits)} events)")
        print(f"resident memory under load (peak): {peak[0]:.0f} MiB")


if __name__ == "__main__":
    main()
