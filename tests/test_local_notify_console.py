"""The local runtime's notifications: a first run without credentials is quiet and honest
(each notification printed as it would be sent, one start-up line saying what to set),
`dpc local notifications` lists what went where, and each notification type sends what
README.md says (FAILURES_ONLY: one message per failed run, naming the step)."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from fakes.smtp_server import FakeSmtp
from local_helpers import SHELL_CASE_STUDY, A, copy_workspace, dpc, runs_of, write_pipeline

DAY = "2026-11-26"
#: Empty counts as unset: the test does not depend on the caller's environment.
NO_CREDENTIALS = {"SLACK_BOT_TOKEN": "", "DPC_SMTP_HOST": "", "OPSGENIE_API_KEY": ""}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The shell case study run once with no channel configured: workspace, console."""
    ws = copy_workspace(SHELL_CASE_STUDY, tmp_path_factory.mktemp("first") / "ws")
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    dpc("local", "start", "searches", "--date", DAY, "-w", ws)
    up = dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, env=NO_CREDENTIALS)
    return ws, up.stdout + up.stderr


def test_a_first_run_without_credentials_reports_no_failure(first_run: tuple[Path, str]) -> None:
    _, console = first_run
    assert "could not notify" not in console
    assert "Error" not in console


def test_one_start_up_line_names_the_unconfigured_channels_and_what_to_set(
        first_run: tuple[Path, str]) -> None:
    _, console = first_run
    lines = [line for line in console.splitlines() if "not configured" in line]
    assert len(lines) == 1
    for name in ("SLACK", "EMAIL", "OPSGENIE", "SLACK_BOT_TOKEN", "DPC_SMTP_HOST",
                 "OPSGENIE_API_KEY", "dpc local notifications"):
        assert name in lines[0]


def test_notifications_of_unconfigured_channels_are_printed_as_they_would_be_sent(
        first_run: tuple[Path, str]) -> None:
    _, console = first_run
    assert ("Slack #data-pipeline-alerts: [SUCCEEDED] pipeline-x (333333333333) pipeline for "
            f"{DAY}") in console
    assert f"Email rent-journey@example.com: [SUCCEEDED] pipeline-x (333333333333) pipeline " \
           f"for {DAY}" in console
    assert f"Email search-team@example.com: [RUNNING] searches (222222222222) pipeline for " \
           f"{DAY}" in console


def test_dpc_local_notifications_lists_what_was_sent_where(first_run: tuple[Path, str]) -> None:
    ws, _ = first_run
    rows = json.loads(dpc("local", "notifications", "-w", ws, "--format", "json").stdout)
    (x,) = runs_of(ws, "pipeline-x")

    x_rows = [r for r in rows if r["run_id"] == x["run_id"]]
    # FULL_EXECUTION, one step, two channels: 4 notes to each.
    assert sorted((r["channel"], r["address"]) for r in x_rows) == sorted(
        [("SLACK", "data-pipeline-alerts")] * 4 + [("EMAIL", "rent-journey@example.com")] * 4)
    assert {r["via"] for r in rows} == {"console"}
    assert all(r["time"].startswith("20") and r["text"] for r in rows)
    final = [r for r in x_rows if r["kind"] == "PIPELINE_FINISHED" and r["channel"] == "EMAIL"]
    assert final[0]["text"].startswith("Email rent-journey@example.com: [SUCCEEDED] pipeline-x")

    table = dpc("local", "notifications", "-w", ws, "--run", x["run_id"]).stdout
    assert table.splitlines()[0].split() == ["TIME", "(UTC)", "CHANNEL", "ADDRESS", "VIA", "RUN",
                                             "TEXT"]
    assert len(table.splitlines()) == 1 + 8


def _failing_pipeline(ws: Path, notification_type: str) -> None:
    write_pipeline(ws, "nightly", A, f"""trigger:
  schedule: {{hour: 3}}
steps:
  - {{name: load, type: shell, command: 'echo loading; exit 4'}}
notifications:
  type: {notification_type}
  targets:
    - {{channel: EMAIL, addresses: [team@example.com]}}
""")


def _subjects(received: list[Any]) -> list[str]:
    messages: list[EmailMessage] = [m.message for m in received]
    return [str(m["Subject"]) for m in messages]


# type, what a failed one-step run sends
SENT_FOR_A_FAILED_RUN = [
    ("FAILURES_ONLY", ["[FAILED] nightly (111111111111) pipeline for 2026-11-26"]),
    ("PIPELINE", ["[RUNNING] nightly (111111111111) pipeline for 2026-11-26",
                  "[FAILED] nightly (111111111111) pipeline for 2026-11-26"]),
    ("FULL_EXECUTION", ["[RUNNING] nightly (111111111111) pipeline for 2026-11-26",
                        "[RUNNING] nightly (111111111111) step load for 2026-11-26",
                        "[FAILED] nightly (111111111111) step load for 2026-11-26",
                        "[FAILED] nightly (111111111111) pipeline for 2026-11-26"]),
]


@pytest.mark.parametrize(("notification_type", "expected"), SENT_FOR_A_FAILED_RUN)
def test_each_notification_type_sends_what_it_promises_for_a_failed_run(
        tmp_path: Path, notification_type: str, expected: list[str]) -> None:
    ws = tmp_path / "ws"
    _failing_pipeline(ws, notification_type)
    with FakeSmtp() as smtp:
        dpc("local", "start", "nightly", "--date", DAY, "-w", ws)
        dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, check=False,
            env={"DPC_SMTP_HOST": smtp.host, "DPC_SMTP_PORT": str(smtp.port)})
        subjects = _subjects(smtp.received)

    assert [s.split(" in ")[0] for s in subjects] == expected
    # The run's final message names the step it failed in.
    assert subjects[-1].endswith(", failed step load")
    rows = json.loads(dpc("local", "notifications", "-w", ws, "--format", "json").stdout)
    assert [r["via"] for r in rows] == ["channel"] * len(expected)
