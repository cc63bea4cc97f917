"""The pipeline's SNS topic and the subscriptions its notifier plugins add."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from dpc_central.errors import SynthError
from dpc_core.cdk_values import in_stack_of, stack_info


class PipelineTopic(Construct):
    """``dpc-<pipeline>``: encrypted with a customer key, TLS-only, publishable by the
    central account's execution tracker; each ``notifications.targets`` entry is handed
    to its channel plugin's ``aws_subscriptions(scope, topic, addresses)``.

    Attributes: ``topic``, ``key``, ``topic_arn``.
    """

    def __init__(self, scope: Construct, id: str, *, pipeline: Any, registry: Any,
                 central_account: str, context: dict[str, str] | None = None) -> None:
        super().__init__(scope, id)
        in_stack_of(self, scope)
        # Context the notifier plugins read (e.g. the central account, from which the
        # Slack plugin names its poster); set before any child exists, as CDK requires.
        node = self.node
        for key, value in (context or {}).items():
            node.set_context(key, value)
        info = stack_info(scope)

        def root(account: str) -> str:
            # How CDK renders AccountRootPrincipal/AccountPrincipal: the account's root ARN.
            return f"arn:{info.partition}:iam::{account}:root"

        # The key policy as one document (one round trip; adding statements to CDK's
        # default policy is four each). The first statement is CDK's default: the
        # account administers its key through IAM. A publisher of another account needs
        # the second in the key policy as well as in its own IAM policy (the execution
        # tracker's role); only through SNS.
        # Destroyed with the stack: KMS schedules its deletion (7 days, the shortest
        # window) and the key is unusable (PendingDeletion) meanwhile; a retained key
        # would stay enabled, usable by the central account, one more per redeploy.
        self.key = kms.Key(self, "Key", enable_key_rotation=True,
                           description=f"dpc topic of {pipeline.name}",
                           removal_policy=RemovalPolicy.DESTROY,
                           pending_window=Duration.days(7),
                           policy=iam.PolicyDocument.from_json({"Statement": [
                               {"Action": "kms:*", "Effect": "Allow",
                                "Principal": {"AWS": root(info.account)}, "Resource": "*"},
                               {"Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                                "Condition": {"StringEquals": {
                                    "kms:ViaService": f"sns.{info.region}.amazonaws.com"}},
                                "Effect": "Allow", "Principal": {"AWS": root(central_account)},
                                "Resource": "*", "Sid": "CentralTrackerMayEncryptForThisTopic"},
                           ], "Version": "2012-10-17"}))
        self.topic = sns.Topic(self, "Topic", topic_name=f"dpc-{pipeline.name}",
                               master_key=self.key, enforce_ssl=True,
                               display_name=f"dpc {pipeline.name}")
        #: The topic's ARN (a token), read once: each read is a jsii round trip.
        self.topic_arn = self.topic.topic_arn
        self.topic.add_to_resource_policy(iam.PolicyStatement.from_json({
            "Action": "sns:Publish", "Effect": "Allow",
            "Principal": {"AWS": root(central_account)}, "Resource": self.topic_arn,
            "Sid": "CentralTrackerMayPublish"}))
        for i, target in enumerate(pipeline.notifications.targets):
            notifier = registry.notifiers.get(target.channel)
            if notifier is None or notifier.aws_subscriptions is None:
                raise SynthError(
                    f"{pipeline.source}: notifications.targets[{i}]: channel "
                    f"{target.channel!r} has no AWS form in its plugin; remove the target or "
                    "install a plugin version that subscribes it on AWS")
            try:
                notifier.aws_subscriptions(Construct(self, f"Target{i}-{target.channel}"),
                                           self.topic, list(target.addresses))
            except ValueError as exc:
                raise SynthError(f"{pipeline.source}: notifications.targets[{i}]: {exc}") \
                    from None
