"""A small IAM policy evaluator: AWS's documented decision logic, for templates.

Neither ``iam-ape`` (effective identity permissions only: no resource policies, conditions
carried through unevaluated) nor ``principalmapper`` (does not import on Python >= 3.10:
``collections.Mapping``; its full check also has no service principals) evaluates a
request against an identity policy *and* a resource policy with condition keys, so this
module does, after the IAM User Guide:

* "Policy evaluation logic"
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
  an explicit deny in any policy wins; otherwise, within one account, an allow in the
  identity policy *or* in a resource policy that names the principal suffices;
* "Cross-account policy evaluation logic"
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html):
  across accounts the caller's identity policy *and* the resource policy must allow;
* KMS key policies and role trust policies are required even within the account: a key
  policy (or trust policy) that names the account root only delegates to the account's
  identity policies, which must then allow too ("Key policies in AWS KMS",
  https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html);
* a service principal (``events.amazonaws.com``) has no identity policy here: the
  resource policy alone decides;
* conditions: ``String*``, ``Arn*``, ``Bool``, ``Null``, ``Numeric*``, the ``...IfExists``
  suffix and the ``ForAnyValue:``/``ForAllValues:`` set prefixes, with the request's keys
  supplied by the caller ("IAM JSON policy elements: Condition operators",
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).

Not modelled: SCPs, permission boundaries, session policies, policy variables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

Policy = Mapping[str, Any]
ContextValue = str | bool | int | Sequence[str]


@dataclass(frozen=True)
class Request:
    """One API request as IAM sees it.

    ``principal`` is an IAM role/user ARN, an account root ARN, or a service principal
    such as ``events.amazonaws.com``; ``context`` holds the request's condition keys
    (``aws:PrincipalOrgID``, ``aws:SourceArn``, ``events:source``, ...).
    """

    principal: str
    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    @property
    def is_service(self) -> bool:
        """True for a service principal (no ARN, ends with ``amazonaws.com``)."""
        return not self.principal.startswith("arn:")

    @property
    def account(self) -> str | None:
        """The caller's account (None for a service principal)."""
        return None if self.is_service else self.principal.split(":")[4]


@dataclass(frozen=True)
class Decision:
    """The outcome and why (the reason reads well in a failing assertion)."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


@lru_cache(maxsize=4096)
def _glob(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    # IAM wildcards: * is any run of characters (":" and "/" included), ? one character.
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", 0 if case_sensitive else re.IGNORECASE | re.DOTALL)


def glob_match(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM wildcard match (``*``, ``?``)."""
    return bool(_glob(pattern, case_sensitive).match(value))


