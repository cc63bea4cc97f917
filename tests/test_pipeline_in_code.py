"""Pipelines in code (dpc_central.api) and ``dpc synth --app``.

The example (examples/pipeline-in-code/app.py: a spark step, a step type defined in
the app, an S3 bucket, SQS queues and an EventBridge rule beside the pipeline) is
synthesized once, the way a user does it: ``dpc synth --app "python app.py"`` from its
directory, with cdk-nag on (PipelineApp's default; an unacknowledged finding fails the
fixture). No AWS account: synth only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pipeline-in-code"
STACK = "dpc-pipeline-pipeline-x-code"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[
        str], Path]:
    out = tmp_path_factory.mktemp("code") / "cdk.out"
    dpc = Path(sys.executable).parent / "dpc"
    done = subprocess.run([str(dpc), "synth", "--app", "python app.py", "--out", str(out),
                           "--region", "eu-west-1"], cwd=EXAMPLE, capture_output=True,
                          text=True, env={**os.environ, "NO_COLOR": "1"}, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done, out


@pytest.fixture(scope="module")
def template(synthesized: tuple[Any, Path]) -> dict[str, Any]:
    return json.loads((synthesized[1] / f"{STACK}.template.json").read_text())


def _asl(template: dict[str, Any]) -> dict[str, Any]:
    from dpc_central.testing import Placeholders, state_machine_definitions

    machines = {lid: r for lid, r in template["Resources"].items()
                if r["Type"] == "AWS::StepFunctions::StateMachine"
                and r["Properties"].get("StateMachineName") == "pipeline-x-code"}
    (asl,) = state_machine_definitions({"Resources": machines}, Placeholders()).values()
    return asl


def test_dpc_synth_app_writes_the_apps_stack(synthesized: tuple[Any, Path]) -> None:
    done, out = synthesized
    assert f"synthesized {STACK} -> {out}" in done.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["artifacts"][STACK]["type"] == "aws:cloudformation:stack"
    # The pipeline's account, and the region dpc was given (CDK_DEFAULT_REGION).
    assert manifest["artifacts"][STACK]["environment"] == "aws://333333333333/eu-west-1"


def test_state_machine_runs_the_spark_step_then_the_apps_own_step_type(
        template: dict[str, Any]) -> None:
    from aws_cdk.assertions import Match, Template

    Template.from_json(template).has_resource_properties("AWS::StepFunctions::StateMachine", {
        "StateMachineName": "pipeline-x-code", "TracingConfiguration": {"Enabled": True}})
    branch = _asl(template)["States"]["Run steps"]["Branches"][0]
    order, state = [], branch["StartAt"]
    while state:
        order.append(state)
        state = branch["States"][state].get("Next")
    marker = branch["States"]["metric-x-done marker"]
    assert order.index("metric-x-done marker") > max(
        i for i, s in enumerate(order) if "metric-x" in s and "done" not in s)
    assert marker["Resource"].endswith(":states:::aws-sdk:s3:putObject")
    assert marker["Parameters"]["Bucket"] == "rent-journey-markers-333333333333"
    assert marker["Parameters"]["Key.$"].startswith("States.Format('markers/{}/metric-x-done'")
    # The custom step's IAM: its objects only, granted on the state machine's role.
    Template.from_json(template).has_resource_properties("AWS::IAM::Policy", {
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Action": "s3:putObject",
            "Resource": "arn:aws:s3:::rent-journey-markers-333333333333/markers/*"})])}})


def test_constructs_beside_the_pipeline_are_in_its_stack(template: dict[str, Any]) -> None:
    from aws_cdk.assertions import Match, Template

    t = Template.from_json(template)
    t.has_resource_properties("AWS::S3::Bucket", {
        "BucketName": "rent-journey-markers-333333333333",
        "BucketEncryption": Match.object_like({})})
    # The app's two, beside dpc's dead-letter queues of the topic and of the trigger.
    t.resource_count_is("AWS::SQS::Queue", 4)
    t.has_resource_properties("AWS::SQS::Queue", {"RedrivePolicy": {
        "deadLetterTargetArn": {"Fn::GetAtt": [Match.string_like_regexp("^SucceededDeadLetters"),
                                               "Arn"]}, "maxReceiveCount": 5}})
    (sm_id,) = [lid for lid, r in template["Resources"].items()
                if r["Properties"].get("StateMachineName") == "pipeline-x-code"]
    t.has_resource_properties("AWS::Events::Rule", {
        "EventPattern": {"source": ["aws.states"],
                         "detail": {"stateMachineArn": [{"Ref": sm_id}],
                                    "status": ["SUCCEEDED"]}},
        "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [Match.string_like_regexp(
            "^Succeeded"), "Arn"]}})]})


def test_logical_ids_are_those_of_the_same_pipeline_in_yaml(template: dict[str, Any]) -> None:
    """Ids come from construct paths, the same as ``dpc synth`` gives a pipeline.yaml
    (moving a pipeline to code replaces nothing); the app's own constructs keep theirs."""
    ids = set(template["Resources"])
    assert {"PipelineStateMachine1814BD05", "PipelineStateMachineRole61BEBDFF",
            "NotificationsTopicAE679CBD", "Registration8466E9D0"} <= ids
    assert {i for i in ids if i.startswith(("Markers", "Succeeded"))} == {
        "Markers641E0E25", "MarkersPolicyEAC9E984", "SucceededBF1AC999",
        "SucceededPolicyADAC9213", "SucceededDeadLettersE62AA9FE",
        "SucceededDeadLettersPolicyEE571604", "SucceededRuleE6F480F3"}


