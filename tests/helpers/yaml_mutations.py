"""Pipeline files made hostile: the seed pipelines and random edits of them (YAML
constructs a careless or hostile author can paste anywhere), for the loader's fuzz tests."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SEEDS = sorted((REPO / "examples" / "seed").glob("*/pipeline.yaml"))


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


def mutate(text: str, r: random.Random) -> str:
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
