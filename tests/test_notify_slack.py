"""Slack notifications: the real slack-sdk against a fake Slack Web API on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.slack_server import FakeSlack

from dpc_core.notify import DeliveryError
from dpc_core.types import Notification
from dpc_notify_slack.backend import SlackBackend

TOKEN = "xoxb-1111-2222-secretslacktoken"
CHANNEL = "data-pipeline-alerts"
PARENTS = ({"pipeline": "listings", "account": "111111111111", "status": "SUCCEEDED",
            "executionArn": "arn:aws:states:eu-west-1:111111111111:execution:listings:r1"},)


def note(kind: str, status: str, **kw: object) -> Notification:
    base: dict[str, object] = dict(pipeline="pipeline-x", account="333333333333",
                                   logical_date="2024-05-01", run_id="run-42")
    base.update(kw)
    return Notification(kind=kind, status=status, **base)  # type: ignore[arg-type]


def whole_run() -> list[Notification]:
    """A run that fails in its second step."""
    return [
        note("PIPELINE_STARTED", "RUNNING", parents=PARENTS),
        note("STEP_STARTED", "RUNNING", step="extract"),
        note("STEP_FINISHED", "SUCCEEDED", step="extract", duration_s=3.0),
        note("STEP_STARTED", "RUNNING", step="load"),
        note("STEP_FINISHED", "FAILED", step="load", duration_s=1.5, error="disk full"),
        note("PIPELINE_FINISHED", "FAILED", step="load", duration_s=4.5, error="disk full",
             parents=PARENTS),
    ]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN) as fake:
        yield fake


def backend_for(slack: FakeSlack, **env: str) -> SlackBackend:
    return SlackBackend.from_env({"SLACK_BOT_TOKEN": TOKEN, "DPC_SLACK_API_URL": slack.api_url,
                                  **env})


def test_a_run_is_one_root_message_with_every_later_message_in_its_thread(
    slack: FakeSlack,
) -> None:
    backend = backend_for(slack)
    for n in whole_run():
        backend.send(n, [CHANNEL])

    [root] = slack.roots(CHANNEL)
    replies = slack.replies(root)
    assert [r.text.split(" ", 1)[1] for r in replies] == [
        "step extract started",
        "step extract SUCCEEDED in 3.0s",
        "step load started",
        "step load FAILED in 1.5s",
        "run, failed step load FAILED in 4.5s",
    ]
    assert all(r.thread_ts == root.ts for r in replies)


def test_the_root_message_is_updated_with_the_final_status(slack: FakeSlack) -> None:
    backend = backend_for(slack)
    for n in whole_run():
        backend.send(n, [CHANNEL])

    [root] = slack.roots(CHANNEL)
    [update] = slack.calls_of("chat.update")
    assert update["ts"] == root.ts
    assert update["channel"] == root.channel  # the id Slack answered, not the name
    assert root.updates == 1
    assert "FAILED" in root.text and "RUNNING" not in root.text


def test_the_final_root_names_the_failed_step_its_error_and_the_parent_runs(
    slack: FakeSlack,
) -> None:
    backend = backend_for(slack)
    for n in whole_run():
        backend.send(n, [CHANNEL])

    [root] = slack.roots(CHANNEL)
    shown = "\n".join(str(b) for b in root.blocks)
    for expected in ("pipeline-x", "333333333333", "2024-05-01", "run-42", "FAILED",
                     "4.5s", "`load`", "disk full", "listings (111111111111) SUCCEEDED",
                     "execution:listings:r1"):
        assert expected in shown


def test_a_rate_limited_call_is_retried_after_retry_after(slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    backend = backend_for(slack)

    backend.send(note("PIPELINE_STARTED", "RUNNING"), [CHANNEL])

    assert len(slack.calls_of("chat.postMessage")) == 2
    assert len(slack.roots(CHANNEL)) == 1


def test_a_server_error_is_retried(slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", status=503)
    backend = backend_for(slack)

    backend.send(note("PIPELINE_STARTED", "RUNNING"), [CHANNEL])

    assert len(slack.roots(CHANNEL)) == 1


def test_each_channel_gets_its_own_thread(slack: FakeSlack) -> None:
    backend = backend_for(slack)
    for n in whole_run():
        backend.send(n, [CHANNEL, "#search-team"])

    for channel in (CHANNEL, "search-team"):
        [root] = slack.roots(channel)
        assert len(slack.replies(root)) == 5


def test_a_run_whose_first_message_is_a_failed_step_opens_its_thread_with_the_run(
    slack: FakeSlack,
) -> None:
    backend = backend_for(slack)

    backend.send(note("STEP_FINISHED", "FAILED", step="load", error="disk full"), [CHANNEL])

    [root] = slack.roots(CHANNEL)
    assert "RUNNING" in root.text
    [reply] = slack.replies(root)
    assert "step load FAILED" in reply.text


def test_threads_survive_a_restart_with_the_sqlite_store(slack: FakeSlack,
                                                         tmp_path: Path) -> None:
    db = str(tmp_path / "threads.sqlite")
    backend_for(slack, DPC_SLACK_THREADS_DB=db).send(note("PIPELINE_STARTED", "RUNNING"),
                                                     [CHANNEL])

    restarted = backend_for(slack, DPC_SLACK_THREADS_DB=db)
    restarted.send(note("PIPELINE_FINISHED", "SUCCEEDED", duration_s=9.0), [CHANNEL])

    [root] = slack.roots(CHANNEL)
    assert [r.text.split(" ", 1)[1] for r in slack.replies(root)] == ["run SUCCEEDED in 9.0s"]
    assert "SUCCEEDED" in root.text


def test_a_refused_channel_is_reported_after_the_other_channels_are_served(
    slack: FakeSlack,
) -> None:
    backend = backend_for(slack)

    with pytest.raises(DeliveryError) as raised:
        backend.send(note("PIPELINE_STARTED", "RUNNING"), ["CUNKNOWN99", CHANNEL])

    assert raised.value.problems == {"CUNKNOWN99": "Slack API error 200: channel_not_found"}
    assert len(slack.roots(CHANNEL)) == 1


def test_a_missing_token_is_an_error_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="SLACK_BOT_TOKEN"):
        SlackBackend.from_env({})


def test_a_retried_notification_finds_what_its_first_attempt_posted(slack: FakeSlack) -> None:
    """After a crash the thread store is empty (a new backend); a retry finds the run's
    root and its own reply through message metadata and posts neither again."""
    first = backend_for(slack)
    started = note("PIPELINE_STARTED", "RUNNING", key="k-start")
    step = note("STEP_STARTED", "RUNNING", step="extract", key="k-step")
    first.send(started, [CHANNEL])
    first.send(step, [CHANNEL])  # went out; the runtime died before it knew

    again = backend_for(slack)  # the next runtime
    again.send(note("STEP_STARTED", "RUNNING", step="extract", key="k-step", retry=True),
               [CHANNEL])
    again.send(note("STEP_FINISHED", "SUCCEEDED", step="extract", key="k-done", retry=True),
               [CHANNEL])  # never posted before: posted now, in the same thread
    [root] = slack.roots(CHANNEL)
    assert [m.metadata["event_payload"]["dpc_key"] for m in slack.replies(root)] == [  # type: ignore[index]
        "k-step", "k-done"]
    # The reads return metadata only when asked, as Slack does.
    history = slack.calls_of("conversations.history")
    assert history and all(c.get("include_all_metadata") in ("1", "true", "True")
                           for c in history)


def test_a_retried_root_is_not_posted_twice_and_a_first_attempt_never_reads(
        slack: FakeSlack) -> None:
    late = note("PIPELINE_LATE", "LATE", run_id="late:2024-05-01", message="x is late",
                key="k-late")
    backend_for(slack).send(late, [CHANNEL])
    assert slack.calls_of("conversations.history") == []  # a first attempt only posts
    backend_for(slack).send(note("PIPELINE_LATE", "LATE", run_id="late:2024-05-01",
                                 message="x is late", key="k-late", retry=True), [CHANNEL])
    assert len(slack.roots(CHANNEL)) == 1
    # Without the key (a runtime without an outbox) a notification is simply posted.
    backend_for(slack).send(note("PIPELINE_LATE", "LATE", run_id="late:2024-05-02",
                                 message="y is late", retry=True), [CHANNEL])
    assert len(slack.roots(CHANNEL)) == 2
