"""A team account's stack (``dpc setup-user-account``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, CfnParameter, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from dpc_central import conventions as names
from dpc_central.common.alarms import AlarmTopic, route_alarms, subscription_dead_letters
from dpc_central.user_account.artifacts import ArtifactsBucket
from dpc_central.user_account.cluster_reaper import ClusterReaper
from dpc_central.user_account.emr import EmrFoundation
from dpc_central.user_account.pipeline_bus import PipelineBus
from dpc_central.user_account.reconciler_role import ReconcilerReadRole
from dpc_central.user_account.registration_provider import RegistrationProvider
from dpc_central.user_account.sg_cleanup import SecurityGroupRulesCleanup
from dpc_central.user_account.status_forwarding import StatusForwarding
from dpc_core.cdk_values import in_app


class UserAccountStack(Stack):
    """Pipeline bus, status forwarding, artifacts bucket, EMR roles and security groups,
    the cluster reaper, the reconciler's read role and the registration provider. What
    pipeline stacks need is published as SSM parameters under ``/dpc/``."""

    def __init__(self, scope: Construct, id: str, *, central_account: str, code_dir: Path,
                 layer_arns: Sequence[str] = (), vpc_id: str | None = None,
                 subnet_id: str | None = None, registration_url: str | None = None,
                 alarm_email: str | None = None, **kwargs: Any) -> None:
        super().__init__(scope, id, description="dpc team account", **kwargs)
        in_app(self, scope, kwargs.get("env"))
        layers = [lambda_.LayerVersion.from_layer_version_arn(self, f"Layer{i}", arn)
                  for i, arn in enumerate(layer_arns)]
        # Deploy-time inputs where the CLI was not told: no lookups (no credentials) at synth.
        vpc = vpc_id or CfnParameter(self, "VpcId", type="AWS::EC2::VPC::Id",
                                     description="VPC of the EMR clusters").value_as_string
        subnet = subnet_id or CfnParameter(
            self, "SubnetId", type="AWS::EC2::Subnet::Id",
            description="private subnet of the EMR clusters").value_as_string
        url = registration_url or CfnParameter(
            self, "RegistrationUrl", type="String",
            description="URL of the central registration API (output of the central stack)"
        ).value_as_string
        # Alarms of this stack and of the account's pipeline stacks (ARN in SSM).
        self.alarms = AlarmTopic(self, "Alarms", email=alarm_email,
                                 display_name="dpc alarms (team account)")
        self.pipeline_bus = PipelineBus(self, "PipelineBus", central_account=central_account).bus
        self.forwarding = StatusForwarding(self, "StatusForwarding",
                                           central_account=central_account,
                                           code_dir=code_dir, layers=layers)
        self.artifacts = ArtifactsBucket(self, "Artifacts")
        self.emr = EmrFoundation(self, "Emr", vpc_id=vpc, artifacts=self.artifacts.bucket)
        # EMR makes its groups reference one another; EC2 refuses to delete a referenced
        # group, so those rules are revoked first when the stack is deleted.
        self.sg_cleanup = SecurityGroupRulesCleanup(
            self, "EmrSecurityGroupRules", code_dir=code_dir, layers=layers,
            groups=[self.emr.master_sg, self.emr.worker_sg, self.emr.service_sg])
        # Runs that are stopped or time out run no catch path: their clusters are
        # terminated here.
        self.cluster_reaper = ClusterReaper(self, "ClusterReaper", code_dir=code_dir,
                                            layers=layers)
        self.reconciler_role = ReconcilerReadRole(self, "ReconcilerRead",
                                                  central_account=central_account)
        self.registration = RegistrationProvider(
            self, "Registration", central_account=central_account, registration_url=url,
            code_dir=code_dir, layers=layers)
        for key, value in (
            (names.SSM_CENTRAL_ACCOUNT, central_account),
            (names.SSM_ARTIFACTS_BUCKET, self.artifacts.bucket.bucket_name),
            (names.SSM_REGISTRATION_PROVIDER, self.registration.service_token),
            (names.SSM_EMR_SUBNET, subnet),
            (names.SSM_EMR_MASTER_SG, self.emr.master_sg.security_group_id),
            (names.SSM_EMR_WORKER_SG, self.emr.worker_sg.security_group_id),
            (names.SSM_EMR_SERVICE_SG, self.emr.service_sg.security_group_id),
            (names.SSM_ALARM_TOPIC, self.alarms.topic.topic_arn),
        ):
            ssm.StringParameter(self, "Param" + key.replace("/", "-"), parameter_name=key,
                                string_value=value)
        CfnOutput(self, "ArtifactsBucketName", value=self.artifacts.bucket.bucket_name)
        subscription_dead_letters(self, "AlarmSubscriptionsDlq", topic=self.alarms.topic,
                                  alarm_topic=None)
        # Last, so alarms added above (and by any construct before) notify the topic.
        route_alarms(self, self.alarms.topic)
