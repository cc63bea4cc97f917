"""The core's notification policy (``dpc_core.notify``): which events each type notifies, and
a dispatcher that never fails a run and never leaks a secret."""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping, Sequence

import pytest
from fakes.opsgenie_server import FakeOpsGenie
from fakes.slack_server import FakeSlack

from dpc_core.model import Notifications
from dpc_core.notify import (
    ChannelNotConfigured,
    DeliveryError,
    Dispatcher,
    Secrets,
    UnsafeSecret,
    redact,
    wants,
)
from dpc_core.plugins import Registry, load_registry
from dpc_core.types import Notification, NotifierBackend, NotifierType

SLACK_TOKEN = "xoxb-9999-8888-dispatchsecret"


def note(kind: str, status: str, step: str | None = None) -> Notification:
    return Notification(kind=kind, pipeline="pipeline-x", account="333333333333",  # type: ignore[arg-type]
                        logical_date="2024-05-01", run_id="run-7", status=status, step=step)


# kind, status, step, FULL_EXECUTION, PIPELINE, FAILURES_ONLY
TRUTH_TABLE = [
    ("PIPELINE_STARTED", "RUNNING", None, True, True, False),
    ("STEP_STARTED", "RUNNING", "load", True, False, False),
    ("STEP_FINISHED", "SUCCEEDED", "load", True, False, False),
    ("STEP_FINISHED", "FAILED", "load", True, False, False),  # the run's final note says it
    ("PIPELINE_FINISHED", "SUCCEEDED", None, True, True, False),
    ("PIPELINE_FINISHED", "FAILED", "load", True, True, True),
    ("PIPELINE_FINISHED", "TIMED_OUT", None, True, True, True),
    ("PIPELINE_FINISHED", "ABORTED", None, True, True, True),
]


@pytest.mark.parametrize(("kind", "status", "step", "full", "pipeline", "failures"),
                         TRUTH_TABLE)
def test_each_notification_type_wants_its_events(
    kind: str, status: str, step: str | None, full: bool, pipeline: bool, failures: bool,
) -> None:
    n = note(kind, status, step)
    assert (wants("FULL_EXECUTION", n), wants("PIPELINE", n), wants("FAILURES_ONLY", n)) == (
        full, pipeline, failures)


def test_wants_refuses_an_unknown_type() -> None:
    with pytest.raises(ValueError, match="EVERYTHING"):
        wants("EVERYTHING", note("PIPELINE_STARTED", "RUNNING"))


class Recorder:
    def __init__(self, fail_with: Exception | None = None, all_final: bool = False) -> None:
        self.sent: list[tuple[str, tuple[str, ...]]] = []
        self.fail_with = fail_with
        self.receives_all_final_statuses = all_final

    def send(self, n: Notification, addresses: Sequence[str]) -> None:
        self.sent.append((n.kind, tuple(addresses)))
        if self.fail_with is not None:
            raise self.fail_with


def registry_of(**backends: Recorder) -> tuple[Registry, dict[str, int]]:
    built = {name: 0 for name in backends}
    reg = Registry()
    for channel, backend in backends.items():
        def factory(env: Mapping[str, str], channel: str = channel,
                    backend: Recorder = backend) -> NotifierBackend:
            built[channel] += 1
            return backend
        reg.notifiers[channel] = NotifierType(channel=channel, factory=factory)
    return reg, built


def targets(type_: str, *channels: str) -> Notifications:
    return Notifications.model_validate(
        {"type": type_, "targets": [{"channel": c, "addresses": [f"{c.lower()}-addr"]}
                                    for c in channels]})


def test_every_target_that_wants_the_note_gets_it() -> None:
    slack, email = Recorder(), Recorder()
    reg, _ = registry_of(SLACK=slack, EMAIL=email)

    failures = Dispatcher(reg, {}).notify(targets("PIPELINE", "SLACK", "EMAIL"),
                                          note("PIPELINE_STARTED", "RUNNING"))

    assert failures == []
    assert slack.sent == [("PIPELINE_STARTED", ("slack-addr",))]
    assert email.sent == [("PIPELINE_STARTED", ("email-addr",))]


