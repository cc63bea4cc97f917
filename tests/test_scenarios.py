"""The scenario table of docs/triggers.md, run through the real ``dpc simulate`` CLI.

Every ``case-study/events/sNN_*.jsonl`` is fed to ``dpc simulate --format json`` through the
CLI's entry point ``dpc_core.cli.main:main`` (in process, to keep the suite quick; a few tests
run it in a fresh interpreter to prove that stdout carries nothing but JSON lines and that
bad input ends without a traceback) and the decisions are compared with
``sNN_*.expected.json``: pipeline, account, window and the parent execution ARNs, in order.
Plus the ``rerun: on-new-parent-run`` variant of scenario 7 (the pipeline files in
``tests/fixtures/rerun-on-new-parent-run``) and bad input, which exits 2 naming the file and
line, without a traceback.

The seed case study and its scenario streams are copied into ``examples/seed``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CASE_STUDY = REPO / "examples" / "seed"
EVENTS = CASE_STUDY / "events"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCENARIOS = sorted(EVENTS.glob("s[0-9][0-9]_*.jsonl"))

#: Step Functions execution names: 1-80 characters of letters, digits, '-' and '_'.
EXECUTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def run_dpc(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the ``dpc`` entry point (``dpc_core.cli.main:main``) in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "dpc_core.cli.main", *map(str, args)],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
    )


def run_in_process(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``dpc_core.cli.main:main`` here, capturing what it writes and its exit code."""
    import contextlib
    import io

    from dpc_core.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return subprocess.CompletedProcess(list(map(str, args)), code, out.getvalue(),
                                       err.getvalue())


def simulate_json(*pipeline_dirs: Path, events: Path,
                  fresh_process: bool = False) -> list[dict[str, Any]]:
    """``dpc simulate --format json``: exit 0, and every stdout line is one JSON object."""
    args: list[str | Path] = ["simulate"]
    for d in pipeline_dirs:
        args += ["--pipelines", d]
    args += ["--events", events, "--format", "json"]
    proc = run_dpc(*args) if fresh_process else run_in_process(*args)
    assert proc.returncode == 0, proc.stderr
    decisions = []
    for line in proc.stdout.splitlines():
        decision = json.loads(line)  # anything but a JSON line on stdout fails here
        assert isinstance(decision, dict), line
        decisions.append(decision)
    return decisions


