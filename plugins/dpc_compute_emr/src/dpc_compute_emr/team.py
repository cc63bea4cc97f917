"""The EMR backend's resources in a team account (``dpc_team_account_constructs``):
roles and security groups shared by the account's pipelines, the rules cleanup that
lets the stack be deleted, and the cluster reaper."""

from __future__ import annotations

from typing import Any

from aws_cdk import Fn, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from dpc_central.plugin_api import bucket_grant_findings, suppress
from dpc_compute_emr.names import (
    EMR_MANAGED_TAG,
    LOGS_DAYS,
    LOGS_PREFIX,
    SSM_MASTER_SG,
    SSM_SERVICE_SG,
    SSM_SUBNET,
    SSM_WORKER_SG,
    regional,
)
from dpc_compute_emr.names import INSTANCE_PROFILE as EMR_INSTANCE_PROFILE
from dpc_compute_emr.names import INSTANCE_ROLE as EMR_INSTANCE_ROLE
from dpc_compute_emr.names import SERVICE_ROLE as EMR_SERVICE_ROLE


class EmrFoundation(Construct):
    """The EMR service role, the instance role and profile (fixed names ending with the
    region: RunJobFlow takes names, and IAM names are account-wide) and the three
    EMR-managed security groups of a private subnet.

    AmazonEMRServicePolicy_v2 lets EMR launch instances into, and edit the rules of, only a
    subnet and security groups tagged ``for-use-with-amazon-emr-managed-policies=true``:
    the groups get the tag here, the subnet (not ours) is checked by
    ``dpc setup-user-account`` (:mod:`dpc_compute_emr.subnet_check`). The policy may pass
    only ``EMR_EC2_DefaultRole`` to EC2, so the service role may also pass dpc's instance
    role.

    Attributes: ``service_role``, ``instance_role``, ``instance_profile``, ``master_sg``,
    ``worker_sg``, ``service_sg``.
    """

    def __init__(self, scope: Construct, id: str, *, vpc_id: str,
                 artifacts: s3.IBucket) -> None:
        super().__init__(scope, id)
        region = Stack.of(self).region
        self.service_role = iam.Role(
            self, "ServiceRole", role_name=regional(EMR_SERVICE_ROLE, region),
            assumed_by=iam.ServicePrincipal("elasticmapreduce.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(
                "service-role/AmazonEMRServicePolicy_v2")])
        suppress(self.service_role, [("AwsSolutions-IAM4", "AmazonEMRServicePolicy_v2 is the "
                                      "scoped-down EMR service policy AWS maintains; it only "
                                      "acts on resources tagged for EMR",
                                      ["Policy::arn:<AWS::Partition>:iam::aws:policy/"
                                       "service-role/AmazonEMRServicePolicy_v2"])])
        self.instance_role = iam.Role(
            self, "InstanceRole", role_name=regional(EMR_INSTANCE_ROLE, region),
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="EMR cluster nodes of dpc pipelines")
        artifacts.grant_read_write(self.instance_role)
        suppress(self.instance_role, [("AwsSolutions-IAM5", "steps read scripts and write logs "
                                       "anywhere under the account's artifacts bucket; CDK's "
                                       "bucket grant lists the object actions it needs",
                                       bucket_grant_findings(artifacts))])
        self.instance_profile = iam.CfnInstanceProfile(
            self, "InstanceProfile", instance_profile_name=regional(EMR_INSTANCE_PROFILE, region),
            roles=[self.instance_role.role_name])
        vpc = ec2.Vpc.from_vpc_attributes(self, "Vpc", vpc_id=vpc_id,
                                          availability_zones=Fn.get_azs())
        # AmazonEMRServicePolicy_v2 allows iam:PassRole of EMR_EC2_DefaultRole only.
        self.service_role.add_to_policy(iam.PolicyStatement(
            sid="PassInstanceRoleToEc2", actions=["iam:PassRole"],
            resources=[self.instance_role.role_arn],
            conditions={"StringLike": {"iam:PassedToService": "ec2.amazonaws.com*"}}))
        self.master_sg = ec2.SecurityGroup(self, "MasterSg", vpc=vpc, allow_all_outbound=True,
                                           description="EMR primary nodes (rules managed by EMR)")
        self.worker_sg = ec2.SecurityGroup(self, "WorkerSg", vpc=vpc, allow_all_outbound=True,
                                           description="EMR core/task nodes (rules managed by EMR)")
        self.service_sg = ec2.SecurityGroup(self, "ServiceSg", vpc=vpc, allow_all_outbound=False,
                                            description="EMR service access in a private subnet")
        key, value = EMR_MANAGED_TAG
        for sg in (self.master_sg, self.worker_sg, self.service_sg):
            Tags.of(sg).add(key, value)


def add_team_resources(scope: Construct, team: Any) -> EmrFoundation:
    """Everything the EMR backend keeps in a team account, added to its stack ``scope``
    (the construct ids are today's, so an existing team stack is updated in place):
    roles and security groups, the cleanup of EMR's rules between the groups (EC2
    refuses to delete a referenced group), the cluster reaper (runs that are stopped or
    time out run no catch path), the SSM parameters pipeline stacks read, and the expiry
    of the clusters' logs in the artifacts bucket."""
    from dpc_compute_emr.cluster_reaper import ClusterReaper
    from dpc_compute_emr.sg_cleanup import SecurityGroupRulesCleanup

    vpc = team.option("vpc-id")
    subnet = team.option("subnet-id")
    emr = EmrFoundation(scope, "Emr", vpc_id=vpc, artifacts=team.artifacts)
    groups = [emr.master_sg, emr.worker_sg, emr.service_sg]
    from aws_cdk import Duration

    team.artifacts.add_lifecycle_rule(id="ExpireEmrLogs", prefix=LOGS_PREFIX,
                                      expiration=Duration.days(LOGS_DAYS))
    SecurityGroupRulesCleanup(scope, "EmrSecurityGroupRules", code_dir=team.code_dir,
                              layers=team.layers, groups=groups)
    ClusterReaper(scope, "ClusterReaper", code_dir=team.code_dir, layers=team.layers)
    for name, value in ((SSM_SUBNET, subnet),
                        (SSM_MASTER_SG, emr.master_sg.security_group_id),
                        (SSM_WORKER_SG, emr.worker_sg.security_group_id),
                        (SSM_SERVICE_SG, emr.service_sg.security_group_id)):
        team.publish(name, value)
    return emr
