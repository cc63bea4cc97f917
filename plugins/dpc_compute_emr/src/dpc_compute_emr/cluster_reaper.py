"""The cluster reaper: terminates the EMR clusters of runs that ended without teardown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from dpc_central.plugin_api import (
    SFN_DETAIL_TYPE,
    SFN_SOURCE,
    DpcFunction,
    alarm_on_queue_depth,
    dead_letter_queue,
    region_in_finding,
    suppress,
)
from dpc_compute_emr.handlers.cluster_reaper import ENDED
from dpc_compute_emr.names import HANDLER_CLUSTER_REAPER
from dpc_compute_emr.names import TAG_EXECUTION as EMR_TAG_EXECUTION
from dpc_compute_emr.names import TAG_PIPELINE as EMR_TAG_PIPELINE


def dpc_cluster_condition() -> dict[str, dict[str, str]]:
    """Only clusters carrying both dpc tags (what every run's createCluster sets; the
    pipelines' state machines may create clusters only with ``dpc-pipeline``)."""
    return {"Null": {f"aws:ResourceTag/{EMR_TAG_PIPELINE}": "false",
                     f"aws:ResourceTag/{EMR_TAG_EXECUTION}": "false"}}


class ClusterReaper(Construct):
    """A Lambda (``dpc_compute_emr.handlers.cluster_reaper``) run by the account's
    ``Step Functions Execution Status Change`` events for ``TIMED_OUT``, ``ABORTED`` and
    ``FAILED`` (default bus), and every ``interval`` as a sweep (status events are best
    effort). It may list clusters, and describe and terminate only clusters tagged as
    dpc's (``aws:ResourceTag``), and describe this account's executions.

    Attributes: ``handler``, ``rule``, ``schedule``, ``dlq``.
    """

    def __init__(self, scope: Construct, id: str, *, code_dir: Path,
                 layers: Sequence[lambda_.ILayerVersion] = (),
                 interval: Duration | None = None) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.handler = DpcFunction(
            self, "Handler", handler=HANDLER_CLUSTER_REAPER, code_dir=code_dir, layers=layers,
            description="dpc: terminates EMR clusters of runs stopped or timed out",
            timeout=Duration.minutes(2), reserved_concurrency=2)
        fn = self.handler.function
        clusters = f"arn:{stack.partition}:elasticmapreduce:{stack.region}:{stack.account}:" \
                   "cluster/*"
        executions = f"arn:{stack.partition}:states:{stack.region}:{stack.account}:" \
                     "execution:*:*"
        # ListClusters has no resource type (Service Authorization Reference).
        fn.add_to_role_policy(iam.PolicyStatement(
            sid="ListClusters", actions=["elasticmapreduce:ListClusters"], resources=["*"]))
        fn.add_to_role_policy(iam.PolicyStatement(
            sid="TerminateDpcClusters",
            actions=["elasticmapreduce:DescribeCluster", "elasticmapreduce:TerminateJobFlows"],
            resources=[clusters], conditions=dpc_cluster_condition()))
        fn.add_to_role_policy(iam.PolicyStatement(
            sid="ReadRunStatus", actions=["states:DescribeExecution"], resources=[executions]))
        region = region_in_finding(self)
        acct = "<AWS::AccountId>" if stack.resolve(stack.account) != stack.account \
            else stack.account
        suppress(self.handler, [
            ("AwsSolutions-IAM5", "ListClusters has no resource-level permissions; "
             "describing and terminating are limited to clusters tagged dpc-pipeline and "
             "dpc-execution (aws:ResourceTag), created by runs after this stack",
             ["Resource::*",
              f"Resource::arn:<AWS::Partition>:elasticmapreduce:{region}:{acct}:cluster/*"]),
            ("AwsSolutions-IAM5", "the sweep reads the status of whichever run a cluster's "
             "tags name (state machines are created later, by pipeline stacks); read-only",
             [f"Resource::arn:<AWS::Partition>:states:{region}:{acct}:execution:*:*"]),
        ])
        self.dlq = dead_letter_queue(self, "RuleDlq")
        self.dlq_alarm = alarm_on_queue_depth(self, "RuleDlqAlarm", queue=self.dlq, topic=None)
        self.rule = events.Rule(
            self, "RunEnded", description="dpc: runs that ended without their teardown",
            event_pattern=events.EventPattern(source=[SFN_SOURCE], detail_type=[SFN_DETAIL_TYPE],
                                              detail={"status": list(ENDED)}),
            targets=[targets.LambdaFunction(fn, dead_letter_queue=self.dlq, retry_attempts=8)])
        self.schedule = events.Rule(
            self, "Sweep", description="dpc: clusters whose run has ended",
            schedule=events.Schedule.rate(interval or Duration.minutes(30)),
            targets=[targets.LambdaFunction(fn, dead_letter_queue=self.dlq, retry_attempts=2)])
