"""Permission paths: every AWS call dpc makes at run time is allowed the way AWS decides,
not the way moto does (moto enforces no IAM, no bus, topic, key or queue policy).

``central/aws-calls.yaml`` lists each call, its caller and what it acts on. This module

* checks that list against the code: an AST scan of the boto3 calls in the handler
  modules (client → service, method → operation through botocore's service model), and
  the Task states of the synthesized state machines (``arn:aws:states:::SERVICE:ACTION``);
* resolves the synthesized templates (central, a team account, the case study's
  pipelines) to concrete ARNs for test accounts (``tests/cfn_resolve.py``) and asks a
  policy evaluator (``tests/iam_eval.py``, AWS's documented evaluation logic) whether the
  caller's identity policy *and* the resource's policy allow each call, across accounts,
  with their conditions (``aws:PrincipalOrgID``, ``aws:SourceArn``, ``events:source``,
  resource tags);
* does the same for what AWS services do for us, found in the templates themselves:
  every rule target (with its role or as ``events.amazonaws.com``), dead-letter queue,
  SNS subscription and CloudWatch alarm action, and every function's logs, traces and
  dead-letter queue;
* checks the tag conditions of the EMR v2 managed service policy against the team
  account's security groups.

While iterating, ``DPC_PERMISSION_TEMPLATES=DIR`` keeps the synthesized templates in DIR.

Checked on templates only: nothing here is deployed; SCPs and permission boundaries of
a real organisation are not modelled.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfn_resolve import Resolver
from iam_eval import (
    Decision,
    Request,
    condition_holds,
    evaluate,
    glob_match,
    request_context,
)

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "central" / "aws-calls.yaml"
CASE_STUDY = ROOT / "examples" / "seed"
CENTRAL = "999999999999"
MEMBERS = ["111111111111", "222222222222", "333333333333"]
TEAM = "333333333333"  # the team account whose stack is synthesized (pipeline-x's)
ORG = "o-abc123"
REGION = "eu-west-1"


def org_of(account: str) -> str | None:
    """The organisation of a test account: the central account, the listed members and
    one that joined later (LATE_MEMBER) are in ``ORG``; OUTSIDER is in none."""
    return ORG if account in {CENTRAL, *MEMBERS, LATE_MEMBER} else None

#: AWS managed policies attached by ARN: the statements that matter here, copied from
#: the AWS Managed Policy Reference (docs.aws.amazon.com/aws-managed-policy/latest/
#: reference/<name>.html). An unknown managed policy fails the test that meets it.
MANAGED_POLICIES: dict[str, dict[str, Any]] = {
    "service-role/AWSLambdaBasicExecutionRole": {"Statement": [{
        "Effect": "Allow", "Resource": "*",
        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]}]},
    "service-role/AmazonAPIGatewayPushToCloudWatchLogs": {"Statement": [{
        "Effect": "Allow", "Resource": "*",
        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogGroups",
                   "logs:DescribeLogStreams", "logs:PutLogEvents", "logs:GetLogEvents",
                   "logs:FilterLogEvents"]}]},
    # Only the statement about the cluster's network (Sid CreateInTaggedNetwork).
    "service-role/AmazonEMRServicePolicy_v2": {"Statement": [{
        "Sid": "CreateInTaggedNetwork", "Effect": "Allow",
        "Action": ["ec2:CreateNetworkInterface", "ec2:RunInstances", "ec2:CreateFleet",
                   "ec2:CreateLaunchTemplate", "ec2:CreateLaunchTemplateVersion"],
        "Resource": ["arn:aws:ec2:*:*:subnet/*", "arn:aws:ec2:*:*:security-group/*"],
        "Condition": {"StringEquals": {
            "aws:ResourceTag/for-use-with-amazon-emr-managed-policies": "true"}}}]},
}
EMR_TAG = "for-use-with-amazon-emr-managed-policies"


def manifest() -> dict[str, Any]:
    """``central/aws-calls.yaml``."""
    data: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    return data


# -- the evaluator itself, on the examples of AWS's evaluation-logic pages ---------------

ALICE = "arn:aws:iam::111122223333:role/alice"
BUCKET = "arn:aws:s3:::amzn-s3-demo-bucket/report.csv"


def allow(action: str, resource: str = "*", **extra: Any) -> dict[str, Any]:
    """A one-statement Allow policy (``extra``: Principal, Condition)."""
    return {"Statement": [{"Effect": "Allow", "Action": action, "Resource": resource, **extra}]}


def test_evaluator_same_account_an_allow_in_either_policy_suffices() -> None:
    # "Policy evaluation logic": identity-based and resource-based policies in one account.
    req = Request(ALICE, "s3:GetObject", BUCKET)
    assert evaluate(req, identity=[allow("s3:GetObject", BUCKET)], resource_account="111122223333")
    rp = allow("s3:GetObject", BUCKET, Principal={"AWS": ALICE})
    assert evaluate(req, resource_policy=rp, resource_account="111122223333")
    assert not evaluate(req, resource_account="111122223333")


def test_evaluator_an_explicit_deny_wins_over_any_allow() -> None:
    req = Request(ALICE, "s3:GetObject", BUCKET)
    deny = {"Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*",
                           "Principal": "*"}]}
    assert not evaluate(req, identity=[allow("s3:*")], resource_policy=deny,
                        resource_account="111122223333")


def test_evaluator_cross_account_needs_identity_and_resource_policy() -> None:
    # "Cross-account policy evaluation logic": both sides must allow.
    req = Request("arn:aws:iam::444455556666:role/bob", "s3:GetObject", BUCKET)
    rp = allow("s3:GetObject", BUCKET, Principal={"AWS": "arn:aws:iam::444455556666:root"})
    assert evaluate(req, identity=[allow("s3:GetObject")], resource_policy=rp,
                    resource_account="111122223333")
    assert not evaluate(req, identity=[allow("s3:GetObject")], resource_account="111122223333")
    assert not evaluate(req, resource_policy=rp, resource_account="111122223333")


def test_evaluator_a_resource_policy_naming_the_own_account_delegates_to_identity() -> None:
    # IAM User Guide, "AWS account principals": naming an account delegates authority to
    # it; its identity policies must still grant the action.
    queue = "arn:aws:sqs:eu-west-1:111122223333:q"
    rp = allow("sqs:SendMessage", queue, Principal={"AWS": "111122223333"})
    req = Request(ALICE, "sqs:SendMessage", queue)
    assert not evaluate(req, resource_policy=rp, resource_account="111122223333")
    assert evaluate(req, identity=[allow("sqs:SendMessage")], resource_policy=rp,
                    resource_account="111122223333")


def test_evaluator_a_key_policy_naming_the_account_delegates_to_identity_policies() -> None:
    key = "arn:aws:kms:eu-west-1:111122223333:key/1234"
    req = Request(ALICE, "kms:Decrypt", key)
    root = allow("kms:*", Principal={"AWS": "arn:aws:iam::111122223333:root"})
    assert not evaluate(req, resource_policy=root, resource_account="111122223333",
                        requires_resource_policy=True)
    assert evaluate(req, identity=[allow("kms:Decrypt")], resource_policy=root,
                    resource_account="111122223333", requires_resource_policy=True)
    # Without the key policy, an identity policy alone cannot use the key.
    assert not evaluate(req, identity=[allow("kms:Decrypt")], resource_policy={"Statement": []},
                        resource_account="111122223333", requires_resource_policy=True)


def test_evaluator_service_principals_are_decided_by_the_resource_policy_and_its_conditions(
        ) -> None:
    queue = "arn:aws:sqs:eu-west-1:111122223333:q"
    rp = allow("sqs:SendMessage", queue, Principal={"Service": "events.amazonaws.com"},
               Condition={"ArnEquals": {"aws:SourceArn": "arn:aws:events:eu-west-1:"
                                                         "111122223333:rule/r"}})
    good = Request("events.amazonaws.com", "sqs:SendMessage", queue,
                   {"aws:SourceArn": "arn:aws:events:eu-west-1:111122223333:rule/r"})
    other = Request("events.amazonaws.com", "sqs:SendMessage", queue,
                    {"aws:SourceArn": "arn:aws:events:eu-west-1:111122223333:rule/x"})
    assert evaluate(good, resource_policy=rp, resource_account="111122223333")
    assert not evaluate(other, resource_policy=rp, resource_account="111122223333")


@pytest.mark.parametrize(("condition", "context", "holds"), [
    ({"StringEquals": {"aws:PrincipalOrgID": "o-1"}}, {"aws:PrincipalOrgID": "o-1"}, True),
    ({"StringEquals": {"aws:PrincipalOrgID": "o-1"}}, {}, False),
    ({"StringEqualsIfExists": {"aws:PrincipalOrgID": "o-1"}}, {}, True),
    ({"StringNotEquals": {"aws:PrincipalOrgID": "o-1"}}, {}, True),
    ({"StringLike": {"s3:prefix": ["home/*", "pub/*"]}}, {"s3:prefix": "pub/x"}, True),
    ({"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:111:*"}},
     {"aws:SourceArn": "arn:aws:sns:eu-west-1:111:t"}, True),
    ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": True}, False),
    ({"Null": {"aws:TokenIssueTime": "true"}}, {}, True),
    # Set operators ("Condition keys with multiple values"): ForAllValues holds for an
    # empty set, ForAnyValue does not.
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}, {"aws:TagKeys": ["a"]}, True),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}, {"aws:TagKeys": ["c"]}, False),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}, {}, True),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}, {}, False),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}, {"aws:TagKeys": ["c", "a"]}, True),
    # Two keys in one operator, and two operators: all must hold.
    ({"StringEquals": {"a:x": "1", "a:y": "2"}}, {"a:x": "1", "a:y": "3"}, False),
])
def test_evaluator_condition_operators(condition: dict[str, Any], context: dict[str, Any],
                                       holds: bool) -> None:
    assert condition_holds(condition, context) is holds


def test_evaluator_wildcards_span_arn_separators_and_actions_ignore_case() -> None:
    assert glob_match("arn:aws:execute-api:eu-west-1:1:*/v1/*/pipelines/*",
                      "arn:aws:execute-api:eu-west-1:1:abc/v1/PUT/pipelines/2/x")
    assert not glob_match("arn:aws:sns:eu-west-1:1:dpc-*", "arn:aws:sns:eu-west-1:2:dpc-x")
    req = Request(ALICE, "SNS:publish", "arn:aws:sns:eu-west-1:111122223333:t")
    assert evaluate(req, identity=[allow("sns:Pub*")], resource_account="111122223333")
    not_action = {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}
    assert evaluate(req, identity=[not_action], resource_account="111122223333")


# -- the intrinsic resolver -------------------------------------------------------------

RESOLVER_TEMPLATE = {
    "Parameters": {"Central": {"Type": "String"}},
    "Resources": {
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "dpc-x"}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"FifoQueue": True}},
        "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "dpc-central"}},
        "Rule": {"Type": "AWS::Events::Rule", "Properties": {"EventBusName": {"Ref": "Bus"},
                                                             "Name": "r"}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "dpc-emr"}},
    },
}


def test_resolver_builds_arns_the_way_each_resource_type_does() -> None:
    r = Resolver(RESOLVER_TEMPLATE, account="111122223333", region="eu-west-1",
                 parameters={"Central": "999999999999"})
    assert r.resolve({"Ref": "Topic"}) == "arn:aws:sns:eu-west-1:111122223333:dpc-x"
    assert r.resolve({"Fn::GetAtt": ["Queue", "Arn"]}).endswith(".fifo")
    assert r.resolve({"Fn::GetAtt": ["Rule", "Arn"]}) == \
        "arn:aws:events:eu-west-1:111122223333:rule/dpc-central/r"
    assert r.resolve({"Fn::GetAtt": "Role.Arn"}) == "arn:aws:iam::111122223333:role/dpc-emr"
    assert r.resolve({"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::",
                                        {"Ref": "Central"}, ":root"]]}) == \
        "arn:aws:iam::999999999999:root"
    assert r.resolve({"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${Central}:"
                                 "event-bus/${Bus}"}) == \
        "arn:aws:events:eu-west-1:999999999999:event-bus/dpc-central"


def test_resolver_refuses_a_parameter_without_a_value() -> None:
    with pytest.raises(KeyError, match="Central"):
        Resolver(RESOLVER_TEMPLATE, account="1", region="r").resolve({"Ref": "Central"})


# -- the manifest against the code -----------------------------------------------------

def _module_path(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, module
    return Path(spec.origin)


#: Modules that receive a client instead of creating one: their service.
CLIENT_PARAMETERS = {"dpc_core.stores.dynamodb": {"dynamodb"}}
#: The services dpc's run-time code uses (to name a client met only as ``x.client``).
KNOWN_SERVICES = ("dynamodb", "events", "sns", "sqs", "sts", "stepfunctions",
                  "secretsmanager", "emr")


def _operations(service: str) -> dict[str, str]:
    """snake_case method name → operation name, from botocore's service model."""
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(op): op for op in model.operation_names}


