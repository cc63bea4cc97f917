"""dpc-compute-emr's preflight of ``setup-user-account``: the subnet, checked on moto's
EC2 (DescribeSubnets as AWS answers it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def ec2(aws_credentials: Any) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("ec2", region_name="eu-west-1")


def subnet(ec2: Any, tags: dict[str, str]) -> tuple[str, str]:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    spec = [{"ResourceType": "subnet", "Tags": [{"Key": k, "Value": v}
                                                 for k, v in tags.items()]}] if tags else []
    sub = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24",
                            TagSpecifications=spec)["Subnet"]["SubnetId"]
    return vpc, sub


def test_a_subnet_tagged_for_emr_managed_policies_is_accepted(ec2: Any) -> None:
    from dpc_compute_emr.subnet_check import check_emr_subnet

    vpc, sub = subnet(ec2, {"for-use-with-amazon-emr-managed-policies": "true"})
    assert check_emr_subnet(sub, vpc_id=vpc, ec2=ec2)["SubnetId"] == sub


def test_an_untagged_subnet_is_refused_with_the_command_that_tags_it(ec2: Any) -> None:
    from dpc_central.errors import DeployError
    from dpc_compute_emr.subnet_check import check_emr_subnet

    vpc, sub = subnet(ec2, {"Name": "private-a"})
    with pytest.raises(DeployError, match=r"for-use-with-amazon-emr-managed-policies=true.*"
                                          r"aws ec2 create-tags"):
        check_emr_subnet(sub, vpc_id=vpc, ec2=ec2)


def test_a_subnet_of_another_vpc_is_refused(ec2: Any) -> None:
    from dpc_central.errors import DeployError
    from dpc_compute_emr.subnet_check import check_emr_subnet

    _, sub = subnet(ec2, {"for-use-with-amazon-emr-managed-policies": "true"})
    with pytest.raises(DeployError, match="not in --vpc-id vpc-other"):
        check_emr_subnet(sub, vpc_id="vpc-other", ec2=ec2)
