"""A step's ``retries:`` and ``timeout:`` in the synthesized state machine: ASL ``Retry``
and ``TimeoutSeconds`` on the step's task state, and nothing else changed (moto runs the
retries in test_cdk_sfn_moto.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dpc_central.testing import Placeholders, state_machine_definitions, synth_pipeline_yaml

PIPELINE = """
name: retried
account: "111111111111"
compute: {{type: emr, stepTimeoutMinutes: 120}}
steps:
  - {{name: plain, type: shell, command: echo plain}}
  - name: flaky
    type: shell
    command: echo flaky
{flaky}
  - {{name: short, type: shell, command: echo short{short}}}
"""


def _pipeline_asl(tmp: Path, flaky: str = "", short: str = "") -> dict[str, Any]:
    template = synth_pipeline_yaml(tmp, PIPELINE.format(flaky=flaky, short=short))
    machines = {lid: r for lid, r in template["Resources"].items()
                if r["Type"] == "AWS::StepFunctions::StateMachine"
                and r["Properties"].get("StateMachineName") == "retried"}
    (asl,) = state_machine_definitions({"Resources": machines}, Placeholders()).values()
    return asl


def _steps(asl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    states: dict[str, dict[str, Any]] = asl["States"]["Run steps"]["Branches"][0]["States"]
    return states


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same pipeline without and with retries/timeouts on two of its steps."""
    plain = _pipeline_asl(tmp_path_factory.mktemp("plain"))
    retried = _pipeline_asl(
        tmp_path_factory.mktemp("retried"),
        flaky="    timeout: 45m\n    retries:\n      count: 3\n"
              "      backoff: {initial: 10s, rate: 1.5, max: 1m}\n      on: [TIMEOUT, FAILED]",
        short=", retries: 2")
    return plain, retried


def test_a_retried_step_gets_the_retry_rule_and_its_timeout(
        both: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, retried = both
    flaky = _steps(retried)["flaky"]
    assert flaky["Retry"] == [{"ErrorEquals": ["States.Timeout", "States.TaskFailed"],
                               "IntervalSeconds": 10, "MaxAttempts": 3, "BackoffRate": 1.5,
                               "MaxDelaySeconds": 60}]
    # The step's timeout, not the compute's stepTimeoutMinutes (7200).
    assert flaky["TimeoutSeconds"] == 45 * 60
    # The shorthand: any error, 30 s doubling, no cap; the compute's step timeout stays.
    short = _steps(retried)["short"]
    assert short["Retry"] == [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 30,
                               "MaxAttempts": 2, "BackoffRate": 2.0}]
    assert short["TimeoutSeconds"] == 7200


def test_only_the_retried_steps_change(both: tuple[dict[str, Any], dict[str, Any]]) -> None:
    plain, retried = both
    for name in ("flaky", "short"):
        for key in ("Retry", "TimeoutSeconds"):
            _steps(plain)[name].pop(key, None)
            _steps(retried)[name].pop(key, None)
    assert retried == plain
    assert "Retry" not in _steps(plain)["plain"]


def test_a_step_of_several_states_is_retried_as_a_whole() -> None:
    from dpc_central.pipeline.state_machine import _Graph, _retried
    from dpc_core.types import AslState, StepConfig

    step = StepConfig.model_validate({"name": "two", "type": "x", "retries": 1,
                                      "timeout": "5m"})
    graph = _Graph(None)  # type: ignore[arg-type]  # AslState parts need no CDK scope
    parts = graph.parts([AslState("two a", {"Type": "Task", "Resource": "arn:a"}),
                         AslState("two b", {"Type": "Pass"})], "test")
    (wrapped,) = _retried(graph, parts, step)
    state = wrapped.states["two (retried)"]
    assert state["Type"] == "Parallel" and state["Retry"][0]["MaxAttempts"] == 1
    branch = state["Branches"][0]
    assert branch["StartAt"] == "two a"
    assert branch["States"]["two a"] == {"Next": "two b", "Type": "Task",
                                         "TimeoutSeconds": 300, "Resource": "arn:a"}
    assert branch["States"]["two b"] == {"Type": "Pass", "End": True}
    assert wrapped.ends == ["two (retried)"]


def test_a_plugins_catch_all_retry_stays_last() -> None:
    from dpc_central.pipeline.state_machine import _with_rule

    theirs = [{"ErrorEquals": ["Lambda.ServiceException"]}, {"ErrorEquals": ["States.ALL"]}]
    ours = {"ErrorEquals": ["States.TaskFailed"]}
    assert _with_rule(theirs, ours) == [theirs[0], ours, theirs[1]]
    catch_all = {"ErrorEquals": ["States.ALL"], "MaxAttempts": 4}
    assert _with_rule(theirs, catch_all) == [theirs[0], catch_all]
