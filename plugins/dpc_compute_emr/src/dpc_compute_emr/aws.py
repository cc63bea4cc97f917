"""Step Functions states of the ``emr`` compute: create the cluster, terminate it.

Imported only while a CDK app is built (``dpc synth``/``deploy``). Account-wide
resources (roles, security groups, subnet) are the user-account stack's, read from its
``/dpc/`` SSM parameters at deploy.
"""

from __future__ import annotations

from typing import Any

from dpc_core.types import AwsCompute, AwsComputeContext

SERVICE_ROLE = "dpc-emr-service-role"
INSTANCE_ROLE = "dpc-emr-instance-role"


def _ssm(scope: Any, name: str) -> str:
    from aws_cdk import aws_ssm as ssm

    return ssm.StringParameter.value_for_string_parameter(scope, name)


def emr_states(ctx: AwsComputeContext) -> AwsCompute:
    """Provision (optional Hive metastore secret, then ``createCluster.sync``), teardown
    and catch-path teardown (``terminateCluster.sync``)."""
    from aws_cdk import Stack
    from aws_cdk import aws_iam as iam
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk import aws_stepfunctions_tasks as tasks

    scope, cfg, pipeline = ctx.scope, ctx.compute, ctx.pipeline
    jp = sfn.JsonPath
    stack = Stack.of(scope)
    configurations = []
    first: Any = None
    if cfg.hive_metastore_secret:
        secret = cfg.hive_metastore_secret
        arn = secret if secret.startswith("arn:") else (
            f"arn:{stack.partition}:secretsmanager:{stack.region}:{stack.account}:"
            f"secret:{secret}-??????")
        first = tasks.CallAwsService(
            scope, "Read Hive metastore secret", service="secretsmanager",
            action="getSecretValue", parameters={"SecretId": secret}, iam_resources=[arn],
            result_selector={"password": jp.string_at("$.SecretString")},
            result_path="$.hive")
        # The password is decrypted into the cluster's Hive and Spark configuration, so
        # Spark steps reach the metastore without reading the secret themselves.
        password = {"javax.jdo.option.ConnectionPassword": jp.string_at("$.hive.password")}
        configurations = [
            tasks.EmrCreateCluster.ConfigurationProperty(classification=c, properties=password)
            for c in ("hive-site", "spark-hive-site")]
    group = tasks.EmrCreateCluster.InstanceGroupConfigProperty
    role = tasks.EmrCreateCluster.InstanceRoleType
    groups = [group(instance_count=1, instance_role=role.MASTER, instance_type=cfg.instance_type,
                    name="primary")]
    if cfg.core_instance_count:
        groups.append(group(instance_count=cfg.core_instance_count, instance_role=role.CORE,
                            instance_type=cfg.instance_type, name="core"))
    service_role = iam.Role.from_role_name(scope, "ServiceRole", SERVICE_ROLE)
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
        instances=tasks.EmrCreateCluster.InstancesConfigProperty(
            instance_groups=groups,
            ec2_subnet_id=cfg.subnet_id or _ssm(scope, "/dpc/emr/subnet-id"),
            emr_managed_master_security_group=_ssm(scope, "/dpc/emr/master-security-group"),
            emr_managed_slave_security_group=_ssm(scope, "/dpc/emr/worker-security-group"),
            service_access_security_group=_ssm(scope, "/dpc/emr/service-security-group"),
            termination_protected=False),
        integration_pattern=sfn.IntegrationPattern.RUN_JOB,
        result_selector={"ClusterId": jp.string_at("$.ClusterId")},
        result_path="$.cluster")
    provision = sfn.Chain.start(first).next(create) if first is not None else create
    cluster_id = jp.string_at(ctx.cluster_id_path)
    teardown = tasks.EmrTerminateCluster(scope, "Terminate cluster", cluster_id=cluster_id,
                                         result_path=jp.DISCARD)
    catch_teardown = tasks.EmrTerminateCluster(
        scope, "Terminate cluster after failure", cluster_id=cluster_id, result_path=jp.DISCARD)
    _acknowledge(scope)
    return AwsCompute(provision=provision, teardown=teardown, catch_teardown=catch_teardown)


def _acknowledge(scope: Any) -> None:
    """cdk-nag findings of CDK's EMR task grants on the state machine's role."""
    from aws_cdk import Acknowledgment, Stack, Token, Validations

    stack = Stack.of(scope)
    region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
    account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
    Validations.of(stack).acknowledge(
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:elasticmapreduce:{region}:"
               f"{account}:cluster/*]",
            reason="the run's cluster is created by the run; its id is unknown at deploy. "
                   "Limited to this account's clusters in this region"),
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::{account}:role/"
               "aws-service-role/elasticmapreduce.amazonaws.com*/AWSServiceRoleForEMRCleanup*]",
            reason="EMR's own cleanup service-linked role, created on first use (CDK's "
                   "EmrCreateCluster grant)"))
