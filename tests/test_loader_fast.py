"""The fast YAML path (libyaml) reads every file it accepts exactly as the limited
pure-Python loader does: same values, same types, same positions.

`parse_yaml` tries libyaml first and falls back to the limited loader for anything
unusual or wrong, so users only ever see the limited loader's errors. What must never
happen is that the fast path accepts a file and gives something else: a different value,
a type (`1` vs `True` vs `"1"`), or a position an error message would then point at.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from dpc_core import loader
from tests.test_loader_fuzz import SEEDS, _mutate

REPO = Path(__file__).resolve().parents[1]
CORPUS = sorted((REPO / "tests" / "broken").glob("*/pipeline.yaml"))
EXAMPLES = sorted((REPO / "examples").rglob("pipeline.yaml"))


def _typed(value: Any) -> Any:
    """``value`` with every leaf tagged by its type (``==`` takes True for 1)."""
    if isinstance(value, dict):
        return {_typed(k): _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


def _same_or_refused(text: str) -> str:
    """'fast' when the fast path accepted ``text`` (and agreed), else 'fallback'."""
    try:
        fast = loader._fast_parse(text)
    except Exception:
        return "fallback"
    try:
        slow = loader._limited_parse(text)
    except (yaml.YAMLError, loader._DuplicateKey) as exc:
        pytest.fail(f"libyaml accepts what the limited loader refuses ({exc}):\n{text[:400]!r}")
    assert _typed(fast[0]) == _typed(slow[0]), text[:400]
    assert fast[1].values == slow[1].values, text[:400]
    assert fast[1].keys == slow[1].keys, text[:400]
    return "fast"


def test_fast_path_agrees_on_shipped_and_broken_files() -> None:
    assert len(CORPUS) > 50
    for f in CORPUS:
        _same_or_refused(f.read_text(encoding="utf-8", errors="replace"))
    used = {f: _same_or_refused(f.read_text()) for f in EXAMPLES}
    # The seed's files, as users write them, take the fast path (it is for usual files).
    seed = [f for f in EXAMPLES if f.parent.parent.name == "seed"]
    assert len(seed) == 4 and all(used[f] == "fast" for f in seed)


def test_fast_path_agrees_on_mutated_files() -> None:
    r = random.Random(20261128)
    originals = [p.read_text() for p in SEEDS]
    used = [_same_or_refused(_mutate(r.choice(originals), r)) for _ in range(1500)]
    # Both outcomes are exercised: mutations that still parse, and mutations refused.
    assert used.count("fast") > 100 and used.count("fallback") > 100


@pytest.mark.parametrize("text", [
    "a: &x [1]\nb: *x\n",                     # aliases: counted by the limited loader
    "base: &b {t: 1}\nc:\n  <<: *b\n",       # merge key
    "k: " + "x" * (loader.MAX_STRING + 1),    # long string
    "".join("  " * i + f"k{i}:\n" for i in range(loader.MAX_DEPTH + 2)) + "  " * 102 + "v",
    "a: 1\na: 2\n",                           # duplicate key
    "? [a, b]\n: c\n",                        # a key that is a collection
])
def test_unusual_files_take_the_limited_loader(text: str) -> None:
    with pytest.raises(Exception):  # noqa: B017 - any refusal means: fall back
        loader._fast_parse(text)
