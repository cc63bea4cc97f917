"""A team account's stack (``dpc setup-user-account``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, CfnParameter, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from dpc_central import conventions as names
from dpc_central.common.alarms import AlarmTopic, route_alarms, subscription_dead_letters
from dpc_central.user_account.artifacts import ArtifactsBucket
from dpc_central.user_account.pipeline_bus import PipelineBus
from dpc_central.user_account.reconciler_role import ReconcilerReadRole
from dpc_central.user_account.registration_provider import RegistrationProvider
from dpc_central.user_account.status_forwarding import StatusForwarding
from dpc_core.cdk_values import in_app


class UserAccountStack(Stack):
    """Pipeline bus, status forwarding, artifacts bucket, the reconciler's read role and
    the registration provider, then what the installed plugins add through the
    ``dpc_team_account_constructs`` hook (a compute backend's roles, security groups,
    reaper...; ``options`` holds the values of their ``dpc_team_account_options``). What
    pipeline stacks need is published as SSM parameters under ``/dpc/``."""

    def __init__(self, scope: Construct, id: str, *, central_account: str, code_dir: Path,
                 layer_arns: Sequence[str] = (), registration_url: str | None = None,
                 alarm_email: str | None = None, registry: Any = None,
                 options: Mapping[str, str | None] | None = None, **kwargs: Any) -> None:
        super().__init__(scope, id, description="dpc team account", **kwargs)
        in_app(self, scope, kwargs.get("env"))
        layers = [lambda_.LayerVersion.from_layer_version_arn(self, f"Layer{i}", arn)
                  for i, arn in enumerate(layer_arns)]
        # Deploy-time inputs where the CLI was not told: no lookups (no credentials) at synth.
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
        self.reconciler_role = ReconcilerReadRole(self, "ReconcilerRead",
                                                  central_account=central_account)
        self.registration = RegistrationProvider(
            self, "Registration", central_account=central_account, registration_url=url,
            code_dir=code_dir, layers=layers)
        for key, value in (
            (names.SSM_CENTRAL_ACCOUNT, central_account),
            (names.SSM_ARTIFACTS_BUCKET, self.artifacts.bucket.bucket_name),
            (names.SSM_REGISTRATION_PROVIDER, self.registration.service_token),
            (names.SSM_ALARM_TOPIC, self.alarms.topic.topic_arn),
        ):
            ssm.StringParameter(self, "Param" + key.replace("/", "-"), parameter_name=key,
                                string_value=value)
        # The plugins' resources, in the stack itself: their logical ids are theirs.
        from dpc_central.plugin_api import TeamContext
        from dpc_central.user_account.options import account_options

        reg = registry
        if reg is None:
            from dpc_core.plugins import get_registry

            reg = get_registry()
        self.team = TeamContext(stack=self, central_account=central_account,
                                artifacts=self.artifacts.bucket, alarm_topic=self.alarms.topic,
                                code_dir=code_dir, layers=layers,
                                options=dict(options or {}), declared=account_options(reg))
        hook = getattr(reg, "hook", None)
        if hook is not None:
            hook.dpc_team_account_constructs(scope=self, team=self.team)
        CfnOutput(self, "ArtifactsBucketName", value=self.artifacts.bucket.bucket_name)
        subscription_dead_letters(self, "AlarmSubscriptionsDlq", topic=self.alarms.topic,
                                  alarm_topic=None)
        # Last, so alarms added above (and by any construct before) notify the topic.
        route_alarms(self, self.alarms.topic)
