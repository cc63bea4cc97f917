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
from pathlib import Path

import pytest
from helpers.yaml_mutations import SEEDS, mutate

from dpc_core.errors import ValidationFailed
from dpc_core.loader import load_file
from dpc_core.plugins import Registry, get_registry

MUTATIONS = int(os.environ.get("DPC_FUZZ_MUTATIONS", "600"))
SEED = int(os.environ.get("DPC_FUZZ_SEED", "20261128"))
MAX_SECONDS = 1.0

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
        text = mutate(r.choice(originals), r)
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
