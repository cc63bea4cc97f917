"""AWS's quotas and name rules, checked on a synthesized cloud assembly before deploying.

CloudFormation accepts a template, then a resource fails minutes into the deployment
because a queue policy has 21 statements or a role's inline policies total 10,300
characters. ``dpc synth``, ``deploy`` and ``setup-*`` run :func:`check_assembly` on what
they synthesized and refuse (exit 2, one line per violation) before anything is deployed.

:data:`QUOTAS` is the one table of the figures, each with the AWS document it comes from
(docs/aws.md links the same pages). Sizes are measured on each template resolved as far
as a synthesized template allows (:class:`dpc_central.cfn_resolve.Resolver`): a value
known only at deploy time (a parameter from SSM, an imported value, a generated physical
name) is replaced by a stand-in of typical length, and its string is not held to a name
pattern. Name rules come from the CloudFormation resource schemas that ship with cfn-lint
(``pattern``, ``minLength``, ``maxLength`` of each string property).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpc_central.cfn_resolve import Resolver, fake_id
from dpc_central.errors import SynthError

CFN_QUOTAS = ("AWS CloudFormation User Guide, \"Understand CloudFormation quotas\"",
              "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/"
              "cloudformation-limits.html")
IAM_QUOTAS = ("IAM User Guide, \"IAM and AWS STS quotas\"",
              "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html")
SQS_QUOTAS = ("Amazon SQS Developer Guide, \"Amazon SQS policy quotas\"",
              "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/"
              "quotas-policies.html")
SNS_QUOTAS = ("Amazon SNS Developer Guide, \"Amazon SNS API permissions: Actions and "
              "resources reference\" (Policy quotas)",
              "https://docs.aws.amazon.com/sns/latest/dg/"
              "sns-access-policy-language-api-permissions-reference.html")
LAMBDA_QUOTAS = ("AWS Lambda Developer Guide, \"Lambda quotas\"",
                 "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html")
KMS_POLICY = ("AWS KMS Developer Guide, \"Creating a key policy\" (Key policy format)",
              "https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html")
EVENTS_QUOTAS = ("Amazon EventBridge User Guide, \"Amazon EventBridge quotas\"",
                 "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html")
S3_POLICY = ("Amazon S3 User Guide, \"Bucket policies and user policies\"",
             "https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-iam-policies.html")
SECRETS_QUOTAS = ("AWS Secrets Manager User Guide, \"AWS Secrets Manager quotas\"",
                  "https://docs.aws.amazon.com/secretsmanager/latest/userguide/"
                  "reference_limits.html")
SFN_QUOTAS = ("AWS Step Functions Developer Guide, \"Step Functions service quotas\"",
              "https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html")
CFN_SCHEMAS = ("AWS CloudFormation resource type schemas (as shipped in cfn-lint's "
               "cfnlint/data/schemas)",
               "https://docs.aws.amazon.com/cloudformation-cli/latest/userguide/"
               "resource-type-schema.html")


@dataclass(frozen=True)
class Quota:
    """One AWS limit: what it bounds, the figure, how dpc counts it, and where AWS says so."""

    key: str
    what: str
    limit: int
    counted: str
    doc: tuple[str, str]
    fix: str


_Q = [
    Quota("cfn.resources", "resources per stack", 500, "entries of Resources", CFN_QUOTAS,
          "split the stack (fewer pipelines per project, or fewer resources per pipeline)"),
    Quota("cfn.parameters", "parameters per stack", 200, "entries of Parameters", CFN_QUOTAS,
          "split the stack or read values from SSM at run time"),
    Quota("cfn.outputs", "outputs per stack", 200, "entries of Outputs", CFN_QUOTAS,
          "split the stack"),
    Quota("cfn.mappings", "mappings per stack", 200, "entries of Mappings", CFN_QUOTAS,
          "split the stack"),
    Quota("cfn.template_bytes", "template body size (uploaded to S3, as the CDK toolkit "
          "does)", 1_048_576, "bytes of the synthesized template file", CFN_QUOTAS,
          "split the stack"),
    Quota("iam.role_inline_chars", "inline policies per role, in aggregate", 10_240,
          "characters of every inline policy document of the role, whitespace excluded "
          "(all stacks of the account)", IAM_QUOTAS,
          "move the statements to a managed policy or to one statement with a wildcard "
          "resource pattern"),
    Quota("iam.managed_policy_chars", "managed policy size", 6_144,
          "characters of the document, whitespace excluded", IAM_QUOTAS,
          "split the managed policy"),
    Quota("iam.managed_per_role", "managed policies attached to a role", 10,
          "ManagedPolicyArns plus AWS::IAM::ManagedPolicy attached to the role (default "
          "quota, adjustable to 20)", IAM_QUOTAS,
          "merge managed policies or request an increase in Service Quotas"),
    Quota("iam.trust_policy_chars", "role trust policy length", 2_048,
          "characters of AssumeRolePolicyDocument, whitespace excluded (default quota, "
          "adjustable to 4,096)", IAM_QUOTAS,
          "shorten the trust policy (one principal per account list, or an org condition)"),
    Quota("sqs.policy_bytes", "SQS queue policy size", 8_192,
          "bytes of the policy document (compact JSON)", SQS_QUOTAS,
          "merge statements (one statement listing the principals, or aws:PrincipalOrgID)"),
    Quota("sqs.policy_statements", "SQS queue policy statements", 20,
          "statements of the policy document", SQS_QUOTAS,
          "merge statements (one statement listing the principals, or aws:PrincipalOrgID)"),
    Quota("sns.policy_bytes", "SNS topic policy size", 30_720,
          "bytes of the policy document (compact JSON)", SNS_QUOTAS,
          "merge statements"),
    Quota("sns.policy_statements", "SNS topic policy statements", 100,
          "statements of the policy document", SNS_QUOTAS, "merge statements"),
    Quota("lambda.policy_bytes", "Lambda function resource-based policy size", 20_480,
          "bytes of the policy Lambda builds from the function's AWS::Lambda::Permission "
          "resources", LAMBDA_QUOTAS,
          "grant one permission per source pattern instead of one per account"),
    Quota("lambda.environment_bytes", "Lambda environment variables, in aggregate", 4_096,
          "bytes of every variable's name and value", LAMBDA_QUOTAS,
          "move values to SSM parameters or the function's code"),
    Quota("kms.policy_bytes", "KMS key policy size", 32_768,
          "bytes of the key policy (compact JSON)", KMS_POLICY, "merge statements"),
    Quota("events.bus_policy_chars", "EventBridge event bus policy size", 10_240,
          "characters of the bus policy built from its AWS::Events::EventBusPolicy "
          "statements (default quota, adjustable)", EVENTS_QUOTAS,
          "admit the organisation (aws:PrincipalOrgID) instead of listing accounts"),
    Quota("events.rules_per_bus", "rules per event bus", 300,
          "AWS::Events::Rule on the bus, all stacks of the account (default quota, "
          "adjustable)", EVENTS_QUOTAS,
          "request an increase in Service Quotas, or spread pipelines over accounts"),
    Quota("events.targets_per_rule", "targets per rule", 5, "Targets of the rule",
          EVENTS_QUOTAS, "split the rule"),
    Quota("s3.policy_bytes", "S3 bucket policy size", 20_480,
          "bytes of the policy document (compact JSON)", S3_POLICY, "merge statements"),
    Quota("secretsmanager.policy_chars", "Secrets Manager resource policy size", 20_480,
          "characters of the policy document", SECRETS_QUOTAS, "merge statements"),
    Quota("sfn.definition_bytes", "Step Functions state machine definition size",
          1_048_576, "bytes of the resolved definition", SFN_QUOTAS,
          "split the pipeline or move large values out of the definition"),
    Quota("schema.pattern", "property pattern of the resource type", 0,
          "resolved string property against the schema's pattern", CFN_SCHEMAS,
          "give a value the resource type accepts"),
    Quota("schema.length", "property length of the resource type", 0,
          "resolved string property against the schema's minLength/maxLength", CFN_SCHEMAS,
          "shorten the name (pipeline or account names make it up)"),
]

#: Every quota dpc checks, by key.
QUOTAS: dict[str, Quota] = {q.key: q for q in _Q}


@dataclass(frozen=True)
class Violation:
    """One figure over one quota: the stack and resource, the figure and the limit."""

    stack: str
    resource: str
    quota: Quota
    figure: int | str

    def line(self) -> str:
        limit = f" > {self.quota.limit:,}" if self.quota.limit else ""
        figure = f"{self.figure:,}" if isinstance(self.figure, int) else self.figure
        return (f"{self.stack}/{self.resource}: {self.quota.what} {figure}{limit} "
                f"({self.quota.doc[0]}); fix: {self.quota.fix}")


@dataclass(frozen=True)
class Usage:
    """A measured figure against its quota (violations and the closest-to-limit report)."""

    stack: str
    resource: str
    quota: Quota
    figure: int

    @property
    def ratio(self) -> float:
        return self.figure / self.quota.limit if self.quota.limit else 0.0


# -- resolution ---------------------------------------------------------------------------

class _Tolerant(Resolver):
    """A Resolver that never fails: what it cannot know becomes a stand-in string,
    remembered so the name-pattern check skips it."""

    def __init__(self, template: Mapping[str, Any], *, stack_name: str, account: str,
                 region: str) -> None:
        super().__init__(template, account=account, region=region, stack_name=stack_name)
        self.standins: set[str] = set()

    def _standin(self, key: str, length: int = 24) -> str:
        value = f"x{fake_id(self.stack_name + '/' + key, length - 1)}"
        self.standins.add(value)
        return value

    def _name(self, lid: str, *keys: str) -> str:
        props = self._props(lid)
        for key in keys:
            if key in props:
                return str(self.resolve(props[key]))
        # CloudFormation's generated names: <stack>-<logical id>-<random>, at most 64.
        value = f"{self.stack_name}-{lid}"[:50] + "-" + fake_id(lid, 12).upper()
        self.standins.add(value)
        return value

    def ref(self, lid: str) -> str:
        params = self.template.get("Parameters", {})
        if lid in params and str(params[lid].get("Type", "")).startswith("AWS::SSM::"):
            return self._standin(f"param/{lid}", 40)
        try:
            return super().ref(lid)
        except KeyError:
            return self._standin(f"ref/{lid}")

    def arn(self, lid: str) -> str:
        try:
            return super().arn(lid)
        except KeyError:
            kind = self.resources.get(lid, {}).get("Type", "AWS::X::Y")
            service = kind.split("::")[1].lower() if "::" in kind else "x"
            return (f"arn:{self.partition}:{service}:{self.region}:{self.account}:"
                    f"{self._standin(f'arn/{lid}', 40)}")

    def get_att(self, lid: str, attr: str) -> str:
        try:
            return super().get_att(lid, attr)
        except KeyError:
            return self._standin(f"att/{lid}.{attr}")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value if v != {"Ref": "AWS::NoValue"}]
        if isinstance(value, dict) and len(value) == 1:
            (key, arg), = value.items()
            if key in ("Ref", "Fn::GetAtt"):
                return super().resolve(value)
            if key == "Fn::If" and isinstance(arg, list) and len(arg) == 3:
                # Either branch may deploy: measure the longer.
                a, b = self.resolve(arg[1]), self.resolve(arg[2])
                return a if len(json.dumps(a)) >= len(json.dumps(b)) else b
            if key == "Fn::ImportValue":
                return self._standin(f"import/{json.dumps(arg)}", 40)
            if key == "Fn::FindInMap" and isinstance(arg, list) and len(arg) == 3:
                try:
                    m, k1, k2 = (self.resolve(a) for a in arg)
                    return self.resolve(self.template["Mappings"][m][k1][k2])
                except (KeyError, TypeError):
                    return self._standin(f"map/{json.dumps(arg)}")
            if key in ("Fn::Base64", "Fn::GetAZs", "Fn::Cidr", "Fn::Transform"):
                return self._standin(f"{key}/{json.dumps(arg)}")
            if key in ("Fn::Join", "Fn::Sub", "Fn::Select", "Fn::Split"):
                try:
                    return super().resolve(value)
                except (KeyError, IndexError, TypeError, ValueError):
                    return self._standin(f"{key}/{json.dumps(arg)}")
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()
                    if v != {"Ref": "AWS::NoValue"}}
        return super().resolve(value)

    def has_standin(self, text: str) -> bool:
        return any(s in text for s in self.standins)


# -- measuring ------------------------------------------------------------------------------

def _compact(doc: Any) -> str:
    return doc if isinstance(doc, str) else json.dumps(doc, separators=(",", ":"))


def policy_chars(doc: Any) -> int:
    """Characters of a policy as IAM counts them: the JSON without whitespace."""
    return len(re.sub(r"\s", "", _compact(doc)))


def policy_bytes(doc: Any) -> int:
    """Bytes of a policy as a resource policy is stored: compact JSON, UTF-8."""
    return len(_compact(doc).encode())


def _statements(doc: Any) -> list[Any]:
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError:
            return []
    st = doc.get("Statement", []) if isinstance(doc, dict) else []
    return st if isinstance(st, list) else [st]


def _lambda_statement(props: Mapping[str, Any], sid: str, function_arn: str) -> dict[str, Any]:
    """The statement Lambda's AddPermission writes for one AWS::Lambda::Permission."""
    principal = str(props.get("Principal", ""))
    who: dict[str, str] = ({"AWS": f"arn:aws:iam::{principal}:root"}
                           if principal.isdigit() else
                           {"AWS": principal} if principal.startswith("arn:") or
                           principal == "*" else {"Service": principal})
    cond: dict[str, dict[str, str]] = {}
    if "SourceArn" in props:
        cond["ArnLike"] = {"AWS:SourceArn": str(props["SourceArn"])}
    if "SourceAccount" in props:
        cond.setdefault("StringEquals", {})["AWS:SourceAccount"] = str(props["SourceAccount"])
    if "PrincipalOrgID" in props:
        cond.setdefault("StringEquals", {})["aws:PrincipalOrgID"] = str(props["PrincipalOrgID"])
    st: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Principal": who,
                          "Action": props.get("Action", "lambda:InvokeFunction"),
                          "Resource": function_arn}
    if cond:
        st["Condition"] = cond
    return st


