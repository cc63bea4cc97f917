"""`dpc local inject` over a file of many bad lines: one pass, linear in the lines.

    python bench/inject_bad_lines.py [--lines 16000]

Prints the wall time of `dpc local inject` on LINES lines that are not JSON followed by
the case study's good events, and of twice as many (linear: about twice the time; it
was quadratic, 16,000 bad lines took 35 s). Target: 16,000 bad lines within 2 s.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DPC = str(Path(sys.executable).parent / "dpc")
GOOD = REPO / "examples" / "seed" / "events" / "s01_happy_path.jsonl"
TARGET_S = 2.0


def timed(ws: Path, lines: int, tmp: Path) -> float:
    events = tmp / f"events-{lines}.jsonl"
    events.write_text("{oops\n" * lines + GOOD.read_text())
    started = time.perf_counter()
    proc = subprocess.run([DPC, "local", "inject", "--events", str(events), "-w", str(ws)],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    assert proc.returncode == 2 and f"{lines} bad line(s) skipped" in proc.stderr, proc.stderr
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=16_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        ws = tmp / "ws"
        shutil.copytree(REPO / "examples" / "case-study-shell", ws,
                        ignore=shutil.ignore_patterns(".dpc"))
        one = timed(ws, args.lines, tmp)
        two = timed(ws, 2 * args.lines, tmp)
    print(f"{args.lines:,} bad lines: {one:.2f} s; {2 * args.lines:,}: {two:.2f} s "
          f"(target {TARGET_S} s for 16,000)")


if __name__ == "__main__":
    main()
