"""The case study on the local runtime sends Slack, email and OpsGenie notifications when
configured: real slack-sdk, smtplib and opsgenie-sdk against local servers that speak the
real protocols (tests/fakes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.opsgenie_server import FakeOpsGenie
from fakes.slack_server import FakeSlack
from fakes.smtp_server import FakeSmtp
from local_helpers import SHELL_CASE_STUDY, copy_workspace, dpc, runs_of

DAY = "2026-11-26"
TOKEN = "xoxb-test-token-123456"
KEY = "opsgenie-key-abcdef"
pytestmark = pytest.mark.case_study


@pytest.fixture
def servers() -> Iterator[tuple[FakeSlack, FakeSmtp, FakeOpsGenie]]:
    with FakeSlack(token=TOKEN) as slack, FakeSmtp() as smtp, \
            FakeOpsGenie(api_key=KEY) as opsgenie:
        yield slack, smtp, opsgenie


def test_case_study_sends_all_three_kinds_of_notification(
        tmp_path: Path, servers: tuple[FakeSlack, FakeSmtp, FakeOpsGenie]) -> None:
    slack, smtp, opsgenie = servers
    ws = copy_workspace(SHELL_CASE_STUDY, tmp_path / "ws")
    env = {"SLACK_BOT_TOKEN": TOKEN, "DPC_SLACK_API_URL": slack.api_url,
           "DPC_SMTP_HOST": smtp.host, "DPC_SMTP_PORT": str(smtp.port),
           "DPC_SMTP_FROM": "dpc@example.com",
           "OPSGENIE_API_KEY": KEY, "DPC_OPSGENIE_API_URL": opsgenie.url,
           "LISTINGS_FAIL": "1", "FALLBACK_FAIL": "1"}
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    dpc("local", "start", "searches", "--date", DAY, "-w", ws)
    up = dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, env=env, check=False)
    assert up.returncode == 1  # listings and its fallback failed, as this test wants
    assert TOKEN not in up.stdout + up.stderr and KEY not in up.stdout + up.stderr

    # Slack (listings, FULL_EXECUTION): one root per run, the rest replies in its thread.
    (listings,) = runs_of(ws, "listings")
    # The same channel also gets pipeline-x's BLOCKED notice (listings failed): its own
    # thread, one per window.
    all_roots = slack.roots("data-pipeline-alerts")
    blocked = [r for r in all_roots if "blocked" in r.text.lower()]
    assert len(blocked) == 1 and "pipeline-x" in blocked[0].text, [r.text for r in all_roots]
    roots = [r for r in all_roots if r not in blocked]
    assert len(roots) == 1
    assert listings["run_id"] in roots[0].text or "listings" in roots[0].text
    assert roots[0].updates >= 1 and "FAILED" in roots[0].text
    replies = slack.replies(roots[0])
    assert len(replies) >= 2  # step started, step finished (and the final status)

    # Email (searches, FULL_EXECUTION): plain-text and HTML parts, to the team address.
    to_search = [m for m in smtp.received if "search-team@example.com" in m.rcpt_tos]
    assert to_search, [m.rcpt_tos for m in smtp.received]
    kinds = {part.get_content_type() for part in to_search[-1].message.walk()}
    assert {"text/plain", "text/html"} <= kinds

    # OpsGenie (the fallback failed, FAILURES_ONLY): one alert for pipeline and date.
    (fallback,) = runs_of(ws, "listings-fallback")
    assert fallback["status"] == "FAILED"
    alerts = opsgenie.alerts
    assert len(alerts) == 1
    assert "listings-fallback" in alerts[0].alias and DAY in alerts[0].alias
