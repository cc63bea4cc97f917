"""A bare CDK app that declares what dpc's stack for one pipeline declares, by hand.

The yardstick of ``bench/synth.py``: what the same resources cost to synthesize when
written directly with aws_cdk constructs (no plugins, no validation, no cdk-nag). The
values are taken from dpc's own template for that pipeline (the state machine's
definition JSON, the role's statements, the schedule, the registration's properties),
so both apps write the same kinds and numbers of resources, the same SSM parameters and
the same pseudo-parameter references (``Ref AWS::Partition`` inside ``Fn::Join``); what
differs is only how they are built. (Until 2026-11-28 the bare app wrote literal values
where dpc's template refers to parameters: four parameters fewer and no token to
resolve, which alone made it ~15% faster than an app writing dpc's template.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar


class _Refs(dict[str, Any]):
    """What dpc's template references, as a hand-written app would write it: pseudo
    parameters as ``cdk.Aws`` tokens and the ``/dpc/`` SSM parameters as the same
    ``value_for_string_parameter`` tokens (so the bare template has dpc's parameters and
    ``Fn::Join``s, and CDK resolves as many tokens at synth), each made when first used.
    Refs and attributes of resources stay plain strings where the bare app does not wire
    its own construct: that favours the bare app a little (no token to resolve). Valid
    values, so CDK's template validation has nothing to report in one app that it would
    not in the other."""

    PSEUDO: ClassVar[dict[str, str]] = {"AWS::Partition": "PARTITION", "AWS::Region": "REGION",
                                        "AWS::AccountId": "ACCOUNT_ID",
                                        "AWS::URLSuffix": "URL_SUFFIX"}

    def __init__(self, stack: Any, template: dict[str, Any]) -> None:
        super().__init__()
        self.stack = stack
        self.resources = set(template["Resources"])
        self.parameters = {lid: p["Default"] for lid, p in template.get("Parameters", {}).items()
                           if p["Type"] == "AWS::SSM::Parameter::Value<String>"}

    def __missing__(self, key: str) -> Any:
        import aws_cdk as cdk
        from aws_cdk import aws_ssm as ssm

        if key in self.PSEUDO:
            value = getattr(cdk.Aws, self.PSEUDO[key])
        elif key in self.parameters:
            value = ssm.StringParameter.value_for_string_parameter(self.stack,
                                                                   self.parameters[key])
        elif key.endswith(".Arn") or key in self.resources:
            value = f"arn:aws:sqs:eu-west-1:111111111111:{key.split('.')[0]}"
        else:
            raise KeyError(key)
        self[key] = value
        return value

    def parameter(self, name: str) -> Any:
        """The token of SSM parameter ``name`` (``/dpc/...``), as dpc's template has it."""
        (lid,) = [lid for lid, default in self.parameters.items() if default == name]
        return self[lid]


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
    from aws_cdk import aws_stepfunctions as sfn

    from dpc_central.testing import resolve

    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "bare-pipeline", env=cdk.Environment(account=account, region=region))
    refs = _Refs(stack, template)
    central = refs.parameter("/dpc/central-account")
    bucket = s3.Bucket.from_bucket_name(
        stack, "Artifacts", refs.parameter("/dpc/artifacts-bucket"))
    alarms = sns.Topic.from_topic_arn(stack, "Alarms", refs.parameter("/dpc/alarm-topic-arn"))

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
    props = resolve(registration["Properties"], refs)
    token = props.pop("ServiceToken")
    cdk.CustomResource(stack, "Registration", properties=props,
                       resource_type=registration["Type"], service_token=token)
    return app