def boto3_calls(module: str) -> set[str]:
    """``client.Operation`` of every boto3 call written in ``module``.

    A service is any literal first argument of a ``client(...)`` call in the module (or
    the module's client parameter); a call is a method of that name, or a literal
    operation given to ``get_paginator``/``get_waiter``/a ``_paginate`` helper.
    """
    tree = ast.parse(_module_path(module).read_text())
    services = set(CLIENT_PARAMETERS.get(module, set()))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else \
                getattr(node.func, "id", "")
            if name == "client" and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                services.add(node.args[0].value)
    ops = {svc: _operations(svc) for svc in services}
    # A client handed over in an attribute (``store.client.put_item``): the operation
    # names the service when exactly one service dpc uses has it.
    known = {svc: _operations(svc) for svc in KNOWN_SERVICES}
    # A helper of an imported module named like an operation (``common.send_message``)
    # is not a client call; clients are never imported names.
    imported = {a.asname or a.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import | ast.ImportFrom) for a in node.names}
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        method = isinstance(node.func, ast.Attribute) and not (
            isinstance(node.func.value, ast.Name) and node.func.value.id in imported)
        name = node.func.attr if isinstance(node.func, ast.Attribute) else \
            getattr(node.func, "id", "")
        literal = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) \
            else None
        receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
        if method and isinstance(receiver, ast.Attribute) and receiver.attr == "client":
            owners = [svc for svc, table in known.items() if name in table]
            if len(owners) == 1:
                found.add(f"{owners[0]}.{known[owners[0]][name]}")
        for svc, table in ops.items():
            if method and name in table:
                found.add(f"{svc}.{table[name]}")
            if name in ("get_paginator", "_paginate") and literal in table:
                found.add(f"{svc}.{table[literal]}")
            if name == "get_waiter" and literal == "table_exists" and svc == "dynamodb":
                found.add("dynamodb.DescribeTable")
    return found


def _declared_calls() -> Iterator[tuple[str, dict[str, Any]]]:
    data = manifest()
    for caller, entry in data["handlers"].items():
        for call in entry["calls"]:
            yield caller, call


def scanned_modules() -> list[str]:
    """The modules whose boto3 calls the manifest must account for: every handler module
    of the central package, their shared helpers and the DynamoDB store."""
    handlers = _module_path("dpc_central.handlers").parent
    mods = sorted(f"dpc_central.handlers.{p.stem}" for p in handlers.glob("*.py")
                  if p.stem != "__init__")
    # First-party plugins: their code runs in the handlers' Lambdas (notifier backends)
    # or at synth; a boto3 call added there must be declared too.
    # (Their Lambda handlers live in a ``handlers`` subpackage, e.g. dpc-compute-emr's.)
    plugins = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts[3:])
                     for p in ROOT.glob("plugins/*/src/*/**/*.py") if p.stem != "__init__")
    return [*mods, "dpc_core.stores.dynamodb", *plugins]


@pytest.mark.parametrize("module", scanned_modules())
def test_every_boto3_call_in_the_code_is_in_the_manifest(module: str) -> None:
    declared = {c["api"] for _, c in _declared_calls() if c.get("in") == module}
    skipped = {c["api"] for c in manifest().get("not_at_run_time", {}).get(module, [])}
    missing = boto3_calls(module) - declared - skipped
    assert not missing, f"{module} calls {sorted(missing)}: add them to {MANIFEST.name}"


def test_every_call_in_the_manifest_is_in_the_code() -> None:
    stale = sorted({f"{c['api']} in {c['in']}" for _, c in _declared_calls()
                    if "in" in c and c["api"] not in boto3_calls(c["in"])})
    assert not stale, f"{MANIFEST.name} lists calls the code no longer makes: {stale}"