def test_a_note_the_type_does_not_want_is_not_sent() -> None:
    slack = Recorder()
    reg, _ = registry_of(SLACK=slack)

    Dispatcher(reg, {}).notify(targets("FAILURES_ONLY", "SLACK"),
                               note("PIPELINE_FINISHED", "SUCCEEDED"))

    assert slack.sent == []


def test_a_backend_that_resolves_alerts_gets_every_final_status() -> None:
    opsgenie = Recorder(all_final=True)
    reg, _ = registry_of(OPSGENIE=opsgenie)
    dispatcher = Dispatcher(reg, {})

    dispatcher.notify(targets("FAILURES_ONLY", "OPSGENIE"), note("PIPELINE_FINISHED", "SUCCEEDED"))
    dispatcher.notify(targets("FAILURES_ONLY", "OPSGENIE"), note("STEP_FINISHED", "SUCCEEDED"))

    assert opsgenie.sent == [("PIPELINE_FINISHED", ("opsgenie-addr",))]


def test_backends_are_built_once_per_channel() -> None:
    reg, built = registry_of(SLACK=Recorder())
    dispatcher = Dispatcher(reg, {})
    for kind in ("PIPELINE_STARTED", "STEP_STARTED", "PIPELINE_FINISHED"):
        dispatcher.notify(targets("FULL_EXECUTION", "SLACK"), note(kind, "RUNNING"))

    assert built == {"SLACK": 1}


def test_a_failing_backend_is_returned_and_logged_and_the_others_still_get_the_note(
    caplog: pytest.LogCaptureFixture,
) -> None:
    email = Recorder()
    reg, _ = registry_of(SLACK=Recorder(fail_with=RuntimeError("boom")), EMAIL=email)

    with caplog.at_level(logging.WARNING, logger="dpc.notify"):
        failures = Dispatcher(reg, {}).notify(targets("PIPELINE", "SLACK", "EMAIL"),
                                              note("PIPELINE_STARTED", "RUNNING"))

    assert [(f.channel, f.reason) for f in failures] == [("SLACK", "RuntimeError: boom")]
    assert email.sent
    assert "could not notify SLACK of PIPELINE_STARTED for pipeline-x run run-7" in caplog.text


def test_a_channel_without_a_plugin_is_a_failure_saying_none_provides_it() -> None:
    failures = Dispatcher(Registry(), {}).notify(targets("PIPELINE", "OPSGENIE"),
                                                 note("PIPELINE_STARTED", "RUNNING"))

    assert "no installed plugin provides 'OPSGENIE'" in failures[0].reason
    assert "pip install" not in failures[0].reason  # dpc guesses no package name


def test_a_channel_whose_plugin_dpc_plugins_leaves_out_names_its_entry_point() -> None:
    """What the installed entry points say, not a list of first-party names in core."""
    from dpc_core.plugins import installed_entry_points, load_registry

    names = [ep.name for ep in installed_entry_points() if ep.name != "notify_opsgenie"]
    failures = Dispatcher(load_registry(allow=names), {}).notify(
        targets("PIPELINE", "OPSGENIE"), note("PIPELINE_STARTED", "RUNNING"))

    assert failures[0].reason == (
        "LookupError: channel 'OPSGENIE' is not available: 'OPSGENIE' is provided by "
        "dpc-notify-opsgenie (entry point notify_opsgenie), which DPC_PLUGINS leaves out: "
        "add notify_opsgenie to DPC_PLUGINS")


def test_secrets_in_a_backend_error_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    env = {"MY_SERVICE_TOKEN": "tok-0123456789abcdef"}
    leaky = RuntimeError("auth failed for tok-0123456789abcdef at "
                         "https://x/json/amazonsns?apiKey=abc-123 with Bearer xoxb-1-2-3")
    reg, _ = registry_of(SLACK=Recorder(fail_with=leaky))

    with caplog.at_level(logging.DEBUG):
        [failure] = Dispatcher(reg, env).notify(targets("PIPELINE", "SLACK"),
                                                note("PIPELINE_STARTED", "RUNNING"))

    for secret in ("tok-0123456789abcdef", "abc-123", "xoxb-1-2-3"):
        assert secret not in failure.reason
        assert secret not in caplog.text
    assert "apiKey=***" in failure.reason


