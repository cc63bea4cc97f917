"""The states that put a run's own status (and its steps' statuses) on the central bus.

Plain ASL (:class:`dpc_core.types.AslState`): what CDK's ``EventBridgePutEvents`` task
renders, without a jsii round trip per task and retry (issue #12).
"""

from __future__ import annotations

from typing import Any

from dpc_central.conventions import (
    RUN_STATUS_DETAIL_TYPE,
    RUN_STATUS_SOURCE,
    STEP_STATUS_DETAIL_TYPE,
)
from dpc_core.types import AslState


def _put(name: str, bus_arn: str, detail_type: str, detail: dict[str, Any],
         partition: str) -> AslState:
    return AslState(name, {
        # The reliable path of docs/triggers.md: retry throttling and transient failures for
        # about ten minutes before giving up (the reconciler covers the rest).
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "MaxAttempts": 8,
                   "BackoffRate": 2}],
        "Type": "Task",
        "ResultPath": None,
        "Resource": f"arn:{partition}:states:::events:putEvents",
        "Parameters": {"Entries": [{"Detail": detail, "DetailType": detail_type,
                                    "EventBusName": bus_arn, "Source": RUN_STATUS_SOURCE}]},
    }, policy=[{"Action": "events:PutEvents", "Effect": "Allow", "Resource": bus_arn}])


def run_status(name: str, *, bus_arn: str, status: str, partition: str) -> AslState:
    """PutEvents of the run's terminal ``status`` (see :mod:`dpc_central.status_report`)."""
    detail: dict[str, Any] = {
        "executionArn.$": "$$.Execution.Id",
        "stateMachineArn.$": "$$.StateMachine.Id",
        "name.$": "$$.Execution.Name",
        "status": status,
        "startTime.$": "$$.Execution.StartTime",
        "stopTime.$": "$$.State.EnteredTime",
        "input.$": "States.JsonToString($$.Execution.Input)",
        "redriveCount.$": "$$.Execution.RedriveCount",
    }
    if status != "SUCCEEDED":
        detail["error.$"] = "States.JsonToString($.error)"
    return _put(name, bus_arn, RUN_STATUS_DETAIL_TYPE, detail, partition)


def step_status(name: str, *, bus_arn: str, step: str, status: str,
                partition: str) -> AslState:
    """PutEvents of one step's start or end (``FULL_EXECUTION`` notifications)."""
    return _put(name, bus_arn, STEP_STATUS_DETAIL_TYPE, {
        "executionArn.$": "$$.Execution.Id",
        "stateMachineArn.$": "$$.StateMachine.Id",
        "step": step, "status": status, "time.$": "$$.State.EnteredTime",
    }, partition)
