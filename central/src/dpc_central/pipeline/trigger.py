"""What starts a pipeline run on AWS: its schedule, or trigger events from the central account."""

from __future__ import annotations

import functools
from typing import Any

from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from dpc_central.common.function import alarm_on_queue_depth, dead_letter_queue
from dpc_central.conventions import PIPELINE_BUS_NAME, TRIGGER_DETAIL_TYPE, TRIGGER_SOURCE
from dpc_central.pipeline.starter import TriggerStarter
from dpc_core.cdk_values import in_stack_of


@functools.cache
def _schedule_input() -> events.RuleTargetInput:
    """The run's input from a schedule rule: the same in every stack, so made once per
    process (each jsii call is a round trip)."""
    return events.RuleTargetInput.from_object({"input": {"dpc": {
        "logicalDate": events.EventField.time, "trigger": "schedule"}}})


class ScheduleTrigger(Construct):
    """An EventBridge rule with the pipeline's schedule (UTC), or an EventBridge
    Scheduler schedule when the pipeline names another time zone (rules are UTC-only).

    The run's input carries ``dpc.logicalDate`` = the scheduled time. Both deliver at
    least once, so they start the run through an idempotent starter that names it after
    the scheduled time (:class:`TriggerStarter` with ``name_from_logical_date``): a
    second delivery of one tick is refused as the same execution name. Attributes:
    ``rule`` or ``schedule``, ``starter``, ``dlq``.
    """

    def __init__(self, scope: Construct, id: str, *, pipeline: Any,
                 state_machine: sfn.IStateMachine) -> None:
        super().__init__(scope, id)
        in_stack_of(self, scope)
        trig = pipeline.trigger
        expression = trig.schedule.expression()
        self.starter = TriggerStarter(self, "Starter", target=state_machine,
                                      name_from_logical_date=True)
        starter = self.starter.state_machine
        self.dlq = dead_letter_queue(self, "Dlq")
        self.dlq_alarm = alarm_on_queue_depth(self, "DlqAlarm", queue=self.dlq, topic=None)
        self.rule: events.Rule | None = None
        self.schedule: scheduler.CfnSchedule | None = None
        if trig.timezone == "UTC":
            self.rule = events.Rule(
                self, "Rule", schedule=events.Schedule.expression(expression),
                description=f"schedule of {pipeline.name}",
                targets=[targets.SfnStateMachine(
                    starter, dead_letter_queue=self.dlq, retry_attempts=185,
                    input=_schedule_input())])
        else:
            role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com"), description=f"starts {pipeline.name} on schedule")
            starter.grant_start_execution(role)
            self.dlq.grant_send_messages(role)
            self.schedule = scheduler.CfnSchedule(
                self, "Schedule", schedule_expression=expression,
                schedule_expression_timezone=trig.timezone,
                flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
                description=f"schedule of {pipeline.name} ({trig.timezone})",
                target=scheduler.CfnSchedule.TargetProperty(
                    arn=starter.state_machine_arn, role_arn=role.role_arn,
                    input='{"input": {"dpc": {"logicalDate": "<aws.scheduler.scheduled-time>", '
                          '"trigger": "schedule"}}}',
                    dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(
                        arn=self.dlq.queue_arn),
                    retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                        maximum_retry_attempts=185)))


class ExecutionsTrigger(Construct):
    """A rule on the account's pipeline bus matching trigger events for this pipeline
    (``detail.pipeline`` and ``detail.account``) → the idempotent starter.

    Attributes: ``rule``, ``starter``, ``dlq``.
    """

    def __init__(self, scope: Construct, id: str, *, pipeline: Any, account: str,
                 state_machine: sfn.IStateMachine) -> None:
        super().__init__(scope, id)
        in_stack_of(self, scope)
        bus = events.EventBus.from_event_bus_name(self, "PipelineBus", PIPELINE_BUS_NAME)
        self.starter = TriggerStarter(self, "Starter", target=state_machine)
        self.dlq = dead_letter_queue(self, "Dlq")
        self.dlq_alarm = alarm_on_queue_depth(self, "DlqAlarm", queue=self.dlq, topic=None)
        self.rule = events.Rule(
            self, "Rule", event_bus=bus, description=f"trigger events of {pipeline.name}",
            event_pattern=events.EventPattern(
                source=[TRIGGER_SOURCE], detail_type=[TRIGGER_DETAIL_TYPE],
                detail={"pipeline": [pipeline.name], "account": [account]}),
            targets=[targets.SfnStateMachine(
                self.starter.state_machine, dead_letter_queue=self.dlq, retry_attempts=185,
                input=events.RuleTargetInput.from_event_path("$.detail"))])