def test_redact_replaces_slack_tokens_without_knowing_them() -> None:
    assert redact("token xoxp-123-abc was refused") == "token *** was refused"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_slack_server_that_is_down_neither_raises_nor_leaks_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {"SLACK_BOT_TOKEN": SLACK_TOKEN,
           "DPC_SLACK_API_URL": f"http://127.0.0.1:{_closed_port()}/api/"}
    dispatcher = Dispatcher(load_registry(), env)

    with caplog.at_level(logging.DEBUG):
        failures = dispatcher.notify(targets("FULL_EXECUTION", "SLACK"),
                                     note("PIPELINE_STARTED", "RUNNING"))

    assert [f.channel for f in failures] == ["SLACK"]
    assert SLACK_TOKEN not in caplog.text
    assert all(SLACK_TOKEN not in f.reason for f in failures)


def test_a_slack_refusal_of_the_token_is_a_failure_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FakeSlack(token="xoxb-the-right-one") as slack, caplog.at_level(logging.DEBUG):
        env = {"SLACK_BOT_TOKEN": SLACK_TOKEN, "DPC_SLACK_API_URL": slack.api_url}
        [failure] = Dispatcher(load_registry(), env).notify(
            targets("FULL_EXECUTION", "SLACK"), note("PIPELINE_STARTED", "RUNNING"))

    assert "invalid_auth" in failure.reason
    assert SLACK_TOKEN not in caplog.text


def test_a_failures_only_pipeline_opens_and_closes_its_opsgenie_alert_through_the_plugins(
) -> None:
    key = "opsgenie-key-0123456789"
    with FakeOpsGenie(api_key=key) as opsgenie:
        dispatcher = Dispatcher(load_registry(), {"OPSGENIE_API_KEY": key,
                                                  "DPC_OPSGENIE_API_URL": opsgenie.url})
        config = Notifications.model_validate({"type": "FAILURES_ONLY", "targets": [
            {"channel": "OPSGENIE",
             "addresses": ["https://api.opsgenie.com/v1/json/amazonsns?apiKey=EXAMPLE"]}]})

        assert dispatcher.notify(config, note("PIPELINE_FINISHED", "FAILED")) == []
        assert dispatcher.notify(config, note("PIPELINE_FINISHED", "SUCCEEDED")) == []

        [alert] = opsgenie.alerts
        assert alert.status == "closed"


# -- unconfigured channels print instead of failing (the local runtime's console) ----------


def test_an_unconfigured_channel_is_printed_and_recorded_not_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    printed: list[str] = []
    dispatcher = Dispatcher(load_registry(), {}, console=printed.append)
    failed = Notification(kind="PIPELINE_FINISHED", pipeline="pipeline-x",
                          account="333333333333", logical_date="2026-11-26", run_id="run-7",
                          status="FAILED", step="metric-x", error="exit 1", duration_s=2.0)

    with caplog.at_level(logging.DEBUG, logger="dpc.notify"):
        deliveries = dispatcher.deliver(targets("FAILURES_ONLY", "SLACK", "EMAIL"), failed)

    assert [(d.channel, d.via) for d in deliveries] == [("SLACK", "console"), ("EMAIL", "console")]
    assert printed[0].splitlines() == [
        "Slack #slack-addr: [FAILED] pipeline-x (333333333333) pipeline for 2026-11-26 in 2.0s, "
        "failed step metric-x",
        "    error: exit 1"]
    assert printed[1].startswith("Email email-addr: [FAILED] pipeline-x")
    assert caplog.records == []


def test_without_a_console_an_unconfigured_channel_is_a_failure_saying_what_to_set() -> None:
    [failure] = Dispatcher(load_registry(), {}).notify(targets("PIPELINE", "SLACK"),
                                                       note("PIPELINE_STARTED", "RUNNING"))
    assert "set SLACK_BOT_TOKEN" in failure.reason


