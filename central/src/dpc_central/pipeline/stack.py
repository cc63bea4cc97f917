"""One pipeline's stack (``dpc synth``/``deploy``)."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from dpc_central import conventions as names
from dpc_central.common.alarms import (
    below,
    imported_alarm_topic,
    route_alarms,
    subscription_dead_letters,
)
from dpc_central.pipeline.notifications import PipelineTopic
from dpc_central.pipeline.registration import PipelineRegistration
from dpc_central.pipeline.state_machine import PipelineStateMachine
from dpc_central.pipeline.trigger import ExecutionsTrigger, ScheduleTrigger
from dpc_core.cdk_values import in_app, stack_info

#: CDK context a plugin may read while its states or subscriptions are built: the central
#: account's id (a token, resolved from SSM at deploy).
CTX_CENTRAL_ACCOUNT = "dpc:centralAccount"


class PipelineStack(Stack):
    """State machine, trigger (schedule or executions), topic with subscriptions and the
    registration custom resource. Account-wide resources (bucket, EMR roles, the
    registration provider, the central account id) come from the ``/dpc/`` SSM
    parameters of the user-account stack, resolved at deploy."""

    def __init__(self, scope: Construct, id: str, *, pipeline: Any, registry: Any,
                 **kwargs: Any) -> None:
        super().__init__(scope, id, description=f"dpc pipeline {pipeline.name}", **kwargs)
        in_app(self, scope, kwargs.get("env"))
        central_account = ssm.StringParameter.value_for_string_parameter(
            self, names.SSM_CENTRAL_ACCOUNT)
        bucket_name = ssm.StringParameter.value_for_string_parameter(
            self, names.SSM_ARTIFACTS_BUCKET)
        artifacts = s3.Bucket.from_bucket_name(self, "Artifacts", bucket_name)
        info = stack_info(self)
        partition, region = info.partition, info.region
        # The state machine's reports name the bus by ARN (a string: no construct to
        # import, no attribute to read back).
        central_bus_arn = (f"arn:{partition}:events:{region}:{central_account}:"
                           f"event-bus/{names.CENTRAL_BUS_NAME}")
        self.topic = PipelineTopic(self, "Notifications", pipeline=pipeline, registry=registry,
                                   central_account=central_account,
                                   context={CTX_CENTRAL_ACCOUNT: central_account})
        self.machine = PipelineStateMachine(self, "Pipeline", pipeline=pipeline,
                                            registry=registry, central_bus_arn=central_bus_arn,
                                            artifacts=artifacts)
        sm = self.machine.state_machine
        trig = pipeline.trigger
        self.trigger: Construct | None = None
        if trig.schedule is not None:
            self.trigger = ScheduleTrigger(self, "Schedule", pipeline=pipeline, state_machine=sm)
        elif trig.executions is not None:
            self.trigger = ExecutionsTrigger(self, "Executions", pipeline=pipeline,
                                             account=pipeline.account or self.account,
                                             state_machine=sm)
        self.registration = PipelineRegistration(
            self, "Registration", pipeline=pipeline, topic_arn=self.topic.topic_arn,
            service_token=ssm.StringParameter.value_for_string_parameter(
                self, names.SSM_REGISTRATION_PROVIDER))
        registry.hook.dpc_pipeline_stack(stack=self, pipeline=pipeline)
        # After the plugins' hook, so their subscriptions and alarms are covered too.
        # The stack's constructs are read once for both (each read makes a proxy of every
        # one); the dead-letter queue's alarm is made with its action.
        alarms = imported_alarm_topic(self, "AlarmTopic", names.SSM_ALARM_TOPIC)
        nodes = below(self)
        subscription_dead_letters(self.topic, "UndeliveredNotifications",
                                  topic=self.topic.topic, topic_arn=self.topic.topic_arn,
                                  alarm_topic=alarms, nodes=nodes)
        route_alarms(self, alarms, nodes)