class _Stack:
    """One template, resolved, with the figures the account-wide checks add up."""

    def __init__(self, name: str, template: Mapping[str, Any], *, account: str, region: str,
                 size: int) -> None:
        self.name = name
        self.template = template
        self.size = size
        self.r = _Tolerant(template, stack_name=name, account=account, region=region)
        self.resources: Mapping[str, Any] = template.get("Resources", {}) or {}

    def props(self, lid: str) -> Any:
        return self.r.resolve(self.resources[lid].get("Properties", {}) or {})


def _usages(st: _Stack) -> tuple[list[Usage], dict[str, list[tuple[str, str, int]]],
                                  dict[str, list[str]], dict[str, list[tuple[str, str]]]]:
    """Per-stack figures, plus (role → inline policies), (role → managed policies) and
    (bus → rules) for the account-wide sums."""
    u: list[Usage] = []
    q = QUOTAS
    t = st.template
    u.append(Usage(st.name, "(template)", q["cfn.resources"], len(st.resources)))
    u.append(Usage(st.name, "(template)", q["cfn.parameters"], len(t.get("Parameters") or {})))
    u.append(Usage(st.name, "(template)", q["cfn.outputs"], len(t.get("Outputs") or {})))
    u.append(Usage(st.name, "(template)", q["cfn.mappings"], len(t.get("Mappings") or {})))
    u.append(Usage(st.name, "(template)", q["cfn.template_bytes"], st.size))
    inline: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    managed: dict[str, list[str]] = defaultdict(list)
    rules: dict[str, list[tuple[str, str]]] = defaultdict(list)
    lambda_policies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    bus_policies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for lid, res in st.resources.items():
        kind = res.get("Type", "")
        p = st.props(lid)
        if kind == "AWS::IAM::Role":
            role = st.r.ref(lid)
            for pol in p.get("Policies", []) or []:
                inline[role].append((st.name, lid, policy_chars(pol.get("PolicyDocument", {}))))
            managed[role].extend(f"{st.name}/{lid}/{a}"
                                 for a in p.get("ManagedPolicyArns", []) or [])
            u.append(Usage(st.name, lid, q["iam.trust_policy_chars"],
                           policy_chars(p.get("AssumeRolePolicyDocument", {}))))
        elif kind == "AWS::IAM::Policy":
            n = policy_chars(p.get("PolicyDocument", {}))
            for role in p.get("Roles", []) or []:
                inline[str(role).rsplit("/", 1)[-1]].append((st.name, lid, n))
        elif kind == "AWS::IAM::ManagedPolicy":
            u.append(Usage(st.name, lid, q["iam.managed_policy_chars"],
                           policy_chars(p.get("PolicyDocument", {}))))
            for role in p.get("Roles", []) or []:
                managed[str(role)].append(f"{st.name}/{lid}")
        elif kind == "AWS::SQS::QueuePolicy":
            doc = p.get("PolicyDocument", {})
            u.append(Usage(st.name, lid, q["sqs.policy_bytes"], policy_bytes(doc)))
            u.append(Usage(st.name, lid, q["sqs.policy_statements"], len(_statements(doc))))
        elif kind == "AWS::SNS::TopicPolicy":
            doc = p.get("PolicyDocument", {})
            u.append(Usage(st.name, lid, q["sns.policy_bytes"], policy_bytes(doc)))
            u.append(Usage(st.name, lid, q["sns.policy_statements"], len(_statements(doc))))
        elif kind == "AWS::KMS::Key":
            u.append(Usage(st.name, lid, q["kms.policy_bytes"],
                           policy_bytes(p.get("KeyPolicy", {}))))
        elif kind == "AWS::S3::BucketPolicy":
            u.append(Usage(st.name, lid, q["s3.policy_bytes"],
                           policy_bytes(p.get("PolicyDocument", {}))))
        elif kind == "AWS::SecretsManager::ResourcePolicy":
            u.append(Usage(st.name, lid, q["secretsmanager.policy_chars"],
                           len(_compact(p.get("ResourcePolicy", {})))))
        elif kind == "AWS::Lambda::Function":
            env = (p.get("Environment") or {}).get("Variables") or {}
            u.append(Usage(st.name, lid, q["lambda.environment_bytes"],
                           sum(len(str(k).encode()) + len(str(v).encode())
                               for k, v in env.items())))
        elif kind == "AWS::Lambda::Permission":
            fn = str(p.get("FunctionName", ""))
            arn = fn if fn.startswith("arn:") else \
                f"arn:aws:lambda:{st.r.region}:{st.r.account}:function:{fn}"
            sid = f"{st.name}-{lid}"[:50] + "-" + fake_id(lid, 12).upper()
            lambda_policies[arn].append(_lambda_statement(p, sid, arn))
        elif kind == "AWS::Events::EventBusPolicy":
            bus = str(p.get("EventBusName", "default"))
            stmt = dict(p.get("Statement") or {})
            stmt["Sid"] = p.get("StatementId", lid)
            bus_policies[bus].append(stmt)
        elif kind == "AWS::Events::Rule":
            bus = str(p.get("EventBusName", "default")).rsplit("/", 1)[-1]
            rules[bus].append((st.name, lid))
            u.append(Usage(st.name, lid, q["events.targets_per_rule"],
                           len(p.get("Targets", []) or [])))
        elif kind == "AWS::StepFunctions::StateMachine":
            d = p.get("DefinitionString", p.get("Definition", ""))
            u.append(Usage(st.name, lid, q["sfn.definition_bytes"], policy_bytes(d)))
    for arn, sts in lambda_policies.items():
        doc = {"Version": "2012-10-17", "Id": "default", "Statement": sts}
        u.append(Usage(st.name, f"(policy of {arn.rsplit(':', 1)[-1]})",
                       q["lambda.policy_bytes"], policy_bytes(doc)))
    for bus, sts in bus_policies.items():
        doc = {"Version": "2012-10-17", "Statement": sts}
        u.append(Usage(st.name, f"(policy of bus {bus.rsplit('/', 1)[-1]})",
                       q["events.bus_policy_chars"], len(_compact(doc))))
    return u, inline, managed, rules