def _listify(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def statements(policy: Policy | None) -> list[Mapping[str, Any]]:
    """The statements of a policy document (a lone statement object is allowed)."""
    if not policy:
        return []
    return _listify(policy.get("Statement"))


def _action_matches(stmt: Mapping[str, Any], action: str) -> bool:
    # Action names are case-insensitive.
    if "NotAction" in stmt:
        return not any(glob_match(a, action, case_sensitive=False)
                       for a in _listify(stmt["NotAction"]))
    return any(glob_match(a, action, case_sensitive=False) for a in _listify(stmt.get("Action")))


def _resource_matches(stmt: Mapping[str, Any], resource: str) -> bool:
    if "NotResource" in stmt:
        return not any(glob_match(r, resource) for r in _listify(stmt["NotResource"]))
    if "Resource" not in stmt:
        return True  # resource policies may leave it out: the resource they are attached to
    return any(glob_match(r, resource) for r in _listify(stmt["Resource"]))


def _principal_entries(principal: Any) -> tuple[list[str], list[str], bool]:
    """(AWS entries, Service entries, everyone?) of a Principal element."""
    if principal == "*":
        return [], [], True
    if not isinstance(principal, Mapping):
        return [], [], False
    aws = [str(x) for x in _listify(principal.get("AWS"))]
    return aws, [str(x) for x in _listify(principal.get("Service"))], "*" in aws


def _account_of(entry: str) -> str | None:
    if re.fullmatch(r"\d{12}", entry):
        return entry
    m = re.fullmatch(r"arn:[^:]+:iam::(\d{12}):root", entry)
    return m.group(1) if m else None


def principal_match(stmt: Mapping[str, Any], req: Request) -> str | None:
    """How a resource-policy statement names the caller: ``"direct"`` (the principal itself,
    ``*``, or its service), ``"account"`` (its account root: a delegation to that account's
    identity policies), or None."""
    negate = "NotPrincipal" in stmt
    aws, services, everyone = _principal_entries(stmt.get("NotPrincipal" if negate else
                                                          "Principal"))
    how: str | None = None
    if everyone:
        how = "direct"
    elif req.is_service:
        how = "direct" if req.principal in services else None
    elif req.principal in aws:
        how = "direct"
    elif any(_account_of(a) == req.account for a in aws):
        how = "account"
    if negate:
        return None if how else "direct"
    return how


def _values(context: Mapping[str, ContextValue], key: str) -> list[str] | None:
    for k, v in context.items():
        if k.lower() == key.lower():  # condition key names are case-insensitive
            if isinstance(v, bool):
                return ["true" if v else "false"]
            return [str(x) for x in _listify(v)] if isinstance(v, list | tuple) else [str(v)]
    return None


def _compare(base: str, policy_value: str, value: str) -> bool:
    if base in ("StringEquals", "StringNotEquals"):
        return policy_value == value
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return policy_value.lower() == value.lower()
    if base in ("StringLike", "StringNotLike", "ArnLike", "ArnNotLike", "ArnEquals",
                "ArnNotEquals"):
        # ArnEquals and ArnLike behave alike: both take wildcards in each ARN segment.
        return glob_match(policy_value, value)
    if base == "Bool":
        return policy_value.lower() == value.lower()
    if base.startswith("Numeric"):
        a, b = float(value), float(policy_value)
        return {"NumericEquals": a == b, "NumericNotEquals": a == b,
                "NumericLessThan": a < b, "NumericLessThanEquals": a <= b,
                "NumericGreaterThan": a > b, "NumericGreaterThanEquals": a >= b}[base]
    raise ValueError(f"condition operator {base} is not supported by this evaluator")


_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals",
            "ArnNotLike", "NumericNotEquals"}


def _operator_holds(operator: str, key: str, policy_values: list[str],
                    context: Mapping[str, ContextValue]) -> bool:
    qualifier, _, op = operator.rpartition(":")
    if_exists = op.endswith("IfExists")
    base = op[: -len("IfExists")] if if_exists else op
    values = _values(context, key)
    if base == "Null":
        wanted_missing = policy_values[0].lower() == "true"
        return (values is None) == wanted_missing
    negated = base in _NEGATED

    def one(value: str) -> bool:
        hit = any(_compare(base, p, value) for p in policy_values)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        # True when every value of the request is in the policy's set; an empty or
        # missing key satisfies it (the documented pitfall).
        return all(one(v) for v in values or [])
    if qualifier == "ForAnyValue":
        return bool(values) and any(one(v) for v in values)
    if values is None:
        # A missing key: ...IfExists holds; a negated operator holds (nothing equals it);
        # any other operator fails.
        return if_exists or negated
    return any(one(v) for v in values)


def condition_holds(condition: Mapping[str, Mapping[str, Any]] | None,
                    context: Mapping[str, ContextValue]) -> bool:
    """All operators, all keys within an operator (AND); any policy value of a key (OR)."""
    for operator, keys in (condition or {}).items():
        for key, policy_values in keys.items():
            if not _operator_holds(operator, key, [str(v).lower() if isinstance(v, bool)
                                                   else str(v)
                                                   for v in _listify(policy_values)],
                                   context):
                return False
    return True


def _identity_matches(stmt: Mapping[str, Any], req: Request) -> bool:
    return (_action_matches(stmt, req.action) and _resource_matches(stmt, req.resource)
            and condition_holds(stmt.get("Condition"), req.context))


