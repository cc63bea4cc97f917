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


def test_schedule_starts_its_run_through_the_idempotent_starter_named_by_the_tick(
        case_study: dict[str, Path]) -> None:
    """EventBridge delivers a schedule tick at least once: the rule starts the run through
    the starter, which names it after the scheduled time (a second delivery is the same
    name, refused by Step Functions and caught as success)."""
    from dpc_central.pipeline.starter import SCHEDULED_RUN_NAME

    template = load(case_study, "listings")
    rules = of_type(template, "AWS::Events::Rule")
    (target,) = [r["Properties"]["Targets"][0] for r in rules.values()
                 if "ScheduleExpression" in r["Properties"]]
    starter = [lid for lid, r in of_type(template, "AWS::StepFunctions::StateMachine").items()
               if r["Properties"].get("StateMachineType") == "EXPRESS"]
    assert target["Arn"] == {"Ref": starter[0]}
    transformer = target["InputTransformer"]
    assert json.loads(transformer["InputTemplate"].replace("<time>", '"T"')) == {
        "input": {"dpc": {"logicalDate": "T", "trigger": "schedule"}}}
    assert transformer["InputPathsMap"] == {"time": "$.time"}
    from dpc_central.testing import state_machine_definitions

    (asl,) = state_machine_definitions(
        {"Resources": {starter[0]: template["Resources"][starter[0]]}}, Placeholders()).values()
    name = asl["States"][asl["StartAt"]]
    assert name["Type"] == "Pass"
    assert name["Parameters"]["executionName.$"] == SCHEDULED_RUN_NAME
    start = asl["States"][name["Next"]]
    assert start["Parameters"]["Name.$"] == "$.executionName"
    (catch,) = start["Catch"]
    assert catch["ErrorEquals"] == ["StepFunctions.ExecutionAlreadyExistsException"]


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
    assert protocols == {"email", "sqs"}
    email = next(s for s in subs if s["Protocol"] == "email")
    assert email["Endpoint"] == "rent-journey@example.com"
    slack = next(s for s in subs if s["Protocol"] == "sqs")
    assert json.dumps(slack["Endpoint"]).endswith(':dpc-slack-notes"]]}')
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


@pytest.mark.parametrize("name", ["listings", "searches", "pipeline-x", "listings-fallback"])
def test_topic_key_is_scheduled_for_deletion_with_the_stack(case_study: dict[str, Path],
                                                             name: str) -> None:
    """A retained key stays enabled (and usable by the central account) after a destroy,
    one more per redeploy: deleted with the stack, KMS keeps it pending (unusable) for the
    shortest window, 7 days."""
    keys = of_type(load(case_study, name), "AWS::KMS::Key")
    assert keys
    for key in keys.values():
        assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Delete"
        assert key["Properties"]["PendingWindowInDays"] == 7


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
        JobFlowRole=params["JobFlowRole"], ServiceRole=params["ServiceRole"])["JobFlowId"])


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

    from dpc_central.handlers import _common
    from dpc_compute_emr.handlers import cluster_reaper

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
    target = schedule["Properties"]["Target"]
    assert "DeadLetterConfig" in target
    # Scheduler delivers at least once too: the idempotent starter, named by the tick.
    starter = [lid for lid, r in of_type(template, "AWS::StepFunctions::StateMachine").items()
               if r["Properties"].get("StateMachineType") == "EXPRESS"]
    assert target["Arn"] == {"Ref": starter[0]}
    assert json.loads(target["Input"]) == {"input": {"dpc": {
        "logicalDate": "<aws.scheduler.scheduled-time>", "trigger": "schedule"}}}


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
    # EMR reads the secrets with its service role: the pipeline's own, those three
    # secrets (nothing is added to the account's shared role).
    roles = of_type(template, "AWS::IAM::Role")
    (own,) = [lid for lid, r in roles.items()
              if r["Properties"].get("RoleName") == "dpc-emr-hive-eu-west-1"]
    Template.from_json(template).has_resource_properties("AWS::IAM::Role", {
        "RoleName": "dpc-emr-hive-eu-west-1",
        "Policies": [{"PolicyName": "HiveMetastore", "PolicyDocument": {
            "Statement": Match.array_with([{
                "Sid": "ReadHiveMetastoreSecrets", "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": [arn.format("url"), arn.format("user"),
                             arn.format("password")]}])}}]})
    assert "kms:Decrypt" not in json.dumps(roles[own])  # the default key needs no grant
    create = asl["States"]["Create cluster"]["Parameters"]
    assert create["ServiceRole"] == create["AutoScalingRole"] == f"<{own}>"
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


