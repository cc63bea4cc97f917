"""Step Functions states of the ``emr`` compute: create the cluster, terminate it.

Imported only while a CDK app is built (``dpc synth``/``deploy``). Account-wide
resources (roles, security groups, subnet) are the user-account stack's, read from its
``/dpc/`` SSM parameters at deploy.

What keeps a cluster from outliving its run:

* teardown after the steps and in the catch path (a failed or timed-out step);
* EMR's auto-termination after ``idleTimeoutMinutes`` without work: the only guard for a
  run that is stopped (ABORTED) or hits the state machine's timeout (TIMED_OUT), since
  Step Functions runs no catch path then;
* the tags ``dpc-pipeline``/``dpc-execution`` name the run that owns a cluster, and the
  state machine may act only on clusters carrying its pipeline's tag.
"""

from __future__ import annotations

from typing import Any

import jsii

from dpc_core.cdk_values import (
    discard,
    minutes,
    seconds,
    stack_info,
    string_at,
    timeout_minutes,
)
from dpc_core.types import AwsCompute, AwsComputeContext

SERVICE_ROLE = "dpc-emr-service-role"
INSTANCE_ROLE = "dpc-emr-instance-role"
#: Tags of every cluster a run creates; the state machine's EMR permissions require them.
TAG_PIPELINE = "dpc-pipeline"
TAG_EXECUTION = "dpc-execution"
#: AmazonEMRServicePolicy_v2 requires this tag on the cluster (EMR propagates it to the
#: instances, launch templates and network interfaces it creates for the cluster).
EMR_MANAGED_TAG = ("for-use-with-amazon-emr-managed-policies", "true")
#: How long EMR may take to start a cluster, and to terminate one, before the task fails.
PROVISION_TIMEOUT_MINUTES = 60
TEARDOWN_TIMEOUT_MINUTES = 30

#: Hive metastore properties set from secrets: EMR resolves a value whose key carries the
#: ``:secret`` annotation as a Secrets Manager ARN while it configures the nodes.
_HIVE_PROPERTIES = (("url", "javax.jdo.option.ConnectionURL"),
                    ("username", "javax.jdo.option.ConnectionUserName"),
                    ("password", "javax.jdo.option.ConnectionPassword"))


def _ssm(scope: Any, name: str) -> str:
    from aws_cdk import aws_ssm as ssm

    return ssm.StringParameter.value_for_string_parameter(scope, name)


def hive_configurations(cfg: Any) -> list[dict[str, Any]]:
    """EMR ``Configurations`` (hive-site, spark-hive-site) naming the metastore secrets
    by ARN with the ``:secret`` annotation; empty without ``hiveMetastore``."""
    hive = cfg.hive_metastore
    if hive is None:
        return []
    props = {f"{prop}:secret": getattr(hive, field) for field, prop in _HIVE_PROPERTIES}
    return [{"Classification": c, "Properties": props}
            for c in ("hive-site", "spark-hive-site")]


