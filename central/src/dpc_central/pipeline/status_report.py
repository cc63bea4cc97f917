"""The states that put a run's own status (and its steps' statuses) on the central bus."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from dpc_central.conventions import (
    RUN_STATUS_DETAIL_TYPE,
    RUN_STATUS_SOURCE,
    STEP_STATUS_DETAIL_TYPE,
)

JP = sfn.JsonPath


def _put(scope: Construct, id: str, bus: events.IEventBus, detail_type: str,
         detail: dict[str, Any]) -> tasks.EventBridgePutEvents:
    task = tasks.EventBridgePutEvents(
        scope, id, entries=[tasks.EventBridgePutEventsEntry(
            event_bus=bus, source=RUN_STATUS_SOURCE, detail_type=detail_type,
            detail=sfn.TaskInput.from_object(detail))],
        result_path=JP.DISCARD)
    # The reliable path of TRIGGERS.md: retry throttling and transient failures for
    # about ten minutes before giving up (the reconciler covers the rest).
    task.add_retry(errors=["States.ALL"], interval=Duration.seconds(2), max_attempts=8,
                   backoff_rate=2.0)
    return task


def run_status(scope: Construct, id: str, *, bus: events.IEventBus,
               status: str) -> tasks.EventBridgePutEvents:
    """PutEvents of the run's terminal ``status`` (see :mod:`dpc_central.status_report`)."""
    detail: dict[str, Any] = {
        "executionArn": JP.string_at("$$.Execution.Id"),
        "stateMachineArn": JP.string_at("$$.StateMachine.Id"),
        "name": JP.string_at("$$.Execution.Name"),
        "status": status,
        "startTime": JP.string_at("$$.Execution.StartTime"),
        "stopTime": JP.string_at("$$.State.EnteredTime"),
        "input": JP.json_to_string(JP.object_at("$$.Execution.Input")),
        "redriveCount": JP.number_at("$$.Execution.RedriveCount"),
    }
    if status != "SUCCEEDED":
        detail["error"] = JP.json_to_string(JP.object_at("$.error"))
    return _put(scope, id, bus, RUN_STATUS_DETAIL_TYPE, detail)


def step_status(scope: Construct, id: str, *, bus: events.IEventBus, step: str,
                status: str) -> tasks.EventBridgePutEvents:
    """PutEvents of one step's start or end (``FULL_EXECUTION`` notifications)."""
    return _put(scope, id, bus, STEP_STATUS_DETAIL_TYPE, {
        "executionArn": JP.string_at("$$.Execution.Id"),
        "stateMachineArn": JP.string_at("$$.StateMachine.Id"),
        "step": step, "status": status, "time": JP.string_at("$$.State.EnteredTime"),
    })
