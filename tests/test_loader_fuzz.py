"""Hostile pipeline.yaml: seeded random mutations of the seed's pipelines.

Every mutated file must end in one of two ways, quickly: it loads, or the loader raises
its typed error (:class:`ValidationFailed`) whose every line names ``FILE:LINE:COL``.
Never another exception (RecursionError, ValueError, MemoryError...), never more than a
second of CPU per file (the CPU time of the thread that loads, not wall-clock time and
not the process's: the test machine is shared, another test's leftover thread in the same
worker process must not count, and what the loader controls is the work it does; the
limits keep that linear in a file of at most 64 KiB).

A run does ``DPC_FUZZ_MUTATIONS`` mutations (600 by default, ~10 s; 3,000 for the full
run, ``DPC_FUZZ_MUTATIONS=3000``); ``DPC_FUZZ_SEED`` picks another seed. The slowest
files and the count of each outcome are printed (``pytest -s``).
"""

from __future__ import annotations

import gc
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from dpc_core.errors import ValidationFailed
from dpc_core.loader import load_file
from dpc_core.plugins import Registry, get_registry

REPO = Path(__file__).resolve().parents[1]
SEEDS = sorted((REPO / "examples" / "seed").glob("*/pipeline.yaml"))
MUTATIONS = int(os.environ.get("DPC_FUZZ_MUTATIONS", "600"))
SEED = int(os.environ.get("DPC_FUZZ_SEED", "20261128"))
MAX_SECONDS = 1.0

# YAML constructs a careless or hostile author can paste anywhere.
_CONSTRUCTS: list[Callable[[random.Random], str]] = [
    lambda r: "x: &a [*a]\n",
    lambda r: "x: &a {k: *a}\n",
    lambda r: "&a ",
    lambda r: "*a ",
    lambda r: "<<: *a\n",
    lambda r: "base: &base {type: shell}\n",
    lambda r: "- <<: *base\n",
    lambda r: "l0: &l0 [" + ",".join(["lol"] * 10) + "]\n" + "".join(
        f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]\n"
        for i in range(1, r.randint(3, 9))),
    lambda r: "[" * r.choice([10, 100, 1000, 5000]),
    lambda r: "]" * r.randint(1, 50),
    lambda r: "{a: " * r.choice([10, 150, 1000]) + "x" + "}" * r.randint(0, 1000),
    lambda r: "".join("  " * i + "- \n" for i in range(r.choice([20, 120, 400]))),
    lambda r: "".join(" " * i + f"k{i}:\n" for i in range(r.choice([20, 150]))),
    lambda r: "allOf: [" * r.choice([30, 33, 40, 250]) + "{name: p, status: [SUCCEEDED]}"
              + "]" * r.randint(0, 250),
    lambda r: "x" * r.choice([1_000, 10_001, 40_000, 200_000]),
    lambda r: '"' + "a@" + "." * r.choice([1_000, 9_000, 40_000]) + '@"',
    lambda r: "\n".join(["# padding line"] * r.choice([100, 10_000])) + "\n",
    lambda r: chr(r.choice([0, 1, 7, 8, 0x0B, 0x0C, 0x1B, 0x7F, 0x85, 0xFEFF, 0xFFFE])),
    lambda r: "\t",
    lambda r: "\t- name: tabbed\n",
    lambda r: "\r",
    lambda r: "? [a, b]\n: c\n",
    lambda r: "!!python/object:os.system 'echo hi'\n",
    lambda r: "!!binary 'not base64!'\n",
    lambda r: "!!timestamp 2026-02-30\n",
    lambda r: "2026-02-30",
    lambda r: "!!int 0x" + "f" * r.choice([10, 5_000]),
    lambda r: r.choice(["!!map", "!!set", "!!seq", "!!omap", "!!pairs"]) + " every-day ",
    lambda r: r.choice(["!!bool", "!!int", "!!float", "!!timestamp", "!!null", "!"]) + " "
              + r.choice(["", "maybe", "x", "12:30", "\n"]),
    lambda r: "1" * r.choice([20, 5_000]),
    lambda r: "---\n",
    lambda r: "...\n",
    lambda r: "%YAML 1.1\n---\n",
    lambda r: "name: a/b\n",
    lambda r: "  - name: ../../etc\n    type: shell\n    command: x\n",
    lambda r: 'rate: "rate(' + " " * r.choice([10, 20_000]) + 'x"\n',
    lambda r: 'cron: "' + " " * 9_000 + '"\n',
    lambda r: "hour: " + ",".join(["1"] * r.choice([10, 4_000])) + "\n",
    lambda r: "timezone: " + "Europe/" * r.choice([2, 1_000]) + "\n",
    lambda r: "account: " + "9" * r.choice([12, 4_500]) + "\n",
    lambda r: "status: [" + ", ".join(["SUCCESS"] * r.choice([5, 3_000])) + "]\n",
    lambda r: "\\U0001F600 ünïcødé ☃\n",
    lambda r: "'unterminated\n",
    lambda r: '"\\x" ',
    lambda r: ": : :\n",
    lambda r: "- - - - - - - - - - x\n",
]


