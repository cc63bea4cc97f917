"""Status events → an SQS FIFO queue → the trigger-manager Lambda (engine + DynamoDB)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from dpc_central.central_account.delivery import TriggerDelivery
from dpc_central.central_account.tables import TriggerTables
from dpc_central.common.function import DpcFunction, alarm_on_queue_depth, dead_letter_queue
from dpc_central.conventions import (
    ENV_CENTRAL_BUS,
    ENV_POISON_DLQ_URL,
    HANDLER_TRIGGER_MANAGER,
    RUN_STATUS_DETAIL_TYPE,
    RUN_STATUS_SOURCE,
    SFN_DETAIL_TYPE,
    SFN_SOURCE,
)

#: Message group of status events from accounts not listed at setup (organisation mode).
OTHER_GROUP = "dpc-other-accounts"


def status_event_pattern(accounts: events.Match | list[str] | None = None) -> events.EventPattern:
    """Step Functions status changes and the runs' own reports (docs/triggers.md reliable path)."""
    return events.EventPattern(
        source=[SFN_SOURCE, RUN_STATUS_SOURCE],
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
    share one group. Content-based deduplication drops EventBridge's redeliveries within
    five minutes; the engine ignores older duplicates (rule 1).

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
                        targets=[targets.SqsQueue(self.queue, message_group_id=account,
                                                  dead_letter_queue=self.rule_dlq,
                                                  retry_attempts=185)])
        if org_mode:
            others = events.Match.anything_but(*listed) if listed else None
            events.Rule(self, "StatusOtherAccounts", event_bus=bus,
                        description="status events of organisation accounts not listed",
                        event_pattern=status_event_pattern(others),
                        targets=[targets.SqsQueue(self.queue, message_group_id=OTHER_GROUP,
                                                  dead_letter_queue=self.rule_dlq,
                                                  retry_attempts=185)])
        self.handler = DpcFunction(
            self, "Handler", handler=HANDLER_TRIGGER_MANAGER, code_dir=code_dir,
            # Poison events go to the queue's own DLQ (alarmed); refused triggers to the
            # delivery retry queue and, when retries are spent, its DLQ (alarmed).
            environment={**tables.environment, ENV_CENTRAL_BUS: bus.event_bus_name,
                         ENV_POISON_DLQ_URL: self.dlq.queue_url},
            description="dpc trigger manager: the engine over the DynamoDB store",
            alarm_topic=alarm_topic, layers=layers, timeout=timeout,
        )
        self.handler.function.add_event_source(sources.SqsEventSource(
            self.queue, batch_size=10, report_batch_item_failures=True))
        self.handler.function.add_event_source(sources.SqsEventSource(
            delivery.retry_queue, batch_size=10, report_batch_item_failures=True))
        # The backoff: a refused trigger's message becomes visible again later each time.
        delivery.retry_queue.grant(self.handler.function, "sqs:ChangeMessageVisibility",
                                   "sqs:GetQueueUrl")
        delivery.grant_deliver(self.handler.function)
        tables.grant_engine(self.handler.function)
        # Reports of rejected (spoofed) events go on the central bus.
        bus.grant_put_events_to(self.handler.function)
        self.dlq.grant_send_messages(self.handler.function)