# -- name rules (CloudFormation resource schemas) -------------------------------------------

_SCHEMAS: dict[str, Any] = {}


def schemas_available() -> bool:
    """Whether the CloudFormation resource schemas (from cfn-lint, a dependency of
    dpc-central) are installed: without them (an install that left it out) the name rules
    are not checked, and the commands say so."""
    return _schema_index() is not None


def _schema_index() -> Mapping[str, str] | None:
    if "_map" not in _SCHEMAS:
        import importlib.util

        spec = importlib.util.find_spec("cfnlint")
        base = (Path(next(iter(spec.submodule_search_locations))) / "data" / "schemas"
                if spec is not None and spec.submodule_search_locations else None)
        index = base / "providers" / "us-east-1.json" if base else None
        _SCHEMAS["_map"] = json.loads(index.read_text()) if index and index.is_file() else None
        _SCHEMAS["_dir"] = base / "resources" if base else None
    found: Mapping[str, str] | None = _SCHEMAS["_map"]
    return found


def _schema(kind: str) -> Mapping[str, Any] | None:
    """The CloudFormation resource schema of ``kind`` that cfn-lint ships, or None."""
    index = _schema_index()
    if not index or kind not in index:
        return None
    if kind not in _SCHEMAS:
        _SCHEMAS[kind] = json.loads((_SCHEMAS["_dir"] / f"{index[kind]}.json").read_text())
    schema: Mapping[str, Any] = _SCHEMAS[kind]
    return schema