HIVE_YAML = """
name: {name}
account: "111111111111"
steps: [{{name: job, type: spark, script: job.py}}]
compute:
  type: emr
  hiveMetastore: {{url: "{arn}url-AbCdEf", username: "{arn}user-AbCdEf",
                  password: "{arn}password-AbCdEf"{key}}}
"""


def team_role_policy_chars(templates: list[dict[str, Any]]) -> dict[str, int]:
    """Characters (whitespace excluded, as IAM counts) of the inline policies each role
    named by the team stack carries, summed over every stack that attaches one to it
    (``AWS::IAM::Policy`` by role name or reference, and ``Policies`` of the role)."""
    team = templates[0]
    names = {lid: r["Properties"]["RoleName"] for lid, r in team["Resources"].items()
             if r["Type"] == "AWS::IAM::Role" and isinstance(
                 r["Properties"].get("RoleName"), str)}
    chars = dict.fromkeys(names.values(), 0)

    def size(doc: Any) -> int:
        return len(re.sub(r"\s", "", json.dumps(doc)))

    for lid, r in team["Resources"].items():
        if lid in names:
            chars[names[lid]] += sum(size(p["PolicyDocument"])
                                     for p in r["Properties"].get("Policies", []))
    for i, t in enumerate(templates):
        for r in t["Resources"].values():
            if r["Type"] != "AWS::IAM::Policy":
                continue
            for role in r["Properties"]["Roles"]:
                name = names.get(role.get("Ref")) if i == 0 and isinstance(role, dict) \
                    else role if isinstance(role, str) else None
                if name in chars:
                    chars[name] += size(r["Properties"]["PolicyDocument"])
    return chars


def test_a_team_account_holds_150_pipelines_half_with_hive_within_iam_role_quotas(
        tmp_path: Path) -> None:
    """A role's inline policies total at most 10,240 characters and it takes at most 10
    managed policies (IAM and STS quotas): the account's shared roles carry nothing per
    pipeline, so 150 pipeline stacks (half with a Hive metastore) add nothing to them."""
    from dpc_central.app import USER_STACK, pipeline_app, pipeline_stack_name, user_app
    from dpc_core.loader import load_pipelines

    user_app(outdir=tmp_path / "team", central_account="999999999999",
             account="111111111111", region="eu-west-1").synth()
    team = json.loads((tmp_path / "team" / f"{USER_STACK}.template.json").read_text())
    arn = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:hive/"
    projects = []
    for i in range(150):
        project = tmp_path / "projects" / f"p{i}"
        project.mkdir(parents=True)
        (project / "job.py").write_text("print(1)\n")
        text = HIVE_YAML.format(name=f"p{i}", arn=arn, key="") if i % 2 else (
            f'name: p{i}\naccount: "111111111111"\n'
            "steps: [{name: job, type: spark, script: job.py}]\n")
        (project / "pipeline.yaml").write_text(text)
        projects.append(project)
    pipelines = load_pipelines(projects)
    out = tmp_path / "cdk.out"
    pipeline_app(pipelines, outdir=out, region="eu-west-1", nag=False).synth()
    stacks = [json.loads((out / f"{pipeline_stack_name(p)}.template.json").read_text())
              for p in pipelines]
    alone = team_role_policy_chars([team])
    chars = team_role_policy_chars([team, *stacks])
    assert chars == alone, "a pipeline stack added a policy to a team role"
    assert max(chars.values()) <= 10_240
    assert "dpc-emr-service-role-eu-west-1" in chars
    for t in [team, *stacks]:
        for r in t["Resources"].values():
            if r["Type"] == "AWS::IAM::Role":
                assert len(r["Properties"].get("ManagedPolicyArns", [])) <= 10
                assert sum(len(re.sub(r"\s", "", json.dumps(p["PolicyDocument"])))
                           for p in r["Properties"].get("Policies", [])) <= 10_240
    hive_roles = {r["Properties"]["RoleName"] for t in stacks for r in t["Resources"].values()
                  if r["Type"] == "AWS::IAM::Role" and "RoleName" in r["Properties"]}
    assert len(hive_roles) == 75 and all(len(n) <= 64 for n in hive_roles)


