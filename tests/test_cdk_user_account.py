"""A team account's stack, checked on its synthesized template (CDK assertions,
cdk-nag at synth, cfn-lint)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

CENTRAL = "999999999999"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    from aws_cdk.assertions import Template

    from dpc_central.app import USER_STACK, user_app

    out = tmp_path_factory.mktemp("user") / "cdk.out"
    user_app(outdir=out, central_account=CENTRAL, account="333333333333",
             region="eu-west-1").synth()
    path = out / f"{USER_STACK}.template.json"
    return Template.from_json(json.loads(path.read_text())), path


@pytest.fixture(scope="module")
def template(synthesized: tuple[Any, Path]) -> Any:
    return synthesized[0]


def test_pipeline_bus_admits_only_trigger_events_from_the_central_account(template: Any) -> None:
    template.has_resource_properties("AWS::Events::EventBus", {"Name": "dpc-pipelines"})
    (policy,) = template.find_resources("AWS::Events::EventBusPolicy").values()
    statement = policy["Properties"]["Statement"]
    assert f":iam::{CENTRAL}:root" in json.dumps(statement["Principal"])
    assert statement["Condition"] == {"StringEquals": {"events:source": ["dpc.trigger"]}}


def test_step_functions_status_changes_go_through_the_forwarder_not_to_central_whole(
        template: Any) -> None:
    """A rule whose target is another account's bus forwards the event whole (run input,
    output, error, cause) for every state machine of the account: the status events go
    to the local forwarder, which may put only dpc.states events on the central bus."""
    rules = [r["Properties"] for r in template.find_resources("AWS::Events::Rule").values()
             if (r["Properties"].get("EventPattern") or {}).get("source") == ["aws.states"]]
    assert not any("event-bus/dpc-central" in json.dumps(r["Targets"]) for r in rules)
    functions = template.find_resources("AWS::Lambda::Function")
    (lid,) = [k for k, r in functions.items() if r["Properties"].get("Handler") ==
              "dpc_central.handlers.status_forwarder.handle"]
    (rule,) = [r for r in rules if r["Targets"][0]["Arn"] == {"Fn::GetAtt": [lid, "Arn"]}]
    assert rule["EventPattern"]["detail-type"] == ["Step Functions Execution Status Change"]
    assert "EventBusName" not in rule  # the default bus, where AWS puts aws.states events
    assert "DeadLetterConfig" in rule["Targets"][0]
    env = functions[lid]["Properties"]["Environment"]["Variables"]
    assert f":{CENTRAL}:event-bus/dpc-central" in json.dumps(env["DPC_CENTRAL_BUS"])
    role = functions[lid]["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = {s.get("Sid"): s for p in template.find_resources("AWS::IAM::Policy").values()
                  if {"Ref": role} in p["Properties"]["Roles"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]}
    put = statements["PutOnCentralBus"]
    assert put["Condition"] == {"StringEquals": {"events:source": "dpc.states"}}
    assert statements["ReadStateMachineTags"]["Action"] == "states:ListTagsForResource"


def test_artifacts_bucket_is_encrypted_tls_only_versioned_and_private(template: Any) -> None:
    buckets = template.find_resources("AWS::S3::Bucket")
    assert len(buckets) == 2  # artifacts + its access logs
    for b in buckets.values():
        props = b["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True}
    policies = json.dumps(template.find_resources("AWS::S3::BucketPolicy"))
    assert '"aws:SecureTransport": "false"' in policies


def test_emr_logs_in_the_artifacts_bucket_expire(template: Any) -> None:
    """Each cluster writes its logs under ``emr-logs/<pipeline>/`` (the emr compute's
    LogUri); a lifecycle rule expires them, or a daily pipeline's logs pile up for ever."""
    import inspect

    from dpc_compute_emr import aws as emr_aws
    from dpc_compute_emr.names import LOGS_DAYS as EMR_LOGS_DAYS
    from dpc_compute_emr.names import LOGS_PREFIX as EMR_LOGS_PREFIX

    assert "/{LOGS_PREFIX}{pipeline.name}/" in inspect.getsource(emr_aws)
    rules = [r for b in template.find_resources("AWS::S3::Bucket").values()
             for r in b["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])]
    assert {"Id": "ExpireEmrLogs", "Prefix": EMR_LOGS_PREFIX, "Status": "Enabled",
            "ExpirationInDays": EMR_LOGS_DAYS} in rules


def test_emr_roles_have_the_names_pipelines_pass_to_run_job_flow(template: Any) -> None:
    template.has_resource_properties("AWS::IAM::Role", {
        "RoleName": "dpc-emr-service-role-eu-west-1"})
    template.has_resource_properties("AWS::IAM::Role", {
        "RoleName": "dpc-emr-instance-role-eu-west-1"})
    template.has_resource_properties("AWS::IAM::InstanceProfile", {
        "InstanceProfileName": "dpc-emr-instance-role-eu-west-1"})
    template.resource_count_is("AWS::EC2::SecurityGroup", 3)


def test_fixed_iam_names_end_with_the_region_and_fit_iam(tmp_path: Path) -> None:
    """IAM names are account-wide: a second region's setup-user-account in the same
    account must not collide, and the longest region code keeps names within 64."""
    from dpc_central.app import USER_STACK, user_app

    names: dict[str, set[str]] = {}
    for region in ("eu-west-1", "ap-southeast-5"):
        out = tmp_path / region
        user_app(outdir=out, central_account=CENTRAL, account="333333333333",
                 region=region).synth()
        resources = json.loads((out / f"{USER_STACK}.template.json").read_text())["Resources"]
        names[region] = {str(r["Properties"][key]) for r in resources.values()
                         for key in ("RoleName", "InstanceProfileName")
                         if key in r["Properties"]}
        assert names[region] == {f"dpc-emr-service-role-{region}",
                                 f"dpc-emr-instance-role-{region}",
                                 f"dpc-central-reconciler-read-{region}"}
        assert all(len(n) <= 64 for n in names[region])
    assert not names["eu-west-1"] & names["ap-southeast-5"]


def test_registration_provider_and_account_settings_are_published_in_ssm(template: Any) -> None:
    params = template.find_resources("AWS::SSM::Parameter").values()
    names = {p["Properties"]["Name"] for p in params}
    assert {"/dpc/central-account", "/dpc/artifacts-bucket", "/dpc/registration-provider-arn",
            "/dpc/emr/subnet-id", "/dpc/emr/master-security-group"} <= names



def test_registration_resources_are_served_by_the_provider_framework(template: Any) -> None:
    functions = template.find_resources("AWS::Lambda::Function")
    on_event = next(lid for lid, f in functions.items() if f["Properties"].get("Handler")
                    == "dpc_central.handlers.registration_client.handle")
    # The framework's function calls the onEvent function, named in its environment...
    framework = next(lid for lid, f in functions.items()
                     if f["Properties"].get("Environment", {}).get("Variables", {}).get(
                         "USER_ON_EVENT_FUNCTION_ARN") == {"Fn::GetAtt": [on_event, "Arn"]})
    # ...and is the service token pipeline stacks find in SSM.
    (param,) = [p["Properties"] for p in template.find_resources("AWS::SSM::Parameter").values()
                if p["Properties"]["Name"] == "/dpc/registration-provider-arn"]
    assert param["Value"] == {"Fn::GetAtt": [framework, "Arn"]}


def test_registration_client_may_only_invoke_the_central_pipelines_api(template: Any) -> None:
    functions = template.find_resources("AWS::Lambda::Function")
    (props,) = [f["Properties"] for f in functions.values() if f["Properties"].get("Handler")
                == "dpc_central.handlers.registration_client.handle"]
    assert "DPC_REGISTRATION_URL" in props["Environment"]["Variables"]
    role = props["Role"]["Fn::GetAtt"][0]
    statements = [st for p in template.find_resources("AWS::IAM::Policy").values()
                  if {"Ref": role} in p["Properties"]["Roles"]
                  for st in p["Properties"]["PolicyDocument"]["Statement"]]
    (invoke,) = [st for st in statements if st["Action"] == "execute-api:Invoke"]
    assert f":{CENTRAL}:*/v1/*/pipelines/*" in json.dumps(invoke["Resource"])
    assert f":{CENTRAL}:*/v1/*/accounts/*" in json.dumps(invoke["Resource"])


def test_the_account_records_itself_with_the_central_api(template: Any) -> None:
    """Custom::DpcAccount (PUT /accounts/{id} at deploy): without it the central API
    refuses this account's children, whose triggers its bus could not receive."""
    (record,) = template.find_resources("Custom::DpcAccount").values()
    (param,) = [p["Properties"] for p in template.find_resources("AWS::SSM::Parameter").values()
                if p["Properties"]["Name"] == "/dpc/registration-provider-arn"]
    assert record["Properties"]["ServiceToken"] == param["Value"]


def test_central_reconciler_may_only_read_executions(template: Any) -> None:
    role = next(r for r in template.find_resources("AWS::IAM::Role").values()
            if r["Properties"].get("RoleName") == "dpc-central-reconciler-read-eu-west-1")
    assert f":iam::{CENTRAL}:root" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    policies = [p for p in template.find_resources("AWS::IAM::Policy").values()
                if "ReconcilerRead" in json.dumps(p["Properties"]["Roles"])]
    actions = {a for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]
               for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert actions == {"states:ListExecutions", "states:DescribeStateMachine",
                       "states:DescribeExecution"}


def _reaper(template: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The cluster reaper's function and its role's policy statements."""
    (fn,) = [r["Properties"] for r in template.find_resources("AWS::Lambda::Function").values()
             if r["Properties"].get("Handler") == "dpc_compute_emr.handlers.cluster_reaper.handle"]
    role = fn["Role"]["Fn::GetAtt"][0]
    statements = [s for p in template.find_resources("AWS::IAM::Policy").values()
                  if {"Ref": role} in p["Properties"]["Roles"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    return fn, statements


def test_runs_that_end_without_teardown_wake_the_cluster_reaper(template: Any) -> None:
    """TIMED_OUT/ABORTED runs run no catch path, and Step Functions terminates no cluster
    when a run stops: their status events (and a schedule, as those are best effort)
    run the reaper in the team account."""
    rules = [r["Properties"] for r in template.find_resources("AWS::Events::Rule").values()
             if "ClusterReaper" in json.dumps(r["Properties"]["Targets"])]
    patterns = [r["EventPattern"] for r in rules if "EventPattern" in r]
    assert patterns == [{"source": ["aws.states"],
                         "detail-type": ["Step Functions Execution Status Change"],
                         "detail": {"status": ["TIMED_OUT", "ABORTED", "FAILED"]}}]
    assert [r["ScheduleExpression"] for r in rules if "ScheduleExpression" in r] == \
        ["rate(30 minutes)"]
    assert all("EventBusName" not in r for r in rules)  # the default bus
    assert all("DeadLetterConfig" in t for r in rules for t in r["Targets"])


def test_cluster_reaper_may_terminate_only_clusters_tagged_as_dpcs(template: Any) -> None:
    _, statements = _reaper(template)
    by_sid = {s.get("Sid"): s for s in statements}
    assert by_sid["ListClusters"]["Action"] == "elasticmapreduce:ListClusters"
    assert by_sid["ListClusters"]["Resource"] == "*"  # no resource type
    terminate = by_sid["TerminateDpcClusters"]
    assert sorted(terminate["Action"]) == ["elasticmapreduce:DescribeCluster",
                                           "elasticmapreduce:TerminateJobFlows"]
    assert ":cluster/*" in json.dumps(terminate["Resource"])
    assert terminate["Condition"] == {"Null": {"aws:ResourceTag/dpc-pipeline": "false",
                                               "aws:ResourceTag/dpc-execution": "false"}}
    assert by_sid["ReadRunStatus"]["Action"] == "states:DescribeExecution"
    emr = [a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str)
                                           else s["Action"]) if a.startswith("elasticmapreduce")]
    assert sorted(emr) == ["elasticmapreduce:DescribeCluster", "elasticmapreduce:ListClusters",
                           "elasticmapreduce:TerminateJobFlows"]


def test_template_passes_cfn_lint(synthesized: tuple[Any, Path]) -> None:
    from dpc_central.testing import cfn_lint

    assert cfn_lint(synthesized[1]) == []


# -- what AmazonEMRServicePolicy_v2 requires (docs/aws.md names the AWS pages) -------------

def test_emr_security_groups_carry_the_tag_the_emr_service_policy_requires(
        template: Any) -> None:
    """The v2 policy edits and launches into only groups tagged for EMR-managed policies."""
    from aws_cdk.assertions import Match

    groups = template.find_resources("AWS::EC2::SecurityGroup")
    assert len(groups) == 3
    for group in groups.values():
        assert {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"} in \
            group["Properties"]["Tags"]
    template.has_resource_properties("AWS::IAM::Role", {
        "RoleName": "dpc-emr-service-role-eu-west-1",
        "ManagedPolicyArns": Match.array_with([{"Fn::Join": ["", Match.array_with([
            Match.string_like_regexp("AmazonEMRServicePolicy_v2")])]}])})


def test_emr_service_role_may_pass_the_instance_role_to_ec2_only(template: Any) -> None:
    """The v2 policy may pass only EMR_EC2_DefaultRole; dpc's instance role is named."""
    from aws_cdk.assertions import Match

    roles = template.find_resources("AWS::IAM::Role", {"Properties": {
        "RoleName": "dpc-emr-instance-role-eu-west-1"}})
    (instance_role,) = roles
    template.has_resource_properties("AWS::IAM::Policy", {
        "PolicyDocument": {"Statement": Match.array_with([{
            "Sid": "PassInstanceRoleToEc2", "Effect": "Allow", "Action": "iam:PassRole",
            "Resource": {"Fn::GetAtt": [instance_role, "Arn"]},
            "Condition": {"StringLike": {"iam:PassedToService": "ec2.amazonaws.com*"}}}])}})


def test_every_alarm_of_the_account_notifies_its_encrypted_alarm_topic(template: Any) -> None:
    topics = template.find_resources("AWS::SNS::Topic")
    (topic,) = topics
    assert "KmsMasterKeyId" in topics[topic]["Properties"]
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    assert alarms
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]
    (param,) = [p["Properties"] for p in template.find_resources("AWS::SSM::Parameter").values()
                if p["Properties"]["Name"] == "/dpc/alarm-topic-arn"]
    assert param["Value"] == {"Ref": topic}


def test_cloudwatch_may_use_the_alarm_topics_key(template: Any) -> None:
    from aws_cdk.assertions import Match

    template.has_resource_properties("AWS::KMS::Key", {"KeyPolicy": {"Statement":
        Match.array_with([Match.object_like({
            "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
            "Principal": {"Service": "cloudwatch.amazonaws.com"}})])}})


def test_deleting_the_stack_first_revokes_emrs_rules_between_its_groups(template: Any) -> None:
    """EC2 refuses to delete a group another group's rule references; the custom resource
    that revokes those rules references the three groups, so CloudFormation deletes it
    (and runs its Delete) before them."""
    (resource,) = template.find_resources("Custom::DpcEmrSecurityGroupRules").values()
    groups = template.find_resources("AWS::EC2::SecurityGroup")
    assert resource["Properties"]["GroupIds"] == [
        {"Fn::GetAtt": [lid, "GroupId"]} for lid in groups]
    (fn,) = [r for r in template.find_resources("AWS::Lambda::Function").values()
             if r["Properties"].get("Handler") ==
             "dpc_compute_emr.handlers.sg_rules_cleanup.handle"]
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = {s.get("Sid"): s for p in template.find_resources("AWS::IAM::Policy").values()
                  if {"Ref": role} in p["Properties"]["Roles"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]}
    revoke = statements["RevokeRulesOfEmrGroups"]
    assert len(revoke["Resource"]) == 3
    assert all("security-group/" in json.dumps(r) for r in revoke["Resource"])


# -- compute is a plugin: the team stack holds EMR only when dpc-compute-emr is installed --

def _registry(with_emr: bool) -> Any:
    """The installed plugins, with or without dpc-compute-emr (its entry point
    ``compute_emr`` left out of the allow-list, as ``DPC_PLUGINS`` would)."""
    from dpc_core.plugins import installed_entry_points, load_registry

    names = [ep.name for ep in installed_entry_points()]
    assert "compute_emr" in names
    return load_registry(allow=[n for n in names if with_emr or n != "compute_emr"])


def _team_template(out: Path, registry: Any) -> dict[str, Any]:
    from dpc_central.app import USER_STACK, user_app

    user_app(outdir=out, central_account=CENTRAL, account="333333333333",
             region="eu-west-1", registry=registry).synth()
    return dict(json.loads((out / f"{USER_STACK}.template.json").read_text()))


@pytest.fixture(scope="module")
def without_emr(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _team_template(tmp_path_factory.mktemp("no-emr") / "cdk.out", _registry(False))


def test_without_the_emr_plugin_the_team_stack_holds_nothing_of_emr(
        without_emr: dict[str, Any]) -> None:
    text = json.dumps(without_emr)
    assert "elasticmapreduce" not in text and "emr" not in text.lower()
    types = {r["Type"] for r in without_emr["Resources"].values()}
    assert "AWS::EC2::SecurityGroup" not in types
    assert "AWS::IAM::InstanceProfile" not in types
    assert not [k for k in without_emr["Resources"] if "Reaper" in k or "Emr" in k]
    # No VPC or subnet to give: the compute that needs them is not installed.
    assert set(without_emr.get("Parameters", {})) <= {"RegistrationUrl", "BootstrapVersion"}
    roles = {str(r["Properties"].get("RoleName")) for r in without_emr["Resources"].values()
             if r["Type"] == "AWS::IAM::Role" and "RoleName" in r["Properties"]}
    assert roles == {"dpc-central-reconciler-read-eu-west-1"}
    # The rest of the team stack is all there.
    assert "AWS::Events::EventBus" in types and "AWS::S3::Bucket" in types


def test_the_emr_plugin_adds_its_resources_and_changes_nothing_else(
        template: Any, without_emr: dict[str, Any]) -> None:
    """dpc-compute-emr's contribution through ``dpc_team_account_constructs``: today's
    EMR resources under today's logical ids (an existing team stack updates in place),
    and every other resource exactly as without the plugin."""
    import copy

    with_emr = template.to_json()
    ours, base = copy.deepcopy(with_emr["Resources"]), without_emr["Resources"]
    assert set(base) <= set(ours)
    # The one change to a shared resource: the expiry of the clusters' logs in the
    # artifacts bucket (the plugin's own lifecycle rule).
    expiring = [lid for lid, r in ours.items() if r["Type"] == "AWS::S3::Bucket" and any(
        rule.get("Id") == "ExpireEmrLogs"
        for rule in r["Properties"].get("LifecycleConfiguration", {}).get("Rules", []))]
    assert len(expiring) == 1 and expiring[0] in base
    rules = ours[expiring[0]]["Properties"]["LifecycleConfiguration"]["Rules"]
    rules[:] = [rule for rule in rules if rule.get("Id") != "ExpireEmrLogs"]
    for lid, resource in base.items():
        assert ours[lid] == resource, lid
    added = {lid: r for lid, r in ours.items() if lid not in base}
    named = {r["Properties"].get("RoleName") or r["Properties"].get("InstanceProfileName")
             for r in added.values()} - {None}
    assert named == {"dpc-emr-service-role-eu-west-1", "dpc-emr-instance-role-eu-west-1"}
    assert sum(r["Type"] == "AWS::EC2::SecurityGroup" for r in added.values()) == 3
    assert {r["Properties"]["Name"] for r in added.values()
            if r["Type"] == "AWS::SSM::Parameter"} == {
        "/dpc/emr/subnet-id", "/dpc/emr/master-security-group",
        "/dpc/emr/worker-security-group", "/dpc/emr/service-security-group"}
    handlers = {r["Properties"].get("Handler") for r in added.values()
                if r["Type"] == "AWS::Lambda::Function"}
    assert {"dpc_compute_emr.handlers.cluster_reaper.handle",
            "dpc_compute_emr.handlers.sg_rules_cleanup.handle"} <= handlers
    # The logical ids the team stacks deployed before the move.
    assert {"EmrServiceRole", "EmrInstanceRole", "EmrInstanceProfile", "EmrMasterSg",
            "ClusterReaperHandlerFunction", "EmrSecurityGroupRules"} <= {
        lid[:-8] for lid in added}
    assert {"VpcId", "SubnetId"} <= set(with_emr["Parameters"])
    assert with_emr["Parameters"]["SubnetId"]["Type"] == "AWS::EC2::Subnet::Id"


def test_setup_user_account_has_the_vpc_and_subnet_options_only_with_the_emr_plugin(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    from dpc_core import plugins
    from dpc_core.cli.main import main

    def dpc(args: list[str]) -> tuple[int, str]:
        try:
            code = main(args)  # --help returns (click's standalone_mode=False)
        except SystemExit as exited:
            code = exited.code
        out = capsys.readouterr()
        return int(code or 0), out.out + out.err

    for with_emr in (True, False):
        monkeypatch.setattr(plugins, "_default", _registry(with_emr))
        code, help_text = dpc(["setup-user-account", "--help"])
        assert code == 0
        assert ("--vpc-id" in help_text and "--subnet-id" in help_text) is with_emr
    code, output = dpc(["setup-user-account", "--central-account", CENTRAL,
                        "--vpc-id", "vpc-1", "--synth-only", "--out", str(tmp_path)])
    assert code == 2 and "No such option '--vpc-id'" in output
