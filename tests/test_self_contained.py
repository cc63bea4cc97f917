"""The repository stands alone: nothing tracked points outside the clone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: A path that leaves the clone: the sibling spec folder, or an absolute build-machine path.
OUTSIDE = re.compile(r"\.\./shared\b|/work/shared|/work/main\b|\bshared/spec\b")


def test_no_tracked_file_reads_outside_the_clone() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    offenders = []
    for rel in files:
        path = REPO / rel
        if rel == "tests/test_self_contained.py" or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        offenders += [f"{rel}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1)
                      if OUTSIDE.search(line)]
    assert not offenders, "\n".join(offenders)
