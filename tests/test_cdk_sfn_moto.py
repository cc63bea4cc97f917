"""Generated state machine definitions executed by moto's Step Functions interpreter.

What runs here: a pipeline whose steps come from an outside plugin using an
integration moto executes (``aws-sdk:s3:putObject``), with the local compute (no
cluster). Its *real synthesized* definition runs on moto: the success path (steps, then
the run's own SUCCEEDED report put on the central bus) and the catch path (a failing
step, then the FAILED report and a failed execution).

What does not run here, and is asserted on the template instead
(``test_cdk_pipeline.py``): EMR tasks (``elasticmapreduce`` is unsupported by moto's
interpreter) and the idempotent starter's ``states:startExecution`` task (moto 5.2's
nested-execution integration fails with a KeyError on its own parameters). For the
starter, this module shows the half moto can: a second start under the trigger's name
is refused with exactly the error the starter's Catch treats as success.

Harness, documented: moto's context object lacks ``$$.Execution.RedriveCount`` (AWS
has it), so the test adds ``0``, and gives ``$$.Execution.StartTime`` as a datetime
where AWS gives an ISO 8601 string, so the test converts it; CloudFormation
references in the definitions are
resolved with the values the user-account stack would publish.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.outside_plugin import PLUGIN

ACCOUNT = "123456789012"  # moto's default account: pipeline and central bus both here
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The pipeline stack of an outside-plugin pipeline, triggered by another pipeline."""
    return _synth_acme(tmp_path_factory.mktemp("moto"))


def _synth_acme(root: Any, second: str = "") -> dict[str, Any]:
    """The acme pipeline's stack; ``second``: more fields of its (failing) second step."""
    from dpc_central.app import pipeline_app, pipeline_stack_name
    from dpc_core.loader import load_pipelines
    from dpc_core.plugins import EntryPointLike, installed_entry_points, load_registry

    (root / "outside").mkdir()
    (root / "outside" / "dpc_acme_steps.py").write_text(PLUGIN)
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(root / "outside"))
    registry = load_registry([*installed_entry_points(),
                              EntryPointLike("acme", "dpc_acme_steps", "dpc-acme-steps", "0")])
    project = root / "project"
    project.mkdir()
    (project / "pipeline.yaml").write_text(f"""
name: acme
account: "{ACCOUNT}"
trigger:
  executions:
    allOf: [{{name: upstream, status: [SUCCEEDED]}}]
steps:
  - {{name: first, type: acme-marker, bucket: acme-data}}
  - {{name: second, type: acme-marker, bucket: acme-missing{second}}}
""")
    (p,) = load_pipelines([project], registry=registry)
    out = root / "cdk.out"
    pipeline_app([p], outdir=out, region=REGION, registry=registry, nag=False).synth()
    mp.undo()
    return json.loads((out / f"{pipeline_stack_name(p)}.template.json").read_text())


