"""``dpc doctor --aws``: each check on moto where moto answers (STS, Organizations, EC2
DescribeSubnets), on a botocore Stubber with AWS's documented response shapes where it
does not (Service Quotas: moto 5.2 knows only the ``vpc`` service code; IAM: moto has
no SimulatePrincipalPolicy). The Stubber validates every request and response against
botocore's service model, so a wrong parameter or a response AWS would not send fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dpc_central import doctor
from dpc_central.doctor import OK, REFUSED, UNKNOWN, Call, Scope

REGION = "eu-west-1"
MOTO_ACCOUNT = "123456789012"
TAG = ("for-use-with-amazon-emr-managed-policies", "true")


@pytest.fixture
def aws(aws_credentials: str) -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


def moto_clients(service: str, region: str | None) -> Any:
    import boto3

    return boto3.client(service, region_name=region or REGION)


def stubbed(service: str, region: str = REGION) -> tuple[Any, Any]:
    import boto3
    from botocore.stub import Stubber

    client = boto3.client(service, region_name=region, aws_access_key_id="x",
                          aws_secret_access_key="x")
    stub = Stubber(client)
    stub.activate()
    return client, stub


def scope(**kw: Any) -> Scope:
    return Scope(**{"region": REGION, "account": MOTO_ACCOUNT, **kw})


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


# -- organisation (moto) ----------------------------------------------------------------


def test_members_of_the_organisation_pass_and_an_outsider_is_refused(aws: None) -> None:
    org = moto_clients("organizations", REGION)
    org_id = org.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    member = org.create_account(AccountName="team", Email="t@example.com")[
        "CreateAccountStatus"]["AccountId"]
    checks = by_name(doctor.check_organisation(
        scope(org_id=org_id, members=(member, "210987654321")), moto_clients))
    assert checks["organisation"].status == OK and org_id in checks["organisation"].detail
    assert checks[f"member {member}"].status == OK
    outsider = checks["member 210987654321"]
    assert outsider.status == REFUSED and "not an account of" in outsider.detail
    assert "--member-account" in outsider.fix


def test_an_org_id_other_than_the_callers_is_refused_with_the_right_one(aws: None) -> None:
    org = moto_clients("organizations", REGION)
    org_id = org.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    [check] = doctor.check_organisation(scope(org_id="o-aaaaaaaaaa"), moto_clients)
    assert check.status == REFUSED and check.fix == f"give --org-id {org_id}"


def test_an_org_id_for_an_account_in_no_organisation_is_refused(aws: None) -> None:
    [check] = doctor.check_organisation(scope(org_id="o-aaaaaaaaaa"), moto_clients)
    assert check.status == REFUSED and "no organisation" in check.detail
    [check] = doctor.check_organisation(scope(members=("210987654321",)), moto_clients)
    assert check.status == OK  # members only: no organisation needed


def test_a_caller_without_organizations_access_gets_unknown_not_refused() -> None:
    """Recorded: moto has no IAM enforcement by default, so the AccessDenied AWS answers
    a caller without organizations:DescribeOrganization is stubbed."""
    org, stub = stubbed("organizations")
    stub.add_client_error("describe_organization", "AccessDeniedException",
                          "You don't have permissions to access this resource.")
    [check] = doctor.check_organisation(scope(org_id="o-aaaaaaaaaa"),
                                        lambda s, r: org)
    assert check.status == UNKNOWN and "organizations:DescribeOrganization" in check.fix


# -- subnets (moto) ---------------------------------------------------------------------


def test_subnets_without_the_emr_tag_or_missing_are_refused(aws: None) -> None:
    ec2 = moto_clients("ec2", REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]

    def subnet(cidr: str, tags: list[dict[str, str]]) -> str:
        spec = [{"ResourceType": "subnet", "Tags": tags}] if tags else []
        return str(ec2.create_subnet(VpcId=vpc, CidrBlock=cidr,
                                     TagSpecifications=spec)["Subnet"]["SubnetId"])

    tagged = subnet("10.0.1.0/24", [{"Key": TAG[0], "Value": TAG[1]}])
    wrong = subnet("10.0.2.0/24", [{"Key": TAG[0], "Value": "false"}])
    checks = by_name(doctor.check_subnets(
        scope(subnets=(tagged, wrong, "subnet-0123456789abcdef0")), moto_clients))
    assert checks[f"subnet {tagged}"].status == OK
    assert checks[f"subnet {wrong}"].status == REFUSED
    assert checks[f"subnet {wrong}"].fix == (
        f"aws ec2 create-tags --resources {wrong} --tags Key={TAG[0]},Value={TAG[1]}")
    missing = checks["subnet subnet-0123456789abcdef0"]
    assert missing.status == REFUSED and "NotFound" in missing.detail


def test_the_subnet_tag_and_the_emr_resources_come_from_the_emr_plugin(aws: None) -> None:
    """Without dpc-compute-emr installed, doctor asks no tag of a subnet and knows no
    EMR role: what it checks comes from the installed plugins' hooks."""
    from dpc_core.plugins import installed_entry_points, load_registry

    names = [ep.name for ep in installed_entry_points()]
    without = load_registry(allow=[n for n in names if n != "compute_emr"])
    with_emr = load_registry(allow=names)
    ec2 = moto_clients("ec2", REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    bare = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.3.0/24")["Subnet"]["SubnetId"]
    plain = by_name(doctor.check_subnets(scope(subnets=(bare,)), moto_clients, without))
    assert plain[f"subnet {bare}"].status == OK
    assert "no tag required" in plain[f"subnet {bare}"].detail
    emr = by_name(doctor.check_subnets(scope(subnets=(bare,)), moto_clients, with_emr))
    assert emr[f"subnet {bare}"].status == REFUSED
    assert "AmazonEMRServicePolicy_v2" in emr[f"subnet {bare}"].detail
    assert doctor.plugin_resources(REGION, "333333333333", without) == []
    keys = {r.key for r in doctor.plugin_resources(REGION, "333333333333", with_emr)}
    assert {"emr-service-role", "emr-instance-role", "emr-cluster"} <= keys


# -- quotas (Stubber: moto's Service Quotas answers only for `vpc`) ---------------------


def quota(service: str, code: str, value: float, adjustable: bool = True) -> dict[str, Any]:
    """GetServiceQuota's response as the Service Quotas API reference documents it."""
    return {"Quota": {"ServiceCode": service, "ServiceName": service, "QuotaCode": code,
                      "QuotaArn": f"arn:aws:servicequotas:{REGION}:{MOTO_ACCOUNT}:"
                                  f"{service}/{code}",
                      "QuotaName": code, "Value": value, "Unit": "None",
                      "Adjustable": adjustable, "GlobalQuota": service == "iam"}}


def test_moto_does_not_answer_the_quotas_dpc_needs(aws: None) -> None:
    """Why the quota tests use recorded responses: were moto to answer, use it."""
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="NoSuchResource"):
        moto_clients("service-quotas", REGION).get_service_quota(
            ServiceCode="lambda", QuotaCode="L-B99A9384")