def test_unconfigured_names_the_variables_each_channel_needs() -> None:
    dispatcher = Dispatcher(load_registry(), {"SLACK_BOT_TOKEN": "xoxb-1234"})
    assert dispatcher.unconfigured(["SLACK", "EMAIL", "OPSGENIE", "TEAMS"]) == {
        "EMAIL": ("DPC_SMTP_HOST",), "OPSGENIE": ("OPSGENIE_API_KEY",)}


def test_a_third_party_channel_that_says_it_is_not_configured_is_printed() -> None:
    def factory(env: Mapping[str, str]) -> NotifierBackend:
        raise ChannelNotConfigured("set TEAMS_WEBHOOK_URL")

    reg = Registry()
    reg.notifiers["TEAMS"] = NotifierType(channel="TEAMS", factory=factory)
    printed: list[str] = []

    [delivery] = Dispatcher(reg, {}, console=printed.append).deliver(
        targets("PIPELINE", "TEAMS"), note("PIPELINE_STARTED", "RUNNING"))

    assert delivery.via == "console"
    assert printed == ["TEAMS teams-addr: [RUNNING] pipeline-x (333333333333) pipeline for "
                       "2024-05-01"]


def test_a_delivery_that_fails_for_one_address_is_delivered_to_the_others() -> None:
    class HalfBroken:
        def send(self, n: Notification, addresses: Sequence[str]) -> None:
            raise DeliveryError("EMAIL", {"bad@example.com": "refused: 550"})

    reg = Registry()
    reg.notifiers["EMAIL"] = NotifierType(channel="EMAIL", factory=lambda env: HalfBroken())
    config = Notifications.model_validate({"type": "PIPELINE", "targets": [
        {"channel": "EMAIL", "addresses": ["ok@example.com", "bad@example.com"]}]})

    deliveries = Dispatcher(reg, {}).deliver(config, note("PIPELINE_STARTED", "RUNNING"))

    assert [(d.address, d.via) for d in deliveries] == [("ok@example.com", "channel"),
                                                         ("bad@example.com", "failed")]
    assert "550" in deliveries[1].reason


# -- secrets -----------------------------------------------------------------------------


def test_a_declared_secret_is_redacted_from_what_a_backend_gets_whatever_its_length() -> None:
    got: list[Notification] = []

    class Keeper:
        def send(self, n: Notification, addresses: Sequence[str]) -> None:
            got.append(n)

    reg = Registry()
    reg.notifiers["TEAMS"] = NotifierType(channel="TEAMS", factory=lambda env: Keeper(),
                                          secret_env=("TEAMS_PIN",))
    env = {"TEAMS_PIN": "k7Zq"}  # 4 characters: declared, so redacted
    leaky = Notification(kind="PIPELINE_FINISHED", pipeline="p", account="1", logical_date="d",
                         run_id="r", status="FAILED", error="pin is k7Zq, sorry")

    Dispatcher(reg, env, secrets=Secrets.from_env(env, reg)).deliver(
        targets("FAILURES_ONLY", "TEAMS"), leaky)

    assert got[0].error == "pin is ***, sorry"


def test_a_declared_secret_shorter_than_four_characters_refuses_to_start() -> None:
    with pytest.raises(UnsafeSecret, match="SLACK_BOT_TOKEN") as raised:
        Secrets.from_env({"SLACK_BOT_TOKEN": "abc"}, load_registry())
    assert "abc" not in str(raised.value)


def test_an_empty_declared_secret_is_unset_not_unsafe() -> None:
    assert Secrets.from_env({"SLACK_BOT_TOKEN": ""}, load_registry()).values == ()


def test_guessed_secrets_need_eight_characters_so_short_settings_are_not_mangled() -> None:
    secrets = Secrets.from_env({"CACHE_KEY": "on", "DB_PASSWORD": "hunter2hunter2"}, Registry())
    assert secrets.redact("on: hunter2hunter2") == "on: ***"


def test_redact_bytes_keeps_other_bytes_as_written() -> None:
    secrets = Secrets(frozenset({"X_TOKEN"}), ("s3cret-value",))
    assert secrets.redact_bytes(b"\xff\xfe raw s3cret-value\n") == b"\xff\xfe raw ***\n"
    assert secrets.redact_bytes(b"\xff plain\n") == b"\xff plain\n"