def emr_states(ctx: AwsComputeContext) -> AwsCompute:
    """Provision (``createCluster.sync``, tagged, auto-terminating when idle) and teardown
    (``terminateCluster.sync``, after the steps and in the catch path), with timeouts and
    retries."""
    from aws_cdk import Aspects
    from aws_cdk import aws_iam as iam
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk import aws_stepfunctions_tasks as tasks

    scope, cfg, pipeline = ctx.scope, ctx.compute, ctx.pipeline
    group = tasks.EmrCreateCluster.InstanceGroupConfigProperty
    role = tasks.EmrCreateCluster.InstanceRoleType
    groups = [group(instance_count=1, instance_role=role.MASTER, instance_type=cfg.instance_type,
                    name="primary")]
    if cfg.core_instance_count:
        groups.append(group(instance_count=cfg.core_instance_count, instance_role=role.CORE,
                            instance_type=cfg.instance_type, name="core"))
    service_role = iam.Role.from_role_name(scope, "ServiceRole", SERVICE_ROLE)
    configurations = [
        tasks.EmrCreateCluster.ConfigurationProperty(classification=c["Classification"],
                                                     properties=c["Properties"])
        for c in hive_configurations(cfg)]
    if cfg.hive_metastore is not None:
        # EMR reads the secrets with its service role while it configures the nodes
        # (not the run, not the instances): only this pipeline's three secrets.
        service_role.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadHiveMetastoreSecrets", actions=["secretsmanager:GetSecretValue"],
            resources=[cfg.hive_metastore.url, cfg.hive_metastore.username,
                       cfg.hive_metastore.password]))
    create = tasks.EmrCreateCluster(
        scope, "Create cluster", name=f"dpc-{pipeline.name}",
        release_label=cfg.release_label,
        applications=[tasks.EmrCreateCluster.ApplicationConfigProperty(name=a)
                      for a in cfg.applications],
        service_role=service_role,
        # No automatic scaling policies are defined; EMR never assumes this role.
        auto_scaling_role=service_role,
        cluster_role=iam.Role.from_role_name(scope, "InstanceRole", INSTANCE_ROLE),
        log_uri=f"s3://{ctx.artifacts_bucket.bucket_name}/emr-logs/{pipeline.name}/",
        configurations=configurations or None,
        visible_to_all_users=True,
        # Steps are added after the cluster is up, so it must stay alive without steps;
        # EMR terminates it once idle, whatever happened to the run.
        auto_termination_policy_idle_timeout=minutes(cfg.idle_timeout_minutes),
        tags={TAG_PIPELINE: pipeline.name, TAG_EXECUTION: string_at("$$.Execution.Name"),
              EMR_MANAGED_TAG[0]: EMR_MANAGED_TAG[1]},
        instances=tasks.EmrCreateCluster.InstancesConfigProperty(
            instance_groups=groups,
            ec2_subnet_id=cfg.subnet_id or _ssm(scope, "/dpc/emr/subnet-id"),
            emr_managed_master_security_group=_ssm(scope, "/dpc/emr/master-security-group"),
            emr_managed_slave_security_group=_ssm(scope, "/dpc/emr/worker-security-group"),
            service_access_security_group=_ssm(scope, "/dpc/emr/service-security-group"),
            termination_protected=False),
        integration_pattern=sfn.IntegrationPattern.RUN_JOB,
        task_timeout=timeout_minutes(PROVISION_TIMEOUT_MINUTES),
        result_selector={"ClusterId": string_at("$.ClusterId")},
        result_path="$.cluster")
    # A cluster that failed to start (capacity, a bootstrap error) is already terminated by
    # EMR; one more try with a fresh cluster is cheap next to a failed daily run.
    create.add_retry(errors=["States.TaskFailed"], max_attempts=1,
                     interval=minutes(2), backoff_rate=2)
    cluster_id = string_at(ctx.cluster_id_path)
    teardown = _terminate(scope, "Terminate cluster", cluster_id)
    catch_teardown = _terminate(scope, "Terminate cluster after failure", cluster_id)
    # The policies to rewrite are those below the pipeline's state machine construct (the
    # compute scope's parent: its role and the service role's policy live there). The
    # aspect is Python, so every node it visits is a jsii callback (~45 below the
    # state machine construct): it is attached to a leaf, visited once, and finds the
    # policies there itself.
    Aspects.of(catch_teardown).add(ScopeEmrToPipelineClusters(
        pipeline.name, scope.node.scope or scope))
    _acknowledge(scope, pipeline.name)
    return AwsCompute(provision=create, teardown=teardown, catch_teardown=catch_teardown)


def _terminate(scope: Any, id: str, cluster_id: str) -> Any:
    from aws_cdk import aws_stepfunctions_tasks as tasks

    task = tasks.EmrTerminateCluster(
        scope, id, cluster_id=cluster_id, result_path=discard(),
        task_timeout=timeout_minutes(TEARDOWN_TIMEOUT_MINUTES))
    # Terminating is idempotent; a throttled or failed call must not leave a cluster.
    task.add_retry(errors=["States.ALL"], max_attempts=3, interval=seconds(30),
                   backoff_rate=2)
    return task