def _matching(policies: Iterable[Policy | None], req: Request, effect: str,
              resource_policy: bool) -> list[tuple[Mapping[str, Any], str]]:
    found = []
    for policy in policies:
        for stmt in statements(policy):
            if stmt.get("Effect") != effect or not _identity_matches(stmt, req):
                continue
            if resource_policy:
                how = principal_match(stmt, req)
                if how is None:
                    continue
                found.append((stmt, how))
            else:
                found.append((stmt, "identity"))
    return found


def evaluate(req: Request, *, identity: Sequence[Policy] = (),
             resource_policy: Policy | Sequence[Policy] | None = None,
             resource_account: str, requires_resource_policy: bool = False) -> Decision:
    """Decide one request.

    ``identity``: the caller's identity policy documents (empty for a service principal).
    ``resource_policy``: the resource's policy, or several documents that together form it
    (an EventBridge bus gets one ``AWS::Events::EventBusPolicy`` per statement; a Lambda
    function one permission each), or None when the resource type has none.
    ``requires_resource_policy``: True for KMS keys and role trust policies, which must
    allow even within the account.
    """
    rps: list[Policy] = [] if resource_policy is None else (
        [resource_policy] if isinstance(resource_policy, Mapping) else list(resource_policy))
    ident = [] if req.is_service else list(identity)
    denies = _matching(ident, req, "Deny", False) + _matching(rps, req, "Deny", True)
    if denies:
        sid = denies[0][0].get("Sid", "")
        return Decision(False, f"explicit deny {sid!r} for {req.action} on {req.resource}")
    id_allow = bool(_matching(ident, req, "Allow", False))
    rp_allows = _matching(rps, req, "Allow", True)
    rp_direct = any(how == "direct" for _, how in rp_allows)
    rp_any = bool(rp_allows)
    what = f"{req.principal} {req.action} on {req.resource}"
    if req.is_service:
        return Decision(rp_direct, f"{what}: " + ("the resource policy allows the service"
                                                  if rp_direct else
                                                  "no resource-policy statement allows the "
                                                  "service principal (with these conditions)"))
    same = req.account == resource_account
    if not same or requires_resource_policy:
        if not rp_any:
            side = "cross-account" if not same else "key/trust policy"
            return Decision(False, f"{what}: {side}: the resource policy does not allow it")
        if rp_direct and same:
            return Decision(True, f"{what}: the resource policy names the principal")
        if not id_allow:
            return Decision(False, f"{what}: the resource policy allows it but the caller's "
                                   "identity policy does not")
        return Decision(True, f"{what}: identity and resource policy both allow it")
    if id_allow or rp_direct:
        return Decision(True, f"{what}: allowed within the account")
    return Decision(False, f"{what}: no identity-policy statement allows it (implicit deny)")


# -- which global condition keys a request carries ---------------------------------------
#
# A condition on a key the request does not carry does not match (IAM User Guide,
# "Condition operators": "If the key that you specify in a policy condition is not present
# in the request context, the values do not match" — ...IfExists, the negated operators,
# Null and ForAllValues excepted, see _operator_holds). So the harness must not give every
# request every key: this table says, after the IAM User Guide's "AWS global condition
# context keys" (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html,
# the "Availability" line of each key) and the Service Authorization Reference
# (https://docs.aws.amazon.com/service-authorization/latest/reference/), which keys a
# request has.

#: Keys "always included in the request context" of a call by an IAM principal
#: (aws:PrincipalArn, aws:PrincipalAccount, aws:SecureTransport; the SDKs call over HTTPS).
ALWAYS_FOR_PRINCIPALS = ("aws:PrincipalArn", "aws:PrincipalAccount", "aws:SecureTransport")

#: Actions whose request context has no ``aws:ResourceOrgID`` (nor ``aws:ResourceAccount``,
#: ``aws:ResourceOrgPaths``): the key page lists them as not supporting the key — every
#: Amazon EBS direct API and every Amazon EventBridge action, and a few EC2 peering,
#: endpoint and copy actions (IAM User Guide, "AWS global condition context keys",
#: aws:ResourceOrgID, May 2023 copy: awsdocs/iam-user-guide,
#: doc_source/reference_policies_condition-keys.md). Patterns, IAM wildcards.
RESOURCE_ORG_UNSUPPORTED = (
    "ebs:*", "events:*",
    "ec2:AcceptTransitGatewayPeeringAttachment", "ec2:AcceptVpcEndpointConnections",
    "ec2:AcceptVpcPeeringConnection", "ec2:CopyImage", "ec2:CopySnapshot",
    "ec2:CreateTransitGatewayPeeringAttachment", "ec2:CreateVolume",
    "ec2:CreateVpcEndpoint", "ec2:CreateVpcPeeringConnection",
)