def test_hive_secrets_under_a_customer_key_may_be_decrypted_through_secrets_manager_only(
        tmp_path: Path) -> None:
    key = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    template = synth_one(tmp_path, HIVE_YAML.format(
        name="hive", arn="arn:aws:secretsmanager:eu-west-1:111111111111:secret:hive/",
        key=f', kmsKey: "{key}"'), {"job.py": "print(1)\n"})
    (role,) = [r for r in of_type(template, "AWS::IAM::Role").values()
               if r["Properties"].get("RoleName") == "dpc-emr-hive-eu-west-1"]
    statements = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    (decrypt,) = [st for st in statements if st.get("Sid") == "DecryptHiveMetastoreSecrets"]
    assert decrypt == {"Sid": "DecryptHiveMetastoreSecrets", "Effect": "Allow",
                       "Action": "kms:Decrypt", "Resource": key, "Condition": {
                           "StringEquals": {
                               "kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}}}


def test_hive_secrets_in_another_account_need_a_key_and_print_the_owners_policies(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A secret read from another account must be under a customer key (validate warns,
    synth refuses without one); with it, validate and synth print the statements the
    secret's and the key's owner must add, naming the pipeline's own service role."""
    from dpc_central.cli import _synth_stacks
    from dpc_central.errors import SynthError
    from dpc_core.cli.main import main

    arn = "arn:aws:secretsmanager:eu-west-1:444444444444:secret:hive/"
    key = "arn:aws:kms:eu-west-1:444444444444:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    project = tmp_path / "project"
    project.mkdir()
    (project / "job.py").write_text("print(1)\n")
    (project / "pipeline.yaml").write_text(HIVE_YAML.format(name="hive", arn=arn, key=""))
    main(["validate", str(project)])
    err = capsys.readouterr().err
    assert "not deployable to AWS: compute.hiveMetastore: the secrets are in account " \
           "444444444444" in err and "kmsKey" in err
    with pytest.raises(SynthError, match="customer managed KMS key"):
        _synth_stacks(str(project), None, tmp_path / "out", "eu-west-1", nag=False)

    (project / "pipeline.yaml").write_text(HIVE_YAML.format(
        name="hive", arn=arn, key=f', kmsKey: "{key}"'))
    role = "arn:aws:iam::111111111111:role/dpc-emr-hive-eu-west-1"
    main(["validate", str(project)])
    for err in (capsys.readouterr().err,
                (_synth_stacks(str(project), None, tmp_path / "out2", "eu-west-1", nag=False),
                 capsys.readouterr().err)[1]):
        assert "not deployable" not in err
        secret_doc = json.loads(err[err.index("{"):err.index("\nnote:", err.index("{"))])
        assert secret_doc["Statement"] == [{
            "Sid": "DpcEmrReadsHiveMetastore", "Effect": "Allow", "Principal": {"AWS": role},
            "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]
        key_doc = json.loads(err[err.rindex("{\n  \"Sid\""):].strip())
        assert key_doc["Principal"] == {"AWS": role} and key_doc["Action"] == "kms:Decrypt"
        assert key_doc["Condition"] == {"StringEquals": {
            "kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}}