def test_every_handler_module_with_a_lambda_is_in_the_manifest() -> None:
    # A handler module is one with a top-level handle(); the others are its helpers.
    handlers = set(manifest()["handlers"])
    modules = {m for m in scanned_modules() if ".handlers." in m and any(
        isinstance(n, ast.FunctionDef) and n.name == "handle"
        for n in ast.parse(_module_path(m).read_text()).body)}
    assert modules <= handlers, sorted(modules - handlers)


def test_every_dpc_lambda_of_the_stacks_has_its_calls_in_the_manifest(
        templates: dict[str, dict[str, Any]]) -> None:
    handlers = {f"{m}.handle" for m in manifest()["handlers"]}
    deployed = {r["Properties"]["Handler"] for name in ("central", "team")
                for r in templates[name]["Resources"].values()
                if r["Type"] == "AWS::Lambda::Function"
                and str(r["Properties"].get("Handler", "")).startswith("dpc")}
    assert deployed and deployed <= handlers, sorted(deployed - handlers)


def test_declared_actions_are_the_operations_iam_checks() -> None:
    # api client.Operation → its IAM action (the signing name of the service), unless the
    # manifest says otherwise with a note (transactions, GetCallerIdentity).
    import botocore.session

    session = botocore.session.get_session()
    for caller, call in _declared_calls():
        if "api" not in call or "note" in call:
            continue
        svc, op = call["api"].split(".")
        meta = session.get_service_model(svc).metadata
        prefix = meta.get("signingName") or meta["endpointPrefix"]
        assert call["actions"] == [f"{prefix}:{op}"], (caller, call)


# -- the synthesized world --------------------------------------------------------------

@dataclass
class Stack:
    """One synthesized template and its resolver."""

    name: str
    account: str
    template: dict[str, Any]
    resolver: Resolver

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        """Logical id → resource of one type."""
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == kind}

    def lid(self, kind: str, prefix: str) -> str:
        """The one logical id of ``kind`` starting with ``prefix`` (construct path)."""
        found = [k for k in self.of_type(kind) if k.startswith(prefix)]
        assert len(found) == 1, f"{self.name}: {kind} {prefix}*: {found}"
        return found[0]

    def props(self, lid: str) -> dict[str, Any]:
        """A resource's properties as synthesized."""
        props: dict[str, Any] = self.template["Resources"][lid].get("Properties", {})
        return props

    def resolved(self, lid: str) -> dict[str, Any]:
        """A resource's properties with every intrinsic resolved."""
        out: dict[str, Any] = self.resolver.resolve(self.props(lid))
        return out


def _synthesize(out: Path) -> dict[str, Path]:
    from dpc_central.app import (
        CENTRAL_STACK,
        USER_STACK,
        central_app,
        pipeline_app,
        pipeline_stack_name,
        user_app,
    )
    from dpc_central.testing import case_study_project
    from dpc_core.loader import load_pipelines

    # cdk-nag runs in the CDK tests; here only the templates matter.
    central_app(outdir=out / "central", org_id=ORG, member_accounts=MEMBERS,
                account=CENTRAL, region=REGION, nag=False).synth()
    user_app(outdir=out / "team", central_account=CENTRAL, account=TEAM, region=REGION,
             nag=False).synth()
    project = case_study_project(CASE_STUDY, out / "project")
    # One pipeline beyond the case study: a Hive metastore secret read by the run.
    hive = out / "hive"
    hive.mkdir()
    (hive / "pipeline.yaml").write_text(HIVE_PIPELINE)
    (hive / "job.py").write_text("print(1)\n")
    pipelines = load_pipelines([project, hive])
    pipeline_app(pipelines, outdir=out / "pipelines", region=REGION, nag=False).synth()
    paths = {"central": out / "central" / f"{CENTRAL_STACK}.template.json",
             "team": out / "team" / f"{USER_STACK}.template.json"}
    for p in pipelines:
        paths[p.name] = out / "pipelines" / f"{pipeline_stack_name(p)}.template.json"
    return paths


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The central, team-account and case-study pipeline templates, synthesized once.

    ``DPC_PERMISSION_TEMPLATES=DIR`` reuses (or first writes) the templates in DIR while
    iterating on this module; leave it unset otherwise.
    """
    cache = os.environ.get("DPC_PERMISSION_TEMPLATES")
    if cache and (Path(cache) / "templates.json").exists():
        data: dict[str, dict[str, Any]] = json.loads((Path(cache) / "templates.json")
                                                     .read_text())
        return data
    paths = _synthesize(tmp_path_factory.mktemp("permission-paths"))
    data = {name: json.loads(p.read_text()) for name, p in paths.items()}
    if cache:
        Path(cache).mkdir(parents=True, exist_ok=True)
        (Path(cache) / "templates.json").write_text(json.dumps(data))
    return data


PIPELINE_ACCOUNTS = {"listings": "111111111111", "searches": "222222222222",
                     "pipeline-x": "333333333333", "listings-fallback": "333333333333",
                     "hive": TEAM}
#: Secrets Manager appends six random characters to a secret's name in its ARN.
HIVE_SECRETS = {f: f"arn:aws:secretsmanager:{REGION}:{TEAM}:secret:hive/{f}-Ab12Cd"
                for f in ("url", "username", "password")}
HIVE_PIPELINE = f"""
name: hive
account: "{TEAM}"
steps: [{{name: job, type: spark, script: job.py}}]
compute:
  type: emr
  hiveMetastore: {{url: "{HIVE_SECRETS['url']}", username: "{HIVE_SECRETS['username']}",
                  password: "{HIVE_SECRETS['password']}"}}