def test_quotas_below_what_dpc_needs_are_refused_with_the_increase_command() -> None:
    sq, stub = stubbed("service-quotas")
    regions: list[str | None] = []
    codes = {q.service: q.code for q in doctor.QUOTAS}
    # 25 listed members on a new account's 10 concurrent executions: refused.
    stub.add_response("get_service_quota", quota("lambda", codes["lambda"], 10.0),
                      {"ServiceCode": "lambda", "QuotaCode": codes["lambda"]})
    # No applied value: the default is read instead.
    stub.add_client_error("get_service_quota", "NoSuchResourceException", "no applied value")
    stub.add_response("get_aws_default_service_quota",
                      quota("events", codes["events"], 300.0),
                      {"ServiceCode": "events", "QuotaCode": codes["events"]})
    stub.add_client_error("get_service_quota", "AccessDeniedException", "not allowed")
    stub.add_response("get_service_quota", quota("iam", codes["iam"], 1000.0))

    def clients(service: str, region: str | None) -> Any:
        regions.append(region)
        return sq

    members = tuple(f"{n:012d}" for n in range(1, 26))
    checks = doctor.check_quotas(scope(central_account=MOTO_ACCOUNT, members=members),
                                 clients)
    stub.assert_no_pending_responses()
    lam, rules, stacks, roles = checks
    assert lam.status == REFUSED and "applied 10, dpc needs 31" in lam.detail
    assert lam.fix == ("aws service-quotas request-service-quota-increase --service-code "
                       "lambda --quota-code L-B99A9384 --desired-value 31")
    assert rules.status == OK and rules.detail.startswith("default 300, dpc needs 27")
    assert stacks.status == UNKNOWN and "AccessDeniedException" in stacks.detail
    assert roles.status == OK
    assert regions == [REGION, REGION, REGION, "us-east-1"]  # IAM quotas live there


