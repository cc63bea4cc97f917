"""``dpc doctor --aws``: a read-only preflight of what the templates cannot show.

A platform team runs it with its own credentials, before and after the setup commands.
It reads, and changes nothing:

* the organisation (``organizations:DescribeOrganization``, ``ListAccounts``): its id is
  ``--org-id`` and every ``--member-account`` is an active account of it;
* each ``--subnet-id`` (``ec2:DescribeSubnets``): the tags the installed compute plugins
  require of a subnet (dpc-compute-emr: the one AmazonEMRServicePolicy_v2 needs);
* the quotas dpc draws on (``servicequotas:GetServiceQuota``), against what dpc creates
  for ``--member-account``s and ``--pipelines``;
* every runtime call of ``aws-calls.yaml`` through IAM's policy simulator
  (``iam:SimulatePrincipalPolicy``) for ``--role`` (default: the caller), or with
  ``--as-deployed`` as the role dpc deployed for each call's caller in this account,
  with the condition keys the service puts in that request and no others.

Each check is ``ok``, ``refused`` (AWS would refuse; the fix says what to change) or
``unknown`` (the caller may not read it, or the answer depends on a name CloudFormation
chooses). Exit code 0 when nothing is refused, 1 otherwise; 2 for bad input or no
credentials. Everything AWS decides here rests on a document named in ``docs/aws.md``
(section *Preflight: dpc doctor --aws*).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from dpc_central.conventions import (
    CENTRAL_BUS_NAME,
    PIPELINE_BUS_NAME,
    RECONCILER_READ_ROLE,
    regional,
)
from dpc_central.errors import DeployError

OK, REFUSED, UNKNOWN = "ok", "refused", "unknown"

#: A boto3 client for (service, region); tests hand in moto's or a Stubber's.
Clients = Callable[[str, str | None], Any]

ACCOUNT_RE = re.compile(r"^\d{12}$")
ORG_RE = re.compile(r"^o-[a-z0-9]{10,32}$")
SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
PRINCIPAL_RE = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::\d{12}:(role|user|group|assumed-role)/\S+$")
#: The most pipelines per team account the quota arithmetic accepts (a limit, not a goal).
MAX_PIPELINES = 10_000
#: Calls to the simulator per run: aws-calls.yaml has ~90 entries, many alike.
MAX_SIMULATIONS = 400


@dataclass
class Check:
    section: str  # organisation | subnet | quota | permission | principal
    name: str
    status: str  # ok | refused | unknown
    detail: str
    fix: str = ""


@dataclass
class Scope:
    """What the run is about: the accounts, the region and the scale."""

    region: str
    account: str  # the caller's account (where quotas are read)
    central_account: str | None = None
    org_id: str | None = None
    members: tuple[str, ...] = ()
    subnets: tuple[str, ...] = ()
    pipelines: int = 50
    org_of_caller: str | None = field(default=None)
    #: Table names read from the deployed central stack's outputs (``registry`` -> name).
    tables: dict[str, str] = field(default_factory=dict)

    @property
    def is_central(self) -> bool:
        return self.central_account is not None and self.account == self.central_account

    @property
    def central(self) -> str:
        return self.central_account or self.account

    @property
    def member(self) -> str:
        """The team account resources are simulated in: the first listed, else the caller's."""
        return self.members[0] if self.members else self.account


def _error(exc: Exception) -> tuple[str, str]:
    """(code, message) of a ClientError; ("", text) of a BotoCoreError (no connection,
    an endpoint the Region lacks), which every check reports as unknown."""
    err = getattr(exc, "response", {}).get("Error", {})
    return str(err.get("Code", type(exc).__name__)), str(err.get("Message", exc))


def _denied(code: str) -> bool:
    return code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                    "UnrecognizedClientException", "InvalidClientTokenId")


# -- credentials ------------------------------------------------------------------------


