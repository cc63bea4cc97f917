"""cdk-nag (AwsSolutions pack) and its acknowledgements: each carries its reason.

cdk-nag 3 plugs into CDK's policy validation: ``Validations.of(app).add_plugins(...)``
runs the pack at synth, and ``Validations.of(construct).acknowledge(...)`` records an
accepted finding on the construct it concerns. Acknowledgements are written next to the
resource (in the construct that creates it), so a reader sees the exception and its
reason in one place. A finding is ``RULE`` or ``RULE[finding]`` (e.g.
``AwsSolutions-IAM5[Resource::*]``), which narrows it to the accepted wildcard.

cdk-nag is a development dependency: without it (or with ``nag=False``) synth skips the
checks, and the acknowledgements of an app dpc made are not recorded at all (they are
metadata only a check reads; see ``dpc_core.cdk_values.acknowledge``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dpc_core.cdk_values import acknowledge, record_checks, stack_info

Rule = tuple[str, str] | tuple[str, str, Sequence[str]]


def suppress(scope: Any, rules: Sequence[Rule]) -> None:
    """Acknowledge cdk-nag findings on ``scope`` and everything below it:
    ``(rule_id, reason)`` or ``(rule_id, reason, findings)``."""
    from aws_cdk import Acknowledgment

    acks: list[Acknowledgment] = []
    for rule in rules:
        rid, reason = rule[0], rule[1]
        findings = rule[2] if len(rule) == 3 else ()
        if findings:
            acks.extend(Acknowledgment(id=f"{rid}[{f}]", reason=reason) for f in findings)
        else:
            acks.append(Acknowledgment(id=rid, reason=reason))
    acknowledge(scope, *acks)


#: Acknowledgements every dpc Lambda shares (applied by DpcFunction).
LAMBDA_BASICS: list[Rule] = [
    ("AwsSolutions-IAM4", "AWSLambdaBasicExecutionRole only grants writing the function's own "
     "CloudWatch log streams; a hand-written copy would be the same policy",
     ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]),
]


def apply_stack_checks(app: Any, *, enabled: bool = True) -> bool:
    """Run the AwsSolutions pack on every stack of ``app`` at synth when ``enabled`` and
    cdk-nag is installed, and remember whether it runs (call it before adding stacks);
    False when it does not."""
    checked = False
    if enabled:
        try:
            from cdk_nag import AwsSolutionsChecks
        except ImportError:
            pass
        else:
            from aws_cdk import Validations

            Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=False))
            checked = True
    record_checks(app, checked)
    return checked


def region_in_finding(scope: Any) -> str:
    """How cdk-nag prints the stack's region inside a finding (concrete or a pseudo)."""
    return stack_info(scope).region_in_finding


def logical_ref(resource: Any) -> str:
    """How cdk-nag prints ``Fn::GetAtt`` of ``resource``'s ARN: ``<LogicalId.Arn>``."""
    from aws_cdk import Stack

    stack = Stack.of(resource)
    cfn = resource.node.default_child if hasattr(resource, "node") else resource
    return f"<{stack.resolve(stack.get_logical_id(cfn))}.Arn>"


def bucket_grant_findings(bucket: Any, *, write: bool = True) -> list[str]:
    """The IAM5 findings of CDK's ``bucket.grant_read``/``grant_read_write``: its action
    wildcards and the bucket's objects (``<bucket ARN>/*``)."""
    actions = ["s3:GetObject*", "s3:GetBucket*", "s3:List*"]
    if write:
        actions += ["s3:DeleteObject*", "s3:Abort*"]
    return [f"Action::{a}" for a in actions] + [f"Resource::{logical_ref(bucket)}/*"]