def definitions(template: dict[str, Any], pipeline_arn: str) -> dict[str, dict[str, Any]]:
    """``pipeline`` and ``starter`` ASL with the references resolved."""
    from dpc_central.testing import state_machine_definitions

    ssm_values = {"/dpc/central-account": ACCOUNT, "/dpc/artifacts-bucket": "artifacts",
                  "/dpc/registration-provider-arn": "arn:aws:lambda:x"}
    refs: dict[str, str] = {"AWS::Partition": "aws", "AWS::Region": REGION,
                            "AWS::AccountId": ACCOUNT}
    for lid, param in template.get("Parameters", {}).items():
        if param.get("Default") in ssm_values:
            refs[lid] = ssm_values[param["Default"]]
    machines = {lid: r for lid, r in template["Resources"].items()
                if r["Type"] == "AWS::StepFunctions::StateMachine"}
    pipeline_lid = next(lid for lid, r in machines.items()
                    if r["Properties"].get("StateMachineName") == "acme")
    refs[pipeline_lid] = pipeline_arn
    asl = state_machine_definitions({"Resources": machines}, refs)
    starter_lid = next(lid for lid in machines if lid != pipeline_lid)
    return {"pipeline": asl[pipeline_lid], "starter": asl[starter_lid]}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto with state machine execution on, the central bus and a queue that receives
    what is put on it (moto delivers rule targets of type SQS)."""
    import boto3
    from moto import mock_aws
    from moto.stepfunctions.parser.backend import execution_worker

    original = execution_worker.ExecutionData

    def with_redrive_count(**kwargs: Any) -> Any:
        # AWS gives StartTime as an ISO 8601 string; moto gives a datetime.
        start = kwargs["StartTime"]
        if hasattr(start, "isoformat"):
            kwargs["StartTime"] = start.isoformat().replace("+00:00", "Z")
        return original(**kwargs, RedriveCount=0)  # type: ignore[typeddict-unknown-key]

    monkeypatch.setattr(execution_worker, "ExecutionData", with_redrive_count)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="acme-data",
                         CreateBucketConfiguration={"LocationConstraint": REGION})
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        events.create_event_bus(Name="dpc-central")
        queue = sqs.create_queue(QueueName="reports")["QueueUrl"]
        qarn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        events.put_rule(Name="reports", EventBusName="dpc-central",
                        EventPattern=json.dumps({"source": ["dpc.pipeline"]}))
        events.put_targets(Rule="reports", EventBusName="dpc-central",
                           Targets=[{"Id": "q", "Arn": qarn}])
        yield {"s3": s3, "sqs": sqs, "queue": queue,
               "sfn": boto3.client("stepfunctions", region_name=REGION)}


def create(aws: dict[str, Any], name: str, asl: dict[str, Any], kind: str = "STANDARD") -> str:
    return aws["sfn"].create_state_machine(
        name=name, definition=json.dumps(asl), type=kind,
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")["stateMachineArn"]


def wait(aws: dict[str, Any], arn: str) -> dict[str, Any]:
    for _ in range(200):
        d = aws["sfn"].describe_execution(executionArn=arn)
        if d["status"] != "RUNNING":
            return d
        time.sleep(0.05)
    raise AssertionError(f"{arn} still running")


def reports(aws: dict[str, Any]) -> list[dict[str, Any]]:
    msgs = aws["sqs"].receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in msgs.get("Messages", [])]


def only_first_step(asl: dict[str, Any]) -> dict[str, Any]:
    """The same definition with the (failing) second step cut off, for the success path."""
    branch = asl["States"]["Run steps"]["Branches"][0]["States"]
    first = branch["first marker"]
    first.pop("Next")
    first["End"] = True
    del branch["second marker"]
    return asl


def test_success_path_runs_the_steps_and_reports_succeeded(
        synthesized: dict[str, Any], aws: dict[str, Any]) -> None:
    asl = only_first_step(definitions(synthesized, "arn:unused")["pipeline"])
    sm = create(aws, "acme", asl)
    run = aws["sfn"].start_execution(stateMachineArn=sm, name="run-1",
                                     input=json.dumps({"dpc": {"logicalDate": "2026-11-26"}}))
    assert wait(aws, run["executionArn"])["status"] == "SUCCEEDED"
    body = aws["s3"].get_object(Bucket="acme-data", Key="markers/2026-11-26/first")["Body"]
    assert body.read() == b"done"
    (report,) = reports(aws)
    assert report["detail-type"] == "dpc Pipeline Run Status"
    assert report["detail"]["status"] == "SUCCEEDED"
    assert report["detail"]["executionArn"] == run["executionArn"]


def test_report_converts_to_the_status_event_the_engine_reads(
        synthesized: dict[str, Any], aws: dict[str, Any]) -> None:
    from dpc_central.status_report import to_status_event
    from dpc_core.events import StatusEvent

    sm = create(aws, "acme", only_first_step(definitions(synthesized, "x")["pipeline"]))
    run = aws["sfn"].start_execution(stateMachineArn=sm, name="run-2", input="{}")
    wait(aws, run["executionArn"])
    (report,) = reports(aws)
    # EventBridge stamps the sender's account on every event; moto's copy has none.
    report.setdefault("account", "123456789012")
    event = StatusEvent.parse(to_status_event(report))
    assert event.pipeline == "acme" and event.detail.status.value == "SUCCEEDED"
    # A run started by hand gets the logical date of its start.
    assert event.logical_date is None
    assert aws["s3"].list_objects_v2(Bucket="acme-data", Prefix="markers/")["KeyCount"] == 1


def test_catch_path_reports_failed_and_fails_the_run(
        synthesized: dict[str, Any], aws: dict[str, Any]) -> None:
    sm = create(aws, "acme", definitions(synthesized, "x")["pipeline"])
    run = aws["sfn"].start_execution(stateMachineArn=sm, name="run-3",
                                     input=json.dumps({"dpc": {"logicalDate": "2026-11-26"}}))
    result = wait(aws, run["executionArn"])
    assert result["status"] == "FAILED"
    assert "NoSuchBucket" in result.get("error", "") + result.get("cause", "")
    (report,) = reports(aws)
    assert report["detail"]["status"] == "FAILED"
    assert "NoSuchBucket" in report["detail"]["error"]


def _attempts(aws: dict[str, Any], run_arn: str, state: str) -> int:
    """How many times the execution scheduled ``state``'s task."""
    events = aws["sfn"].get_execution_history(executionArn=run_arn,
                                              maxResults=1000)["events"]
    entered = [e for e in events if e["type"] == "TaskStateEntered"
               and e["stateEnteredEventDetails"]["name"] == state]
    assert len(entered) == 1  # retries happen inside the one state
    return sum(1 for e in events if e["type"] == "TaskScheduled"
               and e["id"] > entered[0]["id"] and "acme-missing" in
               e["taskScheduledEventDetails"]["parameters"])


