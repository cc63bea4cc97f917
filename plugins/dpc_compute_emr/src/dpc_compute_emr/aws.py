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

from dpc_compute_emr.names import (
    CLUSTER_PREFIX,
    EMR_MANAGED_TAG,
    INSTANCE_ROLE,
    LOGS_PREFIX,
    SERVICE_ROLE,
    SSM_MASTER_SG,
    SSM_SERVICE_SG,
    SSM_SUBNET,
    SSM_WORKER_SG,
    TAG_EXECUTION,
    TAG_PIPELINE,
    hive_service_role_name,
    regional,
)
from dpc_core.cdk_values import acknowledge, bucket_name, partition, stack_info
from dpc_core.types import AslState, AwsCompute, AwsComputeContext, AwsStepContext

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
    retries.

    The states are plain ASL (:class:`~dpc_core.types.AslState`): what CDK's
    ``EmrCreateCluster``/``EmrTerminateCluster`` render, with the grants they make, built
    without a jsii round trip per state, retry and grant (issue #12)."""

    scope, cfg, pipeline = ctx.scope, ctx.compute, ctx.pipeline
    info = stack_info(scope)
    arn = _Arns(info.partition, info.region, info.account)
    groups = [{"InstanceCount": 1, "InstanceRole": "MASTER", "InstanceType": cfg.instance_type,
               "Name": "primary"}]
    if cfg.core_instance_count:
        groups.append({"InstanceCount": cfg.core_instance_count, "InstanceRole": "CORE",
                       "InstanceType": cfg.instance_type, "Name": "core"})
    service_role_name: Any = regional(SERVICE_ROLE, info.region)
    instance_role = regional(INSTANCE_ROLE, info.region)
    service_role_arn: Any = arn.role(service_role_name)
    if cfg.hive_metastore is not None:
        # EMR reads the secrets with its service role while it configures the nodes (not
        # the run, not the instances). A pipeline with a metastore gets its own service
        # role, so the account's shared role carries nothing per pipeline (a role's inline
        # policies total at most 10,240 characters: IAM and STS quotas).
        role = hive_service_role(scope, pipeline.name, cfg.hive_metastore, info.region,
                                 arn.role(instance_role))
        service_role_name, service_role_arn = role.role_name, role.role_arn
    # The user-account stack's service role may pass the instance role to EC2 (its
    # PassInstanceRoleToEc2 statement): nothing is added to it here.
    parameters: dict[str, Any] = {
        "Instances": {
            "Ec2SubnetId": cfg.subnet_id or _ssm(scope, SSM_SUBNET),
            "EmrManagedMasterSecurityGroup": _ssm(scope, SSM_MASTER_SG),
            "EmrManagedSlaveSecurityGroup": _ssm(scope, SSM_WORKER_SG),
            "InstanceGroups": groups,
            # Steps are added after the cluster is up, so it must stay alive without
            # steps; EMR terminates it once idle, whatever happened to the run.
            "KeepJobFlowAliveWhenNoSteps": True,
            "ServiceAccessSecurityGroup": _ssm(scope, SSM_SERVICE_SG),
            "TerminationProtected": False},
        "JobFlowRole": instance_role,
        "Name": f"{CLUSTER_PREFIX}{pipeline.name}",
        "ServiceRole": service_role_name,
        "Applications": [{"Name": a} for a in cfg.applications],
        # No automatic scaling policies are defined; EMR never assumes this role.
        "AutoScalingRole": service_role_name,
    }
    configurations = hive_configurations(cfg)
    if configurations:
        parameters["Configurations"] = configurations
    parameters.update({
        "LogUri": f"s3://{bucket_name(ctx.artifacts_bucket)}/{LOGS_PREFIX}{pipeline.name}/",
        "ReleaseLabel": cfg.release_label,
        "Tags": [{"Key": TAG_PIPELINE, "Value": pipeline.name},
                 {"Key": TAG_EXECUTION, "Value.$": "$$.Execution.Name"},
                 {"Key": EMR_MANAGED_TAG[0], "Value": EMR_MANAGED_TAG[1]}],
        "VisibleToAllUsers": True,
        "AutoTerminationPolicy": {"IdleTimeout": cfg.idle_timeout_minutes * 60},
    })
    create = AslState("Create cluster", {
        # A cluster that failed to start (capacity, a bootstrap error) is already
        # terminated by EMR; one more try with a fresh cluster is cheap next to a failed
        # daily run.
        "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 120,
                   "MaxAttempts": 1, "BackoffRate": 2}],
        "Type": "Task",
        "TimeoutSeconds": PROVISION_TIMEOUT_MINUTES * 60,
        "ResultPath": "$.cluster",
        "ResultSelector": {"ClusterId.$": "$.ClusterId"},
        "Resource": f"arn:{arn.aws}:states:::elasticmapreduce:createCluster.sync",
        "Parameters": parameters,
    }, policy=[
        # CDK's EmrCreateCluster grants (RUN_JOB, service and auto-scaling role given,
        # tags set); scope_policy below confines them to this pipeline's clusters.
        {"Action": ["elasticmapreduce:RunJobFlow", "elasticmapreduce:DescribeCluster",
                    "elasticmapreduce:TerminateJobFlows", "elasticmapreduce:AddTags"],
         "Effect": "Allow", "Resource": "*"},
        {"Action": "iam:PassRole", "Effect": "Allow",
         "Resource": [service_role_arn, arn.role(instance_role)]},
        {"Action": "iam:CreateServiceLinkedRole",
         "Condition": {"StringEquals": {"iam:AWSServiceName": [
             "elasticmapreduce.amazonaws.com", "elasticmapreduce.amazonaws.com.cn"]}},
         "Effect": "Allow",
         "Resource": f"arn:{arn.aws}:iam::{arn.account}:role/aws-service-role/"
                     "elasticmapreduce.amazonaws.com*/AWSServiceRoleForEMRCleanup*",
         "Sid": "ElasticMapReduceServiceLinkedRole"},
        {"Action": "iam:PassRole", "Effect": "Allow", "Resource": service_role_arn},
        {"Action": "elasticmapreduce:AddTags", "Effect": "Allow", "Resource": arn.clusters},
        arn.sync_rule("StepFunctionsGetEventForEMRRunJobFlowRule"),
    ])
    teardown = _terminate("Terminate cluster", ctx.cluster_id_path, arn)
    catch_teardown = _terminate("Terminate cluster after failure", ctx.cluster_id_path, arn)
    _acknowledge(scope, pipeline.name)

    def scope_policy(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(scope_emr_statements({"Statement": statements}, pipeline.name,
                                         arn.clusters)["Statement"])

    def on_cdk_states(machine: Any) -> None:
        # A step of another plugin built CDK tasks: CDK writes their grants, so they are
        # rewritten where CDK renders them. The aspect is Python, so every node it visits
        # is a jsii callback: it is attached to a leaf, visited once, and finds the
        # policies below the state machine construct itself.
        from aws_cdk import Aspects
        from constructs import Construct

        Aspects.of(Construct(scope, "ScopeEmr")).add(
            ScopeEmrToPipelineClusters(pipeline.name, machine))

    return AwsCompute(provision=create, teardown=teardown, catch_teardown=catch_teardown,
                      scope_policy=scope_policy, on_cdk_states=on_cdk_states,
                      run_command=add_step)


def hive_service_role(scope: Any, pipeline: str, hive: Any, region: str,
                      instance_role_arn: str) -> Any:
    """The EMR service role of a pipeline with a Hive metastore: the user-account role's
    policies (AmazonEMRServicePolicy_v2, passing the instance role to EC2), plus
    ``GetSecretValue`` on the three secrets and, for a secret under a customer key,
    ``kms:Decrypt`` of that key through Secrets Manager only (``kms:ViaService``)."""
    from aws_cdk import aws_iam as iam

    name = hive_service_role_name(pipeline, region)
    statements: list[dict[str, Any]] = [
        {"Sid": "PassInstanceRoleToEc2", "Effect": "Allow", "Action": "iam:PassRole",
         "Resource": instance_role_arn,
         "Condition": {"StringLike": {"iam:PassedToService": "ec2.amazonaws.com*"}}},
        {"Sid": "ReadHiveMetastoreSecrets", "Effect": "Allow",
         "Action": "secretsmanager:GetSecretValue",
         "Resource": [hive.url, hive.username, hive.password]}]
    if hive.kms_key:
        statements.append(
            {"Sid": "DecryptHiveMetastoreSecrets", "Effect": "Allow", "Action": "kms:Decrypt",
             "Resource": hive.kms_key,
             "Condition": {"StringEquals": {
                 "kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}}})
    role = iam.Role(
        scope, "EmrServiceRole", role_name=name,
        assumed_by=iam.ServicePrincipal("elasticmapreduce.amazonaws.com"),
        description=f"EMR service role of dpc pipeline {pipeline} (Hive metastore secrets)",
        managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(
            "service-role/AmazonEMRServicePolicy_v2")],
        inline_policies={"HiveMetastore": iam.PolicyDocument.from_json(
            {"Version": "2012-10-17", "Statement": statements})})
    from aws_cdk import Acknowledgment

    info = stack_info(scope)
    acknowledge(info.stack, Acknowledgment(
        id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
           "AmazonEMRServicePolicy_v2]",
        reason="AmazonEMRServicePolicy_v2 is the scoped-down EMR service policy AWS "
               "maintains; it only acts on resources tagged for EMR"))
    return role


class _Arns:
    """ARNs of this stack's account and region, with the partitions CDK's tasks use: the
    stack's where they format an ARN of the stack (``Stack.format_arn``), ``Aws.PARTITION``
    in integration ARNs and the service-linked role's."""

    def __init__(self, stack_partition: str, region: str, account: str) -> None:
        self.partition, self.region, self.account = stack_partition, region, account
        self.aws = partition()
        self.clusters = f"arn:{stack_partition}:elasticmapreduce:{region}:{account}:cluster/*"

    def role(self, name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/{name}"

    def sync_rule(self, rule: str) -> dict[str, Any]:
        """The grant of a ``.sync`` integration on the EventBridge rule it manages."""
        return {"Action": ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                "Effect": "Allow",
                "Resource": f"arn:{self.partition}:events:{self.region}:{self.account}:"
                            f"rule/{rule}"}


def _terminate(name: str, cluster_id_path: str, arn: _Arns) -> AslState:
    return AslState(name, {
        # Terminating is idempotent; a throttled or failed call must not leave a cluster.
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 30, "MaxAttempts": 3,
                   "BackoffRate": 2}],
        "Type": "Task",
        "TimeoutSeconds": TEARDOWN_TIMEOUT_MINUTES * 60,
        "ResultPath": None,
        "Resource": f"arn:{arn.aws}:states:::elasticmapreduce:terminateCluster.sync",
        "Parameters": {"ClusterId.$": cluster_id_path},
    }, policy=[
        {"Action": ["elasticmapreduce:DescribeCluster", "elasticmapreduce:TerminateJobFlows"],
         "Effect": "Allow", "Resource": arn.clusters},
        arn.sync_rule("StepFunctionsGetEventForEMRTerminateJobFlowsRule"),
    ])


def scope_emr_statements(document: dict[str, Any], pipeline: str,
                         cluster_arns: Any) -> dict[str, Any]:
    """Rewrite the EMR statements CDK's task grants produce so the state machine acts only
    on its own pipeline's clusters.

    CDK grants ``RunJobFlow``, ``DescribeCluster``, ``TerminateJobFlows`` and
    ``AddTags`` on ``*`` (and the step actions on ``cluster/*``). ``RunJobFlow`` has no
    resource type, so it stays on ``*`` but requires the request to tag the cluster
    ``dpc-pipeline=<pipeline>``; ``AddTags`` stays allowed with that request tag (AWS
    does not say whether tagging at creation needs it; Step Functions' own createCluster
    policy omits it) but is denied on a cluster that carries another pipeline's tag.
    Every other action on an existing cluster requires this pipeline's tag on it.
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
                if a == "elasticmapreduce:AddTags":
                    # AddTags also applies to existing clusters (its resource type is
                    # optional): without this, the role could put its own pipeline's tag
                    # on another pipeline's cluster and then act on it.
                    statements.append(_no_retagging(pipeline, cluster_arns))
            rest = [a for a in emr if a not in ("elasticmapreduce:RunJobFlow",
                                                "elasticmapreduce:AddTags")]
            if rest:
                statements.append({**st, "Action": rest, "Resource": cluster_arns,
                                   "Condition": _owned(pipeline)})
        else:
            statements.append({**st, "Condition": _owned(pipeline)})
    return {**document, "Statement": statements}


def _no_retagging(pipeline: str, cluster_arns: Any) -> dict[str, Any]:
    """Deny ``AddTags`` on a cluster that carries another pipeline's tag (an explicit deny
    wins over any allow). A cluster being created has no tag yet, or this pipeline's."""
    key = f"elasticmapreduce:ResourceTag/{TAG_PIPELINE}"
    return {"Action": "elasticmapreduce:AddTags",
            "Condition": {"Null": {key: "false"}, "StringNotEquals": {key: pipeline}},
            "Effect": "Deny", "Resource": cluster_arns}


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
    from aws_cdk import Acknowledgment

    info = stack_info(scope)
    region, account = info.region_in_finding, info.account_in_finding
    acknowledge(
        info.stack,
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


def add_step(ctx: AwsStepContext, argv: list[str]) -> AslState:
    """A step's command on the run's cluster (``AwsCompute.run_command``):
    ``addStep.sync`` of ``command-runner.jar`` with ``argv``, the step failing after the
    compute's ``stepTimeoutMinutes``: what CDK's ``EmrAddStep`` task renders and grants,
    as plain ASL (no jsii round trip)."""
    aws = partition()
    info = stack_info(ctx.scope)
    state: dict[str, Any] = {"Type": "Task"}
    timeout = getattr(ctx.compute, "step_timeout_minutes", None)
    if timeout:
        # Shorter than the run's: a stuck step fails into the catch path, which
        # terminates the cluster, instead of the run timing out, which skips it.
        state["TimeoutSeconds"] = int(timeout) * 60
    state.update({
        "ResultPath": None,
        "Resource": f"arn:{aws}:states:::elasticmapreduce:addStep.sync",
        "Parameters": {"ClusterId.$": ctx.cluster_id_path, "Step": {
            "Name": ctx.step.name, "ActionOnFailure": "CONTINUE",
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": argv}}}})
    where = f"{info.region}:{info.account}"
    return AslState(ctx.step.name, state, policy=[
        {"Action": ["elasticmapreduce:AddJobFlowSteps", "elasticmapreduce:DescribeStep",
                    "elasticmapreduce:CancelSteps"], "Effect": "Allow",
         "Resource": f"arn:{info.partition}:elasticmapreduce:{where}:cluster/*"},
        {"Action": ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
         "Effect": "Allow",
         "Resource": f"arn:{info.partition}:events:{where}:rule/"
                     "StepFunctionsGetEventForEMRAddJobFlowStepsRule"}])
