"""Deleting the team stack: the rules EMR added between its managed security groups.

EMR adds rules to the EMR-managed security groups that reference one another (primary
↔ core/task, service access ↔ primary). EC2 refuses to delete a security group that
another group's rule references (``DependencyViolation``), so CloudFormation could not
delete the team stack once a cluster had run. This is the ``onEvent`` handler of the
``Custom::DpcEmrSecurityGroupRules`` resource (CDK's provider framework): on ``Delete``
— which CloudFormation runs before deleting the groups the resource depends on — it
revokes every rule of the groups that references a security group; ``Create`` and
``Update`` do nothing. Rules with CIDR ranges or prefix lists do not block a deletion
and are left to go with their group.

Resource properties: ``GroupIds`` (the three groups).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from dpc_central import plugin_api as common

#: The custom resource's type.
RESOURCE_TYPE = "Custom::DpcEmrSecurityGroupRules"
#: Rule ids per RevokeSecurityGroupIngress/Egress call (a request limit of our own).
_BATCH = 100


def handle(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Provider-framework entry point."""
    physical = str(event.get("PhysicalResourceId") or "dpc-emr-security-group-rules")
    if event.get("RequestType") != "Delete":
        return {"PhysicalResourceId": physical}
    groups = [str(g) for g in (event.get("ResourceProperties") or {}).get("GroupIds", [])]
    revoked = revoke_group_references(common.client("ec2"), groups)
    common.emit(logging.INFO, "security-group-rules-revoked", groups=groups, revoked=revoked)
    return {"PhysicalResourceId": physical}


def revoke_group_references(ec2: Any, groups: list[str]) -> int:
    """Revoke each rule of ``groups`` that references a security group; the count."""
    if not groups:
        return 0
    found: dict[tuple[str, bool], list[str]] = {}
    pages = ec2.get_paginator("describe_security_group_rules").paginate(
        Filters=[{"Name": "group-id", "Values": groups}])
    for page in pages:
        for rule in page.get("SecurityGroupRules", []):
            if rule.get("GroupId") in groups and (rule.get("ReferencedGroupInfo") or {}).get(
                    "GroupId"):
                found.setdefault((rule["GroupId"], bool(rule.get("IsEgress"))), []).append(
                    rule["SecurityGroupRuleId"])
    for (group, egress), ids in sorted(found.items()):
        for i in range(0, len(ids), _BATCH):
            batch = ids[i:i + _BATCH]
            if egress:
                ec2.revoke_security_group_egress(GroupId=group, SecurityGroupRuleIds=batch)
            else:
                ec2.revoke_security_group_ingress(GroupId=group, SecurityGroupRuleIds=batch)
    return sum(len(ids) for ids in found.values())
