"""The states that put a run's own status (and its steps' statuses) on the central bus."""

from __future__ import annotations

import functools
from typing import Any

from aws_cdk import aws_events as events
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from dpc_central.conventions import (
    RUN_STATUS_DETAIL_TYPE,
    RUN_STATUS_SOURCE,
    STEP_STATUS_DETAIL_TYPE,
)
from dpc_core.cdk_values import (
    discard,
    json_to_string_of_object_at,
    number_at,
    seconds,
    string_at,
)


def _put(scope: Construct, id: str, bus: events.IEventBus, detail_type: str,
         detail: Any) -> tasks.EventBridgePutEvents:
    task = tasks.EventBridgePutEvents(
        scope, id, entries=[tasks.EventBridgePutEventsEntry(
            event_bus=bus, source=RUN_STATUS_SOURCE, detail_type=detail_type,
            detail=detail)],
        result_path=discard())
    # The reliable path of TRIGGERS.md: retry throttling and transient failures for
    # about ten minutes before giving up (the reconciler covers the rest).
    task.add_retry(errors=["States.ALL"], interval=seconds(2), max_attempts=8,
                   backoff_rate=2.0)
    return task


# The details hold only JSONPath tokens and constants, so each distinct one is one
# TaskInput per process, shared by every stack (see dpc_core.cdk_values).
@functools.cache
def _run_detail(status: str) -> Any:
    detail: dict[str, Any] = {
        "executionArn": string_at("$$.Execution.Id"),
        "stateMachineArn": string_at("$$.StateMachine.Id"),
        "name": string_at("$$.Execution.Name"),
        "status": status,
        "startTime": string_at("$$.Execution.StartTime"),
        "stopTime": string_at("$$.State.EnteredTime"),
        "input": json_to_string_of_object_at("$$.Execution.Input"),
        "redriveCount": number_at("$$.Execution.RedriveCount"),
    }
    if status != "SUCCEEDED":
        detail["error"] = json_to_string_of_object_at("$.error")
    return sfn.TaskInput.from_object(detail)


@functools.cache
def _step_detail(step: str, status: str) -> Any:
    return sfn.TaskInput.from_object({
        "executionArn": string_at("$$.Execution.Id"),
        "stateMachineArn": string_at("$$.StateMachine.Id"),
        "step": step, "status": status, "time": string_at("$$.State.EnteredTime"),
    })


def run_status(scope: Construct, id: str, *, bus: events.IEventBus,
               status: str) -> tasks.EventBridgePutEvents:
    """PutEvents of the run's terminal ``status`` (see :mod:`dpc_central.status_report`)."""
    return _put(scope, id, bus, RUN_STATUS_DETAIL_TYPE, _run_detail(status))


def step_status(scope: Construct, id: str, *, bus: events.IEventBus, step: str,
                status: str) -> tasks.EventBridgePutEvents:
    """PutEvents of one step's start or end (``FULL_EXECUTION`` notifications)."""
    return _put(scope, id, bus, STEP_STATUS_DETAIL_TYPE, _step_detail(step, status))
