"""Pipeline stacks synthesized from the installed plugins, for the case study's seed
pipelines as shipped (the two shell pipelines declare no compute and get the EMR
plugin's transient cluster). Structure, triggers, topics and registration are asserted
on the templates; cdk-nag's AwsSolutions pack runs at synth (an unacknowledged finding
fails the fixture) and cfn-lint runs on every template.

What AWS decides is asserted the way AWS decides it, on the template: IAM conditions
(cluster tags), key policies, time limits, dead-letter queues (see docs/aws.md for the
AWS documents each rule rests on)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from helpers.outside_plugin import PLUGIN

from dpc_central.testing import Placeholders

CASE_STUDY = Path(__file__).resolve().parents[1] / "examples" / "seed"


@pytest.fixture(scope="module")
def case_study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The case study's four pipeline stacks, synthesized once into one app."""
    from dpc_central.app import pipeline_app, pipeline_stack_name
    from dpc_central.testing import case_study_project
    from dpc_core.loader import load_pipelines

    root = tmp_path_factory.mktemp("case")
    project = case_study_project(CASE_STUDY, root / "project", add_emr=())
    pipelines = load_pipelines([project])
    out = root / "cdk.out"
    pipeline_app(pipelines, outdir=out, region="eu-west-1").synth()
    return {p.name: out / f"{pipeline_stack_name(p)}.template.json" for p in pipelines}


def load(case_study: dict[str, Path], name: str) -> dict[str, Any]:
    return json.loads(case_study[name].read_text())


def tpl(case_study: dict[str, Path], name: str) -> Any:
    """The pipeline's template as a CDK assertions ``Template``."""
    from aws_cdk.assertions import Template

    return Template.from_json(load(case_study, name))


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def definition(template: dict[str, Any], name: str) -> dict[str, Any]:
    """The ASL of the state machine called ``name`` (tokens shown as placeholders)."""
    from dpc_central.testing import state_machine_definitions

    refs = Placeholders()
    for lid, res in of_type(template, "AWS::StepFunctions::StateMachine").items():
        if res["Properties"].get("StateMachineName") == name:
            return state_machine_definitions({"Resources": {lid: res}}, refs)[lid]
    raise AssertionError(f"no state machine named {name}")


@pytest.mark.parametrize("name", ["listings", "searches", "pipeline-x", "listings-fallback"])
def test_state_machine_is_named_exactly_the_pipeline(case_study: dict[str, Path],
                                                      name: str) -> None:
    names = [r["Properties"].get("StateMachineName") for r in
             of_type(load(case_study, name), "AWS::StepFunctions::StateMachine").values()]
    assert name in names


def test_run_goes_provision_steps_teardown_then_reports_success(
        case_study: dict[str, Path]) -> None:
    asl = definition(load(case_study, "listings"), "listings")
    states = asl["States"]
    create = states["Create cluster"]
    assert create["Resource"].endswith(":states:::elasticmapreduce:createCluster.sync")
    assert create["Next"] == "Run steps"
    steps = states["Run steps"]
    assert steps["Type"] == "Parallel" and steps["Next"] == "Terminate cluster"
    branch = steps["Branches"][0]["States"]
    assert branch["aggregate-listings"]["Resource"].endswith(
        ":states:::elasticmapreduce:addStep.sync")
    assert states["Terminate cluster"]["Next"] == "Report SUCCEEDED"
    assert states["Report SUCCEEDED"]["Next"] == "Run succeeded"


def test_failed_step_tears_down_then_reports_failure(case_study: dict[str, Path]) -> None:
    states = definition(load(case_study, "listings"), "listings")["States"]
    (catch,) = states["Run steps"]["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"]
    assert catch["Next"] == "Terminate cluster after failure"
    assert states["Terminate cluster after failure"]["Next"] == "Report FAILED"
    assert states["Report FAILED"]["Next"] == "Run failed"
    assert states["Run failed"]["Type"] == "Fail"


