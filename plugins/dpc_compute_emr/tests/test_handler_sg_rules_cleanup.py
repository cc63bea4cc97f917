"""The team stack's security-group rule cleanup on moto's EC2: EMR's cross-group rules
block the deletion of the groups until the Delete of the custom resource revokes them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

REGION = "eu-west-1"


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    from dpc_central.handlers import _common

    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setattr(_common, "_clients", {})
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


def emr_groups(ec2: Any) -> list[str]:
    """Three groups with the rules EMR adds: primary <-> core/task, service -> primary,
    plus a CIDR rule (which blocks nothing and stays)."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    master, worker, service = (
        ec2.create_security_group(GroupName=n, Description=n, VpcId=vpc)["GroupId"]
        for n in ("master", "worker", "service"))

    def allow(group: str, source: str) -> None:
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535,
            "UserIdGroupPairs": [{"GroupId": source}]}])

    allow(master, worker)
    allow(worker, master)
    allow(master, service)
    ec2.authorize_security_group_egress(GroupId=service, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 8443, "ToPort": 8443,
        "UserIdGroupPairs": [{"GroupId": master}]}])
    ec2.authorize_security_group_ingress(GroupId=master, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
        "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}])
    return [master, worker, service]


def references(ec2: Any, groups: list[str]) -> list[dict[str, Any]]:
    rules = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": groups}])["SecurityGroupRules"]
    return [r for r in rules if r.get("ReferencedGroupInfo", {}).get("GroupId")]


def test_delete_revokes_every_rule_between_the_groups_and_keeps_cidr_rules(ec2: Any) -> None:
    from dpc_compute_emr.handlers.sg_rules_cleanup import handle

    groups = emr_groups(ec2)
    assert len(references(ec2, groups)) == 4
    out = handle({"RequestType": "Delete", "PhysicalResourceId": "x",
                  "ResourceProperties": {"GroupIds": groups}})
    assert out == {"PhysicalResourceId": "x"}
    assert references(ec2, groups) == []
    rules = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": groups}])["SecurityGroupRules"]
    assert any(r.get("CidrIpv4") == "10.0.0.0/16" for r in rules)
    for group in groups:
        ec2.delete_security_group(GroupId=group)


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_create_and_update_touch_no_rule(ec2: Any, request_type: str) -> None:
    from dpc_compute_emr.handlers.sg_rules_cleanup import handle

    groups = emr_groups(ec2)
    out = handle({"RequestType": request_type, "ResourceProperties": {"GroupIds": groups}})
    assert out["PhysicalResourceId"]
    assert len(references(ec2, groups)) == 4
