"""Status events → an SQS FIFO queue → the trigger-manager Lambda (engine + DynamoDB)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from dpc_central.central_account.concurrency import EVENT_SOURCE_MAX, RESERVED
from dpc_central.central_account.delivery import TriggerDelivery
from dpc_central.central_account.tables import TriggerTables
from dpc_central.common.function import DpcFunction, alarm_on_queue_depth, dead_letter_queue
from dpc_central.conventions import (
    ENV_CENTRAL_BUS,
    ENV_POISON_DLQ_URL,
    ENV_STATUS_QUEUE_URL,
    FORWARDED_STATUS_SOURCE,
    HANDLER_TRIGGER_MANAGER,
    OTHER_ACCOUNTS_GROUP,
    RUN_STATUS_DETAIL_TYPE,
    RUN_STATUS_SOURCE,
    SFN_DETAIL_TYPE,
    SFN_SOURCE,
)

#: Message group of status events from accounts not listed at setup (organisation mode);
#: the trigger manager moves each of them to the group of its account.
OTHER_GROUP = OTHER_ACCOUNTS_GROUP
#: Retries of EventBridge's delivery to the queue (its maximum, 24 hours).
TARGET_RETRY_ATTEMPTS = 185


@jsii.implements(events.IRuleTarget)
class _StatusQueueTarget:
    """The status queue as a rule target, *without* the grant CDK's ``SqsQueue`` adds.

    ``targets.SqsQueue`` adds one statement per rule to the queue policy and one to the
    dead-letter queue's (``aws:SourceArn`` = that rule): 102 statements and ~32 KB each
    with 100 listed accounts, where SQS allows 20 statements and 8,192 bytes per policy.
    :class:`TriggerManager` grants instead once, for every rule of the central bus
    (``ArnLike aws:SourceArn arn:…:rule/dpc-central/*``), whatever the number of rules.
    """

    def __init__(self, queue: sqs.IQueue, group: str, dlq: sqs.IQueue) -> None:
        self.queue, self.group, self.dlq = queue, group, dlq

    def bind(self, rule: Any,  # IRuleTarget's parameter names
             id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(
            arn=self.queue.queue_arn,
            sqs_parameters=events.CfnRule.SqsParametersProperty(message_group_id=self.group),
            dead_letter_config=events.CfnRule.DeadLetterConfigProperty(arn=self.dlq.queue_arn),
            retry_policy=events.CfnRule.RetryPolicyProperty(
                maximum_retry_attempts=TARGET_RETRY_ATTEMPTS))


def allow_bus_rules(queue: sqs.IQueue, bus: events.IEventBus, sid: str) -> None:
    """One statement: any rule of ``bus`` (rules of a bus are its account's) may send to
    ``queue``. EventBridge sends as ``events.amazonaws.com`` with ``aws:SourceArn`` = the
    rule's ARN (EventBridge User Guide, "Using resource-based policies for Amazon
    EventBridge", Amazon SQS permissions; "Using dead-letter queues")."""
    stack = Stack.of(queue)
    queue.add_to_resource_policy(iam.PolicyStatement(
        sid=sid, principals=[iam.ServicePrincipal("events.amazonaws.com")],
        actions=["sqs:SendMessage"], resources=[queue.queue_arn],
        conditions={"ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:events:{stack.region}:"
                                                 f"{stack.account}:rule/{bus.event_bus_name}/*"}}))


def status_event_pattern(accounts: events.Match | list[str] | None = None) -> events.EventPattern:
    """Step Functions status changes (as the team accounts' forwarders put them, or as
    AWS emits them) and the runs' own reports (docs/triggers.md reliable path)."""
    return events.EventPattern(
        source=[SFN_SOURCE, FORWARDED_STATUS_SOURCE, RUN_STATUS_SOURCE],
        detail_type=[SFN_DETAIL_TYPE, RUN_STATUS_DETAIL_TYPE],
        account=accounts,  # type: ignore[arg-type]
    )


class TriggerManager(Construct):
    """The trigger manager and the ordered queue in front of it.

    EventBridge's SQS target takes a *static* ``MessageGroupId`` (CloudFormation
    ``SqsParameters.MessageGroupId`` is a plain string), so the per-pipeline order is
    obtained from a stronger one: one rule per member account, each with the account as
    its message group; all of one pipeline's events come from its own account, so they
    are processed in order. Accounts admitted through the organisation but not listed
    arrive in one group, :data:`OTHER_GROUP`; the handler moves each such event, in
    order, to the group of its account (``MessageGroupId`` = the account), so a
    transient failure in one account's events holds only that account's. Content-based
    deduplication drops EventBridge's redeliveries within five minutes; the engine
    ignores older duplicates (rule 1).

    The handler puts triggers on the children's pipeline buses and also consumes the
    delivery retry queue of ``delivery`` (:class:`TriggerDelivery`).

    Attributes: ``queue``, ``dlq``, ``handler``.
    """

    def __init__(self, scope: Construct, id: str, *, bus: events.IEventBus,
                 tables: TriggerTables, member_accounts: Sequence[str], org_mode: bool,
                 code_dir: Path, alarm_topic: sns.ITopic, delivery: TriggerDelivery,
                 layers: Sequence[lambda_.ILayerVersion] = ()) -> None:
        super().__init__(scope, id)
        timeout = Duration.seconds(60)
        self.dlq = dead_letter_queue(self, "QueueDlq", fifo=True)
        self.queue = sqs.Queue(
            self, "Queue", fifo=True, content_based_deduplication=True,
            visibility_timeout=Duration.seconds(timeout.to_seconds() * 6),
            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=5),
        )
        self.queue_dlq_alarm = alarm_on_queue_depth(self, "QueueDlqAlarm", queue=self.dlq,
                                                    topic=alarm_topic)
        # Events a rule cannot put on the queue wait in this DLQ (standard: EventBridge
        # rule DLQs cannot be FIFO).
        self.rule_dlq = dead_letter_queue(self, "RuleDlq")
        self.rule_dlq_alarm = alarm_on_queue_depth(self, "RuleDlqAlarm", queue=self.rule_dlq,
                                                   topic=alarm_topic)
        listed = sorted(set(member_accounts))
        for account in listed:
            events.Rule(self, f"Status{account}", event_bus=bus,
                        description=f"status events of account {account}, in order",
                        event_pattern=status_event_pattern([account]),
                        targets=[_StatusQueueTarget(self.queue, account, self.rule_dlq)])
        if org_mode:
            others = events.Match.anything_but(*listed) if listed else None
            events.Rule(self, "StatusOtherAccounts", event_bus=bus,
                        description="status events of organisation accounts not listed",
                        event_pattern=status_event_pattern(others),
                        targets=[_StatusQueueTarget(self.queue, OTHER_GROUP, self.rule_dlq)])
        # One statement per queue policy, however many accounts (SQS: 20 statements,
        # 8,192 bytes per policy).
        allow_bus_rules(self.queue, bus, "StatusRulesMaySend")
        allow_bus_rules(self.rule_dlq, bus, "StatusRulesMayDeadLetter")
        self.handler = DpcFunction(
            self, "Handler", handler=HANDLER_TRIGGER_MANAGER, code_dir=code_dir,
            # Poison events go to the queue's own DLQ (alarmed); refused triggers to the
            # delivery retry queue and, when retries are spent, its DLQ (alarmed).
            environment={**tables.environment, ENV_CENTRAL_BUS: bus.event_bus_name,
                         ENV_POISON_DLQ_URL: self.dlq.queue_url},
            description="dpc trigger manager: the engine over the DynamoDB store",
            alarm_topic=alarm_topic, layers=layers, timeout=timeout,
            reserved_concurrency=RESERVED["trigger-manager"],
        )
        self.handler.function.add_event_source(sources.SqsEventSource(
            self.queue, batch_size=10, report_batch_item_failures=True,
            max_concurrency=EVENT_SOURCE_MAX["trigger-manager:status"]))
        self.handler.function.add_event_source(sources.SqsEventSource(
            delivery.retry_queue, batch_size=10, report_batch_item_failures=True,
            max_concurrency=EVENT_SOURCE_MAX["trigger-manager:retry"]))
        # The backoff: a refused trigger's message becomes visible again later each time.
        delivery.retry_queue.grant(self.handler.function, "sqs:ChangeMessageVisibility",
                                   "sqs:GetQueueUrl")
        delivery.grant_deliver(self.handler.function)
        tables.grant_engine(self.handler.function)
        # Reports of rejected (spoofed) events go on the central bus.
        bus.grant_put_events_to(self.handler.function)
        self.dlq.grant_send_messages(self.handler.function)
        # Events of accounts not listed arrive in one group; the handler moves each to
        # its account's group (MessageGroupId = account) on this same queue.
        self.handler.function.add_environment(ENV_STATUS_QUEUE_URL, self.queue.queue_url)
        self.queue.grant_send_messages(self.handler.function)