def caller_identity(clients: Clients) -> dict[str, str]:
    """``sts:GetCallerIdentity``; DeployError (exit 2, one line) when there are no
    credentials or they are refused."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        ident = clients("sts", None).get_caller_identity()
    except NoCredentialsError:
        raise DeployError("no AWS credentials: configure a profile (aws configure / "
                          "AWS_PROFILE) or export AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY") from None
    except (BotoCoreError, ClientError) as exc:
        raise DeployError(f"AWS credentials are not usable: {exc}") from None
    return {"account": str(ident["Account"]), "arn": str(ident["Arn"])}


def principal_arn(arn: str) -> str:
    """The IAM ARN the simulator takes for a caller's ARN: an assumed-role session
    (``arn:aws:sts::A:assumed-role/NAME/SESSION``) becomes ``arn:aws:iam::A:role/NAME``
    (a role with a path needs ``--role`` with its full ARN)."""
    m = re.match(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/", arn)
    if m:
        return f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}"
    return arn


# -- organisation -----------------------------------------------------------------------


def check_organisation(scope: Scope, clients: Clients) -> list[Check]:
    """The caller's organisation is ``--org-id``; every ``--member-account`` is in it and
    ACTIVE. ``unknown`` where the caller may not read Organizations (ListAccounts answers
    only in the management account or a delegated administrator)."""
    from botocore.exceptions import BotoCoreError, ClientError

    org = clients("organizations", scope.region)
    checks: list[Check] = []
    try:
        org_id = str(org.describe_organization()["Organization"]["Id"])
    except (ClientError, BotoCoreError) as exc:
        code, msg = _error(exc)
        if code == "AWSOrganizationsNotInUseException":
            status = REFUSED if scope.org_id else OK
            return [Check("organisation", "organisation", status,
                          f"account {scope.account} belongs to no organisation",
                          "run setup-central-account with --member-account only, or from an "
                          "account of the organisation" if scope.org_id else "")]
        return [Check("organisation", "organisation", UNKNOWN,
                      f"organizations:DescribeOrganization: {code}: {msg}",
                      "run with credentials allowed organizations:DescribeOrganization")]
    scope.org_of_caller = org_id
    if scope.org_id and scope.org_id != org_id:
        checks.append(Check("organisation", "organisation", REFUSED,
                            f"--org-id {scope.org_id}, but account {scope.account} is in "
                            f"{org_id}", f"give --org-id {org_id}"))
    else:
        checks.append(Check("organisation", "organisation", OK,
                            f"{org_id}" + ("" if scope.org_id else
                                           " (no --org-id given: the caller's)")))
    if not scope.members:
        return checks
    try:
        accounts: dict[str, str] = {}
        for page in org.get_paginator("list_accounts").paginate():
            for acct in page["Accounts"]:
                accounts[str(acct["Id"])] = str(acct.get("Status", "ACTIVE"))
    except (ClientError, BotoCoreError) as exc:
        code, msg = _error(exc)
        return checks + [Check("organisation", f"member {m}", UNKNOWN,
                               f"organizations:ListAccounts: {code}",
                               "run from the management account or a delegated "
                               "administrator to check membership")
                         for m in scope.members]
    for m in scope.members:
        state = accounts.get(m)
        if state is None:
            checks.append(Check("organisation", f"member {m}", REFUSED,
                                f"not an account of {org_id}",
                                "remove it from --member-account, or invite it to the "
                                "organisation (then its status events pass the bus policy)"))
        elif state != "ACTIVE":
            checks.append(Check("organisation", f"member {m}", REFUSED,
                                f"account of {org_id}, status {state}",
                                "remove it from --member-account"))
        else:
            checks.append(Check("organisation", f"member {m}", OK, f"ACTIVE in {org_id}"))
    return checks


# -- subnets ----------------------------------------------------------------------------


def _plugins() -> Any:
    from dpc_core.plugins import get_registry

    return get_registry()


def subnet_tags(registry: Any = None) -> list[tuple[str, str, str]]:
    """``(key, value, why)`` of every tag an installed plugin requires of a subnet (its
    ``AccountOption.required_tags``; dpc-compute-emr's ``--subnet-id``)."""
    from dpc_central.user_account.options import account_options

    return [(key, value, option.tags_reason)
            for option in account_options(registry or _plugins()).values()
            for key, value in option.required_tags]


def plugin_resources(region: str, account: str, registry: Any = None) -> list[Any]:
    """The resources the installed plugins keep in a team account
    (``dpc_team_account_resources``), by their ``aws-calls.yaml`` keys."""
    hook = getattr(registry or _plugins(), "hook", None)
    if hook is None:
        return []
    return [r for batch in hook.dpc_team_account_resources(region=region, account=account)
            for r in batch or ()]


def check_subnets(scope: Scope, clients: Clients, registry: Any = None) -> list[Check]:
    """Each subnet exists and carries the tags the installed plugins require of it (the
    same rule their ``setup-user-account`` preflight enforces; dpc-compute-emr:
    ``dpc_compute_emr/subnet_check.py``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    required = subnet_tags(registry)
    ec2 = clients("ec2", scope.region)
    checks = []
    for subnet_id in scope.subnets:
        name = f"subnet {subnet_id}"
        try:
            subnets = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"]
        except (ClientError, BotoCoreError) as exc:
            code, msg = _error(exc)
            if _denied(code) or not hasattr(exc, "response"):
                checks.append(Check("subnet", name, UNKNOWN, f"ec2:DescribeSubnets: {code}",
                                    "run with credentials allowed ec2:DescribeSubnets"))
            else:
                checks.append(Check("subnet", name, REFUSED, f"{code}: {msg}",
                                    f"give a subnet of account {scope.account} in "
                                    f"{scope.region}"))
            continue
        if not subnets:
            checks.append(Check("subnet", name, REFUSED, "does not exist",
                                f"give a subnet of account {scope.account} in {scope.region}"))
            continue
        tags = {t["Key"]: t["Value"] for t in subnets[0].get("Tags", [])}
        lacking = [(k, v, why) for k, v, why in required if tags.get(k) != v]
        if not lacking:
            have = ", ".join(f"{k}={v}" for k, v, _ in required) or "no tag required"
            checks.append(Check("subnet", name, OK,
                                f"{have} (VPC {subnets[0].get('VpcId')})"))
        else:
            key, value, why = lacking[0]
            checks.append(Check(
                "subnet", name, REFUSED, f"lacks {key}={value}: {why}",
                f"aws ec2 create-tags --resources {subnet_id} --tags Key={key},Value={value}"))
    return checks


# -- quotas -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Quota:
    service: str
    code: str
    name: str
    #: What dpc needs of it in this account: (central account?, members, pipelines) -> n.
    need: Callable[[bool, int, int], int]
    why: str
    #: The Region Service Quotas answers in for a global quota (IAM: us-east-1).
    region: str | None = None


#: The quotas dpc draws on that Service Quotas exposes, and dpc's use of each (counted on
#: synthesized templates: central has one status rule per listed member plus two on its
#: bus, 5 functions, 6 roles; a team account 3 rules on the default bus, 7 roles, and per
#: pipeline a stack, up to 4 roles, a trigger rule on dpc-pipelines or a schedule rule on
#: the default bus; Step Functions adds its 3 managed EMR rules to the default bus; CDK's
#: bootstrap stack adds a stack and 5 roles). The AWS documents are in docs/aws.md.
QUOTAS: tuple[Quota, ...] = (
    Quota("lambda", "L-B99A9384", "Lambda concurrent executions",
          lambda central, members, pipelines: members + 6 if central else 4,
          "the trigger manager scales with the FIFO queue's message groups (one per "
          "listed member, one for the others) beside the other functions"),
    Quota("events", "L-244521F2", "EventBridge rules per event bus",
          lambda central, members, pipelines: members + 2 if central else pipelines + 6,
          "central: a status rule per listed member on dpc-central; team: a rule per "
          "pipeline on dpc-pipelines or the default bus"),
    Quota("cloudformation", "L-0485CB21", "CloudFormation stacks",
          lambda central, members, pipelines: 2 if central else pipelines + 2,
          "one stack per pipeline, the account stack and CDKToolkit"),
    Quota("iam", "L-FE177D64", "IAM roles per account",
          lambda central, members, pipelines: 11 if central else 4 * pipelines + 12,
          "up to 4 roles per pipeline stack, the account stack's and CDK bootstrap's",
          region="us-east-1"),
)


def check_quotas(scope: Scope, clients: Clients) -> list[Check]:
    """The applied value of each quota (the default when Service Quotas has no applied
    value) against what dpc needs at this scale; other workloads' use is not counted."""
    from botocore.exceptions import BotoCoreError, ClientError

    checks = []
    for q in QUOTAS:
        need = q.need(scope.is_central, len(scope.members), scope.pipelines)
        name = f"{q.name} ({q.service}/{q.code})"
        sq = clients("service-quotas", q.region or scope.region)
        source = "applied"
        try:
            try:
                quota = sq.get_service_quota(ServiceCode=q.service, QuotaCode=q.code)["Quota"]
            except ClientError as exc:
                if _error(exc)[0] != "NoSuchResourceException":
                    raise
                quota = sq.get_aws_default_service_quota(
                    ServiceCode=q.service, QuotaCode=q.code)["Quota"]
                source = "default"
        except (ClientError, BotoCoreError) as exc:
            code, msg = _error(exc)
            checks.append(Check("quota", name, UNKNOWN, f"servicequotas: {code}: {msg}",
                                "run with credentials allowed servicequotas:GetServiceQuota "
                                "and GetAWSDefaultServiceQuota"))
            continue
        value = quota.get("Value")
        if value is None:
            checks.append(Check("quota", name, UNKNOWN, "Service Quotas returned no value",
                                "read it in the Service Quotas console"))
            continue
        detail = f"{source} {value:g}, dpc needs {need}: {q.why}"
        if value >= need:
            checks.append(Check("quota", name, OK, detail))
        else:
            fix = (f"aws service-quotas request-service-quota-increase --service-code "
                   f"{q.service} --quota-code {q.code} --desired-value {need}"
                   + (f" --region {q.region}" if q.region else ""))
            if not quota.get("Adjustable", True):
                fix = "not adjustable: spread the pipelines over more accounts"
            checks.append(Check("quota", name, REFUSED, detail, fix))
    return checks


# -- permissions ------------------------------------------------------------------------

#: Condition keys each service puts in the request context of an action, beyond the
#: global ones below (Service Authorization Reference, per service's "Condition keys"
#: table). A key of aws-calls.yaml's ``context`` that is not here is not sent: a
#: condition on a key the request lacks does not match, as in AWS.
ACTION_KEYS: dict[str, tuple[str, ...]] = {
    "events:PutEvents": ("events:source", "events:detail-type", "events:eventBusInvocation"),
    "kms:GenerateDataKey": ("kms:ViaService", "kms:CallerAccount"),
    "kms:Decrypt": ("kms:ViaService", "kms:CallerAccount"),
    "iam:PassRole": ("iam:PassedToService",),
    "elasticmapreduce:DescribeCluster": ("aws:ResourceTag/", "elasticmapreduce:ResourceTag/"),
    "elasticmapreduce:TerminateJobFlows": ("aws:ResourceTag/",
                                           "elasticmapreduce:ResourceTag/"),
    "elasticmapreduce:AddJobFlowSteps": ("aws:ResourceTag/", "elasticmapreduce:ResourceTag/"),
    "elasticmapreduce:DescribeStep": ("aws:ResourceTag/", "elasticmapreduce:ResourceTag/"),
    "elasticmapreduce:CancelSteps": ("aws:ResourceTag/", "elasticmapreduce:ResourceTag/"),
}
#: Services whose requests carry no ``aws:ResourceOrgID``/``aws:ResourceAccount`` (IAM
#: User Guide, "AWS global condition context keys": EventBridge is listed as not
#: supporting the resource-organisation keys).
NO_RESOURCE_ORG_KEYS = frozenset({"events"})
#: The accounts and Region aws-calls.yaml's examples use, and what they stand for.
_EXAMPLE_CENTRAL = "999999999999"
_EXAMPLE_MEMBERS = ("111111111111", "222222222222", "333333333333")
_EXAMPLE_REGION = "eu-west-1"


def _calls_yaml() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "aws-calls.yaml", here.parents[1] / "aws-calls.yaml"):
        if candidate.is_file():
            return candidate
    raise DeployError("aws-calls.yaml is missing from the dpc-central installation: "
                      "reinstall dpc-central")


