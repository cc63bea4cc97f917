"""Idempotent start: the trigger names the run, and a second delivery is a no-op."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

JP = sfn.JsonPath

_PART = "States.ArrayGetItem(States.StringSplit($.input.dpc.logicalDate, ':'), {})"
#: The run name of a schedule tick: its logical date with ``:`` as ``-``.
SCHEDULED_RUN_NAME = ("States.Format('schedule-{}-{}-{}', "
                      + ", ".join(_PART.format(i) for i in range(3)) + ")")


class TriggerStarter(Construct):
    """An Express state machine that starts ``target`` with ``Name = executionName``.

    EventBridge's Step Functions target cannot name an execution, so a trigger event
    delivered twice would start two runs (docs/triggers.md rule 5). The trigger rule targets
    this starter instead; ``states:StartExecution`` with the deterministic name either
    starts the run or fails with ``StepFunctions.ExecutionAlreadyExistsException``, which
    is caught as success. Express workflows emit no status events, so the starter adds
    no noise to the central bus. Input: the trigger event's ``detail``
    (``{executionName, input, ...}``).

    With ``name_from_logical_date`` (schedules: EventBridge rules and Scheduler deliver at
    least once, and neither can name an execution) the input is ``{input}`` only and the
    run's name is made from ``input.dpc.logicalDate`` (the scheduled time,
    ``YYYY-MM-DDTHH:MM:SSZ``): ``schedule-YYYY-MM-DDTHH-MM-SSZ`` (``:`` is not allowed in
    an execution name), so a second delivery of the same schedule tick is the same name.

    Attribute: ``state_machine``.
    """

    def __init__(self, scope: Construct, id: str, *, target: sfn.IStateMachine,
                 name_from_logical_date: bool = False) -> None:
        super().__init__(scope, id)
        start = tasks.StepFunctionsStartExecution(
            self, "Start pipeline run", state_machine=target,
            name=JP.string_at("$.executionName"),
            # A string input is accepted by every implementation of the integration.
            input=sfn.TaskInput.from_text(JP.json_to_string(JP.object_at("$.input"))),
            integration_pattern=sfn.IntegrationPattern.REQUEST_RESPONSE,
            associate_with_parent=False, result_path=JP.DISCARD)
        start.add_retry(errors=["StepFunctions.SdkClientException",
                                "StepFunctions.ThrottlingException"],
                        interval=Duration.seconds(2), max_attempts=3, backoff_rate=2.0)
        started = sfn.Succeed(self, "Started")
        already = sfn.Succeed(self, "Already started",
                              comment="the same trigger was delivered before: nothing to do")
        start.add_catch(already, errors=["StepFunctions.ExecutionAlreadyExistsException"],
                        result_path="$.duplicate")
        chain: sfn.IChainable = start.next(started)
        if name_from_logical_date:
            chain = sfn.Pass(self, "Name the scheduled run", parameters={
                "executionName.$": SCHEDULED_RUN_NAME, "input.$": "$.input"}).next(chain)
        log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_MONTH,
                                  removal_policy=RemovalPolicy.DESTROY)
        self.state_machine = sfn.StateMachine(
            self, "StateMachine", state_machine_type=sfn.StateMachineType.EXPRESS,
            definition_body=sfn.DefinitionBody.from_chainable(chain),
            timeout=Duration.minutes(5), tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL))
        from dpc_central.common.nag import suppress

        suppress(self.state_machine, [("AwsSolutions-IAM5", "X-Ray and CloudWatch Logs "
                                       "log-delivery actions support no resource-level "
                                       "permissions", ["Resource::*"])])