"""


class World:
    """The test accounts with their stacks: callers, resources and their policies."""

    def __init__(self, templates: Mapping[str, dict[str, Any]], pipeline: str = "pipeline-x",
                 account: str | None = None):
        """``account``: deploy the pipeline (and its team stack) in another account than
        its own, e.g. one of the organisation not listed at central setup."""
        self.central = Stack("central", CENTRAL, templates["central"], Resolver(
            templates["central"], account=CENTRAL, region=REGION, stack_name="dpc-central"))
        own = PIPELINE_ACCOUNTS[pipeline]
        account = account or own
        # The team stack is synthesized once, for TEAM; another account's is the same
        # template with its own account id (every account runs setup-user-account).
        team = templates["team"] if account == TEAM else \
            json.loads(json.dumps(templates["team"]).replace(TEAM, account))
        self.team = Stack("team", account, team, Resolver(
            team, account=account, region=REGION, stack_name="dpc-user-account",
            parameters={"VpcId": "vpc-0team", "SubnetId": "subnet-0team",
                        "RegistrationUrl": self.registration_url()}))
        self.pipeline_name = pipeline
        tp = templates[pipeline] if account == own else \
            json.loads(json.dumps(templates[pipeline]).replace(own, account))
        self.pipeline = Stack(pipeline, account, tp, Resolver(
            tp, account=account, region=REGION, stack_name=f"dpc-pipeline-{pipeline}",
            parameters=self._ssm_parameters(tp)))

    # The pipeline stack reads the team stack's settings from SSM at deploy.
    def _ssm_parameters(self, template: Mapping[str, Any]) -> dict[str, str]:
        published = {}
        for lid in self.team.of_type("AWS::SSM::Parameter"):
            props = self.team.resolved(lid)
            published[props["Name"]] = str(props["Value"])
        out = {}
        for name, param in template.get("Parameters", {}).items():
            default = param.get("Default")
            if param["Type"].startswith("AWS::SSM::Parameter::Value") and default in published:
                out[name] = published[default]
        return out

    def registration_url(self) -> str:
        """The registration API's stage URL (the team stack's parameter)."""
        api = self.central.lid("AWS::ApiGateway::RestApi", "RegistrationApi")
        return f"https://{self.central.resolver.ref(api)}.execute-api.{REGION}.amazonaws.com/" \
               f"{self._stage()}/"

    def _stage(self) -> str:
        (stage,) = self.central.of_type("AWS::ApiGateway::Stage")
        return str(self.central.resolved(stage)["StageName"])

    def stacks(self) -> list[Stack]:
        """Central, team and pipeline stacks."""
        return [self.central, self.team, self.pipeline]

    # -- callers -------------------------------------------------------------------

    def function(self, module: str) -> tuple[Stack, str]:
        """The stack and logical id of the Lambda running ``module.handle``."""
        hits = [(s, lid) for s in (self.central, self.team)
                for lid, r in s.of_type("AWS::Lambda::Function").items()
                if r["Properties"].get("Handler") == f"{module}.handle"]
        assert len(hits) == 1, f"one Lambda runs {module}.handle: {hits}"
        return hits[0]

    def caller(self, spec: str) -> tuple[str, list[dict[str, Any]], Stack | None]:
        """(principal, identity policies, its stack) of ``lambda M`` / ``role side:Lid`` /
        ``service P``."""
        kind, _, what = spec.partition(" ")
        if kind == "service":
            return what, [], None
        if kind == "lambda":
            stack, fn = self.function(what)
            role = stack.props(fn)["Role"]["Fn::GetAtt"][0]
            return stack.resolver.arn(role), self.identity(stack, role), stack
        side, _, prefix = what.partition(":")
        stacks = {"central": [self.central], "member": [self.pipeline, self.team]}[side]
        for stack in stacks:
            roles = [lid for lid in stack.of_type("AWS::IAM::Role") if lid.startswith(prefix)]
            if roles:
                (role,) = roles
                return stack.resolver.arn(role), self.identity(stack, role), stack
        raise AssertionError(f"no role {spec}")

    def identity(self, stack: Stack, role: str) -> list[dict[str, Any]]:
        """Every identity policy of a role: attached policies (from any stack of its
        account, by reference or by name), inline policies and managed policies."""
        name = stack.resolver.ref(role)
        docs: list[dict[str, Any]] = []
        for other in self.stacks():
            if other.account != stack.account:
                continue
            for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                for lid in other.of_type(kind):
                    props = other.resolved(lid)
                    if name in [str(r) for r in props.get("Roles", [])]:
                        docs.append(props["PolicyDocument"])
        props = stack.resolved(role)
        docs += [p["PolicyDocument"] for p in props.get("Policies", [])]
        for arn in props.get("ManagedPolicyArns", []):
            key = str(arn).split(":policy/", 1)[1]
            assert key in MANAGED_POLICIES, f"managed policy {key} is not modelled here"
            docs.append(MANAGED_POLICIES[key])
        return docs

    # -- resources -----------------------------------------------------------------

    def _bus(self, stack: Stack, name: str) -> tuple[str, list[dict[str, Any]]]:
        lid = next(k for k, v in stack.of_type("AWS::Events::EventBus").items()
                   if v["Properties"]["Name"] == name)
        arn = stack.resolver.arn(lid)
        policies = []
        for pol in stack.of_type("AWS::Events::EventBusPolicy"):
            props = stack.resolved(pol)
            if props["EventBusName"] in (name, arn):
                policies.append({"Statement": props["Statement"]})
        return arn, policies

    def _table(self, which: str) -> str:
        prefix = {"registry": "TablesRegistry", "runs": "TablesRuns", "windows": "TablesWindows",
                  "slack-threads": "TablesSlackThreads"}[which]
        return self.central.resolver.arn(self.central.lid("AWS::DynamoDB::Table", prefix))

    def _queue(self, stack: Stack, lid: str) -> tuple[str, list[dict[str, Any]]]:
        arn = stack.resolver.arn(lid)
        url = stack.resolver.ref(lid)
        policies = [stack.resolved(p)["PolicyDocument"]
                    for p in stack.of_type("AWS::SQS::QueuePolicy")
                    if url in stack.resolved(p)["Queues"]]
        return arn, policies

    def _env(self, module: str, name: str) -> Any:
        stack, fn = self.function(module)
        return stack.resolved(fn)["Environment"]["Variables"][name]

    def _function(self, module: str) -> tuple[str, list[dict[str, Any]]]:
        stack, fn = self.function(module)
        arn = stack.resolver.arn(fn)
        statements = []
        for lid in stack.of_type("AWS::Lambda::Permission"):
            p = stack.resolved(lid)
            if p["FunctionName"] not in (arn, stack.resolver.ref(fn)):
                continue
            principal = p["Principal"]
            cond: dict[str, Any] = {}
            if "SourceArn" in p:
                cond["ArnLike"] = {"aws:SourceArn": p["SourceArn"]}
            if "SourceAccount" in p:
                cond["StringEquals"] = {"aws:SourceAccount": p["SourceAccount"]}
            # AddPermission turns its arguments into a statement of the function policy.
            statements.append({
                "Effect": "Allow", "Action": p["Action"], "Resource": arn,
                "Principal": {"Service": principal} if principal.endswith(".amazonaws.com")
                else {"AWS": principal}, "Condition": cond})
        return arn, [{"Statement": statements}]

    def _api(self, method: str, route: str) -> tuple[str, list[dict[str, Any]]]:
        lid = self.central.lid("AWS::ApiGateway::RestApi", "RegistrationApi")
        api_id = self.central.resolver.ref(lid)
        base = f"arn:aws:execute-api:{REGION}:{CENTRAL}:{api_id}"
        path = {"pipelines": f"pipelines/{TEAM}/pipeline-x", "accounts": f"accounts/{TEAM}"}
        arn = f"{base}/{self._stage()}/{method}/{path[route]}"
        # API Gateway expands "execute-api:/*" in a resource policy to this API's ARN.
        text = json.dumps(self.central.resolved(lid).get("Policy", {"Statement": []}))
        return arn, [json.loads(text.replace('"execute-api:/', f'"{base}/'))]

    def resource(self, key: str, caller: str | None = None) -> tuple[
            str, list[dict[str, Any]] | None, str, bool]:
        """(ARN, resource policies or None, owning account, key/trust policy?) of a key."""
        c, p, t = self.central, self.pipeline, self.team
        if key == "*":
            return "*", None, p.account, False
        if key == "central-bus":
            arn, pols = self._bus(c, "dpc-central")
            return arn, pols, CENTRAL, False
        if key.startswith("table:"):
            which, _, index = key[len("table:"):].partition("/")
            arn = self._table(which)
            return (f"{arn}/{index}" if index else arn), None, CENTRAL, False
        if key == "queue:status":
            lid = next(k for k, v in c.of_type("AWS::SQS::Queue").items()
                       if v["Properties"].get("FifoQueue")
                       and v["Properties"].get("ContentBasedDeduplication"))
            return (*self._queue(c, lid), CENTRAL, False)
        if key.startswith("env:"):
            # What the calling function's environment names (what the code uses): a queue
            # URL, a secret ARN or a table name of the caller's stack.
            assert caller and caller.startswith("lambda "), f"{key} needs a Lambda caller"
            stack, _ = self.function(caller.split(" ", 1)[1])
            value = self._env(caller.split(" ", 1)[1], key.split(":", 1)[1])
            lid = next(k for k, v in stack.template["Resources"].items()
                       if v["Type"] in ("AWS::SQS::Queue", "AWS::SecretsManager::Secret",
                                        "AWS::DynamoDB::Table")
                       and stack.resolver.ref(k) == value)
            kind = stack.template["Resources"][lid]["Type"]
            if kind == "AWS::SQS::Queue":
                return (*self._queue(stack, lid), stack.account, False)
            return stack.resolver.arn(lid), None, stack.account, False
        if key == "central:slack-notes":
            lid = next(k for k, v in c.of_type("AWS::SQS::Queue").items()
                       if v["Properties"].get("QueueName") == "dpc-slack-notes")
            return (*self._queue(c, lid), CENTRAL, False)
        if key.startswith("central:function/"):
            return (*self._function(key.split("/", 1)[1]), CENTRAL, False)
        if key.startswith("central:registration-api/"):
            _, method, route = key.split("/")
            return (*self._api(method, route), CENTRAL, False)
        if key.startswith("central:rule/"):
            lid = c.lid("AWS::Events::Rule", key.split("/", 1)[1])
            return c.resolver.arn(lid), None, CENTRAL, False
        if key == "member:pipeline-topic":
            (lid,) = p.of_type("AWS::SNS::Topic")
            arn = p.resolver.arn(lid)
            pols = [p.resolved(x)["PolicyDocument"] for x in p.of_type("AWS::SNS::TopicPolicy")
                    if arn in p.resolved(x)["Topics"]]
            return arn, pols, p.account, False
        if key == "member:pipeline-topic-key":
            (topic,) = p.of_type("AWS::SNS::Topic")
            key_arn = str(p.resolved(topic)["KmsMasterKeyId"])
            lid = next(k for k in p.of_type("AWS::KMS::Key") if p.resolver.arn(k) == key_arn)
            return key_arn, [p.resolved(lid)["KeyPolicy"]], p.account, True
        if key == "member:reconciler-read-role":
            # The ARN the reconciler builds (its environment), the trust policy of the role
            # of that name in the team stack.
            name = self._env("dpc_central.handlers.reconciler", "DPC_READ_ROLE_NAME")
            arn = f"arn:aws:iam::{t.account}:role/{name}"
            lid = next((k for k in t.of_type("AWS::IAM::Role")
                        if t.resolver.arn(k) == arn), None)
            assert lid, f"the team stack has no role {name} for the reconciler to assume"
            return arn, [t.resolved(lid)["AssumeRolePolicyDocument"]], t.account, True
        if key == "member:state-machine":
            lid = next(k for k, v in p.of_type("AWS::StepFunctions::StateMachine").items()
                       if v["Properties"].get("StateMachineName") == self.pipeline_name)
            return p.resolver.arn(lid), None, p.account, False
        if key == "member:starter":
            lid = next(k for k, v in p.of_type("AWS::StepFunctions::StateMachine").items()
                       if v["Properties"].get("StateMachineType") == "EXPRESS")
            return p.resolver.arn(lid), None, p.account, False
        if key == "member:execution":
            return (f"arn:aws:states:{REGION}:{p.account}:execution:{self.pipeline_name}:"
                    "dpc-2026-11-26-1"), None, p.account, False
        if key == "member:pipeline-bus":
            arn, pols = self._bus(t, "dpc-pipelines")
            return arn, pols, t.account, False
        if key == "member:emr-cluster":
            return f"arn:aws:elasticmapreduce:{REGION}:{p.account}:cluster/j-2AXXXXXXGAPLF", \
                None, p.account, False
        if key == "member:emr-service-role":
            # A pipeline with a Hive metastore has its own; the others use the account's.
            own = [k for k in p.of_type("AWS::IAM::Role") if "EmrServiceRole" in k]
            if own:
                return p.resolver.arn(own[0]), None, p.account, False
            from dpc_compute_emr.aws import SERVICE_ROLE, regional

            return f"arn:aws:iam::{p.account}:role/{regional(SERVICE_ROLE, REGION)}", None, \
                p.account, False
        if key == "member:emr-instance-role":
            from dpc_compute_emr.aws import INSTANCE_ROLE, regional

            return f"arn:aws:iam::{p.account}:role/{regional(INSTANCE_ROLE, REGION)}", None, \
                p.account, False
        if key == "member:emr-security-group":
            (cleanup,) = t.of_type("Custom::DpcEmrSecurityGroupRules")
            group = t.resolved(cleanup)["GroupIds"][0]
            return f"arn:aws:ec2:{REGION}:{t.account}:security-group/{group}", None, \
                t.account, False
        if key.startswith("member:hive-secret/"):
            return HIVE_SECRETS[key.split("/", 1)[1]], None, p.account, False
        if key.startswith("member:artifacts/"):
            # S3 ARNs carry no account: the bucket's owner is the team account.
            bucket = t.lid("AWS::S3::Bucket", "ArtifactsBucket")
            arn = f"{t.resolver.arn(bucket)}/{key.split('/', 1)[1]}"
            pols = [t.resolved(x)["PolicyDocument"] for x in t.of_type("AWS::S3::BucketPolicy")
                    if t.resolved(x)["Bucket"] == t.resolver.ref(bucket)]
            return arn, pols, t.account, False
        if key.startswith("member:rule/"):
            return f"arn:aws:events:{REGION}:{p.account}:rule/{key.split('/', 1)[1]}", None, \
                p.account, False
        raise KeyError(f"resource key {key!r} is unknown to the test")

    # -- one check -----------------------------------------------------------------

    def check(self, caller: str, action: str, resource_key: str,
              context: Mapping[str, Any] | None = None, source: str | None = None) -> Decision:
        """Whether ``caller`` may do ``action`` on the resource, on every side AWS checks."""
        principal, identity, _ = self.caller(caller)
        arn, policies, owner, needs_rp = self.resource(resource_key, caller)
        # Only the global keys AWS puts in this request (iam_eval.request_context: no
        # aws:ResourceOrgID for EventBridge, no aws:PrincipalOrgID for a service).
        ctx: dict[str, Any] = request_context(
            principal=principal, action=action, resource_account=owner, org_of=org_of,
            source_arn=self.resource(source)[0] if source else None)
        if resource_key == "member:pipeline-topic-key":
            ctx["kms:EncryptionContext:aws:sns:topicArn"] = self.resource(
                "member:pipeline-topic")[0]
        ctx.update(context or {})
        # A key given as None is absent from the request (e.g. aws:ResourceOrgID of an
        # account in no organisation).
        ctx = {k: v for k, v in ctx.items() if v is not None}
        req = Request(principal, action, arn, ctx)
        return evaluate(req, identity=identity, resource_policy=policies,
                        resource_account=owner, requires_resource_policy=needs_rp)


@pytest.fixture(scope="module")
def world(templates: dict[str, dict[str, Any]]) -> World:
    """The accounts with pipeline-x's stack (the consumer: triggered, SLACK and EMAIL)."""
    return World(templates)


