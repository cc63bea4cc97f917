"""Local runtime benchmark: trigger latency, throughput, memory, start-up.

    python bench/local_latency.py [--chain 200] [--joins 50] [--runs 1000]

Runs the real `dpc local up` as a subprocess over generated workspaces and reads the
timestamps the runtime recorded in its state database:
- latency = last parent SUCCEEDED (its stop) -> child RUNNING (its start), for a chain
  of pipelines and for AND-joins of two parents (targets: p50 <= 100 ms, p99 <= 500 ms);
- runs/minute for independent no-op runs;
- resident memory of the runtime idle and under that load (target <= 150 MiB);
- time from `dpc local up` to ready (target <= 1 s).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DPC = str(Path(sys.executable).parent / "dpc")
STEP = "steps:\n  - {name: s, type: shell, command: 'true'}\n"


def write(ws: Path, name: str, account: str, body: str) -> None:
    d = ws / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "pipeline.yaml").write_text(f'name: {name}\naccount: "{account}"\n{body}')


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def up(ws: Path, until_idle: bool = True) -> subprocess.Popen[str]:
    args = [DPC, "local", "up", "--no-schedule", "-w", str(ws)]
    if until_idle:
        args.append("--until-idle")
    err = open(os.environ.get("DPC_BENCH_STDERR", os.devnull), "w")  # noqa: SIM115
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)


def first_line_then_drain(proc: subprocess.Popen[str]) -> str:
    """The runtime's ready line; the rest of its output is drained in the background (a
    full pipe would block the runtime's console writes)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return line


def queue(ws: Path, names_dates: list[tuple[str, str]]) -> None:
    """Queue manual runs directly (as `dpc local start` does), in one transaction."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dpc_core" / "src"))
    from dpc_core.local.runtime import Workspace, insert_run, manual_run_id

    w = Workspace(ws)
    keys = {k.split("/", 1)[1]: k for k in w.load()}
    store = w.connect()
    with store.transaction():
        for name, date in names_dates:
            insert_run(store, keys[name], manual_run_id("manual", date), date, "manual")
    store.close()


def poke_queue(ws: Path, names_dates: list[tuple[str, str]]) -> None:
    """Queue runs and wake the running runtime (what `dpc local start` does)."""
    from dpc_core.local.runtime import Workspace

    queue(ws, names_dates)
    Workspace(ws).poke()


def wait_for(conn: sqlite3.Connection, name: str, timeout: float = 120) -> None:
    """Until the pipeline ``name`` has a terminal run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute("SELECT status FROM lr_runs WHERE pipeline LIKE ? AND status IN "
                           "('SUCCEEDED','FAILED','ABORTED','TIMED_OUT')",
                           (f"%/{name}",)).fetchone()
        if row:
            return
        time.sleep(0.01)
    rows = conn.execute("SELECT pipeline, status, run_id, error FROM lr_runs ORDER BY created_ms "
                        "DESC LIMIT 6").fetchall()
    pending = conn.execute("SELECT kind, COUNT(*) FROM lr_outbox WHERE done_ms IS NULL "
                           "GROUP BY kind").fetchall()
    raise TimeoutError(f"{name} did not finish; latest runs {rows}; pending outbox {pending}")


