"""The pipeline's state machine, assembled from the compute and step plugins."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from dpc_central.errors import SynthError
from dpc_central.pipeline.status_report import run_status, step_status
from dpc_core.cdk_values import discard, minutes, string_at
from dpc_core.deployability import aws_compute, aws_problems
from dpc_core.types import AwsComputeContext, AwsStepContext

#: A run's time limit when its compute sets none (Step Functions allows up to a year).
DEFAULT_RUN_TIMEOUT_MINUTES = 720
#: Where the compute plugin leaves the cluster id in the state (``ResultPath`` ``$.cluster``).
CLUSTER_ID_PATH = "$.cluster.ClusterId"
JP = sfn.JsonPath


class PipelineStateMachine(Construct):
    """``Start → [logical date] → provision → steps → teardown → report SUCCEEDED``; a
    failure in the steps goes ``catch teardown → report FAILED → Fail``; a failure while
    provisioning or tearing down goes straight to ``report FAILED``.

    The steps run in a one-branch ``Parallel`` so that one ``Catch`` covers every step
    whatever states a plugin contributes. The state machine is named exactly the
    pipeline name (TRIGGERS.md: the pipeline's identity on AWS).

    Attributes: ``state_machine``, ``definition`` (the start state).
    """

    def __init__(self, scope: Construct, id: str, *, pipeline: Any, registry: Any,
                 central_bus: events.IEventBus, artifacts: s3.IBucket) -> None:
        super().__init__(scope, id)
        project_dir = Path(pipeline.project_dir or ".")
        # The same checks and messages as `dpc validate`'s warnings, here as errors.
        problems = aws_problems(pipeline, registry)
        if problems:
            raise SynthError(f"{pipeline.source}: " + f"\n{pipeline.source}: ".join(problems))
        # A pipeline whose steps need a cluster gets one without declaring it (the compute
        # plugin's defaults): users never provision compute themselves.
        chosen = aws_compute(pipeline, registry)
        compute = None
        cluster_path = ""
        compute_config = chosen.config if chosen is not None else pipeline.compute
        if chosen is not None:
            cluster_path = CLUSTER_ID_PATH
            try:
                compute = registry.computes[chosen.type].aws(AwsComputeContext(
                    scope=Construct(self, "Compute"), pipeline=pipeline,
                    compute=compute_config, artifacts_bucket=artifacts,
                    cluster_id_path=cluster_path))
            except (ValueError, TypeError) as exc:
                raise SynthError(f"{pipeline.source}: compute {chosen.type!r}: "
                                 f"{exc}") from None

        full = pipeline.notifications.type.value == "FULL_EXECUTION"
        branch: sfn.IChainable | None = None
        chain: Any = None
        for step in pipeline.steps:
            step_type = registry.steps[step.type]
            where = f"{pipeline.source}: step {step.name!r} (type {step.type})"
            step_scope = Construct(self, f"Step-{step.name}")
            try:
                states = step_type.aws_states(AwsStepContext(
                    scope=step_scope, pipeline=pipeline, step=step, compute=compute_config,
                    artifacts_bucket=artifacts, cluster_id_path=cluster_path,
                    project_dir=project_dir))
            except (ValueError, TypeError, FileNotFoundError) as exc:
                raise SynthError(f"{where}: {exc}") from None
            parts: list[Any] = []
            if full:
                parts.append(step_status(step_scope, f"{step.name} started", bus=central_bus,
                                         step=step.name, status="RUNNING"))
            parts.append(states)
            if full:
                parts.append(step_status(step_scope, f"{step.name} succeeded", bus=central_bus,
                                         step=step.name, status="SUCCEEDED"))
            for part in parts:
                chain = sfn.Chain.start(part) if chain is None else chain.next(part)
        branch = chain

        report_failed = run_status(self, "Report FAILED", bus=central_bus, status="FAILED")
        failed = sfn.Fail(self, "Run failed", cause_path="$.error.Cause",
                          error_path="$.error.Error")
        failure_path = report_failed.next(failed)

        steps = sfn.Parallel(self, "Run steps", result_path=discard())
        steps.branch(branch)  # type: ignore[arg-type]
        after_failure: sfn.IChainable = failure_path
        if compute is not None:
            # Catches first: once chained, the reachable states include the report itself.
            _catch_all(compute.catch_teardown, failure_path)
            _catch_all(compute.provision, failure_path)
            _catch_all(compute.teardown, failure_path)
            after_failure = sfn.Chain.start(compute.catch_teardown).next(failure_path)
        steps.add_catch(after_failure, errors=["States.ALL"], result_path="$.error")

        report_ok = run_status(self, "Report SUCCEEDED", bus=central_bus, status="SUCCEEDED")
        # A report that fails for ten minutes fails the run: a lost SUCCEEDED would leave
        # children waiting, and a failed run is visible and redrivable.
        ok = report_ok.next(sfn.Succeed(self, "Run succeeded"))

        default_date = sfn.Pass(
            self, "Default logical date", result_path="$.dpc",
            parameters={"logicalDate": _start_date()})
        has_date = sfn.Choice(self, "Has logical date?")
        body: Any
        if compute is not None:
            body = sfn.Chain.start(compute.provision).next(steps).next(compute.teardown).next(ok)
        else:
            body = sfn.Chain.start(steps).next(ok)
        self.definition = has_date.when(
            sfn.Condition.is_present("$.dpc.logicalDate"), body
        ).otherwise(default_date.next(body))

        log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.THREE_MONTHS,
                                  removal_policy=RemovalPolicy.DESTROY)
        #: How long a run may take: the compute's ``runTimeoutMinutes`` where it has one.
        self.timeout_minutes = int(getattr(compute_config, "run_timeout_minutes", None)
                                   or DEFAULT_RUN_TIMEOUT_MINUTES)
        self.state_machine = sfn.StateMachine(
            self, "StateMachine", state_machine_name=pipeline.name,
            definition_body=sfn.DefinitionBody.from_chainable(self.definition),
            timeout=minutes(self.timeout_minutes), tracing_enabled=True,
            # Every state transition, but not the data: inputs and outputs may hold
            # whatever a plugin passes (and the logs are kept three months).
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL,
                                include_execution_data=False),
        )
        from dpc_central.common.nag import suppress

        suppress(self.state_machine, [("AwsSolutions-IAM5", "only actions without resource "
                                       "types: X-Ray (PutTraceSegments, PutTelemetryRecords, "
                                       "sampling), CloudWatch Logs log delivery (CreateLogDelivery"
                                       " & co.) and, with a cluster, elasticmapreduce:RunJobFlow, "
                                       "which is allowed only when the request tags the new "
                                       "cluster with its pipeline (aws:RequestTag)",
                                       ["Resource::*"])])


@functools.cache
def _start_date() -> str:
    """The execution's start date (``YYYY-MM-DD``): an intrinsic, the same in every stack."""
    return JP.array_get_item(JP.string_split(string_at("$$.Execution.StartTime"), "T"), 0)


def _catch_all(chainable: Any, handler: sfn.IChainable) -> None:
    """Add a catch-all to every task state of ``chainable`` that has none."""
    # A state is its own start state: reading ``start_state`` is a round trip.
    start = chainable if isinstance(chainable, sfn.State) else chainable.start_state
    for state in sfn.State.find_reachable_states(start):
        if isinstance(state, sfn.TaskStateBase) and not _has_catch(state):
            state.add_catch(handler, errors=["States.ALL"], result_path="$.error")


def _has_catch(state: Any) -> bool:
    return bool(state.to_state_json().get("Catch"))