def _handler_cases() -> list[Any]:
    cases = []
    for caller_key, entry in manifest()["handlers"].items():
        for call in entry["calls"]:
            for action in call["actions"]:
                cases.append(pytest.param(entry["caller"], action, call,
                                          id=f"{caller_key.rsplit('.', 1)[-1]}:{action}:"
                                             f"{call['resource']}"))
    return cases


@pytest.mark.parametrize(("caller", "action", "call"), _handler_cases())
def test_handler_call_is_allowed_by_identity_and_resource_policies(
        world: World, caller: str, action: str, call: dict[str, Any]) -> None:
    decision = world.check(caller, action, call["resource"], call.get("context"))
    assert decision.allowed, decision.reason


def _delivery_cases() -> list[Any]:
    return [pytest.param(d, a, id=f"{d['caller'].split(' ', 1)[1]}:{a}:{d['resource']}")
            for d in manifest()["deliveries"] for a in d["actions"]]


@pytest.mark.parametrize(("delivery", "action"), _delivery_cases())
def test_delivery_is_allowed_by_the_targets_policy(templates: dict[str, dict[str, Any]],
                                                   delivery: dict[str, Any],
                                                   action: str) -> None:
    world = World(templates, delivery.get("pipeline", "pipeline-x"))
    decision = world.check(delivery["caller"], action, delivery["resource"],
                           delivery.get("context"), delivery.get("source"))
    assert decision.allowed, decision.reason


# -- every rule target, dead-letter queue and subscription of the templates -------------

def _policies_of(world: World, arn: str) -> tuple[list[dict[str, Any]] | None, str]:
    """The resource policy documents of the resource with ``arn`` in any stack of the
    world (queue, bus, function, topic), and its account."""
    for stack in world.stacks():
        for lid, res in stack.template["Resources"].items():
            try:
                if stack.resolver.arn(lid) != arn:
                    continue
            except KeyError:
                continue
            kind = res["Type"]
            if kind == "AWS::SQS::Queue":
                return world._queue(stack, lid)[1], stack.account
            if kind == "AWS::Events::EventBus":
                return world._bus(stack, res["Properties"]["Name"])[1], stack.account
            if kind == "AWS::Lambda::Function":
                module = res["Properties"]["Handler"].rsplit(".", 1)[0]
                return world._function(module)[1], stack.account
            if kind == "AWS::SNS::Topic":
                return [stack.resolved(p)["PolicyDocument"]
                        for p in stack.of_type("AWS::SNS::TopicPolicy")
                        if arn in stack.resolved(p)["Topics"]], stack.account
            if kind == "AWS::KMS::Key":
                return [stack.resolved(lid)["KeyPolicy"]], stack.account
            return None, stack.account
    raise AssertionError(f"{arn} is in none of the synthesized stacks")