def latency(chain: int, joins: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        write(ws, "p0", "111111111111", STEP)
        for i in range(1, chain):
            acct = f"{(i % 9) + 1}" * 12
            prev_acct = f"{((i - 1) % 9) + 1}" * 12 if i > 1 else "111111111111"
            write(ws, f"p{i}", acct, "trigger:\n  executions:\n    allOf:\n"
                  f"      - {{name: p{i - 1}, account: \"{prev_acct}\", status: [SUCCEEDED]}}\n"
                  + STEP)
        for k in range(joins):
            write(ws, f"a{k}", "111111111111", STEP)
            write(ws, f"b{k}", "222222222222", STEP)
            write(ws, f"j{k}", "333333333333", "trigger:\n  executions:\n    allOf:\n"
                  f"      - {{name: a{k}, account: \"111111111111\", status: [SUCCEEDED]}}\n"
                  f"      - {{name: b{k}, account: \"222222222222\", status: [SUCCEEDED]}}\n"
                  + STEP)
        day = "2026-11-26"
        proc = up(ws, until_idle=False)
        first_line_then_drain(proc)
        conn = sqlite3.connect(ws / ".dpc" / "state.db")
        t0 = time.perf_counter()
        # The chain: one run at a time, each started by its parent's success.
        poke_queue(ws, [("p0", day)])
        wait_for(conn, f"p{chain - 1}")
        # The joins, a pair of parents at a time, so the figure is the trigger path and
        # not time spent queued behind other runs in the executor pool.
        for k in range(joins):
            poke_queue(ws, [(f"a{k}", day), (f"b{k}", day)])
            try:
                wait_for(conn, f"j{k}")
            except TimeoutError:
                proc.send_signal(10)  # SIGUSR1: the runtime dumps its threads
                time.sleep(1)
                raise
        wall = time.perf_counter() - t0
        proc.send_signal(2)
        proc.wait(timeout=30)
        rows = {r[0].split("/", 1)[1]: (r[1], r[2]) for r in conn.execute(
            "SELECT pipeline, start_ms, stop_ms FROM lr_runs WHERE status = 'SUCCEEDED'")}
        conn.close()
        chain_lat = [rows[f"p{i}"][0] - rows[f"p{i - 1}"][1] for i in range(1, chain)]
        join_lat = [rows[f"j{k}"][0] - max(rows[f"a{k}"][1], rows[f"b{k}"][1])
                    for k in range(joins)]
        assert len(rows) == chain + 3 * joins, f"only {len(rows)} runs succeeded"
        both = chain_lat + join_lat
        print(f"trigger latency, last parent SUCCEEDED -> child RUNNING "
              f"({len(chain_lat)} chain links, {len(join_lat)} AND-joins; {wall:.1f}s wall):")
        for label, vals in (("chain", chain_lat), ("and-join", join_lat), ("all", both)):
            print(f"  {label:<9} p50 {statistics.median(vals):6.1f} ms   "
                  f"p99 {percentile(vals, 99):6.1f} ms   max {max(vals):6.1f} ms")


def throughput(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        write(ws, "noop", "111111111111", STEP)
        # Start-up time and idle memory, on an empty queue.
        t0 = time.perf_counter()
        proc = up(ws, until_idle=False)
        line = first_line_then_drain(proc)
        ready = time.perf_counter() - t0
        time.sleep(1.0)
        idle = rss_mib(proc.pid)
        print(f"`dpc local up` to ready: {ready * 1000:.0f} ms (process start included); "
              f"{line.strip()}")
        print(f"resident memory idle: {idle:.1f} MiB")
        # Under load: queue n runs while it is up, sample RSS until they are done.
        peak = [0.0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_mib(proc.pid))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        queue(ws, [("noop", f"2026-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}")
                   for i in range(n)])
        subprocess.run([DPC, "local", "start", "noop", "--date", "2026-11-26", "-w", str(ws)],
                       capture_output=True, check=True)  # also pokes the runtime
        conn = sqlite3.connect(ws / ".dpc" / "state.db")
        while conn.execute("SELECT COUNT(*) FROM lr_runs WHERE status IN "
                           "('PENDING','RUNNING')").fetchone()[0]:
            time.sleep(0.2)
        first, last, count = conn.execute(
            "SELECT MIN(start_ms), MAX(stop_ms), COUNT(*) FROM lr_runs").fetchone()
        conn.close()
        done.set()
        sampler.join()
        proc.send_signal(2)
        proc.wait(timeout=30)
        minutes = (last - first) / 60000
        print(f"{count} independent no-op runs in {(last - first) / 1000:.1f}s: "
              f"{count / minutes:.0f} runs/minute")
        print(f"resident memory under load (peak): {peak[0]:.1f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chain", type=int, default=200)
    ap.add_argument("--joins", type=int, default=50)
    ap.add_argument("--runs", type=int, default=1000)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    latency(args.chain, args.joins)
    throughput(args.runs)


if __name__ == "__main__":
    main()