def test_provision_and_teardown_failures_are_reported(case_study: dict[str, Path]) -> None:
    states = definition(load(case_study, "listings"), "listings")["States"]
    for name in ("Create cluster", "Terminate cluster", "Terminate cluster after failure"):
        assert states[name]["Catch"][0]["Next"] == "Report FAILED"


@pytest.mark.parametrize("status", ["SUCCEEDED", "FAILED"])
def test_run_reports_its_own_terminal_status_to_the_central_bus(
        case_study: dict[str, Path], status: str) -> None:
    state = definition(load(case_study, "listings"), "listings")["States"][f"Report {status}"]
    assert state["Resource"].endswith(":states:::events:putEvents")
    (entry,) = state["Parameters"]["Entries"]
    assert entry["Source"] == "dpc.pipeline"
    assert entry["DetailType"] == "dpc Pipeline Run Status"
    assert entry["EventBusName"].endswith(":event-bus/dpc-central")
    assert entry["Detail"]["status"] == status
    assert entry["Detail"]["executionArn.$"] == "$$.Execution.Id"
    assert state["Retry"][0]["MaxAttempts"] >= 5


def test_spark_step_submits_the_uploaded_script_on_the_cluster(
        case_study: dict[str, Path]) -> None:
    template = load(case_study, "pipeline-x")
    branch = definition(template, "pipeline-x")["States"]["Run steps"]["Branches"][0]["States"]
    step = branch["metric-x"]["Parameters"]
    assert step["ClusterId.$"] == "$.cluster.ClusterId"
    args = step["Step"]["HadoopJarStep"]["Args"]
    assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
    assert args[-1].endswith("/dpc/pipeline-x/metric-x/metric_x.py")
    assert of_type(template, "Custom::CDKBucketDeployment")


def test_shell_step_with_a_project_script_runs_the_uploaded_script(
        case_study: dict[str, Path]) -> None:
    """Run from the artifacts bucket by bash through command-runner, in the step's
    environment (tests/test_emr_shell_keep_busy.py runs these arguments)."""
    branch = definition(load(case_study, "searches"), "searches")["States"]["Run steps"][
        "Branches"][0]["States"]
    jar = branch["export-searches"]["Parameters"]["Step"]["HadoopJarStep"]
    assert jar["Jar"] == "command-runner.jar"
    assert jar["Args"][:3] == ["env", "DPC_PIPELINE=searches", "bash"]
    assert jar["Args"][-1].endswith("/dpc/searches/export-searches/export_searches.sh")


def test_full_execution_notifications_report_each_step(case_study: dict[str, Path]) -> None:
    branch = definition(load(case_study, "listings"), "listings")["States"]["Run steps"][
        "Branches"][0]
    assert branch["StartAt"] == "aggregate-listings started"
    assert branch["States"]["aggregate-listings"]["Next"] == "aggregate-listings succeeded"


def test_failures_only_pipeline_reports_no_step_events(case_study: dict[str, Path]) -> None:
    branch = definition(load(case_study, "listings-fallback"), "listings-fallback")["States"][
        "Run steps"]["Branches"][0]
    assert branch["StartAt"] == "use-yesterdays-listings"


def test_scheduled_pipeline_gets_a_rule_with_its_cron(case_study: dict[str, Path]) -> None:
    rules = of_type(load(case_study, "listings"), "AWS::Events::Rule")
    (rule,) = [r["Properties"] for r in rules.values() if "ScheduleExpression" in r["Properties"]]
    assert rule["ScheduleExpression"] == "cron(0 3 * * ? *)"
    (target,) = rule["Targets"]
    assert "logicalDate" in target["InputTransformer"]["InputTemplate"]


def test_triggered_pipeline_listens_on_its_bus_for_its_own_triggers_only(
        case_study: dict[str, Path]) -> None:
    template = load(case_study, "pipeline-x")
    (rule,) = of_type(template, "AWS::Events::Rule").values()
    props = rule["Properties"]
    assert props["EventBusName"] == "dpc-pipelines"
    assert props["EventPattern"] == {
        "source": ["dpc.trigger"], "detail-type": ["dpc Pipeline Trigger"],
        "detail": {"pipeline": ["pipeline-x"], "account": ["333333333333"]}}
    (target,) = props["Targets"]
    assert target["InputPath"] == "$.detail"
    starter = [lid for lid, r in of_type(template, "AWS::StepFunctions::StateMachine").items()
               if r["Properties"].get("StateMachineType") == "EXPRESS"]
    assert target["Arn"] == {"Ref": starter[0]}