@pytest.mark.parametrize("on,attempts", [("FAILED", 3), ("ALL", 3), ("TIMEOUT", 1)])
def test_a_failing_step_with_retries_runs_again_then_fails_the_run(
        tmp_path_factory: pytest.TempPathFactory, aws: dict[str, Any], on: str,
        attempts: int) -> None:
    """`retries: {count: 2, on: ...}` as synthesized, run by moto's interpreter: an S3
    error (States.TaskFailed) is tried three times with FAILED or ALL, once when only
    timeouts are retried; the run fails after the last attempt either way."""
    template = _synth_acme(tmp_path_factory.mktemp("retries"),
                           ", retries: {count: 2, backoff: {initial: 1s, rate: 1.0}, "
                           f"on: {on}}}")
    sm = create(aws, "acme", definitions(template, "x")["pipeline"])
    run = aws["sfn"].start_execution(stateMachineArn=sm, name=f"run-{on}",
                                     input=json.dumps({"dpc": {"logicalDate": "2026-11-26"}}))
    result = wait(aws, run["executionArn"])
    assert result["status"] == "FAILED"
    assert _attempts(aws, run["executionArn"], "second marker") == attempts
    (report,) = reports(aws)
    assert report["detail"]["status"] == "FAILED"


def test_second_start_with_the_trigger_name_fails_with_the_error_the_starter_catches(
        synthesized: dict[str, Any], aws: dict[str, Any]) -> None:
    from botocore.exceptions import ClientError

    pipeline_arn = create(aws, "acme", only_first_step(definitions(synthesized, "x")["pipeline"]))
    starter = definitions(synthesized, pipeline_arn)["starter"]
    start = starter["States"][starter["StartAt"]]
    (caught,) = start["Catch"][0]["ErrorEquals"]
    name = "dpc-2026-11-26-g1-abc"
    first = aws["sfn"].start_execution(stateMachineArn=pipeline_arn, name=name,
                                       input=json.dumps({"dpc": {"logicalDate": "2026-11-26"}}))
    wait(aws, first["executionArn"])
    with pytest.raises(ClientError) as refused:
        aws["sfn"].start_execution(stateMachineArn=pipeline_arn, name=name, input="{}")
    # The integration reports API errors as StepFunctions.<Code>Exception.
    assert f"StepFunctions.{refused.value.response['Error']['Code']}Exception" == caught
    runs = aws["sfn"].list_executions(stateMachineArn=pipeline_arn)["executions"]
    assert [r["name"] for r in runs] == [name]