def _target_cases(world: World, stacks: list[Stack]) -> Iterator[
        tuple[str, str, str, str, dict[str, Any]]]:
    """(what, principal, action, target ARN, context) of every delivery EventBridge and SNS
    make for the stacks: rule targets (with their role, or as the service), their
    dead-letter queues, SNS subscriptions and their dead-letter queues."""
    for stack in stacks:
        r = stack.resolver
        for lid in stack.of_type("AWS::Events::Rule"):
            props = stack.resolved(lid)
            rule = r.arn(lid)
            sources = (props.get("EventPattern") or {}).get("source") or ["aws.events"]
            service = {"aws:SourceArn": rule, "aws:SourceAccount": stack.account}
            for target in props.get("Targets", []):
                arn = str(target["Arn"])
                svc = arn.split(":")[2]
                action = {"sqs": "sqs:SendMessage", "lambda": "lambda:InvokeFunction",
                          "events": "events:PutEvents", "states": "states:StartExecution",
                          "sns": "sns:Publish"}[svc]
                who = str(target.get("RoleArn") or "events.amazonaws.com")
                for source in sources if svc == "events" else sources[:1]:
                    ctx = {**service, "events:source": source} if svc == "events" else service
                    yield f"{lid} -> {arn}", who, action, arn, ctx
                dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
                if dlq:
                    yield f"{lid} DLQ", "events.amazonaws.com", "sqs:SendMessage", str(dlq), \
                        service
        for lid in stack.of_type("AWS::CloudWatch::Alarm"):
            props = stack.resolved(lid)
            service = {"aws:SourceArn": r.arn(lid), "aws:SourceAccount": stack.account}
            for action_arn in props.get("AlarmActions", []):
                # A pipeline stack's alarms notify the team stack's topic (ARN in SSM).
                owner, topic = next(((o, t) for o in world.stacks()
                                     for t in o.of_type("AWS::SNS::Topic")
                                     if o.resolver.arn(t) == action_arn), (None, None))
                assert owner and topic, f"{lid}: alarm action {action_arn} is no known topic"
                yield f"{lid} -> {action_arn}", "cloudwatch.amazonaws.com", "sns:Publish", \
                    str(action_arn), service
                key = owner.resolved(topic).get("KmsMasterKeyId")
                for kms_action in ("kms:GenerateDataKey", "kms:Decrypt") if key else ():
                    # CloudWatch encrypts for the topic with its own service principal
                    # (Amazon SNS, "Enable compatibility between event sources from AWS
                    # services and encrypted topics").
                    yield f"{lid} -> key of {action_arn}", "cloudwatch.amazonaws.com", \
                        kms_action, str(key), service
        for lid in stack.of_type("AWS::SNS::Subscription"):
            props = stack.resolved(lid)
            topic = str(props["TopicArn"])
            service = {"aws:SourceArn": topic, "aws:SourceAccount": stack.account}
            if props["Protocol"] == "lambda":
                yield f"{lid} -> {props['Endpoint']}", "sns.amazonaws.com", \
                    "lambda:InvokeFunction", str(props["Endpoint"]), service
            if props["Protocol"] == "sqs":
                yield f"{lid} -> {props['Endpoint']}", "sns.amazonaws.com", \
                    "sqs:SendMessage", str(props["Endpoint"]), service
            dlq = json.loads(json.dumps(props.get("RedrivePolicy") or {})).get(
                "deadLetterTargetArn")
            if dlq:
                yield f"{lid} DLQ", "sns.amazonaws.com", "sqs:SendMessage", str(dlq), service


@pytest.mark.parametrize("stack", ["central", "team", *sorted(PIPELINE_ACCOUNTS)])
def test_every_rule_target_alarm_and_subscription_is_allowed(
        templates: dict[str, dict[str, Any]], stack: str) -> None:
    """EventBridge needs the target's resource policy (or, with a role, the role's policy
    and the target's policy across accounts); SNS needs the function's permission and the
    dead-letter queue's policy; a CloudWatch alarm needs the topic policy and, for an
    encrypted topic, the key policy to admit ``cloudwatch.amazonaws.com`` ("Permissions for
    Amazon EventBridge event buses", "Using resource-based policies for Amazon EventBridge",
    Amazon SNS "Configuring an Amazon SNS dead-letter queue for a subscription", AWS
    Knowledge Center "Why didn't I receive an SNS notification for my CloudWatch alarm
    trigger?")."""
    world = World(templates, stack if stack in PIPELINE_ACCOUNTS else "pipeline-x")
    mine = {"central": world.central, "team": world.team}.get(stack, world.pipeline)
    problems, seen = [], 0
    for what, who, action, arn, ctx in _target_cases(world, [mine]):
        seen += 1
        policies, owner = _policies_of(world, arn)
        # The global keys from the table (a service principal gets the source's ARN and
        # account; a target's role, the keys of its own calls); service keys as given.
        context = {**request_context(principal=who, action=action, resource_account=owner,
                                     org_of=org_of, source_arn=ctx.get("aws:SourceArn")),
                   **{k: v for k, v in ctx.items() if not k.startswith("aws:")}}
        identity: list[dict[str, Any]] = []
        if who.startswith("arn:"):
            stack = next(s for s in world.stacks() if s.account == who.split(":")[4]
                         and any(s.resolver.arn(k) == who for k in s.of_type("AWS::IAM::Role")))
            lid = next(k for k in stack.of_type("AWS::IAM::Role") if stack.resolver.arn(k) == who)
            identity = world.identity(stack, lid)
        decision = evaluate(Request(who, action, arn, context), identity=identity,
                            resource_policy=policies, resource_account=owner)
        if not decision.allowed:
            problems.append(f"{what}: {decision.reason}")
    assert seen or stack not in ("central", "team")
    assert not problems, "\n".join(problems)


def test_every_function_may_log_trace_and_dead_letter(world: World) -> None:
    """What the Lambda service does with the function's own role: write its log group,
    send X-Ray segments when tracing is active, and put failed asynchronous events on its
    dead-letter queue ("Lambda execution role", "Using Lambda with X-Ray",
    "Capturing records of Lambda asynchronous invocations")."""
    problems = []
    for stack in world.stacks():
        for fn in stack.of_type("AWS::Lambda::Function"):
            props = stack.resolved(fn)
            role_lid = stack.props(fn)["Role"]["Fn::GetAtt"][0]
            role = stack.resolver.arn(role_lid)
            identity = world.identity(stack, role_lid)
            group = props.get("LoggingConfig", {}).get("LogGroup") or \
                f"/aws/lambda/{stack.resolver.ref(fn)}"
            stream = f"arn:aws:logs:{REGION}:{stack.account}:log-group:{group}:log-stream:x"
            needs = [("logs:CreateLogStream", stream), ("logs:PutLogEvents", stream)]
            if props.get("TracingConfig", {}).get("Mode") == "Active":
                needs.append(("xray:PutTraceSegments", "*"))
            dlq = props.get("DeadLetterConfig", {}).get("TargetArn")
            if dlq:
                needs.append(("sqs:SendMessage", str(dlq)))
            for action, resource in needs:
                policies, owner = _policies_of(world, resource) if action.startswith("sqs") \
                    else (None, stack.account)
                decision = evaluate(Request(role, action, resource, request_context(
                    principal=role, action=action, resource_account=owner, org_of=org_of)),
                    identity=identity,
                    resource_policy=policies, resource_account=owner)
                if not decision.allowed:
                    problems.append(f"{stack.name}/{fn}: {decision.reason}")
    assert not problems, "\n".join(problems)


def test_queues_tables_and_secrets_use_keys_that_need_no_key_policy_path(world: World) -> None:
    # A customer KMS key on a queue, table or secret would add a path (the sender's or
    # reader's kms:GenerateDataKey/Decrypt, the key policy) this suite does not check yet.
    customer = []
    for stack in world.stacks():
        for lid, res in stack.template["Resources"].items():
            props = res.get("Properties", {})
            keyed = {"AWS::SQS::Queue": "KmsMasterKeyId" in props,
                     "AWS::DynamoDB::Table": "KMSMasterKeyId" in props.get("SSESpecification",
                                                                            {}),
                     "AWS::SecretsManager::Secret": "KmsKeyId" in props}
            if keyed.get(res["Type"]):
                customer.append(f"{stack.name}/{lid}")
    assert customer == []


# -- state machines ---------------------------------------------------------------------

def task_resources(definition: Mapping[str, Any]) -> Iterator[str]:
    """The ``Resource`` of every Task state, in branches and maps too."""
    for state in definition.get("States", {}).values():
        if state.get("Type") == "Task":
            yield state["Resource"]
        for branch in state.get("Branches", []):
            yield from task_resources(branch)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from task_resources(state[key])


