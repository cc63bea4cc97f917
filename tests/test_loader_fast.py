"""The fast YAML path (libyaml) reads every file it accepts exactly as the limited
pure-Python loader does: same values, same types, same positions.

`parse_yaml` tries libyaml first and falls back to the limited loader for anything
unusual or wrong, so users only ever see the limited loader's errors. What must never
happen is that the fast path accepts a file and gives something else: a different value,
a type (`1` vs `True` vs `"1"`), or a position an error message would then point at.
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.yaml_mutations import SEEDS, mutate

from dpc_core import loader

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
    """'fast' when the fast path accepted ``text`` (and agreed), else 'fallback' (and the
    limited loader, which then reads it, either reads it or refuses it with a YAML
    error: never another exception)."""
    try:
        fast = loader._fast_parse(text)
    except Exception:
        try:
            loader._limited_parse(text)
        except (yaml.YAMLError, loader._DuplicateKey):
            pass
        except Exception as exc:  # a traceback for the user
            pytest.fail(f"the limited loader raised {type(exc).__name__}: {exc}:\n"
                        f"{text[:400]!r}")
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
    used = [_same_or_refused(mutate(r.choice(originals), r)) for _ in range(1500)]
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


# -- explicit tags: generated documents ---------------------------------------------------

#: Tags a user can write, and values for them: good ones, wrong ones, none at all.
_TAGS = ["!!map", "!!set", "!!seq", "!!omap", "!!pairs", "!!str", "!!int", "!!float",
         "!!bool", "!!null", "!!timestamp", "!!binary", "!", "!<!>", "!local", ""]
_VALUES = ["", "every-day-at-3", "maybe", "true", "no", "42", "0x1f", "0xfz", "1.5", ".nan",
           "12:30", "1:02:03", "2026-11-26", "2026-02-30", "2026-11-26T06:00:00Z", "~",
           "'quoted'", '"06:00"', "aGVsbG8=", "[a, b]", "{a: 1}", "[]", "{}"]
_VALUE_LINE = re.compile(r"^( *(?:- )?[A-Za-z][\w-]*:)[ ]*(.*)$|^( *- )(\S.*)$")
TAG_DOCS = int(os.environ.get("DPC_FAST_TAG_DOCS", "4000"))


def _tagged(text: str, r: random.Random) -> str:
    """``text`` with one to three values (or list items) replaced by a tagged value,
    sometimes with the tag alone (`k: !!int`, `k: !`), sometimes inside a flow list."""
    lines = text.split("\n")
    spots = [i for i, ln in enumerate(lines) if _VALUE_LINE.match(ln)]
    for _ in range(r.randint(1, 3)):
        i = r.choice(spots)
        m = _VALUE_LINE.match(lines[i])
        if m is None:  # a line tagged already, on its key
            continue
        head = m[1] or m[3]
        tag, value = r.choice(_TAGS), r.choice(_VALUES)
        tagged = f"{tag} {value}".strip()
        kind = r.random()
        if kind < 0.15:
            tagged = f"[{tagged}, x]"
        elif kind < 0.25:
            tagged = f"{{k: {tagged}}}"
        elif kind < 0.35 and m[1]:  # the tag on a mapping key
            head = f"{tag} {head.strip().lstrip('- ')}"
            head = lines[i][:len(lines[i]) - len(lines[i].lstrip())] + head
            tagged = m[2]
        lines[i] = f"{head} {tagged}".rstrip()
    return "\n".join(lines)


def test_fast_path_agrees_on_generated_tags() -> None:
    """Collection tags on scalars (read as an empty collection), scalar tags with values
    they do not take (a KeyError from PyYAML), the bare `!` ('' on one path, None on the
    other): every generated document is read alike or refused with a YAML error."""
    r = random.Random(int(os.environ.get("DPC_FUZZ_SEED", "20261208")))
    originals = [p.read_text() for p in SEEDS]
    used: Counter[str] = Counter()
    for _ in range(TAG_DOCS):
        used[_same_or_refused(_tagged(r.choice(originals), r))] += 1
    print(f"\n{TAG_DOCS} tagged documents: {dict(used)}")
    assert used["fast"] > TAG_DOCS // 10 and used["fallback"] > TAG_DOCS // 10


@pytest.mark.parametrize("text", [
    "trigger: !!map every-day-at-3\n", "trigger: !!set x\n", "trigger: !!seq x\n",
    "trigger: !!omap x\n", "trigger: !!pairs x\n", "notifications: !!map FULL\n",
    "d: !!bool maybe\n", "d: !!bool\n", "d: !!int\n", "d: !!float\n", "d: !!timestamp\n",
    "d: !!timestamp soon\n",
])
def test_a_tag_that_does_not_fit_its_value_is_a_yaml_error_at_the_value(text: str) -> None:
    with pytest.raises(yaml.YAMLError) as info:
        loader.parse_yaml(text)
    mark = info.value.problem_mark  # type: ignore[attr-defined]
    assert (mark.line, mark.column) == (0, text.index("!"))
    assert "!!" in str(info.value.problem)  # type: ignore[attr-defined]


def test_a_bare_tag_reads_the_same_on_both_paths() -> None:
    for text in ("k: !\nj: 1\n", "k: !\n", "? !\n: 1\n"):
        assert _typed(loader.parse_yaml(text)[0]) == _typed(loader._limited_parse(text)[0])
    assert loader.parse_yaml("k: !\n")[0] == {"k": None}