def test_starter_names_the_run_and_treats_an_existing_run_as_success(
        case_study: dict[str, Path]) -> None:
    from dpc_central.testing import state_machine_definitions

    template = load(case_study, "pipeline-x")
    express = {lid: r for lid, r in of_type(template, "AWS::StepFunctions::StateMachine").items()
               if r["Properties"].get("StateMachineType") == "EXPRESS"}
    (asl,) = state_machine_definitions({"Resources": express}, Placeholders()).values()
    start = asl["States"][asl["StartAt"]]
    assert start["Resource"].endswith(":states:::states:startExecution")
    assert start["Parameters"]["Name.$"] == "$.executionName"
    (catch,) = start["Catch"]
    assert catch["ErrorEquals"] == ["StepFunctions.ExecutionAlreadyExistsException"]
    assert asl["States"][catch["Next"]]["Type"] == "Succeed"


def test_notification_targets_become_topic_subscriptions(case_study: dict[str, Path]) -> None:
    subs = [s["Properties"] for s in
            of_type(load(case_study, "pipeline-x"), "AWS::SNS::Subscription").values()]
    protocols = {s["Protocol"] for s in subs}
    assert protocols == {"email", "lambda"}
    email = next(s for s in subs if s["Protocol"] == "email")
    assert email["Endpoint"] == "rent-journey@example.com"
    slack = next(s for s in subs if s["Protocol"] == "lambda")
    assert json.dumps(slack["Endpoint"]).endswith(':function:dpc-slack-poster"]]}')
    opsgenie = [s["Properties"] for s in of_type(load(case_study, "listings-fallback"),
                                                 "AWS::SNS::Subscription").values()]
    assert [s["Protocol"] for s in opsgenie] == ["https"]


def test_topic_is_encrypted_and_publishable_by_the_central_account(
        case_study: dict[str, Path]) -> None:
    template = load(case_study, "pipeline-x")
    (topic,) = of_type(template, "AWS::SNS::Topic").values()
    assert topic["Properties"]["TopicName"] == "dpc-pipeline-x"
    assert "KmsMasterKeyId" in topic["Properties"]
    policy = json.dumps(of_type(template, "AWS::SNS::TopicPolicy"))
    assert "sns:Publish" in policy and "aws:SecureTransport" in policy


def test_pipeline_is_registered_with_its_condition_at_deploy(case_study: dict[str, Path]) -> None:
    (reg,) = of_type(load(case_study, "pipeline-x"), "Custom::DpcRegistration").values()
    spec = json.loads(reg["Properties"]["Spec"])
    assert spec["name"] == "pipeline-x" and spec["account"] == "333333333333"
    assert sorted(spec["parents"]) == ["111111111111/listings", "222222222222/searches"]
    channels = json.loads(reg["Properties"]["AlertChannels"])
    assert {c["channel"] for c in channels} == {"SLACK", "EMAIL"}


# -- shell-only pipelines deploy: the steps' compute by default ---------------------------

@pytest.mark.parametrize("name", ["searches", "listings-fallback"])
def test_shell_only_pipelines_run_on_a_default_transient_cluster(
        case_study: dict[str, Path], name: str) -> None:
    states = definition(load(case_study, name), name)["States"]
    assert states["Create cluster"]["Resource"].endswith(
        ":states:::elasticmapreduce:createCluster.sync")
    assert states["Run steps"]["Next"] == "Terminate cluster"


# -- clusters and secrets do not leak ------------------------------------------------------