def test_a_team_account_with_many_pipelines_runs_out_of_rules_and_roles() -> None:
    sq, stub = stubbed("service-quotas")
    for q, value in zip(doctor.QUOTAS, (1000.0, 300.0, 2000.0, 1000.0), strict=True):
        stub.add_response("get_service_quota", quota(q.service, q.code, value))
    checks = doctor.check_quotas(scope(central_account="999999999999", pipelines=400),
                                 lambda s, r: sq)
    assert [c.status for c in checks] == [OK, REFUSED, OK, REFUSED]
    assert "dpc needs 406" in checks[1].detail and "dpc needs 1612" in checks[3].detail


# -- permissions (Stubber: moto has no SimulatePrincipalPolicy) --------------------------


PRINCIPAL = f"arn:aws:iam::{MOTO_ACCOUNT}:role/platform"


def evaluation(action: str, arn: str, decision: str,
               missing: list[str] | None = None) -> dict[str, Any]:
    """SimulatePrincipalPolicy's response as the IAM API reference documents it."""
    result: dict[str, Any] = {"EvalActionName": action, "EvalResourceName": arn,
                              "EvalDecision": decision, "MatchedStatements": [],
                              "MissingContextValues": missing or []}
    return {"EvaluationResults": [result], "IsTruncated": False}


def context_of(entries: list[dict[str, Any]]) -> dict[str, str]:
    return {e["ContextKeyName"]: e["ContextKeyValues"][0] for e in entries}


def test_a_request_carries_only_the_keys_its_service_supplies() -> None:
    """events:PutEvents: events:source, never aws:ResourceOrgID (EventBridge does not
    supply it); kms: the Region's SNS and the central account, not the examples'."""
    s = scope(central_account="999999999998", members=("111111111112",),
              region="us-east-2", org_of_caller="o-abcdefghij")
    put = Call("lambda x", ("events:PutEvents",), "member:pipeline-bus",
               {"events:source": "dpc.trigger", "aws:ResourceOrgID": "o-forged"}, "put")
    ctx = context_of(doctor.context_entries("events:PutEvents", put, s, PRINCIPAL))
    assert ctx["events:source"] == "dpc.trigger"
    assert "aws:ResourceOrgID" not in ctx
    assert ctx["aws:PrincipalOrgID"] == "o-abcdefghij"
    assert ctx["aws:PrincipalAccount"] == MOTO_ACCOUNT
    kms = Call("lambda x", ("kms:Decrypt",), "member:pipeline-topic-key",
               {"kms:ViaService": "sns.eu-west-1.amazonaws.com",
                "kms:CallerAccount": "999999999999"}, "kms")
    ctx = context_of(doctor.context_entries("kms:Decrypt", kms, s, PRINCIPAL))
    assert ctx["kms:ViaService"] == "sns.us-east-2.amazonaws.com"
    assert ctx["kms:CallerAccount"] == "999999999998"
    assert ctx["aws:ResourceOrgID"] == "o-abcdefghij"