def scope_emr_statements(document: dict[str, Any], pipeline: str,
                         cluster_arns: Any) -> dict[str, Any]:
    """Rewrite the EMR statements CDK's task grants produce so the state machine acts only
    on its own pipeline's clusters.

    CDK grants ``RunJobFlow``, ``DescribeCluster``, ``TerminateJobFlows`` and
    ``AddTags`` on ``*`` (and the step actions on ``cluster/*``). ``RunJobFlow`` has no
    resource type, so it stays on ``*`` but requires the request to tag the cluster
    ``dpc-pipeline=<pipeline>`` (tag-on-create also authorizes ``AddTags`` with the
    request's tags); every action on an existing cluster requires that tag on it.
    """
    statements = []
    for st in document.get("Statement", []):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        emr = [a for a in actions if a.startswith("elasticmapreduce:")]
        if not emr or len(emr) != len(actions):
            statements.append(st)
            continue
        if st.get("Resource") == "*":
            for a in emr:
                if a in ("elasticmapreduce:RunJobFlow", "elasticmapreduce:AddTags"):
                    statements.append({**st, "Action": a, "Condition": {"StringEquals": {
                        f"aws:RequestTag/{TAG_PIPELINE}": pipeline}}})
            rest = [a for a in emr if a not in ("elasticmapreduce:RunJobFlow",
                                                "elasticmapreduce:AddTags")]
            if rest:
                statements.append({**st, "Action": rest, "Resource": cluster_arns,
                                   "Condition": _owned(pipeline)})
        else:
            statements.append({**st, "Condition": _owned(pipeline)})
    return {**document, "Statement": statements}


def _owned(pipeline: str) -> dict[str, Any]:
    return {"StringEquals": {f"elasticmapreduce:ResourceTag/{TAG_PIPELINE}": pipeline}}


def _aspect_base() -> Any:
    from aws_cdk import IAspect

    return IAspect


@jsii.implements(_aspect_base())
class ScopeEmrToPipelineClusters:
    """CDK aspect applying :func:`scope_emr_statements` to every IAM policy below
    ``owner`` that holds EMR actions (the state machine's role policy).

    Attach it to a construct without children: it does its work on its first visit,
    once the app is complete (aspects run when synth starts), whatever node that is."""

    def __init__(self, pipeline: str, owner: Any) -> None:
        self.pipeline = pipeline
        self.owner = owner
        self.done = False

    def visit(self, node: Any) -> None:
        """Override the policy document of each ``AWS::IAM::Policy`` with EMR actions."""
        from aws_cdk import Stack
        from aws_cdk import aws_iam as iam

        if self.done:
            return
        self.done = True
        stack: Any = None
        clusters: Any = None
        for policy in self.owner.node.find_all():
            if not isinstance(policy, iam.CfnPolicy):
                continue
            stack = stack or Stack.of(policy)
            document = stack.resolve(policy.policy_document)
            if "elasticmapreduce:" not in str(document):
                continue
            if clusters is None:
                clusters = stack.resolve(stack.format_arn(
                    service="elasticmapreduce", resource="cluster", resource_name="*"))
            policy.add_property_override(
                "PolicyDocument", scope_emr_statements(document, self.pipeline, clusters))


def _acknowledge(scope: Any, pipeline: str) -> None:
    """cdk-nag findings of CDK's EMR task grants on the state machine's role."""
    from aws_cdk import Acknowledgment, Stack, Validations

    stack = Stack.of(scope)
    info = stack_info(stack)
    region, account = info.region_in_finding, info.account_in_finding
    Validations.of(stack).acknowledge(
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:elasticmapreduce:{region}:"
               f"{account}:cluster/*]",
            reason="the run's cluster is created by the run, so its id is unknown at "
                   "deploy; every action on it requires the tag "
                   f"{TAG_PIPELINE}={pipeline} (elasticmapreduce:ResourceTag)"),
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::{account}:role/"
               "aws-service-role/elasticmapreduce.amazonaws.com*/AWSServiceRoleForEMRCleanup*]",
            reason="EMR's own cleanup service-linked role, created on first use (CDK's "
                   "EmrCreateCluster grant)"))