@dataclass(frozen=True)
class Call:
    caller: str
    actions: tuple[str, ...]
    resource: str
    context: Mapping[str, str]
    label: str  # what the code calls, or why the call is made


def runtime_calls(path: Path | None = None) -> list[Call]:
    """Every call of aws-calls.yaml (handlers, state machines, deliveries)."""
    import yaml

    data = yaml.safe_load((path or _calls_yaml()).read_text())
    out: list[Call] = []

    def add(caller: str, call: Mapping[str, Any]) -> None:
        out.append(Call(caller=caller, actions=tuple(call.get("actions") or ()),
                        resource=str(call.get("resource", "*")),
                        context={str(k): str(v) for k, v in (call.get("context") or {}).items()},
                        label=str(call.get("api") or call.get("implied") or call.get("note")
                                  or ", ".join(call.get("actions") or ()))))

    for section in ("handlers", "state_machines"):
        for _name, spec in (data.get(section) or {}).items():
            for call in spec.get("calls") or ():
                add(str(spec["caller"]), call)
    for call in data.get("deliveries") or ():
        add(str(call["caller"]), call)
    return out


def _env_arn(value: str, scope: Scope) -> str | None:
    """The ARN of a deployed function's environment value: a queue URL, an ARN, or a
    DynamoDB table name."""
    m = re.match(r"^https://sqs\.([a-z0-9-]+)\.amazonaws\.com[^/]*/(\d{12})/([^/]+)$", value)
    if m:
        return f"arn:aws:sqs:{m.group(1)}:{m.group(2)}:{m.group(3)}"
    if value.startswith("arn:"):
        return value
    if re.match(r"^[A-Za-z0-9_.-]{3,255}$", value):
        return f"arn:aws:dynamodb:{scope.region}:{scope.account}:table/{value}"
    return None