def _mutate(text: str, r: random.Random) -> str:
    """One to three random edits of ``text``."""
    for _ in range(r.randint(1, 3)):
        at = r.randint(0, len(text))
        kind = r.random()
        if kind < 0.2 and text:  # flip a character
            i = r.randrange(len(text))
            text = text[:i] + chr(r.choice([r.randint(0, 0x7F), r.randint(0x80, 0x10FFFF)])
                                  if r.random() < 0.3 else r.randint(0x20, 0x7E)) + text[i + 1:]
        elif kind < 0.35:  # delete a span
            text = text[:at] + text[at + r.randint(1, 40):]
        elif kind < 0.5:  # duplicate a span
            span = text[at:at + r.randint(1, 200)]
            text = text[:at] + span * r.randint(2, 5) + text[at:]
        else:  # insert a construct
            text = text[:at] + r.choice(_CONSTRUCTS)(r) + text[at:]
    return text


def _encode(text: str) -> bytes:
    # Lone surrogates from a random code point cannot be encoded: write them raw.
    return text.encode("utf-8", errors="surrogatepass")


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Every installed plugin, loaded once."""
    return get_registry()


def test_mutated_pipelines_load_or_fail_with_positions_quickly(
    tmp_path: Path, registry: Registry
) -> None:
    r = random.Random(SEED)
    originals = [p.read_text() for p in SEEDS]
    assert originals, "examples/seed has no pipeline.yaml"
    target = tmp_path / "pipeline.yaml"
    position = re.compile(rf"^{re.escape(str(target))}:\d+:\d+: ")
    outcomes: Counter[str] = Counter()
    timings: list[tuple[float, int, str]] = []
    started = time.perf_counter()
    for n in range(MUTATIONS):
        text = _mutate(r.choice(originals), r)
        target.write_bytes(_encode(text))
        # A full collection of whatever earlier tests left in this worker is not the
        # loader's work: collections wait until the file is read.
        gc.disable()
        t0 = time.thread_time()
        try:
            load_file(target, registry)
            outcome = "valid"
        except ValidationFailed as exc:
            outcome = "refused"
            assert exc.problems, f"mutation {n}: an error with no problem"
            for line in str(exc).splitlines():
                assert position.match(line), f"mutation {n}: no FILE:LINE:COL in {line[:200]!r}"
            assert all(p.line >= 1 and p.column >= 1 for p in exc.problems)
        except Exception as exc:  # any other exception is the failure
            pytest.fail(f"mutation {n} raised {type(exc).__name__}: {str(exc)[:300]}\n"
                        f"file starts: {text[:300]!r}")
        finally:
            elapsed = time.thread_time() - t0
            gc.enable()
        outcomes[outcome] += 1
        timings.append((elapsed, n, f"{len(text):,} chars: {text[:60]!r}"))
        assert elapsed < MAX_SECONDS, f"mutation {n} took {elapsed:.2f} s CPU: {text[:200]!r}"
    total = time.perf_counter() - started
    timings.sort(reverse=True)
    print(f"\n{MUTATIONS} mutations (seed {SEED}) in {total:.1f} s: {dict(outcomes)}; "
          f"slowest {timings[0][0] * 1000:.0f} ms, median "
          f"{timings[len(timings) // 2][0] * 1000:.1f} ms (CPU)")
    for elapsed, n, head in timings[:3]:
        print(f"  {elapsed * 1000:6.0f} ms  mutation {n}: {head}")
    assert outcomes["refused"] > MUTATIONS // 2  # the mutations do reach the error paths