def test_simulated_calls_are_ok_refused_or_unknown() -> None:
    iam, stub = stubbed("iam")
    s = scope(central_account="999999999998", members=("111111111112",),
              org_of_caller="o-abcdefghij")
    bus = f"arn:aws:events:{REGION}:111111111112:event-bus/dpc-pipelines"
    table = f"arn:aws:dynamodb:{REGION}:999999999998:table/*"
    calls = [
        Call("lambda trigger_manager", ("events:PutEvents",), "member:pipeline-bus",
             {"events:source": "dpc.trigger"}, "events.PutEvents"),
        Call("lambda trigger_manager", ("dynamodb:GetItem",), "table:runs", {},
             "dynamodb.GetItem"),
        Call("lambda reconciler", ("dynamodb:GetItem",), "table:windows", {},
             "dynamodb.GetItem"),  # the same request: simulated once
        Call("lambda trigger_manager", ("dynamodb:Query",), "table:registry", {},
             "dynamodb.Query"),
        Call("service events.amazonaws.com", ("sqs:SendMessage",), "queue:status", {},
             "status rule"),
        Call("lambda registration_client", (), "none", {}, "sts.GetCallerIdentity"),
    ]
    stub.add_response("simulate_principal_policy",
                      evaluation("events:PutEvents", bus, "implicitDeny"),
                      {"PolicySourceArn": PRINCIPAL, "ActionNames": ["events:PutEvents"],
                       "ResourceArns": [bus],
                       "ContextEntries": doctor.context_entries(
                           "events:PutEvents", calls[0], s, PRINCIPAL)})
    stub.add_response("simulate_principal_policy",
                      evaluation("dynamodb:GetItem", table, "allowed"))
    stub.add_response("simulate_principal_policy",
                      evaluation("dynamodb:Query", table, "implicitDeny"))
    checks = doctor.check_permissions(s, lambda svc, r: iam, PRINCIPAL, calls=calls)
    stub.assert_no_pending_responses()
    assert [c.status for c in checks] == [REFUSED, OK, OK, UNKNOWN, UNKNOWN, OK]
    assert "allow events:PutEvents on " + bus in checks[0].fix
    assert "chosen by CloudFormation" in checks[3].fix
    assert "resource's policy alone" in checks[4].detail


def test_an_explicit_deny_is_refused_even_on_a_name_chosen_at_deploy_time() -> None:
    iam, stub = stubbed("iam")
    table = f"arn:aws:dynamodb:{REGION}:{MOTO_ACCOUNT}:table/*"
    stub.add_response("simulate_principal_policy",
                      evaluation("dynamodb:Scan", table, "explicitDeny"))
    [check] = doctor.check_permissions(
        scope(), lambda svc, r: iam, PRINCIPAL,
        calls=[Call("lambda reconciler", ("dynamodb:Scan",), "table:registry", {}, "scan")])
    assert check.status == REFUSED and "explicitDeny" in check.detail


def test_a_principal_that_does_not_exist_is_one_refusal_not_one_per_call() -> None:
    iam, stub = stubbed("iam")
    stub.add_client_error("simulate_principal_policy", "NoSuchEntity",
                          "The role with name platform cannot be found.")
    calls = [Call("lambda x", ("dynamodb:Scan",), "table:registry", {}, "scan")] * 5
    [check] = doctor.check_permissions(scope(), lambda svc, r: iam, PRINCIPAL, calls=calls)
    assert (check.section, check.status) == ("principal", REFUSED)
    assert "--role" in check.fix


def test_every_resource_of_aws_calls_yaml_has_an_arn() -> None:
    """A key the table does not know would be simulated on `*` and say nothing."""
    s = scope(central_account="999999999998", members=("111111111112",))
    unmapped = sorted({c.resource for c in doctor.runtime_calls()
                       if not c.caller.startswith("service ")
                       and doctor.resource_arn(c.resource, s) == ("*", False)})
    assert unmapped == []


def test_every_context_key_of_aws_calls_yaml_is_one_its_service_supplies() -> None:
    """Else the doctor would drop a key dpc's own policies rest on without saying so."""
    dropped = []
    for call in doctor.runtime_calls():
        for key in call.context:
            if not any(any(key == k or (k.endswith("/") and key.startswith(k))
                           for k in doctor.ACTION_KEYS.get(a, ())) for a in call.actions):
                dropped.append((call.label, key))
    assert dropped == []