def resource_arn(key: str, scope: Scope,
                 env: Mapping[str, str] | None = None) -> tuple[str | None, bool]:
    """(ARN to simulate, exact?) for a resource key of aws-calls.yaml. Not exact: the
    name is chosen by CloudFormation or by the pipeline, so the ARN has a ``*`` where the
    name goes, and only an allow on such a pattern shows in the simulation. None: the
    call needs no permission. ``env``: the deployed function's environment, which names
    the queues, secrets and tables behind ``env:`` keys."""
    r, c, m = scope.region, scope.central, scope.member
    if key == "none":
        return None, True
    if env and key.startswith("env:") and key[4:] in env:
        arn = _env_arn(env[key[4:]], scope)
        if arn:
            return arn, True
    if key == "*":
        return "*", True
    fixed = {
        "central-bus": f"arn:aws:events:{r}:{c}:event-bus/{CENTRAL_BUS_NAME}",
        "member:pipeline-bus": f"arn:aws:events:{r}:{m}:event-bus/{PIPELINE_BUS_NAME}",
        "member:reconciler-read-role":
            f"arn:aws:iam::{m}:role/{regional(RECONCILER_READ_ROLE, r)}",
    }
    plugins = plugin_resources(r, m)
    fixed.update({f"member:{p.key}": p.arn for p in plugins if p.exact})
    if key in fixed:
        return fixed[key], True
    if key.startswith("member:rule/"):
        return f"arn:aws:events:{r}:{m}:rule/{key.split('/', 1)[1]}", True
    if key.startswith("table:"):
        which, _, index = key[len("table:"):].partition("/")
        named = (env or {}).get(f"DPC_TABLE_{which.upper()}")
        if named:
            return (f"arn:aws:dynamodb:{r}:{scope.account}:table/{named}"
                    + (f"/{index}" if index else "")), True
        if which in scope.tables:
            return (f"arn:aws:dynamodb:{r}:{c}:table/{scope.tables[which]}"
                    + (f"/{index}" if index else "")), True
    patterns = {
        "table:": f"arn:aws:dynamodb:{r}:{c}:table/*",
        "env:DPC_TABLE_": f"arn:aws:dynamodb:{r}:{c}:table/*",
        "env:DPC_SLACK_SECRET": f"arn:aws:secretsmanager:{r}:{c}:secret:*",
        "env:": f"arn:aws:sqs:{r}:{c}:*",
        "member:pipeline-topic-key": f"arn:aws:kms:{r}:{m}:key/*",
        "member:pipeline-topic": f"arn:aws:sns:{r}:{m}:dpc-*",
        "member:state-machine": f"arn:aws:states:{r}:{m}:stateMachine:*",
        "member:starter": f"arn:aws:states:{r}:{m}:stateMachine:*",
        "member:execution": f"arn:aws:states:{r}:{m}:execution:*",
        "member:hive-secret/": f"arn:aws:secretsmanager:{r}:{m}:secret:*",
        "member:artifacts/": "arn:aws:s3:::*/" + key.partition("/")[2],
        "central:registration-api/": f"arn:aws:execute-api:{r}:{c}:*/*/"
                                     + key.partition("/")[2],
        "central:function/": f"arn:aws:lambda:{r}:{c}:function:*",
        "queue:": f"arn:aws:sqs:{r}:{c}:*",
        **{f"member:{p.key}": p.arn for p in plugins if not p.exact},
    }
    for prefix, arn in patterns.items():
        if key.startswith(prefix):
            return arn, False
    return "*", False


