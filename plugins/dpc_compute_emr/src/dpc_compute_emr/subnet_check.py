"""Before a team account is deployed: is the EMR subnet one EMR may launch into?

AmazonEMRServicePolicy_v2 (the service role's policy) allows ``ec2:RunInstances`` &
co. only in a subnet tagged ``for-use-with-amazon-emr-managed-policies=true``; an
untagged subnet lets the stack deploy and every cluster fail at its first run. The
subnet is not dpc's, so it is checked, not tagged.
"""

from __future__ import annotations

from typing import Any

from dpc_central.plugin_api import DeployError
from dpc_compute_emr.names import EMR_MANAGED_TAG


def check_emr_subnet(subnet_id: str, *, vpc_id: str, region: str | None = None,
                     ec2: Any = None) -> dict[str, Any]:
    """The subnet (``DescribeSubnets``) when it exists, lies in ``vpc_id`` and carries
    the EMR tag; DeployError saying what to fix otherwise."""
    if ec2 is None:
        import boto3

        ec2 = boto3.client("ec2", region_name=region)
    from botocore.exceptions import ClientError

    try:
        subnets = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"]
    except ClientError as exc:
        raise DeployError(f"cannot read subnet {subnet_id}: "
                          f"{exc.response['Error'].get('Message', exc)}") from None
    if not subnets:
        raise DeployError(f"subnet {subnet_id} does not exist in this account and region")
    subnet: dict[str, Any] = subnets[0]
    if vpc_id and subnet.get("VpcId") != vpc_id:
        raise DeployError(f"subnet {subnet_id} is in {subnet.get('VpcId')}, not in --vpc-id "
                          f"{vpc_id}; give the VPC of the subnet")
    key, value = EMR_MANAGED_TAG
    tags = {t["Key"]: t["Value"] for t in subnet.get("Tags", [])}
    if tags.get(key) != value:
        raise DeployError(
            f"subnet {subnet_id} lacks the tag {key}={value}: EMR's service policy "
            "(AmazonEMRServicePolicy_v2) launches clusters only in subnets with it. Tag it: "
            f"aws ec2 create-tags --resources {subnet_id} --tags Key={key},Value={value}")
    return subnet