def test_cluster_terminates_itself_when_idle_and_is_tagged_with_its_run(
        case_study: dict[str, Path]) -> None:
    """A TIMED_OUT or ABORTED run runs no catch path: EMR's idle timeout ends the cluster."""
    create = definition(load(case_study, "listings"), "listings")["States"]["Create cluster"]
    params = create["Parameters"]
    assert params["Instances"]["KeepJobFlowAliveWhenNoSteps"] is True
    assert params["AutoTerminationPolicy"] == {"IdleTimeout": 3600}
    assert {"Key": "dpc-pipeline", "Value": "listings"} in params["Tags"]
    assert {"Key": "dpc-execution", "Value.$": "$$.Execution.Name"} in params["Tags"]
    # AmazonEMRServicePolicy_v2 launches instances only for clusters with this tag.
    assert {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"} in \
        params["Tags"]


def _cluster_of_run(emr: Any, create: dict[str, Any], execution: str,
                    pipeline: str | None = None) -> str:
    """RunJobFlow with the name and tags the run's ``Create cluster`` state sends
    (``$$.Execution.Name`` = ``execution``; ``pipeline`` renames it as another's)."""
    params = create["Parameters"]
    name, tags = params["Name"], []
    for tag in params["Tags"]:
        value = execution if tag.get("Value.$") == "$$.Execution.Name" else tag["Value"]
        if pipeline and tag["Key"] == "dpc-pipeline":
            value, name = pipeline, f"dpc-{pipeline}"
        tags.append({"Key": tag["Key"], "Value": value})
    return str(emr.run_job_flow(
        Name=name, ReleaseLabel=params["ReleaseLabel"], Tags=tags,
        Instances={"MasterInstanceType": "m5.xlarge", "SlaveInstanceType": "m5.xlarge",
                   "InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": True},
        JobFlowRole="dpc-emr-instance-role", ServiceRole="dpc-emr-service-role")["JobFlowId"])


def _status_event(sfn: Any, execution_arn: str) -> dict[str, Any]:
    """The ``Step Functions Execution Status Change`` event of an execution, as AWS
    puts it on the account's default bus."""
    d = sfn.describe_execution(executionArn=execution_arn)
    ms = lambda t: int(t.timestamp() * 1000) if t else None  # noqa: E731
    return {"version": "0", "id": "e-1", "source": "aws.states",
            "detail-type": "Step Functions Execution Status Change",
            "account": execution_arn.split(":")[4], "region": "eu-west-1",
            "resources": [execution_arn],
            "detail": {"executionArn": execution_arn, "stateMachineArn": d["stateMachineArn"],
                       "name": d["name"], "status": d["status"],
                       "startDate": ms(d["startDate"]), "stopDate": ms(d.get("stopDate"))}}


def test_clusters_of_stopped_runs_are_terminated_by_the_reaper(
        case_study: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Step Functions terminates no cluster when a run is stopped or times out: the team
    account's cluster reaper finds the run's clusters by the tags the synthesized
    ``Create cluster`` state puts on them (moto: EMR and Step Functions)."""
    import boto3
    from moto import mock_aws

    from dpc_central.handlers import _common, cluster_reaper

    create = definition(load(case_study, "listings"), "listings")["States"]["Create cluster"]
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "eu-west-1"), ("AWS_REGION", "eu-west-1")):
        monkeypatch.setenv(key, value)
    _common.reset()
    try:
        with mock_aws():
            emr = boto3.client("emr", region_name="eu-west-1")
            sfn = boto3.client("stepfunctions", region_name="eu-west-1")
            machine = sfn.create_state_machine(
                name="listings", roleArn="arn:aws:iam::123456789012:role/sfn",
                definition=json.dumps({"StartAt": "w", "States": {
                    "w": {"Type": "Wait", "Seconds": 3600, "End": True}}}))["stateMachineArn"]
            stopped = sfn.start_execution(stateMachineArn=machine,
                                          name="dpc-2026-11-26-stopped")["executionArn"]
            running = sfn.start_execution(stateMachineArn=machine,
                                          name="dpc-2026-11-26-running")["executionArn"]
            mine = _cluster_of_run(emr, create, "dpc-2026-11-26-stopped")
            other_run = _cluster_of_run(emr, create, "dpc-2026-11-26-running")
            other_pipeline = _cluster_of_run(emr, create, "dpc-2026-11-26-stopped",
                                             pipeline="searches")
            adhoc = emr.run_job_flow(
                Name="adhoc", ReleaseLabel="emr-7.5.0", JobFlowRole="r", ServiceRole="s",
                Instances={"MasterInstanceType": "m5.xlarge", "InstanceCount": 1,
                           "KeepJobFlowAliveWhenNoSteps": True})["JobFlowId"]
            sfn.stop_execution(executionArn=stopped)

            def state(cid: str) -> str:
                return str(emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"])

            # A run that ended otherwise (SUCCEEDED: its teardown ran) is left alone.
            ok = {**_status_event(sfn, stopped)}
            ok["detail"] = {**ok["detail"], "status": "SUCCEEDED"}
            assert cluster_reaper.handle(ok)["terminated"] == []
            event = _status_event(sfn, stopped)
            assert event["detail"]["status"] == "ABORTED"
            assert cluster_reaper.handle(event)["terminated"] == [mine]
            assert state(mine).startswith("TERMINAT")
            assert {c: state(c) for c in (other_run, other_pipeline, adhoc)} == dict.fromkeys(
                (other_run, other_pipeline, adhoc), "WAITING")
            # Status events are best effort: the sweep finds a cluster of the stopped run
            # whose event was lost, and leaves the running run's cluster alone.
            lost = _cluster_of_run(emr, create, "dpc-2026-11-26-stopped")
            swept = cluster_reaper.handle({"source": "aws.events",
                                           "detail-type": "Scheduled Event"})
            assert swept["terminated"] == [lost]
            assert state(other_run) == "WAITING"
            assert sfn.describe_execution(executionArn=running)["status"] == "RUNNING"
    finally:
        _common.reset()


def test_emr_tasks_have_time_limits_within_the_runs_and_teardown_retries(
        case_study: dict[str, Path]) -> None:
    asl = definition(load(case_study, "listings"), "listings")
    states = asl["States"]
    assert asl["TimeoutSeconds"] == 12 * 3600
    assert states["Create cluster"]["TimeoutSeconds"] == 3600
    assert states["Create cluster"]["Retry"][0]["ErrorEquals"] == ["States.TaskFailed"]
    for name in ("Terminate cluster", "Terminate cluster after failure"):
        assert states[name]["Retry"][0] == {**states[name]["Retry"][0],
                                            "ErrorEquals": ["States.ALL"], "MaxAttempts": 3}
    step = states["Run steps"]["Branches"][0]["States"]["aggregate-listings"]
    # Shorter than the run, so a stuck step ends in the catch path that terminates.
    assert step["TimeoutSeconds"] == 8 * 3600 < asl["TimeoutSeconds"]


def emr_statements(template: Any) -> list[dict[str, Any]]:
    statements = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            if any(a.startswith("elasticmapreduce:") for a in actions):
                statements.append({**st, "Action": actions})
    return statements


@pytest.mark.parametrize("name", ["listings", "searches"])
def test_state_machine_acts_only_on_clusters_tagged_with_its_pipeline(
        case_study: dict[str, Path], name: str) -> None:
    """IAM evaluates the tag of the request (RunJobFlow, tag-on-create) or of the cluster."""
    statements = emr_statements(tpl(case_study, name))
    assert statements
    # Tagging is denied on a cluster that carries another pipeline's tag.
    key = "elasticmapreduce:ResourceTag/dpc-pipeline"
    assert [(st["Action"], st["Condition"]) for st in statements if st["Effect"] == "Deny"] \
        == [(["elasticmapreduce:AddTags"], {"Null": {key: "false"},
                                            "StringNotEquals": {key: name}})]
    statements = [st for st in statements if st["Effect"] == "Allow"]
    for st in statements:
        tags = st.get("Condition", {}).get("StringEquals", {})
        if st["Resource"] == "*":
            assert set(st["Action"]) <= {"elasticmapreduce:RunJobFlow",
                                         "elasticmapreduce:AddTags"}
            assert tags == {"aws:RequestTag/dpc-pipeline": name}
        else:
            assert tags == {"elasticmapreduce:ResourceTag/dpc-pipeline": name}
    actions = {a for st in statements for a in st["Action"]}
    assert {"elasticmapreduce:RunJobFlow", "elasticmapreduce:TerminateJobFlows",
            "elasticmapreduce:AddJobFlowSteps"} <= actions


def test_run_logs_record_transitions_but_no_execution_data(case_study: dict[str, Path]) -> None:
    from aws_cdk.assertions import Match

    tpl(case_study, "listings").has_resource_properties("AWS::StepFunctions::StateMachine", {
        "StateMachineName": "listings",
        "LoggingConfiguration": Match.object_like({"IncludeExecutionData": False,
                                                   "Level": "ALL"})})


# -- notifications and alarms reach someone ------------------------------------------------

def test_central_account_may_encrypt_for_the_topic_only_through_sns(
        case_study: dict[str, Path]) -> None:
    from aws_cdk.assertions import Match

    tpl(case_study, "pipeline-x").has_resource_properties("AWS::KMS::Key", {
        "KeyPolicy": {"Statement": Match.array_with([Match.object_like({
            "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
            "Principal": {"AWS": Match.any_value()},
            "Condition": {"StringEquals": {"kms:ViaService": "sns.eu-west-1.amazonaws.com"}}})
        ])}})


@pytest.mark.parametrize("name", ["pipeline-x", "listings-fallback"])
def test_every_subscription_keeps_undeliverable_messages_in_a_dead_letter_queue(
        case_study: dict[str, Path], name: str) -> None:
    from aws_cdk.assertions import Match

    template = tpl(case_study, name)
    subs = template.find_resources("AWS::SNS::Subscription")
    assert subs
    queues = {json.dumps(sub["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
              for sub in subs.values()}
    (queue,) = queues
    queue_id = json.loads(queue)["Fn::GetAtt"][0]
    assert queue_id in template.find_resources("AWS::SQS::Queue")
    # SNS may send to the queue only for this pipeline's topic.
    (topic_id,) = template.find_resources("AWS::SNS::Topic")
    template.has_resource_properties("AWS::SQS::QueuePolicy", {
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Action": "sqs:SendMessage", "Principal": {"Service": "sns.amazonaws.com"},
            "Condition": {"ArnEquals": {"aws:SourceArn": {"Ref": topic_id}}}})])}})


@pytest.mark.parametrize("name", ["listings", "pipeline-x"])
def test_every_alarm_notifies_the_accounts_alarm_topic(case_study: dict[str, Path],
                                                        name: str) -> None:
    template = tpl(case_study, name)
    params = template.find_parameters("*")
    alarm_topic = [p for p, v in params.items() if v.get("Default") == "/dpc/alarm-topic-arn"]
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    assert alarms
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": alarm_topic[0]}]


def test_the_pinned_cdk_cli_reads_this_cloud_assembly(case_study: dict[str, Path]) -> None:
    """A CLI older than the library refuses the assembly (schema version mismatch)."""
    from dpc_central.cli import CDK_CLI_MAX_SCHEMA_MAJOR

    manifest = next(iter(case_study.values())).parent / "manifest.json"
    major = int(json.loads(manifest.read_text())["version"].split(".")[0])
    assert major <= CDK_CLI_MAX_SCHEMA_MAJOR


def test_every_case_study_template_passes_cfn_lint(case_study: dict[str, Path]) -> None:
    from dpc_central.testing import cfn_lint

    problems = {name: cfn_lint(path) for name, path in case_study.items()}
    assert problems == {name: [] for name in case_study}


# -- variants: synthesized one stack at a time, without cdk-nag (checked above) ----------

def synth_one(tmp_path: Path, yaml_text: str, files: dict[str, str] | None = None,
              registry: Any = None) -> dict[str, Any]:
    from dpc_central.testing import synth_pipeline_yaml

    return synth_pipeline_yaml(tmp_path, yaml_text, files, registry)


def test_schedule_in_another_time_zone_uses_eventbridge_scheduler(tmp_path: Path) -> None:
    template = synth_one(tmp_path, """
name: madrid
account: "111111111111"
trigger: {schedule: {hour: 3}, timezone: Europe/Madrid}
steps: [{name: job, type: spark, script: job.py}]
compute: {type: emr}
""", {"job.py": "print(1)\n"})
    (schedule,) = of_type(template, "AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["ScheduleExpressionTimezone"] == "Europe/Madrid"
    assert schedule["Properties"]["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert "DeadLetterConfig" in schedule["Properties"]["Target"]


def outside_plugin_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            source: str = PLUGIN, module: str = "dpc_acme_steps") -> Any:
    """A registry with the installed plugins plus one written outside the repo."""
    from dpc_core.plugins import EntryPointLike, installed_entry_points, load_registry

    pkg = tmp_path / "outside"
    pkg.mkdir()
    (pkg / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(pkg))
    eps = [*installed_entry_points(),
           EntryPointLike("acme", module, "dpc-acme-steps", "0.1.0")]
    return load_registry(eps)


def test_outside_plugin_step_appears_in_the_state_machine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = outside_plugin_registry(tmp_path, monkeypatch)
    template = synth_one(tmp_path, """
name: acme
account: "111111111111"
steps:
  - {name: first, type: acme-marker, bucket: acme-data}
  - {name: second, type: acme-marker, bucket: acme-data}
""", registry=registry)
    branch = definition(template, "acme")["States"]["Run steps"]["Branches"][0]
    assert branch["StartAt"] == "first marker"
    assert branch["States"]["first marker"]["Next"] == "second marker"
    assert branch["States"]["second marker"]["Resource"].endswith(
        ":states:::aws-sdk:s3:putObject")


NUMBER_PLUGIN = '''
"""An outside step whose CDK state holds a number token (a CloudFormation parameter)."""
from dpc_core import hookimpl
from dpc_core.types import LocalCommand, StepConfig, StepType

DPC_PLUGIN_API = 1


def _aws(ctx):
    import aws_cdk as cdk
    from aws_cdk import aws_stepfunctions as sfn

    stack = cdk.Stack.of(ctx.scope)
    param = stack.node.try_find_child("BatchSize") or cdk.CfnParameter(
        stack, "BatchSize", type="Number", default=7)
    size = param.value_as_number
    if ctx.step.name == "first":
        return sfn.Pass(ctx.scope, f"{ctx.step.name} size", parameters={"size": size},
                        result_path="$.size")
    from dpc_core.types import AslState

    return AslState(f"{ctx.step.name} size", {"Type": "Pass", "Parameters": {"size": size},
                                              "ResultPath": "$.size"})


@hookimpl
def dpc_step_types():
    yield StepType(name="acme-size", config=StepConfig, aws_states=_aws,
                   local=lambda step, ctx: LocalCommand(["true"]))
'''


def test_a_number_token_in_a_cdk_state_is_resolved_at_deploy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CDK hands a number token to Python as a marker float: written as a number it
    would deploy as -1.88e+289; it must become the parameter's value."""
    registry = outside_plugin_registry(tmp_path, monkeypatch, NUMBER_PLUGIN,
                                       module="dpc_acme_sizes")
    template = synth_one(tmp_path, """
name: acme
account: "111111111111"
steps:
  - {name: first, type: acme-size}
  - {name: second, type: acme-size}
""", registry=registry)
    (machine,) = of_type(template, "AWS::StepFunctions::StateMachine").values()
    assert {"Ref": "BatchSize"} in machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    from dpc_central.testing import state_machine_definitions

    refs = Placeholders(BatchSize="42")
    (asl,) = state_machine_definitions({"Resources": {"M": machine}}, refs).values()
    states = asl["States"]["Run steps"]["Branches"][0]["States"]
    # Rendered by CDK (first) and written as an AslState by the plugin (second).
    assert states["first size"]["Parameters"] == {"size": 42}
    assert states["second size"]["Parameters"] == {"size": 42}


def test_a_fresh_project_synthesizes_with_default_options(tmp_path: Path) -> None:
    """`dpc create-project` then `dpc synth`: a shell step, no compute, cdk-nag on."""
    from dpc_central.app import pipeline_app
    from dpc_core.loader import load_pipelines
    from dpc_core.scaffold import create_project

    project = create_project(tmp_path, "fresh", "123456789012")
    (pipeline,) = load_pipelines([project])
    out = tmp_path / "cdk.out"
    pipeline_app([pipeline], outdir=out).synth()
    asl = definition(json.loads((out / "dpc-pipeline-fresh.template.json").read_text()), "fresh")
    assert "Create cluster" in asl["States"]


def test_hive_metastore_is_configured_by_emr_from_secrets_never_through_the_run(
        tmp_path: Path) -> None:
    from aws_cdk.assertions import Match, Template

    arn = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:hive/{}-AbCdEf"
    template = synth_one(tmp_path, f"""
name: hive
account: "111111111111"
steps: [{{name: job, type: spark, script: job.py}}]
compute:
  type: emr
  runTimeoutMinutes: 120
  stepTimeoutMinutes: 90
  idleTimeoutMinutes: 15
  hiveMetastore: {{url: "{arn.format('url')}", username: "{arn.format('user')}",
                  password: "{arn.format('password')}"}}
""", {"job.py": "print(1)\n"})
    asl = definition(template, "hive")
    assert "getSecretValue" not in json.dumps(asl)
    assert "$.hive" not in json.dumps(asl)
    configs = asl["States"]["Create cluster"]["Parameters"]["Configurations"]
    assert {c["Classification"] for c in configs} == {"hive-site", "spark-hive-site"}
    assert configs[0]["Properties"] == {
        "javax.jdo.option.ConnectionURL:secret": arn.format("url"),
        "javax.jdo.option.ConnectionUserName:secret": arn.format("user"),
        "javax.jdo.option.ConnectionPassword:secret": arn.format("password")}
    # EMR reads the secrets with its service role: that role, those three secrets.
    Template.from_json(template).has_resource_properties("AWS::IAM::Policy", {
        "Roles": ["dpc-emr-service-role"],
        "PolicyDocument": {"Statement": Match.array_with([{
            "Sid": "ReadHiveMetastoreSecrets", "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": [arn.format("url"), arn.format("user"), arn.format("password")]}])}})
    assert asl["TimeoutSeconds"] == 120 * 60
    assert asl["States"]["Create cluster"]["Parameters"]["AutoTerminationPolicy"] == {
        "IdleTimeout": 15 * 60}
    step = asl["States"]["Run steps"]["Branches"][0]["States"]["job"]
    assert step["TimeoutSeconds"] == 90 * 60


def test_a_step_without_an_aws_form_is_a_validate_warning_and_the_same_synth_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import dpc_core.loader
    import dpc_core.plugins
    from dpc_central.errors import SynthError
    from dpc_core.cli.main import main

    registry = outside_plugin_registry(tmp_path, monkeypatch,
                                       PLUGIN.replace("aws_states=_aws,", ""),
                                       module="dpc_acme_local_steps")
    project = tmp_path / "local-only"
    project.mkdir()
    (project / "pipeline.yaml").write_text(LOCAL_ONLY)
    for module in (dpc_core.plugins, dpc_core.loader):
        monkeypatch.setattr(module, "get_registry", lambda: registry)
    try:
        main(["validate", str(project)])
    except SystemExit as exited:  # only on failure
        raise AssertionError(f"validate failed: {capsys.readouterr().err}") from exited
    captured = capsys.readouterr()
    err = captured.err + captured.out
    message = ("step 'mark' (type acme-marker, plugin dpc-acme-steps) has no AWS form")
    assert f"warning: {project / 'pipeline.yaml'}: not deployable to AWS: {message}" in err
    with pytest.raises(SynthError, match=re.escape(message)):
        synth_one(tmp_path / "synth", LOCAL_ONLY, registry=registry)


LOCAL_ONLY = """
name: local-only
account: "111111111111"
steps: [{name: mark, type: acme-marker, bucket: acme-data}]
"""