def _localise(value: str, scope: Scope) -> str:
    value = value.replace(_EXAMPLE_CENTRAL, scope.central).replace(_EXAMPLE_REGION,
                                                                   scope.region)
    for example in _EXAMPLE_MEMBERS:
        value = value.replace(example, scope.member)
    return value


def context_entries(action: str, call: Call, scope: Scope,
                    principal: str) -> list[dict[str, Any]]:
    """The request context AWS would build for ``action``: the principal's global keys,
    the resource-organisation keys where the service supplies them, and the service's
    own keys from ``ACTION_KEYS`` with the values aws-calls.yaml gives."""
    entries: dict[str, tuple[str, str]] = {
        "aws:SecureTransport": ("true", "boolean"),
        "aws:PrincipalArn": (principal, "string"),
        "aws:PrincipalAccount": (principal.split(":")[4], "string"),
    }
    if scope.org_of_caller:
        entries["aws:PrincipalOrgID"] = (scope.org_of_caller, "string")
    service = action.split(":")[0]
    if service not in NO_RESOURCE_ORG_KEYS and scope.org_of_caller:
        entries["aws:ResourceOrgID"] = (scope.org_of_caller, "string")
    supplied = ACTION_KEYS.get(action, ())
    for key, value in call.context.items():
        if any(key == k or (k.endswith("/") and key.startswith(k)) for k in supplied):
            entries[key] = (_localise(value, scope), "string")
    return [{"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": t}
            for k, (v, t) in sorted(entries.items())]


#: The central stack and its outputs naming the tables (``central_account/stack.py``).
CENTRAL_STACK = "dpc-central"
TABLE_OUTPUTS = {"RegistryTable": "registry", "RunsTable": "runs", "WindowsTable": "windows"}