def essentials(decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fields an ``sNN_*.expected.json`` pins down."""
    return [{"pipeline": d["pipeline"], "account": d["account"], "window": d["window"],
             "parents": [p["executionArn"] for p in d["parents"]]} for d in decisions]


def test_the_case_study_is_where_the_tests_expect_it() -> None:
    # Guards the parametrization below: an empty glob would silently test nothing.
    assert len(SCENARIOS) == 12, f"expected s01..s12 in {EVENTS}"


@pytest.mark.parametrize("events", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_decisions_match_the_expected_file(events: Path) -> None:
    expected = json.loads(events.with_name(events.stem + ".expected.json").read_text())
    decisions = simulate_json(CASE_STUDY, events=events)

    assert essentials(decisions) == expected
    for d in decisions:
        assert EXECUTION_NAME.match(d["executionName"]), d["executionName"]
        for parent in d["parents"]:
            assert set(parent) == {"pipeline", "account", "executionArn", "status"}
    # One execution per trigger: names never repeat within a stream.
    assert len({d["executionName"] for d in decisions}) == len(decisions)


def test_execution_names_are_the_same_in_separate_processes() -> None:
    # s02 is s01 with every event delivered three times: the same trigger, so the same
    # execution name, computed by another process from another event stream.
    first = simulate_json(CASE_STUDY, events=EVENTS / "s01_happy_path.jsonl",
                          fresh_process=True)
    second = simulate_json(CASE_STUDY, events=EVENTS / "s02_duplicates.jsonl",
                           fresh_process=True)
    assert [d["executionName"] for d in first] == [d["executionName"] for d in second]
    assert len(first) == 1


def test_scenario_7_with_rerun_on_new_parent_run_triggers_again_naming_run_2() -> None:
    decisions = simulate_json(FIXTURES / "rerun-on-new-parent-run",
                              events=EVENTS / "s07_correction_rerun_never.jsonl")

    listings = "arn:aws:states:eu-west-1:111111111111:execution:listings:"
    searches = "arn:aws:states:eu-west-1:222222222222:execution:searches:sched-d0"
    assert essentials(decisions) == [
        {"pipeline": "pipeline-x", "account": "333333333333", "window": "2026-11-26",
         "parents": [listings + "sched-d0", searches]},
        {"pipeline": "pipeline-x", "account": "333333333333", "window": "2026-11-26",
         "parents": [listings + "correction-1", searches]},
    ]
    # The second trigger is a new execution of the same window, not a replay of the first.
    assert decisions[0]["executionName"] != decisions[1]["executionName"]


def assert_bad_input(proc: subprocess.CompletedProcess[str], where: str) -> None:
    """Exit 2, a message naming ``FILE:LINE``, no traceback and no decisions."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert where in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_an_event_line_that_is_not_json_exits_2_naming_file_and_line() -> None:
    # In a fresh interpreter: the real process exit code, and stderr free of a traceback.
    events = FIXTURES / "bad-events" / "invalid_json.jsonl"
    proc = run_dpc("simulate", "--pipelines", CASE_STUDY, "--events", events, "--format", "json")
    assert_bad_input(proc, f"{events}:3:")
    assert "invalid JSON" in proc.stderr


def test_an_event_with_an_unknown_status_is_rejected_the_rest_decided_and_exit_is_2() -> None:
    # docs/triggers.md: an unknown status is bad input (exit 2, FILE:LINE, no traceback); rule 8:
    # the event is rejected and the events after it are processed as usual.
    events = FIXTURES / "bad-events" / "unknown_status.jsonl"
    proc = run_in_process("simulate", "--pipelines", CASE_STUDY, "--events", events,
                          "--format", "json")
    assert proc.returncode == 2, proc.stderr
    assert f"{events}:2: rejected: bad status event: detail.status:" in proc.stderr
    assert "1 event(s)" in proc.stderr and "bad input" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "3 new" in proc.stderr  # lines 1, 3 and 4 were recorded


def _event_line(**detail: object) -> dict[str, object]:
    """Line 1 of scenario 1 (listings RUNNING) with ``detail`` fields replaced."""
    first = json.loads((EVENTS / "s01_happy_path.jsonl").read_text().splitlines()[0])
    first["detail"].update(detail)
    return dict(first)


def _write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


HOSTILE_FIELDS = {
    "start_in_year_10000": {"startDate": 253_402_300_800_000},
    "redrive_count_above_2_63": {"redriveCount": 2**63 + 1},
    "start_date_true": {"startDate": True},
    "start_date_string": {"startDate": "1795662000000"},
    "negative_redrive_count": {"redriveCount": -1},
    "status_outside_the_five": {"status": "PENDING_REDRIVE"},
    "malformed_execution_arn": {"executionArn": "arn:aws:states:eu-west-1:111111111111:x"},
    "malformed_state_machine_arn": {"stateMachineArn": "listings"},
    "arn_with_control_character": {
        "executionArn": "arn:aws:states:eu-west-1:111111111111:execution:listings:a\x1eb"},
    "deeply_nested_input": {"input": '{"dpc": ' + "[" * 5000 + "]" * 5000 + "}"},
    "logical_date_garbage": {"input": '{"dpc": {"logicalDate": "garbage"}}'},
    "logical_date_compact": {"input": '{"dpc": {"logicalDate": "20261126"}}'},
    "logical_date_object": {"input": '{"dpc": {"logicalDate": {"a": 1}}}'},
    "logical_date_shell": {"input": '{"dpc": {"logicalDate": "$(id)>x;#"}}'},
    "logical_date_not_a_day": {"input": '{"dpc": {"logicalDate": "2026-02-30"}}'},
    "logical_hour_25": {"input": '{"dpc": {"logicalDate": "2026-11-26T25"}}'},
}


@pytest.mark.parametrize("fields", HOSTILE_FIELDS.values(), ids=list(HOSTILE_FIELDS))
def test_an_event_with_a_bad_field_is_reported_by_line_and_the_next_events_decide(
        tmp_path: Path, fields: dict[str, object]) -> None:
    good = (EVENTS / "s01_happy_path.jsonl").read_bytes().splitlines()
    bad = json.dumps(_event_line(**fields)).encode()
    events = _write_lines(tmp_path / "events.jsonl", [bad, *good])
    proc = run_in_process("simulate", "--pipelines", CASE_STUDY, "--events", events,
                          "--format", "json")

    assert proc.returncode == 2, proc.stderr
    assert f"{events}:1: rejected: bad status event:" in proc.stderr
    assert "Traceback" not in proc.stderr
    # The events after it were processed as usual: scenario 1's one trigger.
    assert [json.loads(line)["pipeline"] for line in proc.stdout.splitlines()] == [
        "pipeline-x"]


@pytest.mark.parametrize("line", [b'{"detail": "\xff\xfe"}', b"\xc3\x28"],
                         ids=["invalid_utf8_in_a_string", "invalid_utf8_sequence"])
def test_a_line_that_is_not_utf8_exits_2_naming_file_and_line(tmp_path: Path,
                                                              line: bytes) -> None:
    first = (EVENTS / "s01_happy_path.jsonl").read_bytes().splitlines()[0]
    events = _write_lines(tmp_path / "events.jsonl", [first, line])
    proc = run_dpc("simulate", "--pipelines", CASE_STUDY, "--events", events,
                   "--format", "json")
    assert_bad_input(proc, f"{events}:2:")
    assert "not UTF-8" in proc.stderr


def test_a_line_longer_than_an_eventbridge_event_exits_2_naming_file_and_line(
        tmp_path: Path) -> None:
    first = (EVENTS / "s01_happy_path.jsonl").read_bytes().splitlines()[0]
    huge = b'{"x": "' + b"a" * (2 << 20) + b'"}'
    events = _write_lines(tmp_path / "events.jsonl", [first, huge])
    proc = run_in_process("simulate", "--pipelines", CASE_STUDY, "--events", events,
                          "--format", "json")
    assert_bad_input(proc, f"{events}:2:")
    assert "longer than" in proc.stderr


def test_an_event_file_has_a_line_and_byte_bound(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """An endless input of short lines (`yes ''`) ends at the bound, as /dev/zero ends at
    the line-length bound: simulate and inject read with the same scanner."""
    from dpc_core import simulate
    from dpc_core.errors import ValidationFailed

    events = tmp_path / "events.jsonl"
    events.write_text("\n" * 11)
    monkeypatch.setattr(simulate, "MAX_EVENT_LINES", 10)
    with pytest.raises(ValidationFailed, match=r"events.jsonl:11:1: more than 10 lines"):
        list(simulate.read_events(events))
    events.write_text("\n" * 10)
    assert list(simulate.read_events(events)) == []


@pytest.mark.parametrize("depth", [100, 100_000])
def test_a_deeply_nested_json_line_exits_2_naming_file_and_line(tmp_path: Path,
                                                                depth: int) -> None:
    events = _write_lines(tmp_path / "events.jsonl", [b"[" * depth + b"]" * depth])
    proc = run_in_process("simulate", "--pipelines", CASE_STUDY, "--events", events,
                          "--format", "json")
    assert_bad_input(proc, f"{events}:1:")
    assert "nested deeper" in proc.stderr


def test_a_reference_to_an_undefined_pipeline_exits_2_naming_file_and_line() -> None:
    proc = run_in_process("simulate", "--pipelines", CASE_STUDY,
                   "--pipelines", FIXTURES / "bad-undefined-parent",
                   "--events", EVENTS / "s01_happy_path.jsonl", "--format", "json")
    where = FIXTURES / "bad-undefined-parent" / "orphan" / "pipeline.yaml"
    assert_bad_input(proc, f"{where}:7:")
    assert "nightly-export" in proc.stderr


def test_a_pipeline_without_account_exits_2_naming_file_and_line() -> None:
    proc = run_in_process("simulate", "--pipelines", CASE_STUDY,
                   "--pipelines", FIXTURES / "bad-no-account",
                   "--events", EVENTS / "s01_happy_path.jsonl", "--format", "json")
    where = FIXTURES / "bad-no-account" / "anonymous" / "pipeline.yaml"
    assert_bad_input(proc, f"{where}:2:")
    assert "account" in proc.stderr