def cluster_tags(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The request and resource tag keys of the EMR calls of a state machine: the tags its
    createCluster task puts on the cluster (a JSONPath value stands for a run's value)."""
    tags: dict[str, str] = {}

    def walk(d: Mapping[str, Any]) -> None:
        for state in d.get("States", {}).values():
            if str(state.get("Resource", "")).endswith(":elasticmapreduce:createCluster.sync"):
                for tag in state.get("Parameters", {}).get("Tags", []):
                    tags[tag["Key"]] = tag.get("Value", "<run value>")
            for branch in state.get("Branches", []):
                walk(branch)

    walk(definition)
    ctx: dict[str, Any] = {"aws:TagKeys": sorted(tags)}
    for k, v in tags.items():
        ctx[f"aws:RequestTag/{k}"] = v
        ctx[f"aws:ResourceTag/{k}"] = v
        ctx[f"elasticmapreduce:ResourceTag/{k}"] = v
    return ctx


def state_machines(world: World) -> Iterator[tuple[str, dict[str, Any]]]:
    """(role logical id, definition) of each state machine of the world's pipeline."""
    p = world.pipeline
    for lid in p.of_type("AWS::StepFunctions::StateMachine"):
        props = p.resolved(lid)
        role = p.props(lid)["RoleArn"]["Fn::GetAtt"][0]
        yield role, json.loads(props["DefinitionString"])


@pytest.mark.parametrize("pipeline", sorted(PIPELINE_ACCOUNTS))
def test_state_machine_integrations_are_allowed(templates: dict[str, dict[str, Any]],
                                                pipeline: str) -> None:
    world = World(templates, pipeline)
    integrations = manifest()["state_machines"]
    problems = []
    seen = 0
    for role, definition in state_machines(world):
        tags = cluster_tags(definition)
        for resource in task_resources(definition):
            assert resource in integrations, \
                f"{pipeline}: Task {resource} is not in {MANIFEST.name} (which actions?)"
            for call in integrations[resource]["calls"]:
                for action in call["actions"]:
                    seen += 1
                    context = {**(tags if action.startswith("elasticmapreduce:") else {}),
                               **call.get("context", {})}
                    decision = world.check(f"role member:{role}", action, call["resource"],
                                           context)
                    if not decision.allowed:
                        problems.append(decision.reason)
    assert seen, f"{pipeline}: no state machine integrations found"
    assert not problems, "\n".join(problems)


def test_every_integration_in_the_manifest_is_in_a_synthesized_state_machine(
        templates: dict[str, dict[str, Any]]) -> None:
    used = {r for name in PIPELINE_ACCOUNTS for _, d in state_machines(World(templates, name))
            for r in task_resources(d)}
    assert set(manifest()["state_machines"]) <= used, \
        sorted(set(manifest()["state_machines"]) - used)


# -- EMR's managed service policy needs tagged network resources ------------------------

def _tags(props: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: str(t["Value"]) for t in props.get("Tags", [])}


def test_emr_service_role_may_use_the_security_groups_the_clusters_get(world: World) -> None:
    """AmazonEMRServicePolicy_v2 lets EMR create network interfaces and instances only in
    subnets and security groups tagged ``for-use-with-amazon-emr-managed-policies=true``
    (Amazon EMR Management Guide, "Tagging resources to use managed policies")."""
    t = world.team
    principal, identity, _ = world.caller("role member:EmrServiceRole")
    groups = [lid for lid in t.of_type("AWS::EC2::SecurityGroup")]
    assert len(groups) == 3
    problems = []
    for lid in groups:
        tags = _tags(t.resolved(lid))
        arn = t.resolver.arn(lid)
        ctx = {f"aws:ResourceTag/{k}": v for k, v in tags.items()}
        decision = evaluate(Request(principal, "ec2:CreateNetworkInterface", arn, ctx),
                            identity=identity, resource_account=t.account)
        if not decision.allowed:
            problems.append(f"{lid}: tags {tags}: {decision.reason}")
    assert not problems, "\n".join(problems)


def test_the_emr_subnet_tag_is_documented_because_the_stack_cannot_tag_a_given_subnet(
        world: World) -> None:
    # The subnet is the team's own (a parameter or --subnet-id): the stack cannot tag it,
    # so the operator must; the docs say so.
    assert world.team.template["Parameters"]["SubnetId"]["Type"] == "AWS::EC2::Subnet::Id"
    assert EMR_TAG in (ROOT / "docs" / "aws.md").read_text()


# -- the checks can fail ----------------------------------------------------------------

def test_a_removed_bus_policy_statement_breaks_the_cross_account_path(
        templates: dict[str, dict[str, Any]]) -> None:
    """Proof that the suite sees a broken path: without the organisation statement and
    the member statement of the central bus policy, a team's run cannot report itself."""
    broken = copy.deepcopy(templates)
    resources = broken["central"]["Resources"]
    for lid in [k for k, v in resources.items() if v["Type"] == "AWS::Events::EventBusPolicy"]:
        del resources[lid]
    world = World(broken)
    decision = world.check("lambda dpc_central.handlers.status_forwarder", "events:PutEvents",
                           "central-bus", {"events:source": "dpc.states"})
    assert not decision.allowed
    assert "cross-account" in decision.reason
    assert World(templates).check("lambda dpc_central.handlers.status_forwarder",
                                  "events:PutEvents", "central-bus",
                                  {"events:source": "dpc.states"}).allowed


def test_a_removed_identity_statement_breaks_the_path(
        templates: dict[str, dict[str, Any]]) -> None:
    broken = copy.deepcopy(templates)
    for res in broken["central"]["Resources"].values():
        if res["Type"] == "AWS::IAM::Policy":
            doc = res["Properties"]["PolicyDocument"]
            doc["Statement"] = [s for s in doc["Statement"] if s["Action"] != "sns:Publish"
                                and "sns:Publish" not in s["Action"]]
    decision = World(broken).check("lambda dpc_central.handlers.execution_tracker",
                                   "sns:Publish", "member:pipeline-topic")
    assert not decision.allowed
    assert "identity policy does not" in decision.reason


def test_an_org_condition_is_evaluated_not_string_matched(
        templates: dict[str, dict[str, Any]]) -> None:
    # A caller from outside the organisation and the member list is refused by the bus.
    world = World(templates)
    principal, identity, _ = world.caller("lambda dpc_central.handlers.status_forwarder")
    outsider = principal.replace(TEAM, "444444444444")
    arn, policies, owner, _ = world.resource("central-bus")
    req = Request(outsider, "events:PutEvents", arn, {"aws:PrincipalOrgID": "o-other",
                                                      "events:source": "dpc.states"})
    assert not evaluate(req, identity=identity, resource_policy=policies, resource_account=owner)
    inside = Request(outsider, "events:PutEvents", arn, {"aws:PrincipalOrgID": ORG,
                                                         "events:source": "dpc.states"})
    assert evaluate(inside, identity=identity, resource_policy=policies, resource_account=owner)


# -- organisation accounts not listed at setup -----------------------------------------

#: An account of the organisation that was not listed at ``setup-central-account`` (it
#: joined later), and one outside the organisation.
LATE_MEMBER = "444444444444"
OUTSIDER = "555555555555"


@pytest.mark.parametrize(("caller", "resource"), [
    ("lambda dpc_central.handlers.execution_tracker", "member:pipeline-topic"),
    ("lambda dpc_central.handlers.execution_tracker", "member:pipeline-topic-key"),
    ("lambda dpc_central.handlers.reconciler", "member:pipeline-topic"),
    ("lambda dpc_central.handlers.reconciler", "member:pipeline-topic-key"),
])
def test_notifications_reach_organisation_accounts_not_listed_at_setup(
        templates: dict[str, dict[str, Any]], caller: str, resource: str) -> None:
    """The central stack lists 111..., 222..., 333... and the organisation: a pipeline of
    an organisation account set up later gets its notifications (no central redeploy);
    one in an account outside the organisation does not (``aws:ResourceOrgID``)."""
    assert LATE_MEMBER not in MEMBERS and OUTSIDER not in MEMBERS
    kms = {"kms:ViaService": f"sns.{REGION}.amazonaws.com", "kms:CallerAccount": CENTRAL}
    actions = ["kms:GenerateDataKey", "kms:Decrypt"] if resource.endswith("-key") \
        else ["sns:Publish"]
    ctx = kms if resource.endswith("-key") else {}
    late = World(templates, account=LATE_MEMBER)
    outsider = World(templates, account=OUTSIDER)
    for action in actions:
        decision = late.check(caller, action, resource, ctx)
        assert decision.allowed, decision.reason
        denied = outsider.check(caller, action, resource, {**ctx, "aws:ResourceOrgID": "o-other"})
        assert not denied.allowed, denied.reason
        alone = outsider.check(caller, action, resource, {**ctx, "aws:ResourceOrgID": None})
        assert not alone.allowed, alone.reason  # an account in no organisation at all


def test_reconciler_may_assume_the_read_role_of_an_organisation_account_set_up_later(
        templates: dict[str, dict[str, Any]]) -> None:
    """The central stack lists 111..., 222..., 333... and the organisation: the
    reconciler's role may assume ``dpc-central-reconciler-read`` in an organisation
    account set up later (no central redeploy), not in an account outside the
    organisation (``aws:ResourceOrgID`` of the role's account, IAM User Guide "AWS global
    condition context keys") nor in one in no organisation, although that account's
    trust policy (the same team stack) admits the central account."""
    caller = "lambda dpc_central.handlers.reconciler"
    role = "member:reconciler-read-role"
    decision = World(templates, account=LATE_MEMBER).check(caller, "sts:AssumeRole", role)
    assert decision.allowed, decision.reason
    outsider = World(templates, account=OUTSIDER)
    for org in ("o-other", None):
        denied = outsider.check(caller, "sts:AssumeRole", role, {"aws:ResourceOrgID": org})
        assert not denied.allowed, denied.reason
        assert "identity policy does not" in denied.reason
    # Then the read role's own policy lets it list and describe that account's runs.
    late = World(templates, account=LATE_MEMBER)
    for action, resource in [("states:ListExecutions", "member:state-machine"),
                             ("states:DescribeExecution", "member:execution")]:
        decision = late.check("role member:ReconcilerReadRole", action, resource)
        assert decision.allowed, decision.reason


@pytest.mark.parametrize("account", [*MEMBERS, LATE_MEMBER])
def test_slack_notes_reach_the_poster_from_listed_and_organisation_accounts_only(
        templates: dict[str, dict[str, Any]], account: str) -> None:
    """The pipeline topic delivers to the central notes queue (SNS → SQS): a listed
    account by aws:SourceAccount, an organisation account set up later by
    aws:SourceOrgID (both supplied by SNS for a service-to-service delivery); an account
    outside the organisation, or a topic that is not dpc's, is refused; SNS is no
    principal of any organisation (no aws:PrincipalOrgID to lean on)."""
    world = World(templates, account=account)
    decision = world.check("service sns.amazonaws.com", "sqs:SendMessage",
                           "central:slack-notes", source="member:pipeline-topic")
    assert decision.allowed, decision.reason
    arn, policies, owner, _ = world.resource("central:slack-notes")
    for source in (f"arn:aws:sns:{REGION}:{OUTSIDER}:dpc-pipeline-x",
                   f"arn:aws:sns:{REGION}:{account}:not-a-pipeline-topic"):
        ctx = request_context(principal="sns.amazonaws.com", action="sqs:SendMessage",
                              resource_account=owner, org_of=org_of, source_arn=source)
        refused = evaluate(Request("sns.amazonaws.com", "sqs:SendMessage", arn, ctx),
                           resource_policy=policies, resource_account=owner)
        assert not refused.allowed, (source, refused.reason)


def test_the_cluster_reaper_may_not_touch_a_cluster_not_tagged_as_dpcs(world: World) -> None:
    for action in ("elasticmapreduce:TerminateJobFlows", "elasticmapreduce:DescribeCluster"):
        ok = world.check("lambda dpc_compute_emr.handlers.cluster_reaper", action,
                         "member:emr-cluster", {"aws:ResourceTag/dpc-pipeline": "pipeline-x",
                                                "aws:ResourceTag/dpc-execution": "r1"})
        assert ok.allowed, ok.reason
        untagged = world.check("lambda dpc_compute_emr.handlers.cluster_reaper", action,
                               "member:emr-cluster", {"aws:ResourceTag/team": "analytics"})
        assert not untagged.allowed, untagged.reason


def test_a_state_machine_may_not_retag_another_pipelines_cluster(
        templates: dict[str, dict[str, Any]]) -> None:
    """AddTags applies to existing clusters too (Service Authorization Reference, EMR): the
    role may tag a cluster with its own pipeline's tag only where the cluster carries no
    other pipeline's, else it could take over that cluster's terminate and add-step rights."""
    world = World(templates, "listings")
    theirs = {"elasticmapreduce:ResourceTag/dpc-pipeline": "searches",
              "aws:ResourceTag/dpc-pipeline": "searches"}
    request = {"aws:RequestTag/dpc-pipeline": "listings", "aws:TagKeys": ["dpc-pipeline"]}
    # The state machines that create clusters (not the idempotent starter).
    roles = [role for role, asl in state_machines(world) if "elasticmapreduce" in json.dumps(asl)]
    assert roles
    for role in roles:
        retag = world.check(f"role member:{role}", "elasticmapreduce:AddTags",
                            "member:emr-cluster", {**theirs, **request})
        assert not retag.allowed, retag.reason
        own = world.check(f"role member:{role}", "elasticmapreduce:AddTags",
                          "member:emr-cluster", {**cluster_tags(_definition(world, role)),
                                                 **request})
        assert own.allowed, own.reason


def _definition(world: World, role: str) -> dict[str, Any]:
    return dict(state_machines(world))[role]


# -- the request carries only the keys its service supplies ------------------------------

def test_eventbridge_requests_carry_no_resource_org_id_and_services_no_principal_org_id(
        ) -> None:
    """IAM User Guide, "AWS global condition context keys": EventBridge actions do not
    support aws:ResourceOrgID; aws:PrincipalOrgID is a key of principals in an
    organisation; aws:SourceArn only of service-to-service requests."""
    role = f"arn:aws:iam::{CENTRAL}:role/r"
    put = request_context(principal=role, action="events:PutEvents",
                          resource_account=LATE_MEMBER, org_of=org_of)
    assert "aws:ResourceOrgID" not in put and "aws:ResourceAccount" not in put
    assert put["aws:PrincipalOrgID"] == ORG and "aws:SourceArn" not in put
    publish = request_context(principal=role, action="sns:Publish",
                              resource_account=LATE_MEMBER, org_of=org_of)
    assert publish["aws:ResourceOrgID"] == ORG
    assert "aws:ResourceOrgID" not in request_context(
        principal=role, action="sns:Publish", resource_account=OUTSIDER, org_of=org_of)
    service = request_context(principal="sns.amazonaws.com", action="sqs:SendMessage",
                              resource_account=CENTRAL, org_of=org_of,
                              source_arn=f"arn:aws:sns:{REGION}:{LATE_MEMBER}:dpc-x")
    assert "aws:PrincipalOrgID" not in service and "aws:SecureTransport" not in service
    assert service["aws:SourceAccount"] == LATE_MEMBER


@pytest.mark.parametrize("caller", ["lambda dpc_central.handlers.trigger_manager",
                                    "lambda dpc_central.handlers.reconciler"])
def test_triggers_reach_an_organisation_account_not_listed_at_setup(
        templates: dict[str, dict[str, Any]], caller: str) -> None:
    """A team account that joined after the central stack (LATE_MEMBER) and ran
    ``dpc setup-user-account``: its pipeline bus admits the central account, the central
    role may put dpc.trigger events on any dpc-pipelines bus. Nothing rests on
    aws:ResourceOrgID, which an EventBridge request does not carry: the identity
    statement the central stack had before (PutEvents on ``*:event-bus/dpc-pipelines``
    only with aws:ResourceOrgID = the organisation) refuses the same call."""
    world = World(templates, account=LATE_MEMBER)
    ctx = {"events:source": "dpc.trigger"}
    decision = world.check(caller, "events:PutEvents", "member:pipeline-bus", ctx)
    assert decision.allowed, decision.reason
    # Only triggers: another source is refused (by both policies).
    assert not world.check(caller, "events:PutEvents", "member:pipeline-bus",
                           {"events:source": "aws.states"}).allowed
    # The old identity statement, in place of the new one.
    principal, identity, _ = world.caller(caller)
    old = copy.deepcopy(identity)
    for doc in old:
        for stmt in doc["Statement"]:
            if "events:PutEvents" in json.dumps(stmt.get("Action")) and \
                    "dpc-pipelines" in json.dumps(stmt.get("Resource")):
                stmt["Condition"] = {"StringEquals": {"aws:ResourceOrgID": ORG,
                                                      "events:source": ["dpc.trigger"]}}
    arn, policies, owner, _ = world.resource("member:pipeline-bus")
    context = {**request_context(principal=principal, action="events:PutEvents",
                                 resource_account=owner, org_of=org_of), **ctx}
    refused = evaluate(Request(principal, "events:PutEvents", arn, context), identity=old,
                       resource_policy=policies, resource_account=owner)
    assert not refused.allowed, refused.reason
    assert "identity policy does not" in refused.reason