def read_deployed_names(scope: Scope, clients: Clients) -> Check:
    """After setup, in the central account: the table names CloudFormation chose, from
    the stack's outputs, so their calls are simulated on their real ARNs."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stacks = clients("cloudformation", scope.region).describe_stacks(
            StackName=CENTRAL_STACK)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        code, msg = _error(exc)
        detail = (f"{CENTRAL_STACK} is not deployed in this account and Region" if
                  "does not exist" in msg else f"cloudformation:DescribeStacks: {code}")
        return Check("deployment", CENTRAL_STACK, OK,
                     f"{detail}: names CloudFormation chooses are simulated as patterns")
    for out in stacks[0].get("Outputs", []) if stacks else []:
        which = TABLE_OUTPUTS.get(str(out.get("OutputKey")))
        if which:
            scope.tables[which] = str(out["OutputValue"])
    return Check("deployment", CENTRAL_STACK, OK,
                 f"deployed; tables {', '.join(sorted(scope.tables.values())) or 'not named'}")


#: The stacks whose Lambda functions are dpc's callers (``app.py``).
DPC_STACKS = (CENTRAL_STACK, "dpc-user-account")


@dataclass(frozen=True)
class Deployed:
    """A caller of aws-calls.yaml as deployed in this account: its role and environment."""

    role: str
    env: Mapping[str, str]


def deployed_callers(scope: Scope, clients: Clients) -> tuple[dict[str, Deployed], Check]:
    """After setup: the role and environment of each dpc function of this account's
    stacks (``cloudformation:ListStackResources``, ``lambda:GetFunctionConfiguration``),
    keyed by the caller's name in aws-calls.yaml (``lambda <handler module>``), and the
    fixed-name roles of a team account."""
    from botocore.exceptions import BotoCoreError, ClientError

    cfn = clients("cloudformation", scope.region)
    lam = clients("lambda", scope.region)
    found: dict[str, Deployed] = {}
    stacks: list[str] = []
    try:
        for stack in DPC_STACKS:
            try:
                pages = list(cfn.get_paginator("list_stack_resources").paginate(
                    StackName=stack))
            except ClientError as exc:
                if "does not exist" in _error(exc)[1]:
                    continue
                raise
            stacks.append(stack)
            for page in pages:
                for res in page["StackResourceSummaries"]:
                    if res["ResourceType"] != "AWS::Lambda::Function":
                        continue
                    cfg = lam.get_function_configuration(
                        FunctionName=res["PhysicalResourceId"])
                    module = str(cfg.get("Handler", "")).rpartition(".")[0]
                    found[f"lambda {module}"] = Deployed(
                        role=str(cfg["Role"]),
                        env=dict((cfg.get("Environment") or {}).get("Variables") or {}))
            if stack == "dpc-user-account":
                found["role member:ReconcilerReadRole"] = Deployed(
                    role=f"arn:aws:iam::{scope.account}:role/"
                         f"{regional(RECONCILER_READ_ROLE, scope.region)}", env={})
                for res in plugin_resources(scope.region, scope.account):
                    if res.caller:
                        found[f"role member:{res.caller}"] = Deployed(role=res.arn, env={})
    except (ClientError, BotoCoreError) as exc:
        code, msg = _error(exc)
        return found, Check("deployment", "deployed roles", UNKNOWN, f"{code}: {msg}",
                            "run with credentials allowed cloudformation:ListStackResources "
                            "and lambda:GetFunctionConfiguration")
    if not stacks:
        return found, Check("deployment", "deployed roles", REFUSED,
                            f"no dpc stack ({', '.join(DPC_STACKS)}) in account "
                            f"{scope.account}, {scope.region}",
                            "run --as-deployed after setup, in the account and Region of "
                            "the stacks")
    return found, Check("deployment", "deployed roles", OK,
                        f"{len(found)} callers in {', '.join(stacks)}")


class _Stop(Exception):
    def __init__(self, check: Check) -> None:
        super().__init__(check.detail)
        self.check = check


def _simulate(iam: Any, principal: str, action: str, arn: str,
              context: list[dict[str, Any]]) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        result = iam.simulate_principal_policy(
            PolicySourceArn=principal, ActionNames=[action], ResourceArns=[arn],
            ContextEntries=context)
    except (ClientError, BotoCoreError) as exc:
        code, msg = _error(exc)
        if code == "NoSuchEntity":
            raise _Stop(Check("principal", principal, REFUSED, f"{code}: {msg}",
                              "give --role the full ARN of an existing role or user "
                              "(with its path)")) from None
        raise _Stop(Check("principal", principal, UNKNOWN,
                          f"iam:SimulatePrincipalPolicy: {code}: {msg}",
                          "run with credentials allowed iam:SimulatePrincipalPolicy on "
                          "the principal")) from None
    evaluated: dict[str, Any] = result["EvaluationResults"][0]
    return evaluated


def check_permissions(scope: Scope, clients: Clients, principal: str,
                      caller_filter: str | None = None,
                      calls: Sequence[Call] | None = None,
                      deployed: Mapping[str, Deployed] | None = None) -> list[Check]:
    """Each runtime call through the policy simulator, as ``principal`` or, with
    ``deployed``, as the role dpc deployed for the call's caller (calls of callers not
    deployed in this account are left out): the identity side of the decision (resource
    policies are asserted on the templates by tests/test_permission_paths.py).
    Deliveries made by a service principal are decided by the resource's policy alone,
    which the simulator does not take: ``unknown``."""
    iam = clients("iam", scope.region)
    checks: list[Check] = []
    cache: dict[tuple[str, str, str], dict[str, Any]] = {}
    chosen = [c for c in (calls if calls is not None else runtime_calls())
              if (not caller_filter or caller_filter in c.caller)
              and (deployed is None or c.caller in deployed)]
    if not chosen and deployed is not None:
        return [Check("permission", "calls", UNKNOWN,
                      "no caller of aws-calls.yaml is deployed in this account",
                      "run in the central account or a team account after setup")]
    if not chosen:
        return [Check("permission", f"--caller {caller_filter}", REFUSED,
                      "no call of aws-calls.yaml is made by that caller",
                      "give part of a caller named in central/aws-calls.yaml, "
                      "e.g. trigger_manager")]
    try:
        for call in chosen:
            name = f"{call.caller}: {call.label}"
            if call.caller.startswith("service "):
                checks.append(Check(
                    "permission", name, UNKNOWN,
                    f"{', '.join(call.actions)} on {call.resource} by "
                    f"{call.caller.split()[1]}: decided by the resource's policy alone",
                    "the simulator takes IAM principals only; dpc's templates grant it "
                    "(tests/test_permission_paths.py)"))
                continue
            mine = deployed.get(call.caller) if deployed is not None else None
            who = mine.role if mine else principal
            arn, exact = resource_arn(call.resource, scope, mine.env if mine else None)
            if arn is None or not call.actions:
                checks.append(Check("permission", name, OK, "needs no permission"))
                continue
            refused, unsure, notes = [], [], []
            for action in call.actions:
                ctx = context_entries(action, call, scope, who)
                key = (action, arn, json.dumps(ctx, sort_keys=True))
                if key not in cache:
                    if len(cache) >= MAX_SIMULATIONS:
                        raise _Stop(Check("principal", who, UNKNOWN,
                                          f"stopped after {MAX_SIMULATIONS} simulations",
                                          "narrow the run with --caller"))
                    cache[key] = _simulate(iam, who, action, arn, ctx)
                ev = cache[key]
                decision = ev.get("EvalDecision")
                missing = ev.get("MissingContextValues") or []
                if missing:
                    notes.append(f"{action} lacks context {', '.join(missing)}")
                if decision == "allowed":
                    continue
                if decision == "explicitDeny" or exact:
                    refused.append(f"{action} ({decision})")
                else:
                    unsure.append(f"{action} ({decision})")
            detail = f"{', '.join(call.actions)} on {arn}" + (f" as {who}" if mine else "")
            if notes:
                detail += "; " + "; ".join(notes)
            if refused:
                checks.append(Check(
                    "permission", name, REFUSED, f"{detail}: {', '.join(refused)}",
                    f"allow {', '.join(a.split()[0] for a in refused)} on {arn} in the "
                    f"policies of {who}" + (
                        " (redeploy the stack: its template grants it)" if mine else
                        f" (dpc's stacks grant it to {call.caller}; rerun with "
                        "--as-deployed after setup)")))
            elif unsure:
                checks.append(Check(
                    "permission", name, UNKNOWN, f"{detail}: {', '.join(unsure)}",
                    "the resource's name is chosen by CloudFormation and only a policy "
                    "allowing a pattern shows here: give --role the deployed role and "
                    "read its policy (the templates' grant is checked by "
                    "tests/test_permission_paths.py)"))
            else:
                checks.append(Check("permission", name, OK, detail))
    except _Stop as stop:
        checks.append(stop.check)
    return checks


# -- the command ------------------------------------------------------------------------


def run(scope: Scope, clients: Clients, principal: str,
        caller_filter: str | None = None, as_deployed: bool = False) -> list[Check]:
    """Every check, in the order a platform team fixes them."""
    checks = check_organisation(scope, clients)
    checks += check_subnets(scope, clients)
    checks += check_quotas(scope, clients)
    checks.append(read_deployed_names(scope, clients))
    deployed = None
    if as_deployed:
        deployed, found = deployed_callers(scope, clients)
        checks.append(found)
        if found.status != OK:
            return checks
    checks += check_permissions(scope, clients, principal, caller_filter, deployed=deployed)
    return checks


def report(checks: Sequence[Check], fmt: str, header: Mapping[str, Any]) -> str:
    counts = {s: sum(1 for c in checks if c.status == s) for s in (OK, REFUSED, UNKNOWN)}
    if fmt == "json":
        return json.dumps({**header, "checks": [asdict(c) for c in checks],
                           "summary": counts}, indent=2)
    lines = [f"dpc doctor --aws: {', '.join(f'{k} {v}' for k, v in header.items())}"]
    for c in checks:
        lines.append(f"{c.status:<8}{c.section:<13}{c.name}: {c.detail}")
        if c.fix and c.status != OK:
            lines.append(f"{'':<21}fix: {c.fix}")
    lines.append(f"{counts[OK]} ok, {counts[REFUSED]} refused, {counts[UNKNOWN]} unknown")
    return "\n".join(lines)


def _boto3_clients(service: str, region: str | None) -> Any:
    import boto3

    return boto3.client(service, region_name=region)


def _accounts(values: Sequence[str], flag: str) -> None:
    bad = [v for v in values if not ACCOUNT_RE.match(v)]
    if bad:
        raise click.UsageError(f"{flag} must be 12 digits: {', '.join(bad)}")


@click.command("doctor")
@click.option("--aws", "aws", is_flag=True, help="check the AWS account (read-only)")
@click.option("--region", default=None, help="AWS region (default: from the environment)")
@click.option("--central-account", default=None, help="12-digit id of the central account")
@click.option("--org-id", default=None, help="AWS Organizations id (o-...) given at setup")
@click.option("--member-account", "members", multiple=True,
              help="12-digit member account given at setup (repeat)")
@click.option("--subnet-id", "subnets", multiple=True,
              help="subnet of this account for the compute plugins' clusters (repeat)")
@click.option("--pipelines", default=50, show_default=True,
              type=click.IntRange(1, MAX_PIPELINES),
              help="pipelines this team account will hold (for the quotas)")
@click.option("--role", default=None,
              help="IAM role or user ARN whose policies are simulated (default: the caller)")
@click.option("--as-deployed", is_flag=True,
              help="after setup: simulate each call as the role dpc deployed for its "
                   "caller in this account (instead of --role)")
@click.option("--caller", "caller_filter", default=None,
              help="only the calls of this aws-calls.yaml caller, e.g. trigger_manager")
@click.option("--format", "fmt", default="text", show_default=True,
              type=click.Choice(["text", "json"]))
def doctor(aws: bool, region: str | None, central_account: str | None, org_id: str | None,
           members: tuple[str, ...], subnets: tuple[str, ...], pipelines: int,
           role: str | None, as_deployed: bool, caller_filter: str | None,
           fmt: str) -> None:
    """Preflight (read-only): organisation, subnets, quotas and every runtime call
    through IAM's policy simulator, each ok / refused / unknown with the fix.

    Exit code 0 when nothing is refused, 1 when something is, 2 for bad input or no
    credentials.
    """
    if not aws:
        raise click.UsageError("dpc doctor checks an AWS account: give --aws")
    if central_account:
        _accounts([central_account], "--central-account")
    _accounts(members, "--member-account")
    if org_id and not ORG_RE.match(org_id):
        raise click.UsageError(f"--org-id must look like o-xxxxxxxxxx: {org_id}")
    bad = [s for s in subnets if not SUBNET_RE.match(s)]
    if bad:
        raise click.UsageError(f"--subnet-id must look like subnet-0abc...: {', '.join(bad)}")
    if role and as_deployed:
        raise click.UsageError("give --role or --as-deployed, not both")
    if role and not PRINCIPAL_RE.match(role):
        raise click.UsageError(f"--role must be an IAM role or user ARN: {role}")
    from dpc_core.aws_session import resolve_region

    reg = resolve_region(region)
    if not reg:
        raise click.UsageError("no region: give --region or set AWS_REGION")
    ident = caller_identity(_boto3_clients)
    principal = principal_arn(role or ident["arn"])
    scope = Scope(region=reg, account=ident["account"], central_account=central_account,
                  org_id=org_id, members=tuple(dict.fromkeys(members)),
                  subnets=tuple(dict.fromkeys(subnets)), pipelines=pipelines)
    checks = run(scope, _boto3_clients, principal, caller_filter, as_deployed)
    header = {"account": scope.account, "region": reg,
              "principal": "as deployed" if as_deployed else principal,
              "role": "central" if scope.is_central else "team"}
    click.echo(report(checks, fmt, header))
    if any(c.status == REFUSED for c in checks):
        raise click.exceptions.Exit(1)