def test_after_setup_calls_on_tables_are_simulated_on_the_deployed_names(aws: None) -> None:
    template = {"Resources": {"Runs": {"Type": "AWS::DynamoDB::Table", "Properties": {
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST"}}},
        "Outputs": {"RunsTable": {"Value": {"Ref": "Runs"}}}}
    s = scope(central_account=MOTO_ACCOUNT)
    before = doctor.read_deployed_names(s, moto_clients)
    assert before.status == OK and "not deployed" in before.detail
    assert doctor.resource_arn("table:runs", s) == (
        f"arn:aws:dynamodb:{REGION}:{MOTO_ACCOUNT}:table/*", False)
    moto_clients("cloudformation", REGION).create_stack(
        StackName="dpc-central", TemplateBody=json.dumps(template))
    doctor.read_deployed_names(s, moto_clients)
    name = s.tables["runs"]
    assert name.startswith("dpc-central-Runs")
    assert doctor.resource_arn("table:runs/index/by_pipeline", s) == (
        f"arn:aws:dynamodb:{REGION}:{MOTO_ACCOUNT}:table/{name}/index/by_pipeline", True)


def test_as_deployed_each_call_is_simulated_as_its_functions_role(aws: None) -> None:
    """moto: the central stack with one function (CloudFormation, Lambda, IAM); the
    simulator is stubbed, and the request it receives is checked."""
    iam_moto = moto_clients("iam", REGION)
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"Service": "lambda.amazonaws.com"}}]}
    role = iam_moto.create_role(RoleName="dpc-central-TriggerManagerRole",
                                AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    queue = f"https://sqs.{REGION}.amazonaws.com/{MOTO_ACCOUNT}/dpc-central-PoisonDlq-1X"
    template = {"Resources": {"Handler": {"Type": "AWS::Lambda::Function", "Properties": {
        "Handler": "dpc_central.handlers.trigger_manager.handle", "Runtime": "python3.12",
        "Role": role, "Code": {"ZipFile": "def handle(e, c): pass"},
        "Environment": {"Variables": {"DPC_POISON_DLQ_URL": queue,
                                      "DPC_TABLE_RUNS": "dpc-central-Runs-9Z"}}}}}}
    s = scope(central_account=MOTO_ACCOUNT)
    absent, check = doctor.deployed_callers(s, moto_clients)
    assert (absent, check.status) == ({}, REFUSED) and "after setup" in check.fix
    moto_clients("cloudformation", REGION).create_stack(
        StackName="dpc-central", TemplateBody=json.dumps(template))
    deployed, check = doctor.deployed_callers(s, moto_clients)
    assert check.status == OK
    caller = "lambda dpc_central.handlers.trigger_manager"
    assert deployed[caller].role == role
    assert doctor.resource_arn("table:runs/index/by_pipeline", s, deployed[caller].env) == (
        f"arn:aws:dynamodb:{REGION}:{MOTO_ACCOUNT}:table/dpc-central-Runs-9Z/index/by_pipeline",
        True)
    iam, stub = stubbed("iam")
    dlq = f"arn:aws:sqs:{REGION}:{MOTO_ACCOUNT}:dpc-central-PoisonDlq-1X"
    send = Call(caller, ("sqs:SendMessage",), "env:DPC_POISON_DLQ_URL", {}, "sqs.SendMessage")
    stub.add_response("simulate_principal_policy",
                      evaluation("sqs:SendMessage", dlq, "implicitDeny"),
                      {"PolicySourceArn": role, "ActionNames": ["sqs:SendMessage"],
                       "ResourceArns": [dlq],
                       "ContextEntries": doctor.context_entries("sqs:SendMessage", send, s, role)})
    other = Call("lambda dpc_compute_emr.handlers.cluster_reaper",
                 ("elasticmapreduce:ListClusters",), "*", {}, "x")
    checks = doctor.check_permissions(s, lambda svc, r: iam, PRINCIPAL, calls=[send, other],
                                      deployed=deployed)
    stub.assert_no_pending_responses()
    [check] = checks  # the team account's reaper is not deployed here: left out
    assert check.status == REFUSED  # the queue's real ARN: an implicit deny is a refusal
    assert "redeploy the stack" in check.fix


def test_an_unreachable_endpoint_is_unknown_not_a_traceback() -> None:
    """A real connection to a closed local port: botocore's EndpointConnectionError."""
    import socket

    import boto3
    from botocore.config import Config

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sq = boto3.client("service-quotas", region_name=REGION, aws_access_key_id="x",
                      aws_secret_access_key="x", endpoint_url=f"http://127.0.0.1:{port}",
                      config=Config(retries={"max_attempts": 1}, connect_timeout=2))
    checks = doctor.check_quotas(scope(), lambda s, r: sq)
    assert {c.status for c in checks} == {UNKNOWN}
    assert "EndpointConnectionError" in checks[0].detail


def test_an_assumed_role_session_is_simulated_as_its_role() -> None:
    assert doctor.principal_arn(
        "arn:aws:sts::123456789012:assumed-role/Admin/alice@example.com") == (
        "arn:aws:iam::123456789012:role/Admin")
    assert doctor.principal_arn(PRINCIPAL) == PRINCIPAL


# -- the command ------------------------------------------------------------------------


def test_the_command_reports_every_check_and_exits_1_on_a_refusal(
        aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from dpc_core.cli.main import cli

    org = moto_clients("organizations", REGION)
    org_id = org.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    iam, iam_stub = stubbed("iam")
    sq, sq_stub = stubbed("service-quotas")

    def clients(service: str, region: str | None) -> Any:
        return {"iam": iam, "service-quotas": sq}.get(service) or moto_clients(service, region)

    monkeypatch.setattr(doctor, "_boto3_clients", clients)

    def run(*extra: str) -> Any:
        for q in doctor.QUOTAS:
            sq_stub.add_response("get_service_quota", quota(q.service, q.code, 5000.0))
        reaper = [c for c in doctor.runtime_calls() if "cluster_reaper" in c.caller]
        for c in reaper:
            for action in c.actions:
                iam_stub.add_response("simulate_principal_policy",
                                      evaluation(action, "*", "allowed"))
        return CliRunner().invoke(cli, ["doctor", "--aws", "--region", REGION,
                                        "--org-id", org_id, "--caller", "cluster_reaper",
                                        "--format", "json", *extra])

    good = run()
    assert good.exit_code == 0, good.output
    report = json.loads(good.output)
    assert report["principal"] == f"arn:aws:sts::{MOTO_ACCOUNT}:user/moto"
    sections = [c["section"] for c in report["checks"]]
    assert sections.count("quota") == len(doctor.QUOTAS)
    assert sections.count("permission") == 4
    assert report["summary"] == {"ok": len(sections), "refused": 0, "unknown": 0}

    bad = run("--member-account", "210987654321")
    assert bad.exit_code == 1
    assert json.loads(bad.output)["summary"]["refused"] == 1

    for q in doctor.QUOTAS:
        sq_stub.add_response("get_service_quota", quota(q.service, q.code, 5000.0))
    text = CliRunner().invoke(cli, ["doctor", "--aws", "--region", REGION,
                                    "--subnet-id", "subnet-0123456789abcdef0",
                                    "--caller", "no-such-caller"])
    assert text.exit_code == 1
    lines = text.output.splitlines()
    assert lines[0].startswith(f"dpc doctor --aws: account {MOTO_ACCOUNT}, region {REGION}")
    assert any(line.startswith("refused subnet       subnet subnet-0123456789abcdef0: ")
               for line in lines)
    assert lines[-1].endswith("refused, 0 unknown")


def dpc(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "dpc"), *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_no_credentials_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_CONFIG_FILE": str(tmp_path / "none"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                "AWS_EC2_METADATA_DISABLED": "true", "HOME": str(tmp_path)})
    done = dpc("doctor", "--aws", "--region", REGION, env=env)
    assert done.returncode == 2
    assert done.stderr.startswith("error: no AWS credentials: ")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(("args", "message"), [
    (["--member-account", "12345"], "--member-account must be 12 digits: 12345"),
    (["--org-id", "org-1"], "--org-id must look like o-"),
    (["--subnet-id", "sn-1"], "--subnet-id must look like subnet-"),
    (["--role", "admin"], "--role must be an IAM role or user ARN: admin"),
    (["--pipelines", "0"], "--pipelines"),
    (["--as-deployed", "--role", "arn:aws:iam::123456789012:role/x"], "not both"),
    ([], "give --aws"),
])
def test_bad_options_are_refused_before_any_aws_call(args: list[str], message: str) -> None:
    from click.testing import CliRunner

    from dpc_core.cli.main import cli

    argv = ["doctor", *(["--aws"] if args else []), "--region", REGION, *args]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2 and message in result.output
