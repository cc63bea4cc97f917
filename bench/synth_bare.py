"""A bare CDK app that declares what dpc's stack for one pipeline declares, by hand.

The yardstick of ``bench/synth.py``: what the same resources cost to synthesize when
written directly with aws_cdk constructs (no plugins, no validation, no cdk-nag). The
values are taken from dpc's own template for that pipeline (the state machine's
definition JSON, the role's statements, the schedule, the registration's properties),
so both apps write the same kinds and numbers of resources; what differs is only how
they are built. Shaped for a scheduled pipeline with EMR steps (``listings``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar


class _Fake(dict[str, str]):
    """Refs and attributes of dpc's template, as plain strings (the bare app hard-codes
    what dpc wires with tokens; synth cost is the same). Valid values, so CDK's template
    validation has nothing to report in one app that it would not in the other."""

    PSEUDO: ClassVar[dict[str, str]] = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1",
              "AWS::AccountId": "111111111111", "AWS::URLSuffix": "amazonaws.com"}

    def __init__(self, resources: set[str]) -> None:
        super().__init__()
        self.resources = resources

    def __missing__(self, key: str) -> str:
        if key in self.PSEUDO:
            return self.PSEUDO[key]
        # Attributes and Refs of resources stand where ARNs go; parameters are names.
        if key.endswith(".Arn") or key in self.resources:
            return f"arn:aws:sqs:eu-west-1:111111111111:{key.split('.')[0]}"
        return "111111111111"


def _of(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == kind]


def bare_app(template: dict[str, Any], *, scripts: Path, outdir: Path, account: str,
             region: str) -> Any:
    """The CDK app (not yet synthesized) declaring ``template``'s resources by hand."""
    import aws_cdk as cdk
    from aws_cdk import aws_cloudwatch as cw
    from aws_cdk import aws_cloudwatch_actions as cw_actions
    from aws_cdk import aws_events as events
    from aws_cdk import aws_events_targets as targets
    from aws_cdk import aws_iam as iam
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_logs as logs
    from aws_cdk import aws_s3 as s3
    from aws_cdk import aws_s3_deployment as s3deploy
    from aws_cdk import aws_sns as sns
    from aws_cdk import aws_sqs as sqs
    from aws_cdk import aws_ssm as ssm
    from aws_cdk import aws_stepfunctions as sfn

    from dpc_central.testing import resolve

    refs = _Fake(set(template["Resources"]))
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "bare-pipeline", env=cdk.Environment(account=account, region=region))
    central = ssm.StringParameter.value_for_string_parameter(stack, "/dpc/central-account")
    bucket = s3.Bucket.from_bucket_name(
        stack, "Artifacts", ssm.StringParameter.value_for_string_parameter(
            stack, "/dpc/artifacts-bucket"))
    alarms = sns.Topic.from_topic_arn(
        stack, "Alarms", ssm.StringParameter.value_for_string_parameter(stack, "/dpc/alarm-topic"))

    key = kms.Key(stack, "Key", enable_key_rotation=True)
    topic = sns.Topic(stack, "Topic", master_key=key, enforce_ssl=True)
    topic.add_to_resource_policy(iam.PolicyStatement(
        actions=["sns:Publish"], principals=[iam.AccountPrincipal(central)],
        resources=[topic.topic_arn]))
    undelivered = sqs.Queue(stack, "Undelivered", enforce_ssl=True,
                            retention_period=cdk.Duration.days(14))
    for i, sub in enumerate(_of(template, "AWS::SNS::Subscription")):
        props = resolve(sub["Properties"], refs)
        sns.Subscription(stack, f"Sub{i}", topic=topic, endpoint=props["Endpoint"],
                         protocol=sns.SubscriptionProtocol(props["Protocol"].upper()),
                         dead_letter_queue=undelivered)
    cw.Alarm(stack, "UndeliveredAlarm",
             metric=undelivered.metric_approximate_number_of_messages_visible(), threshold=1,
             evaluation_periods=1).add_alarm_action(cw_actions.SnsAction(alarms))

    scripts_prefix = "dpc/bare/"
    s3deploy.BucketDeployment(stack, "Upload", sources=[s3deploy.Source.asset(str(scripts))],
                              destination_bucket=bucket, destination_key_prefix=scripts_prefix,
                              prune=False, retain_on_delete=False)

    (machine,) = _of(template, "AWS::StepFunctions::StateMachine")
    definition = resolve(machine["Properties"]["DefinitionString"], refs)
    log_group = logs.LogGroup(stack, "Logs", retention=logs.RetentionDays.THREE_MONTHS,
                              removal_policy=cdk.RemovalPolicy.DESTROY)
    sm = sfn.StateMachine(stack, "StateMachine", state_machine_name="bare",
                          definition_body=sfn.DefinitionBody.from_string(definition),
                          timeout=cdk.Duration.minutes(720), tracing_enabled=True,
                          logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL))
    for policy in _of(template, "AWS::IAM::Policy"):
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            sm.add_to_role_policy(iam.PolicyStatement.from_json(resolve(statement, refs)))

    (rule,) = _of(template, "AWS::Events::Rule")
    dlq = sqs.Queue(stack, "ScheduleDlq", enforce_ssl=True)
    events.Rule(stack, "Schedule", schedule=events.Schedule.expression(
        rule["Properties"]["ScheduleExpression"]),
        targets=[targets.SfnStateMachine(sm, dead_letter_queue=dlq, retry_attempts=185)])
    cw.Alarm(stack, "ScheduleDlqAlarm",
             metric=dlq.metric_approximate_number_of_messages_visible(), threshold=1,
             evaluation_periods=1).add_alarm_action(cw_actions.SnsAction(alarms))

    (registration,) = [r for r in template["Resources"].values()
                       if r["Type"].startswith("Custom::") and "Pipeline" in json.dumps(
                           r["Properties"]) and "ServiceToken" in r["Properties"]
                       and "DestinationBucketName" not in r["Properties"]]
    props = {k: v for k, v in resolve(registration["Properties"], refs).items()
             if k != "ServiceToken"}
    cdk.CustomResource(stack, "Registration", properties=props,
                       resource_type=registration["Type"],
                       service_token=ssm.StringParameter.value_for_string_parameter(
                           stack, "/dpc/registration-provider"))
    return app
