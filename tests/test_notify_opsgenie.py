"""OpsGenie alerts: the real opsgenie-sdk against a fake OpsGenie Alert API on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakes.opsgenie_server import FakeOpsGenie

from dpc_core.types import Notification
from dpc_notify_opsgenie.backend import OpsGenieBackend, alert_alias

KEY = "0f1e2d3c-aaaa-bbbb-cccc-opsgeniesecret"
TEAM = "data-platform"
INTEGRATION_URL = "https://api.opsgenie.com/v1/json/amazonsns?apiKey=EXAMPLE"


def finished(status: str, run_id: str = "run-1", logical_date: str = "2024-05-01",
             **kw: object) -> Notification:
    return Notification(kind="PIPELINE_FINISHED", pipeline="listings-fallback",  # type: ignore[arg-type]
                        account="111111111111", logical_date=logical_date, run_id=run_id,
                        status=status, **kw)


@pytest.fixture
def opsgenie() -> Iterator[FakeOpsGenie]:
    with FakeOpsGenie(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def backend(opsgenie: FakeOpsGenie) -> OpsGenieBackend:
    return OpsGenieBackend.from_env({"OPSGENIE_API_KEY": KEY,
                                     "DPC_OPSGENIE_API_URL": opsgenie.url})


def test_a_failed_run_opens_an_alert_with_the_alias_of_its_pipeline_and_date(
    opsgenie: FakeOpsGenie, backend: OpsGenieBackend,
) -> None:
    backend.send(finished("FAILED", step="load", error="disk full"), [TEAM])

    [alert] = opsgenie.alerts
    assert alert.alias == "dpc/111111111111/listings-fallback/2024-05-01"
    assert alert.status == "open"
    assert "load" in alert.message and "disk full" in alert.description
    assert alert.details["run_id"] == "run-1"
    assert alert.responders == [{"type": "team", "name": TEAM}]


def test_a_second_failure_of_the_same_pipeline_and_date_is_no_second_alert(
    opsgenie: FakeOpsGenie, backend: OpsGenieBackend,
) -> None:
    backend.send(finished("FAILED", run_id="run-1"), [TEAM])
    backend.send(finished("TIMED_OUT", run_id="run-2"), [TEAM])

    [alert] = opsgenie.alerts
    assert alert.count == 2


def test_a_failure_on_another_date_is_another_alert(
    opsgenie: FakeOpsGenie, backend: OpsGenieBackend,
) -> None:
    backend.send(finished("FAILED", logical_date="2024-05-01"), [TEAM])
    backend.send(finished("FAILED", logical_date="2024-05-02"), [TEAM])

    assert len(opsgenie.alerts) == 2


def test_a_later_success_of_the_same_pipeline_and_date_closes_the_alert_by_alias(
    opsgenie: FakeOpsGenie, backend: OpsGenieBackend,
) -> None:
    backend.send(finished("FAILED", run_id="run-1"), [TEAM])
    backend.send(finished("SUCCEEDED", run_id="run-2"), [TEAM])

    [alert] = opsgenie.alerts
    assert alert.status == "closed"
    assert alert.close_note == "run run-2 succeeded"
    close = [c for c in opsgenie.calls() if c[1].endswith("/close")]
    assert close[0][2]["?identifierType"] == "alias"


def test_a_failure_after_the_alert_was_closed_opens_a_new_alert(
    opsgenie: FakeOpsGenie, backend: OpsGenieBackend,
) -> None:
    for status in ("FAILED", "SUCCEEDED", "FAILED"):
        backend.send(finished(status), [TEAM])

    assert [a.status for a in opsgenie.alerts] == ["closed", "open"]


def test_starts_and_steps_send_nothing(opsgenie: FakeOpsGenie, backend: OpsGenieBackend) -> None:
    backend.send(Notification(kind="STEP_FINISHED", pipeline="p", account="111111111111",
                              logical_date="2024-05-01", run_id="r", status="FAILED", step="s"),
                 [TEAM])

    assert opsgenie.calls() == []


def test_integration_urls_are_not_responders(
    opsgenie: FakeOpsGenie, backend: OpsGenieBackend,
) -> None:
    backend.send(finished("FAILED"), [INTEGRATION_URL])

    [alert] = opsgenie.alerts
    assert alert.responders == []


def test_a_wrong_key_is_an_error_without_the_key(opsgenie: FakeOpsGenie) -> None:
    backend = OpsGenieBackend.from_env({"OPSGENIE_API_KEY": "wrong-key-1234567",
                                        "DPC_OPSGENIE_API_URL": opsgenie.url})
    with pytest.raises(Exception) as raised:
        backend.send(finished("FAILED"), [TEAM])

    assert "401" in str(raised.value)
    assert "wrong-key-1234567" not in str(raised.value)
    assert opsgenie.alerts == []


def test_a_missing_key_is_an_error_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="OPSGENIE_API_KEY"):
        OpsGenieBackend.from_env({})


def test_the_alias_of_a_very_long_name_is_hashed_to_the_opsgenie_limit() -> None:
    alias = alert_alias(finished("FAILED", logical_date="x" * 600))
    assert alias.startswith("dpc/") and len(alias) <= 512


def test_a_retried_create_that_reached_opsgenie_is_not_sent_again(
    opsgenie: FakeOpsGenie, backend: OpsGenieBackend,
) -> None:
    backend.send(finished("FAILED", key="k1"), [TEAM])
    backend.send(finished("FAILED", key="k1", retry=True), [TEAM])  # after a crash
    [alert] = opsgenie.alerts
    assert (alert.count, alert.details["dpc_key"]) == (1, "k1")
    # Another notification of the same pipeline and date is a repeat of the same alert.
    backend.send(finished("FAILED", run_id="run-2", key="k2", retry=True), [TEAM])
    assert [(a.status, a.count) for a in opsgenie.alerts] == [("open", 2)]