def test_a_finding_nobody_acknowledged_fails_the_app(tmp_path: Path,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    """PipelineApp runs cdk-nag: a bucket without access logs fails synth with exit 1
    and a one-line error (the findings in the report CDK writes)."""
    from dpc_central.app_command import run_app
    from dpc_central.errors import SynthError

    (tmp_path / "app.py").write_text(
        "import aws_cdk as cdk\nfrom aws_cdk import aws_s3 as s3\n"
        "from dpc_central.api import PipelineApp\n"
        "app = PipelineApp()\nstack = cdk.Stack(app, 'Bare')\n"
        "s3.Bucket(stack, 'Logless', enforce_ssl=True)\napp.synth()\n")
    with pytest.raises(SynthError, match=r"the app `cd .* && python app\.py` failed \(exit 1\)"):
        run_app(f"cd {tmp_path} && python app.py", tmp_path / "out")
    # One line, not a Node and Python stack trace.
    err = capfd.readouterr().err
    assert "error: ValidationFailed: ERROR The S3 Bucket has server access logs disabled" in err
    assert "Traceback" not in err
    report = json.loads((tmp_path / "out" / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert "AwsSolutions-S1" in rules


def test_step_errors_name_the_field_and_the_line() -> None:
    from dpc_central.api import steps
    from dpc_core.errors import ValidationFailed

    call_line = sys._getframe().f_lineno + 2
    with pytest.raises(ValidationFailed) as missing:
        steps.spark("metric-x", args=["--day"])
    (p,) = missing.value.problems
    assert (p.file, p.line, p.field, p.message) == (
        __file__, call_line, "steps.metric-x.script", "required field is missing")
    with pytest.raises(ValidationFailed, match=r"steps\.x\.bogus: unknown field"):
        steps.shell("x", command="true", bogus=1)
    with pytest.raises(ValidationFailed, match=r"unknown step type 'nope'.*installed: .*spark"):
        steps.nope("x")
    # Python names and YAML spellings alike.
    assert steps.spark("j", script="a.jar", main_class="A").main_class == "A"
    assert steps.of("spark", "j", script="a.jar", mainClass="A").main_class == "A"


def test_a_pipeline_in_code_is_validated_as_yaml() -> None:
    from dpc_central.api import pipeline, steps
    from dpc_core.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as bad:
        pipeline(name="x", account="12", trigger={"schedule": {"hour": 25}},
                 steps=[steps.shell("s", command="true")])
    fields = {p.field for p in bad.value.problems}
    assert fields == {"account", "trigger.schedule.hour"}
    assert all(p.file == __file__ for p in bad.value.problems)
    p = pipeline(name="x", account="111111111111", trigger={"schedule": {"hour": 3}},
                 steps=[steps.shell("s", command="true")])
    assert p.steps[0].command == "true"  # type: ignore[attr-defined]
    assert p.project_dir == str(Path(__file__).parent)


def test_an_apps_step_type_may_not_take_an_installed_name() -> None:
    from dpc_central.api import StepConfig, steps

    with pytest.raises(ValueError, match="'spark' is already defined"):
        steps.custom("spark", config=StepConfig)(lambda ctx: None)
