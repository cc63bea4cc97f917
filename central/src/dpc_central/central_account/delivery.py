"""Trigger delivery: the trigger manager puts each trigger on the child's pipeline bus.

No rule in the central account routes triggers: the trigger manager calls PutEvents with
the child account's bus ARN as ``EventBusName`` (EventBridge API reference,
PutEventsRequestEntry: "the name or ARN of the event bus"), which EventBridge accepts
when that bus's resource policy admits the caller ("Permissions for event buses in
Amazon EventBridge"); ``dpc setup-user-account`` attaches that policy (PipelineBus:
the central account may put ``dpc.trigger`` events). A team account set up after the
central stack therefore receives its triggers without a central redeploy.

What this construct adds: the identity side of that permission, and the path of
triggers a bus refused: a retry queue (drained by the trigger manager with backoff) and
its dead-letter queue with a depth alarm.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from dpc_central.common.function import alarm_on_queue_depth, dead_letter_queue
from dpc_central.common.nag import region_in_finding, suppress
from dpc_central.conventions import (
    ENV_DELIVERY_DLQ_URL,
    ENV_DELIVERY_RETRY_URL,
    PIPELINE_BUS_NAME,
    TRIGGER_SOURCE,
)

#: Attempts the retry queue makes (the handler's DPC_DELIVERY_ATTEMPTS default); SQS's
#: own redrive (a few more receives) only catches a handler that keeps crashing.
DELIVERY_ATTEMPTS = 5


def pipeline_bus_arn(scope: Construct, account: str) -> str:
    """ARN of a member account's pipeline bus (same region as the central stack)."""
    stack = Stack.of(scope)
    return f"arn:{stack.partition}:events:{stack.region}:{account}:event-bus/{PIPELINE_BUS_NAME}"


class TriggerDelivery(Construct):
    """Who may put triggers where, and where refused triggers wait.

    * ``retry_queue``: triggers a pipeline bus refused (after in-process retries); the
      trigger manager consumes it and backs off exponentially per message;
    * ``dlq`` + ``dlq_alarm``: triggers still refused after :data:`DELIVERY_ATTEMPTS`;
    * :meth:`grant_deliver`: ``events:PutEvents`` of ``dpc.trigger`` events on the
      ``dpc-pipelines`` bus of any account whose bus admits the central account
      (:meth:`bus_statements`), and sending to both queues.
    """

    def __init__(self, scope: Construct, id: str, *, org_id: str | None,
                 member_accounts: Sequence[str], alarm_topic: sns.ITopic,
                 handler_timeout_s: int = 60) -> None:
        super().__init__(scope, id)
        self.org_id = org_id
        self.member_accounts = sorted(set(member_accounts))
        self.dlq = dead_letter_queue(self, "Dlq")
        self.dlq_alarm = alarm_on_queue_depth(self, "DlqAlarm", queue=self.dlq,
                                              topic=alarm_topic)
        self.retry_queue = sqs.Queue(
            self, "RetryQueue", encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True, retention_period=Duration.days(4),
            # Lambda wants at least the function's timeout; the handler raises it per
            # failed message (the backoff).
            visibility_timeout=Duration.seconds(handler_timeout_s * 6),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq,
                                                  max_receive_count=DELIVERY_ATTEMPTS + 3))

    def bus_statements(self) -> list[iam.PolicyStatement]:
        """``events:PutEvents`` of ``dpc.trigger`` events on the ``dpc-pipelines`` bus of
        any account: one statement, whatever the number of accounts.

        The account is not limited here but by the bus: a ``dpc-pipelines`` bus admits
        the central account only where ``dpc setup-user-account`` attached that policy
        (:class:`dpc_central.user_account.pipeline_bus.PipelineBus`), and a cross-account
        call needs both policies (IAM User Guide, "Cross-account policy evaluation
        logic"). No ``aws:ResourceOrgID``: EventBridge does not put that key in the
        request context of its actions (IAM User Guide, "AWS global condition context
        keys", the actions that do not support ``aws:ResourceOrgID``), so a condition on
        it would refuse every trigger to an account not listed at setup.
        ``events:source`` is a key EventBridge supplies for ``PutEvents`` (Service
        Authorization Reference, Amazon EventBridge)."""
        stack = Stack.of(self)
        return [iam.PolicyStatement(
            sid="PutTriggersOnPipelineBuses", actions=["events:PutEvents"],
            resources=[f"arn:{stack.partition}:events:{stack.region}:*:event-bus/"
                       f"{PIPELINE_BUS_NAME}"],
            conditions={"StringEquals": {"events:source": [TRIGGER_SOURCE]}})]

    def grant_deliver(self, fn: lambda_.Function) -> None:
        """Let ``fn`` put triggers on pipeline buses and queue the refused ones; sets
        ``DPC_DELIVERY_RETRY_URL`` and ``DPC_DELIVERY_DLQ_URL``."""
        for statement in self.bus_statements():
            fn.add_to_role_policy(statement)
        self.retry_queue.grant_send_messages(fn)
        self.dlq.grant_send_messages(fn)
        fn.add_environment(ENV_DELIVERY_RETRY_URL, self.retry_queue.queue_url)
        fn.add_environment(ENV_DELIVERY_DLQ_URL, self.dlq.queue_url)
        suppress(fn, [("AwsSolutions-IAM5", "triggers go to the dpc-pipelines bus of "
                       "whichever account owns the child (accounts join after this "
                       "stack); only dpc.trigger events, and only buses whose own policy "
                       "admits the central account (dpc setup-user-account)",
                       [f"Resource::arn:<AWS::Partition>:events:{region_in_finding(self)}"
                        f":*:event-bus/{PIPELINE_BUS_NAME}"])])
