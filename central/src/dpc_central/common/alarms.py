"""Where alarms and undeliverable notifications go: an encrypted alarms topic, alarm
actions for every alarm of a stack, and a dead-letter queue for SNS subscriptions."""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from dpc_central.common.function import (
    ROUTED,
    UNROUTED,
    alarm_on_queue_depth,
    dead_letter_queue,
    sns_action,
)
from dpc_core.cdk_values import stack_info


class AlarmTopic(Construct):
    """An SNS topic for CloudWatch alarms, encrypted with a customer key that CloudWatch
    may use (alarms cannot publish to an encrypted topic otherwise), optionally with an
    email subscription.

    Attributes: ``topic``, ``key``.
    """

    def __init__(self, scope: Construct, id: str, *, email: str | None = None,
                 display_name: str = "dpc alarms") -> None:
        super().__init__(scope, id)
        self.key = kms.Key(self, "Key", enable_key_rotation=True, description=display_name)
        self.topic = sns.Topic(self, "Topic", display_name=display_name, master_key=self.key,
                               enforce_ssl=True)
        self.key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                       "kms:GenerateDataKey*", "kms:Decrypt")
        allow_alarms_to_publish(self.topic)
        if email:
            from aws_cdk import aws_sns_subscriptions as subs

            self.topic.add_subscription(subs.EmailSubscription(email))


def allow_alarms_to_publish(topic: sns.Topic) -> None:
    """Admit this account's CloudWatch alarms to ``topic``'s policy.

    CloudWatch publishes as its service principal, and a topic policy (``enforce_ssl``
    writes one that only denies plain HTTP) replaces SNS's default policy: without this
    statement no alarm can notify (AWS Knowledge Center, "Why didn't I receive an SNS
    notification for my CloudWatch alarm trigger?")."""
    stack = stack_info(topic)
    topic.add_to_resource_policy(iam.PolicyStatement(
        sid="CloudWatchAlarmsMayPublish", actions=["sns:Publish"],
        principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        resources=[topic.topic_arn],
        conditions={"StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:cloudwatch:"
                                                 f"{stack.region}:{stack.account}:alarm:*"}}))


def below(scope: Construct) -> list[Any]:
    """Every construct below ``scope`` (and itself): one round trip, but one proxy per
    construct, so a stack's list is worth reading once and handing to each check."""
    info = stack_info(scope)
    return list((info.node if scope is info.stack else scope.node).find_all())


def alarms_without_action(scope: Construct, nodes: list[Any] | None = None) -> list[cw.Alarm]:
    """Every CloudWatch alarm below ``scope`` that notifies nobody (``nodes``: what
    :func:`below` returned for ``scope``, if read already)."""
    stack = stack_info(scope).stack
    found = []
    for node in below(scope) if nodes is None else nodes:
        if not isinstance(node, cw.Alarm):
            continue
        if node in UNROUTED:  # made without an action by alarm_on_queue_depth
            found.append(node)
            continue
        if node in ROUTED:  # made with one
            continue
        cfn = node.node.default_child
        if not stack.resolve(cfn.alarm_actions):  # type: ignore[union-attr]
            found.append(node)
    return found


def route_alarms(scope: Construct, topic: sns.ITopic, nodes: list[Any] | None = None) -> int:
    """Make every alarm below ``scope`` without an action notify ``topic``; call it once
    the stack is complete (``nodes``: see :func:`alarms_without_action`; an alarm made
    after they were read is not seen). Returns how many alarms it routed."""
    alarms = alarms_without_action(scope, nodes)
    for alarm in alarms:
        alarm.add_alarm_action(sns_action(topic))
        UNROUTED.discard(alarm)
        ROUTED.add(alarm)
    return len(alarms)


def subscription_dead_letters(scope: Construct, id: str, *, topic: sns.ITopic,
                              alarm_topic: sns.ITopic | None, topic_arn: str | None = None,
                              nodes: list[Any] | None = None) -> sqs.Queue | None:
    """One dead-letter queue for every subscription of ``topic`` below ``scope`` that has
    none: SNS keeps a message it could not deliver (an email address that bounces, an
    HTTPS endpoint or a Lambda that is down past the retries) instead of dropping it.
    The queue lets only SNS, for this topic, send; its depth alarms ``alarm_topic``.
    ``topic_arn``: the topic's ARN when the caller has read it already; ``nodes``: what
    :func:`below` returned for ``scope`` or a scope above it, if read already."""
    # Each attribute read is a jsii round trip: the ARNs are read once.
    topic_arn = topic_arn or topic.topic_arn
    subscriptions = [n for n in (below(scope) if nodes is None else nodes)
                     if isinstance(n, sns.CfnSubscription)
                     and n.topic_arn == topic_arn and n.redrive_policy is None]
    if not subscriptions:
        return None
    queue = dead_letter_queue(scope, id)
    queue_arn = queue.queue_arn
    queue.add_to_resource_policy(iam.PolicyStatement.from_json({
        "Action": "sqs:SendMessage", "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
        "Resource": queue_arn, "Sid": "TopicMaySendUndelivered"}))
    for sub in subscriptions:
        sub.redrive_policy = {"deadLetterTargetArn": queue_arn}
    alarm_on_queue_depth(scope, f"{id}Alarm", queue=queue, topic=alarm_topic)
    return queue


def imported_alarm_topic(scope: Construct, id: str, parameter: str) -> Any:
    """The account's alarms topic, its ARN read from SSM ``parameter`` at deploy."""
    from aws_cdk import aws_ssm as ssm

    return sns.Topic.from_topic_arn(
        scope, id, ssm.StringParameter.value_for_string_parameter(scope, parameter))
