"""Start-up cost of the CLI: median wall time of `dpc --help` against a bare interpreter.

    python bench/cli_startup.py [--runs 20] [--importtime]

Prints both medians and their difference; the target is `dpc --help` within 150 ms of
`python -c pass`. With ``--importtime`` it also prints the ten slowest imports of
`dpc --help` (cumulative, from ``python -X importtime``) to find what to make lazy.

Bytecode: an installed package has its .pyc files, so the children run without
``PYTHONDONTWRITEBYTECODE`` and the warm-up run writes what is missing; otherwise
every run would re-compile click from source and measure the compiler. The CPU time
(user + sys) of the children is printed too: on a busy machine it moves less than
wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_MS = 150.0


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_ms(argv: list[str], runs: int) -> tuple[float, float]:
    """Median wall time and median CPU time of ``argv`` in ms, after one warm-up run."""
    subprocess.run(argv, capture_output=True, check=True, env=ENV)
    wall, cpu = [], []
    for _ in range(runs):
        cpu_before = _children_cpu_s()
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=ENV)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((_children_cpu_s() - cpu_before) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def slowest_imports(argv: list[str], top: int = 10) -> list[tuple[int, str]]:
    """``(cumulative µs, module)`` of the slowest imports when running ``argv``."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True,
                          text=True, check=True, env=ENV)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, _, rest = line.partition(":")
        _self, cumulative, name = (part.strip() for part in rest.split("|"))
        rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:top]


def main() -> int:
    """Measure, print the figures, return 1 when the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()

    dpc = str(Path(sys.executable).parent / "dpc")
    bare, bare_cpu = median_ms([sys.executable, "-c", "pass"], args.runs)
    help_, help_cpu = median_ms([dpc, "--help"], args.runs)
    diff = help_ - bare
    print(f"python -c pass : {bare:7.1f} ms wall, {bare_cpu:7.1f} ms CPU (median of {args.runs})")
    print(f"dpc --help     : {help_:7.1f} ms wall, {help_cpu:7.1f} ms CPU (median of {args.runs})")
    print(f"difference     : {diff:7.1f} ms wall, {help_cpu - bare_cpu:7.1f} ms CPU "
          f"(target: within {TARGET_MS:.0f} ms wall) {'OK' if diff <= TARGET_MS else 'OVER'}")
    if args.importtime:
        print("slowest imports of `dpc --help` (cumulative):")
        code = "from dpc_core.cli.main import main; main(['--help'])"
        for micros, name in slowest_imports(["-c", code]):
            print(f"  {micros / 1000:7.1f} ms  {name}")
    return 0 if diff <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