#: Service-to-service deliveries: the calling service puts the ARN of its resource in
#: ``aws:SourceArn`` and that resource's account in ``aws:SourceAccount`` (IAM User Guide,
#: aws:SourceArn / aws:SourceAccount: "only if accessing a resource triggers an AWS service
#: to call another service on behalf of the resource owner"); the service documents name
#: the keys for the paths dpc uses: EventBridge rule → SQS, Lambda, SNS (EventBridge User
#: Guide, "Using resource-based policies for Amazon EventBridge"), SNS → Lambda, SQS (Amazon
#: SNS Developer Guide, "Fanout to Amazon SQS queues", "Fanout to Lambda functions"),
#: CloudWatch alarm → SNS (Amazon SNS Developer Guide, "Example cases for Amazon SNS access
#: control"), API Gateway → Lambda (AWS Lambda Developer Guide, "Granting function access
#: to AWS services": ``SourceArn`` of the API's execute-api ARN). A service principal is
#: in no organisation: no aws:PrincipalOrgID.
SOURCE_KEYS_BY_SERVICE = {
    "apigateway.amazonaws.com": ("aws:SourceArn", "aws:SourceAccount"),
    "events.amazonaws.com": ("aws:SourceArn", "aws:SourceAccount"),
    "sns.amazonaws.com": ("aws:SourceArn", "aws:SourceAccount"),  # and aws:SourceOrgID
    "cloudwatch.amazonaws.com": ("aws:SourceArn", "aws:SourceAccount"),
}


def supplies_resource_org(action: str) -> bool:
    """Whether the request context of ``action`` can carry ``aws:ResourceOrgID``."""
    return not any(glob_match(p, action, case_sensitive=False)
                   for p in RESOURCE_ORG_UNSUPPORTED)


def request_context(*, principal: str, action: str, resource_account: str,
                    org_of: Any, source_arn: str | None = None) -> dict[str, ContextValue]:
    """The global condition keys AWS puts in the request context of ``principal`` doing
    ``action`` on a resource of ``resource_account``; ``org_of(account)`` is the
    account's organisation id or None. Only keys the table above says the request
    carries: no ``aws:ResourceOrgID`` for EventBridge, no ``aws:PrincipalOrgID`` for a
    service principal or an account in no organisation, no ``aws:SourceArn`` for a call
    an IAM principal makes itself."""
    ctx: dict[str, ContextValue] = {}
    service = not principal.startswith("arn:")
    if service:
        ctx["aws:PrincipalIsAWSService"] = True
        if source_arn:
            keys = SOURCE_KEYS_BY_SERVICE.get(principal, ())
            if "aws:SourceArn" in keys:
                ctx["aws:SourceArn"] = source_arn
            if "aws:SourceAccount" in keys and source_arn.split(":")[4]:
                ctx["aws:SourceAccount"] = source_arn.split(":")[4]
                # "aws:SourceOrgID": present when the source resource's account is in an
                # organisation (IAM User Guide, aws:SourceOrgID, "Availability").
                if org_of(source_arn.split(":")[4]):
                    ctx["aws:SourceOrgID"] = org_of(source_arn.split(":")[4])
    else:
        account = principal.split(":")[4]
        always = dict(zip(ALWAYS_FOR_PRINCIPALS, (principal, account, True), strict=True))
        ctx.update({**always, "aws:PrincipalIsAWSService": False})
        if org_of(account):
            ctx["aws:PrincipalOrgID"] = org_of(account)
    if supplies_resource_org(action):
        ctx["aws:ResourceAccount"] = resource_account
        if org_of(resource_account):
            ctx["aws:ResourceOrgID"] = org_of(resource_account)
    return ctx
