"""The corpus of broken pipeline.yaml files, checked through the real `dpc validate`.

Each directory of ``tests/broken/`` is one mistake a user can make:

- ``pipeline.yaml``: the broken file;
- ``expected.txt``: the exact lines `dpc validate pipeline.yaml` must print on stderr,
  run from that directory (``FILE:LINE:COL: field: message``, file relative to it);
- ``plugins.txt`` (optional): the entry-point plugins installed for that case (one per
  line, given to dpc as the ``DPC_PLUGINS`` allow-list), to show what a user without
  some first-party plugin sees.

To keep the suite fast, the cases sharing a plugin set are validated by one `dpc
validate` process (which must report the problems of every file at once); each case
is then its own test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BROKEN = REPO / "tests" / "broken"
CASE_STUDY = REPO / "examples" / "seed"
DPC = str(Path(sys.executable).parent / "dpc")
CASES = sorted(p.name for p in BROKEN.iterdir() if (p / "pipeline.yaml").is_file())


@dataclass(frozen=True)
class Run:
    """One `dpc validate` process over several case directories."""

    returncode: int
    stdout: str
    stderr: str
    by_case: dict[str, list[str]]


def _plugins(case: str) -> str | None:
    """The DPC_PLUGINS allow-list of a case, or None for every installed plugin."""
    f = BROKEN / case / "plugins.txt"
    if not f.exists():
        return None
    names = [ln.strip() for ln in f.read_text().splitlines()]
    return ",".join(n for n in names if n and not n.startswith("#"))


def _env(allow: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DPC_PLUGINS"}
    if allow is not None:
        env["DPC_PLUGINS"] = allow
    return env


def _validate(args: list[str], cwd: Path, allow: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DPC, "validate", *args], cwd=cwd, capture_output=True, text=True,
                          env=_env(allow), timeout=120)


@pytest.fixture(scope="module")
def runs() -> dict[str | None, Run]:
    """Validate every case: one process per plugin set, stderr split by case directory."""
    groups: dict[str | None, list[str]] = defaultdict(list)
    for case in CASES:
        groups[_plugins(case)].append(case)
    out: dict[str | None, Run] = {}
    for allow, cases in groups.items():
        proc = _validate([f"{c}/pipeline.yaml" for c in cases], BROKEN, allow)
        by_case: dict[str, list[str]] = defaultdict(list)
        for line in proc.stderr.splitlines():
            case, sep, rest = line.partition("/")
            by_case[case if sep else ""].append(rest if sep else line)
        out[allow] = Run(proc.returncode, proc.stdout, proc.stderr, dict(by_case))
    return out


def test_the_corpus_has_at_least_35_cases_each_with_an_expectation() -> None:
    assert len(CASES) >= 35
    missing = [c for c in CASES if not (BROKEN / c / "expected.txt").is_file()]
    assert not missing


@pytest.mark.parametrize("case", CASES)
def test_broken_file_is_reported_at_its_exact_position(
    case: str, runs: dict[str | None, Run]
) -> None:
    run = runs[_plugins(case)]
    expected = (BROKEN / case / "expected.txt").read_text().splitlines()
    assert expected, f"{case}/expected.txt is empty"
    assert run.by_case.get(case, []) == expected


def test_every_line_of_the_corpus_run_belongs_to_a_case(runs: dict[str | None, Run]) -> None:
    for run in runs.values():
        assert run.by_case.get("", []) == []


def test_a_broken_corpus_exits_2_without_traceback(runs: dict[str | None, Run]) -> None:
    for run in runs.values():
        assert run.returncode == 2
        assert "Traceback" not in run.stderr
        assert run.stdout == ""


def test_all_problems_of_one_file_are_reported_at_once() -> None:
    case = BROKEN / "several_independent_errors"
    proc = _validate(["pipeline.yaml"], case, None)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2
    assert lines == (case / "expected.txt").read_text().splitlines()
    assert len(lines) >= 3


def test_a_single_problem_is_printed_as_a_bare_position_line() -> None:
    case = BROKEN / "yaml_tab_indentation"
    proc = _validate(["pipeline.yaml"], case, None)
    assert proc.returncode == 2
    assert proc.stderr == (case / "expected.txt").read_text()


def test_a_type_whose_plugin_is_left_out_says_how_to_load_it() -> None:
    lines = (BROKEN / "step_plugin_not_installed" / "expected.txt").read_text()
    assert "add step_spark to DPC_PLUGINS" in lines  # what the entry points say
    assert "installed: shell;" in lines


def test_the_case_study_validates_as_written() -> None:
    proc = _validate([str(CASE_STUDY)], REPO, None)
    assert proc.returncode == 0, proc.stderr
    assert "4 pipeline(s) valid" in proc.stdout


def test_the_example_case_study_validates() -> None:
    proc = _validate([str(REPO / "examples" / "case-study")], REPO, None)
    assert proc.returncode == 0, proc.stderr
