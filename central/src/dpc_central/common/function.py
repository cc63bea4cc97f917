"""A dpc Lambda: the function, its dead-letter queue, its log group and its alarms."""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from dpc_central.common.nag import LAMBDA_BASICS, suppress
from dpc_core.cdk_values import days, in_stack_of, minutes

RUNTIME_NAME = "python3.14"


def dead_letter_queue(scope: Construct, id: str, *, fifo: bool = False) -> sqs.Queue:
    """An encrypted, TLS-only queue that keeps failed messages for 14 days."""
    queue = in_stack_of(sqs.Queue(
        scope, id, fifo=fifo or None, retention_period=days(14),
        encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
    ), scope)
    suppress(queue, [("AwsSolutions-SQS3", "this queue is itself a dead-letter queue")])
    return queue


def alarm_on_queue_depth(scope: Construct, id: str, *, queue: sqs.IQueue,
                         topic: sns.ITopic | None) -> cw.Alarm:
    """Alarm as soon as one message waits in a dead-letter queue."""
    alarm = cw.Alarm(
        scope, id, metric=queue.metric_approximate_number_of_messages_visible(
            period=minutes(5), statistic="Maximum"),
        threshold=1, evaluation_periods=1,
        comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        alarm_description=f"messages in dead-letter queue {id}: inspect and redrive",
    )
    if topic is not None:
        alarm.add_alarm_action(sns_action(topic))
        ROUTED.add(alarm)
    else:
        UNROUTED.add(alarm)
    return alarm


#: The alarm action of each topic (stateless: one serves every alarm of the app).
_SNS_ACTIONS: weakref.WeakKeyDictionary[sns.ITopic, cw_actions.SnsAction] = \
    weakref.WeakKeyDictionary()


def sns_action(topic: sns.ITopic) -> cw_actions.SnsAction:
    """``cw_actions.SnsAction(topic)``, made once per topic (each is a round trip)."""
    action = _SNS_ACTIONS.get(topic)
    if action is None:
        action = _SNS_ACTIONS[topic] = cw_actions.SnsAction(topic)
    return action


#: Alarms made by :func:`alarm_on_queue_depth` without an action, not yet routed, and
#: those made with one (``dpc_central.common.alarms.route_alarms`` then knows them
#: without reading their actions back: three round trips each).
UNROUTED: weakref.WeakSet[cw.Alarm] = weakref.WeakSet()
ROUTED: weakref.WeakSet[cw.Alarm] = weakref.WeakSet()


class DpcFunction(Construct):
    """A Python Lambda running a dpc handler, with a DLQ for async invocations, a log
    group kept for a month, and alarms on its errors and on its DLQ depth.

    Attributes: ``function``, ``dlq``, ``errors_alarm``, ``dlq_alarm``.
    """

    def __init__(
        self, scope: Construct, id: str, *, handler: str, code_dir: Path,
        environment: Mapping[str, str] | None = None, description: str = "",
        alarm_topic: sns.ITopic | None = None, layers: Sequence[lambda_.ILayerVersion] = (),
        timeout: Duration | None = None, memory_size: int = 512,
        function_name: str | None = None, reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.dlq = dead_letter_queue(self, "Dlq")
        self.log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_MONTH,
                                       removal_policy=RemovalPolicy.DESTROY)
        # The handler path names a module under the asset root (dpc_central.handlers....).
        self.function = lambda_.Function(
            self, "Function", runtime=lambda_.Runtime.PYTHON_3_14, handler=handler,
            code=lambda_.Code.from_asset(str(code_dir)), environment=dict(environment or {}),
            description=description or handler, timeout=timeout or Duration.seconds(60),
            memory_size=memory_size, dead_letter_queue=self.dlq, layers=list(layers),
            log_group=self.log_group, function_name=function_name,
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
        )
        self.errors_alarm = cw.Alarm(
            self, "ErrorsAlarm", metric=self.function.metric_errors(period=minutes(5)),
            threshold=1, evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{handler} raised errors",
        )
        if alarm_topic is not None:
            self.errors_alarm.add_alarm_action(sns_action(alarm_topic))
        self.dlq_alarm = alarm_on_queue_depth(self, "DlqAlarm", queue=self.dlq, topic=alarm_topic)
        suppress(self, LAMBDA_BASICS)
        suppress(self.function, [
            ("AwsSolutions-IAM5", "X-Ray tracing needs xray:PutTraceSegments and "
             "xray:PutTelemetryRecords, which support no resource-level permissions",
             ["Resource::*"]),
        ])

    def grant_invoke(self, grantee: Any) -> Any:
        """Let ``grantee`` invoke the function."""
        return self.function.grant_invoke(grantee)
