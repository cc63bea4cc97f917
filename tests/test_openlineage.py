"""OpenLineage run events, sent with the openlineage-python client's HTTP transport to a
local receiver that validates each one against the OpenLineage RunEvent schema
(``tests/fixtures/openlineage/run-event.schema.json``) as Marquez would accept it."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from dpc_core.openlineage import OpenLineageEmitter, run_uuid, split_url, step_uuid
from dpc_core.types import Notification

SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "openlineage" /
                     "run-event.schema.json").read_text())
LISTINGS = ("listings", "111111111111")
SEARCHES = ("searches", "222222222222")
X = ("pipeline-x", "333333333333")
DAY = "2026-11-26"
LISTINGS_ARN = "arn:aws:states:eu-west-1:111111111111:execution:listings:sched-d0"
SEARCHES_ARN = "arn:aws:states:eu-west-1:222222222222:execution:searches:sched-d0"
X_PARENTS = [
    {"pipeline": "listings", "account": "111111111111", "executionArn": LISTINGS_ARN,
     "status": "SUCCEEDED"},
    {"pipeline": "searches", "account": "222222222222", "executionArn": SEARCHES_ARN,
     "status": "SUCCEEDED"},
]

formats = FormatChecker(["uuid"])  # jsonschema's own uuid check; the two below are not built in


@formats.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str) or "T" not in value:
        return False
    return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


@formats.checks("uri")
def _uri(value: object) -> bool:
    return isinstance(value, str) and bool(urlsplit(value).scheme) and " " not in value


VALIDATOR = Draft202012Validator(SCHEMA, format_checker=formats)


@dataclass
class Receiver:
    """What the local endpoint received: valid events, and rejected bodies with reasons."""

    url: str
    events: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[Any, list[str]]] = field(default_factory=list)

    def of(self, job: str) -> list[dict[str, Any]]:
        """Events of one job name, in arrival order."""
        return [e for e in self.events if e["job"]["name"] == job]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Receiver]:
    """A Marquez-like ``POST /api/v1/lineage`` on 127.0.0.1 that validates every event."""
    rec = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != "/api/v1/lineage":
                self.send_response(404)
                self.end_headers()
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                      for e in VALIDATOR.iter_errors(body)]
            if errors:
                rec.rejected.append((body, errors))
                self.send_response(400)
            else:
                rec.events.append(body)
                self.send_response(201)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture
def receiver(endpoint: Receiver) -> Iterator[Receiver]:
    """The endpoint, emptied for one test; every event the test sent must be valid."""
    endpoint.events.clear()
    endpoint.rejected.clear()
    yield endpoint
    assert endpoint.rejected == []


@pytest.fixture
def emitter(receiver: Receiver) -> Iterator[OpenLineageEmitter]:
    em = OpenLineageEmitter(receiver.url, timeout=5, retries=0)
    yield em
    em.close()


def test_run_start_names_the_account_as_namespace_and_the_pipeline_as_job(
        receiver: Receiver, emitter: OpenLineageEmitter) -> None:
    assert emitter.run_started("listings", "111111111111", "sched-d0", DAY)
    (event,) = receiver.events
    assert event["eventType"] == "START"
    assert event["job"]["namespace"] == "111111111111"
    assert event["job"]["name"] == "listings"
    assert event["run"]["runId"] == run_uuid("111111111111", "listings", "sched-d0")


def test_run_start_carries_the_logical_date_as_nominal_time(
        receiver: Receiver, emitter: OpenLineageEmitter) -> None:
    emitter.run_started("listings", "111111111111", "sched-d0", DAY)
    assert receiver.events[0]["run"]["facets"]["nominalTime"]["nominalStartTime"] == \
        "2026-11-26T00:00:00Z"


@pytest.mark.parametrize(("status", "event_type"), [
    ("SUCCEEDED", "COMPLETE"), ("FAILED", "FAIL"), ("TIMED_OUT", "FAIL"), ("ABORTED", "ABORT"),
])
def test_run_finish_maps_the_status_to_its_event_type(
        receiver: Receiver, emitter: OpenLineageEmitter, status: str, event_type: str) -> None:
    assert emitter.run_finished("listings", "111111111111", "sched-d0", status,
                                logical_date=DAY)
    assert receiver.events[0]["eventType"] == event_type


def test_triggered_run_has_the_triggering_run_as_parent(
        receiver: Receiver, emitter: OpenLineageEmitter) -> None:
    emitter.run_started(*LISTINGS, "sched-d0", DAY)
    emitter.run_started(*X, "dpc-2026-11-26-g1-738f9f4796", DAY, X_PARENTS)
    listings_run = receiver.of("listings")[0]["run"]["runId"]
    parent = receiver.of("pipeline-x")[0]["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == listings_run
    assert parent["job"] == {"namespace": "111111111111", "name": "listings", "facets": {}}


def test_triggered_run_lists_every_parent_run_as_upstream(
        receiver: Receiver, emitter: OpenLineageEmitter) -> None:
    emitter.run_started(*X, "dpc-2026-11-26-g1-738f9f4796", DAY, X_PARENTS)
    upstream = receiver.events[0]["run"]["facets"]["jobDependencies"]["upstream"]
    assert [(u["job"]["namespace"], u["job"]["name"], u["run"]["runId"]) for u in upstream] == [
        ("111111111111", "listings", run_uuid("111111111111", "listings", LISTINGS_ARN)),
        ("222222222222", "searches", run_uuid("222222222222", "searches", SEARCHES_ARN)),
    ]


def test_run_ids_are_the_same_from_an_execution_name_or_its_arn() -> None:
    assert run_uuid("111111111111", "listings", LISTINGS_ARN) == \
        run_uuid("111111111111", "listings", "sched-d0")


def test_scheduled_run_has_no_parent_facet(receiver: Receiver,
                                           emitter: OpenLineageEmitter) -> None:
    emitter.run_started(*LISTINGS, "sched-d0", DAY)
    assert "parent" not in receiver.events[0]["run"]["facets"]


def test_step_is_a_job_named_pipeline_dot_step_whose_parent_is_its_run(
        receiver: Receiver, emitter: OpenLineageEmitter) -> None:
    emitter.step_started(*X, "dpc-g1", "metric-x", logical_date=DAY)
    (event,) = receiver.events
    assert (event["job"]["namespace"], event["job"]["name"]) == ("333333333333",
                                                                 "pipeline-x.metric-x")
    assert event["run"]["runId"] == step_uuid("333333333333", "pipeline-x", "dpc-g1", "metric-x")
    parent = event["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == run_uuid("333333333333", "pipeline-x", "dpc-g1")
    assert parent["job"]["name"] == "pipeline-x"


def test_failed_step_carries_its_error_message(receiver: Receiver,
                                               emitter: OpenLineageEmitter) -> None:
    emitter.step_finished(*X, "dpc-g1", "metric-x", "FAILED", error="exit status 3")
    (event,) = receiver.events
    assert event["eventType"] == "FAIL"
    assert event["run"]["facets"]["errorMessage"]["message"] == "exit status 3"


@pytest.mark.parametrize(("kind", "status", "job", "event_type"), [
    ("PIPELINE_STARTED", "RUNNING", "pipeline-x", "START"),
    ("PIPELINE_FINISHED", "SUCCEEDED", "pipeline-x", "COMPLETE"),
    ("STEP_STARTED", "RUNNING", "pipeline-x.metric-x", "START"),
    ("STEP_FINISHED", "FAILED", "pipeline-x.metric-x", "FAIL"),
])
def test_a_runtime_notification_becomes_its_event(
        receiver: Receiver, emitter: OpenLineageEmitter, kind: Any, status: str, job: str,
        event_type: str) -> None:
    note = Notification(kind=kind, pipeline="pipeline-x", account="333333333333",
                        logical_date=DAY, run_id="dpc-g1", status=status,
                        step=None if kind.startswith("PIPELINE") else "metric-x",
                        parents=X_PARENTS)
    assert emitter.emit(note)
    (event,) = receiver.events
    assert (event["job"]["name"], event["eventType"]) == (job, event_type)


def test_a_day_of_the_case_study_gives_each_run_one_start_and_one_end(
        receiver: Receiver, emitter: OpenLineageEmitter) -> None:
    for (name, acct), run, step in ((LISTINGS, "sched-d0", "aggregate-listings"),
                                    (SEARCHES, "sched-d0", "export-searches")):
        emitter.run_started(name, acct, run, DAY)
        emitter.step_started(name, acct, run, step, logical_date=DAY)
        emitter.step_finished(name, acct, run, step, "SUCCEEDED", logical_date=DAY)
        emitter.run_finished(name, acct, run, "SUCCEEDED", logical_date=DAY)
    emitter.run_started(*X, "dpc-g1", DAY, X_PARENTS)
    emitter.step_started(*X, "dpc-g1", "metric-x", logical_date=DAY)
    emitter.step_finished(*X, "dpc-g1", "metric-x", "SUCCEEDED", logical_date=DAY)
    emitter.run_finished(*X, "dpc-g1", "SUCCEEDED", logical_date=DAY, parents=X_PARENTS)
    by_run: dict[str, list[str]] = {}
    for e in receiver.events:
        by_run.setdefault(e["run"]["runId"], []).append(e["eventType"])
    assert len(by_run) == 6
    assert all(types == ["START", "COMPLETE"] for types in by_run.values())
    assert emitter.sent == 12


def test_unreachable_endpoint_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    # A port nobody listens on: connection refused at once.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    em = OpenLineageEmitter(f"http://127.0.0.1:{port}", timeout=2, retries=0)
    with caplog.at_level(logging.WARNING, logger="dpc_core.openlineage"):
        assert em.run_started(*LISTINGS, "sched-d0", DAY) is False
    assert em.failed == 1
    assert "could not deliver START of 111111111111/listings" in caplog.text


def test_endpoint_refusing_the_event_is_logged_not_raised(
        receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    em = OpenLineageEmitter(receiver.url + "/not/the/lineage", timeout=2, retries=0)
    with caplog.at_level(logging.WARNING, logger="dpc_core.openlineage"):
        assert em.run_finished(*LISTINGS, "sched-d0", "FAILED") is False
    assert "404" in caplog.text


def test_schema_rejects_an_event_without_a_run_id() -> None:
    # The receiver's schema must be able to fail: a RunEvent needs run.runId.
    event = {"eventType": "START", "eventTime": "2026-11-26T03:00:00Z", "producer": "urn:x",
             "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
             "run": {}, "job": {"namespace": "111111111111", "name": "listings"}}
    assert not VALIDATOR.is_valid(event)
    event["run"] = {"runId": str(uuid.uuid4())}
    assert VALIDATOR.is_valid(event)


def test_schema_rejects_a_parent_facet_without_a_job() -> None:
    event = {"eventType": "START", "eventTime": "2026-11-26T03:00:00Z", "producer": "urn:x",
             "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
             "job": {"namespace": "1", "name": "x"},
             "run": {"runId": str(uuid.uuid4()), "facets": {"parent": {
                 "_producer": "urn:x", "_schemaURL": "urn:y",
                 "run": {"runId": str(uuid.uuid4())}}}}}
    assert not VALIDATOR.is_valid(event)


@pytest.mark.parametrize(("url", "parts"), [
    ("http://marquez:5000", ("http://marquez:5000", "api/v1/lineage")),
    ("http://marquez:5000/", ("http://marquez:5000", "api/v1/lineage")),
    ("http://marquez:5000/api/v1/lineage", ("http://marquez:5000", "api/v1/lineage")),
    ("https://gw.example/marquez", ("https://gw.example", "marquez/api/v1/lineage")),
])
def test_url_may_be_the_server_or_its_lineage_endpoint(url: str,
                                                        parts: tuple[str, str]) -> None:
    assert split_url(url) == parts


def test_no_emitter_without_the_environment_variable() -> None:
    assert OpenLineageEmitter.from_env({}) is None
    em = OpenLineageEmitter.from_env({"DPC_OPENLINEAGE_URL": "http://127.0.0.1:5000"})
    assert em is not None and em.url == "http://127.0.0.1:5000"


@pytest.mark.case_study
def test_local_runtime_reports_every_run_and_step_of_the_case_study(
        receiver: Receiver, tmp_path: Path) -> None:
    from local_helpers import SHELL_CASE_STUDY, copy_workspace, dpc, runs

    ws = copy_workspace(SHELL_CASE_STUDY, tmp_path / "ws")
    env = {"DPC_OPENLINEAGE_URL": receiver.url}
    dpc("local", "start", "listings", "--date", DAY, "-w", ws, env=env)
    dpc("local", "start", "searches", "--date", DAY, "-w", ws, env=env)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, env=env)

    done = {r["name"]: r for r in runs(ws)}
    assert set(done) == {"listings", "searches", "pipeline-x"}
    by_job: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in receiver.events:
        by_job.setdefault((e["job"]["namespace"], e["job"]["name"]), []).append(e)
    for name, r in done.items():
        account = r["pipeline"].split("/", 1)[0]
        events = by_job[(account, name)]
        assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
        assert {e["run"]["runId"] for e in events} == {run_uuid(account, name, r["arn"])}
        steps = [k for k in by_job if k[0] == account and k[1].startswith(f"{name}.")]
        assert steps, f"no step events for {name}"
        for k in steps:
            assert [e["eventType"] for e in by_job[k]] == ["START", "COMPLETE"]
            assert by_job[k][0]["run"]["facets"]["parent"]["run"]["runId"] == \
                run_uuid(account, name, r["arn"])
    x_start = by_job[("333333333333", "pipeline-x")][0]
    upstream = {u["run"]["runId"] for u in
                x_start["run"]["facets"]["jobDependencies"]["upstream"]}
    assert upstream == {run_uuid("111111111111", "listings", done["listings"]["arn"]),
                        run_uuid("222222222222", "searches", done["searches"]["arn"])}