def test_scheduled_run_name_is_the_same_for_a_second_delivery_of_one_tick(
        aws: dict[str, Any], tmp_path: Any) -> None:
    """The starter of a scheduled pipeline, as synthesized, names the run from the tick's
    time on moto's interpreter: two deliveries of one tick give one name (so the second
    start is refused, as the test above shows), the next tick another, and the name is
    one Step Functions accepts. The run is started by hand under that name, since moto
    cannot run the starter's startExecution task (module docstring)."""
    from botocore.exceptions import ClientError

    from dpc_central.testing import Placeholders, state_machine_definitions, synth_pipeline_yaml

    template = synth_pipeline_yaml(tmp_path, f"""
name: nightly
account: "{ACCOUNT}"
trigger: {{schedule: {{hour: 3}}}}
steps: [{{name: job, type: shell, command: "echo hi"}}]
""")
    (rule,) = [r["Properties"] for r in template["Resources"].values()
               if r["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in r["Properties"]]
    (target,) = rule["Targets"]
    machines = {lid: r for lid, r in template["Resources"].items()
                if r["Type"] == "AWS::StepFunctions::StateMachine"}
    starter = state_machine_definitions({"Resources": {target["Arn"]["Ref"]: machines[
        target["Arn"]["Ref"]]}}, Placeholders())[target["Arn"]["Ref"]]
    naming = starter["States"][starter["StartAt"]]
    naming.pop("Next")
    naming["End"] = True
    sm = create(aws, "namer", {"StartAt": starter["StartAt"],
                               "States": {starter["StartAt"]: naming}})
    target_sm = create(aws, "nightly", {"StartAt": "ok", "States": {
        "ok": {"Type": "Succeed"}}})

    deliveries = iter(range(3))

    def deliver(time_: str) -> dict[str, Any]:
        # What EventBridge makes of the tick with the rule's input transformer.
        body = target["InputTransformer"]["InputTemplate"].replace("<time>", json.dumps(time_))
        run = aws["sfn"].start_execution(stateMachineArn=sm, input=body,
                                         name=f"delivery-{next(deliveries)}")
        done = wait(aws, run["executionArn"])
        assert done["status"] == "SUCCEEDED", done
        return dict(json.loads(done["output"]))

    first, again, later = (deliver("2026-12-08T03:00:00Z"), deliver("2026-12-08T03:00:00Z"),
                           deliver("2026-12-09T03:00:00Z"))
    assert first == again
    assert first["executionName"] == "schedule-2026-12-08T03-00-00Z"
    assert later["executionName"] != first["executionName"]
    assert first["input"] == {"dpc": {"logicalDate": "2026-12-08T03:00:00Z",
                                      "trigger": "schedule"}}
    run = aws["sfn"].start_execution(stateMachineArn=target_sm, name=first["executionName"],
                                     input=json.dumps(first["input"]))
    wait(aws, run["executionArn"])
    with pytest.raises(ClientError) as refused:
        aws["sfn"].start_execution(stateMachineArn=target_sm, name=again["executionName"],
                                   input=json.dumps(again["input"]))
    assert refused.value.response["Error"]["Code"] == "ExecutionAlreadyExists"