def _deref(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        found: Mapping[str, Any] = root.get("definitions", {}).get(ref.split("/")[-1], {})
        return found
    return node


def _string_rules(value: Any, node: Mapping[str, Any], root: Mapping[str, Any], path: str,
                  out: list[tuple[str, str, str]], skip: Any, depth: int = 0) -> None:
    """(path, rule, detail) for each string of ``value`` its schema node refuses
    (strings for which ``skip`` is true are not known until deploy: not checked)."""
    if depth > 12:
        return
    node = _deref(node, root)
    if isinstance(value, str):
        if node.get("type") not in ("string", None) or "enum" in node or skip(value):
            return
        n = len(value)
        if "maxLength" in node and n > int(node["maxLength"]):
            out.append((path, "schema.length", f"{n} characters > {node['maxLength']} "
                        f"({value[:60]!r})"))
        elif "minLength" in node and n < int(node["minLength"]):
            out.append((path, "schema.length", f"{n} characters < {node['minLength']}"))
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            try:
                ok = re.search(pattern, value) is not None
            except re.error:
                ok = True
            if not ok:
                out.append((path, "schema.pattern", f"{value[:120]!r} does not match "
                            f"{pattern[:120]!r}"))
    elif isinstance(value, dict) and isinstance(node.get("properties"), dict):
        for k, v in value.items():
            sub = node["properties"].get(k)
            if isinstance(sub, dict):
                _string_rules(v, sub, root, f"{path}.{k}", out, skip, depth + 1)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, v in enumerate(value):
            _string_rules(v, node["items"], root, f"{path}[{i}]", out, skip, depth + 1)


#: Properties whose value is a JSON document, not a name: not held to string patterns.
_DOCUMENT_PROPS = {"PolicyDocument", "AssumeRolePolicyDocument", "KeyPolicy",
                   "DefinitionString", "Definition", "EventPattern", "ResourcePolicy",
                   "Policies", "Statement", "Environment", "Code", "Input", "InputPath"}


def _name_violations(st: _Stack) -> list[Violation]:
    found: list[Violation] = []
    for lid, res in st.resources.items():
        schema = _schema(res.get("Type", ""))
        if schema is None:
            continue
        props = st.props(lid)
        for key, value in props.items():
            if key in _DOCUMENT_PROPS:
                continue
            node = schema.get("properties", {}).get(key)
            if not isinstance(node, dict):
                continue
            out: list[tuple[str, str, str]] = []
            _string_rules(value, node, schema, key, out, st.r.has_standin)
            for path, rule, detail in out:
                found.append(Violation(st.name, f"{lid}.{path}", QUOTAS[rule], detail))
    return found


# -- the checks -----------------------------------------------------------------------------

@dataclass
class Report:
    """What :func:`check_templates` found: the violations, and every figure measured."""

    violations: list[Violation]
    usages: list[Usage]

    def closest(self) -> Usage | None:
        """The figure closest to its limit."""
        counted = [u for u in self.usages if u.quota.limit]
        return max(counted, key=lambda u: u.ratio) if counted else None


def check_templates(templates: Sequence[tuple[str, Mapping[str, Any], int]], *,
                    account: str = "123456789012", region: str = "us-east-1") -> Report:
    """Check ``(stack name, template, template size in bytes)`` of ONE account: each
    template against the per-stack and per-resource quotas, and the sums that span
    stacks (inline policies of the same role, rules on the same bus)."""
    usages: list[Usage] = []
    names: list[Violation] = []
    inline: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    managed: dict[str, list[str]] = defaultdict(list)
    rules: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for name, template, size in templates:
        st = _Stack(name, template, account=account, region=region, size=size)
        u, i, m, r = _usages(st)
        usages += u
        for role, parts in i.items():
            inline[role] += parts
        for role, arns in m.items():
            managed[role] += arns
        for bus, rs in r.items():
            rules[bus] += rs
        names += _name_violations(st)
    for role, parts in inline.items():
        stacks = sorted({s for s, _, _ in parts})
        where = stacks[0] if len(stacks) == 1 else f"{len(stacks)} stacks"
        usages.append(Usage(where, f"(role {role})", QUOTAS["iam.role_inline_chars"],
                            sum(n for _, _, n in parts)))
    for role, arns in managed.items():
        usages.append(Usage("(account)", f"(role {role})", QUOTAS["iam.managed_per_role"],
                            len(arns)))
    for bus, rs in rules.items():
        stacks = sorted({s for s, _ in rs})
        where = stacks[0] if len(stacks) == 1 else f"{len(stacks)} stacks"
        usages.append(Usage(where, f"(bus {bus})", QUOTAS["events.rules_per_bus"], len(rs)))
    over = [Violation(x.stack, x.resource, x.quota, x.figure) for x in usages
            if x.quota.limit and x.figure > x.quota.limit]
    return Report(over + names, usages)


def assembly_templates(out: Path) -> list[tuple[str, dict[str, Any], int]]:
    """``(stack name, template, bytes)`` of every stack of the cloud assembly in ``out``."""
    manifest = json.loads((out / "manifest.json").read_text())
    found = []
    for key, art in manifest.get("artifacts", {}).items():
        if art.get("type") != "aws:cloudformation:stack":
            continue
        file = out / art.get("properties", {}).get("templateFile", f"{key}.template.json")
        text = file.read_text()
        found.append((art.get("displayName", key), json.loads(text), len(text.encode())))
    return found


def check_assembly(outs: Iterable[Path], *, account: str = "123456789012",
                   region: str | None = None) -> Report:
    """Check the stacks of the cloud assemblies ``outs`` (stacks of one account)."""
    templates = [t for out in outs for t in assembly_templates(out)]
    return check_templates(templates, account=account, region=region or "us-east-1")


class QuotaError(SynthError):
    """A synthesized stack breaks an AWS quota or name rule (one line per violation)."""


def refuse_violations(report: Report) -> None:
    """Raise :class:`QuotaError` listing every violation of ``report``, if any."""
    if report.violations:
        lines = "\n".join(f"  {v.line()}" for v in report.violations)
        raise QuotaError(f"{len(report.violations)} AWS quota or name rule(s) broken; "
                         f"CloudFormation would refuse these stacks:\n{lines}")
