"""The central account's stack, checked on its synthesized template (CDK assertions,
cdk-nag's AwsSolutions pack at synth, cfn-lint). moto cannot show bus policies,
rules or IAM, so this is where they are verified."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

MEMBERS = ["111111111111", "222222222222", "333333333333"]
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The central app synthesized once (organisation + three listed members); synth
    fails if cdk-nag reports an unacknowledged finding."""
    from dpc_central.app import CENTRAL_STACK, central_app

    out = tmp_path_factory.mktemp("central") / "cdk.out"
    app = central_app(outdir=out, org_id="o-abc123", member_accounts=MEMBERS,
                      account="999999999999", region=REGION)
    app.synth()
    from aws_cdk.assertions import Template

    template = json.loads((out / f"{CENTRAL_STACK}.template.json").read_text())
    return Template.from_json(template), out / f"{CENTRAL_STACK}.template.json"


@pytest.fixture(scope="module")
def template(central: tuple[Any, Path]) -> Any:
    return central[0]


def resources(template: Any, kind: str) -> dict[str, Any]:
    return template.find_resources(kind)


def test_bus_policy_admits_only_the_organisation_and_listed_accounts(template: Any) -> None:
    template.has_resource_properties("AWS::Events::EventBus", {"Name": "dpc-central"})
    policies = resources(template, "AWS::Events::EventBusPolicy")
    statements = [p["Properties"]["Statement"] for p in policies.values()]
    org = [s for s in statements if s["Sid"].endswith("OrganisationMayPutEvents")]
    assert org and org[0]["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}}
    assert org[0]["Action"] == "events:PutEvents"
    listed = next(s for s in statements if s["Sid"].endswith("MemberAccountsMayPutEvents"))
    principals = json.dumps(listed["Principal"])
    assert all(m in principals for m in MEMBERS)
    # The two statements above are the whole policy: nothing else admits callers.
    assert len(statements) == 2


def test_status_events_reach_a_fifo_queue_grouped_by_source_account(template: Any) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    fifo = [q for q in queues.values() if q["Properties"].get("FifoQueue")
            and q["Properties"].get("ContentBasedDeduplication")]
    assert len(fifo) == 1
    rules = resources(template, "AWS::Events::Rule")
    groups = {}
    for rule in rules.values():
        for target in rule["Properties"].get("Targets", []):
            if "SqsParameters" in target:
                pattern = rule["Properties"]["EventPattern"]
                assert set(pattern["source"]) == {"aws.states", "dpc.pipeline"}
                groups[target["SqsParameters"]["MessageGroupId"]] = pattern.get("account")
                assert "DeadLetterConfig" in target
    for member in MEMBERS:
        assert groups[member] == [member]
    # Organisation accounts not listed share one group, and never a listed account's events.
    assert groups["dpc-other-accounts"] == [{"anything-but": MEMBERS}]


def test_trigger_manager_consumes_the_queue_reporting_partial_batch_failures(
        template: Any) -> None:
    template.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "dpc_central.handlers.trigger_manager.handle"})
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "BatchSize": 10, "FunctionResponseTypes": ["ReportBatchItemFailures"]})


def test_tables_mirror_the_dynamodb_store_and_keep_point_in_time_recovery(template: Any) -> None:
    from dpc_core.stores.dynamodb import DynamoTables, table_definitions

    tables = list(resources(template, "AWS::DynamoDB::Table").values())
    schemas = [t["Properties"]["KeySchema"] for t in tables]
    for definition in table_definitions(DynamoTables("r", "u", "w")):
        assert definition["KeySchema"] in schemas
    indexes = {g["IndexName"]: g for t in tables
               for g in t["Properties"].get("GlobalSecondaryIndexes", [])}
    assert set(indexes) == {"by_pipeline", "undelivered"}
    assert len(tables) == 4  # registry, runs, windows, Slack threads
    for t in tables:
        assert t["Properties"]["PointInTimeRecoverySpecification"] == {
            "PointInTimeRecoveryEnabled": True}
        assert t["Properties"]["SSESpecification"]["SSEEnabled"] is True
        assert t["DeletionPolicy"] == "Retain"


def test_windows_table_indexes_undelivered_claims_sparsely_by_age(template: Any) -> None:
    windows = next(t["Properties"] for t in resources(template, "AWS::DynamoDB::Table").values()
                   if t["Properties"]["KeySchema"][0]["AttributeName"] == "child")
    (gsi,) = windows["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "undelivered"
    assert [k["AttributeName"] for k in gsi["KeySchema"]] == ["pending", "pending_at"]
    assert gsi["Projection"] == {"ProjectionType": "KEYS_ONLY"}


def function(template: Any, handler: str) -> tuple[str, dict[str, Any]]:
    """(logical id, properties) of the Lambda running ``dpc_central.handlers.<handler>``."""
    return next((lid, f["Properties"]) for lid, f in resources(
        template, "AWS::Lambda::Function").items()
        if f["Properties"]["Handler"] == f"dpc_central.handlers.{handler}.handle")


def role_statements(template: Any, handler: str) -> list[dict[str, Any]]:
    """Every statement of the policies attached to the handler's execution role."""
    _, props = function(template, handler)
    role = props["Role"]["Fn::GetAtt"][0]
    return [st for p in resources(template, "AWS::IAM::Policy").values()
            if {"Ref": role} in p["Properties"]["Roles"]
            for st in p["Properties"]["PolicyDocument"]["Statement"]]


def grants(statements: list[dict[str, Any]], action: str) -> list[Any]:
    """The resources of the statements allowing ``action``."""
    return [st["Resource"] for st in statements
            if st["Effect"] == "Allow" and action in as_list(st["Action"])]


def logical_id(template: Any, kind: str, predicate: Any) -> str:
    return next(lid for lid, r in resources(template, kind).items() if predicate(r))


def central_bus(template: Any) -> str:
    return logical_id(template, "AWS::Events::EventBus",
                      lambda r: r["Properties"]["Name"] == "dpc-central")


def test_reconciler_may_put_events_on_the_central_bus(template: Any) -> None:
    statements = role_statements(template, "reconciler")
    buses = grants(statements, "events:PutEvents")
    assert buses[0] == {"Fn::GetAtt": [central_bus(template), "Arn"]}
    # ... and the members' pipeline buses, where its sweep re-sends triggers.
    assert all("event-bus/dpc-pipelines" in json.dumps(b) for b in buses[1:])
    _, props = function(template, "reconciler")
    assert props["Environment"]["Variables"]["DPC_CENTRAL_BUS"] == {"Ref": central_bus(template)}


def test_trigger_manager_sends_poison_to_its_queues_dead_letter_queue(template: Any) -> None:
    queue = logical_id(template, "AWS::SQS::Queue",
                       lambda r: r["Properties"].get("ContentBasedDeduplication") is True)
    dlq = resources(template, "AWS::SQS::Queue")[queue]["Properties"]["RedrivePolicy"][
        "deadLetterTargetArn"]["Fn::GetAtt"][0]
    _, props = function(template, "trigger_manager")
    assert props["Environment"]["Variables"]["DPC_POISON_DLQ_URL"] == {"Ref": dlq}
    assert {"Fn::GetAtt": [dlq, "Arn"]} in grants(role_statements(template, "trigger_manager"),
                                                  "sqs:SendMessage")


def test_execution_tracker_reads_the_run_log_and_writes_no_table(template: Any) -> None:
    runs = logical_id(template, "AWS::DynamoDB::Table",
                      lambda r: r["Properties"]["KeySchema"][0]["AttributeName"] == "arn")
    statements = role_statements(template, "execution_tracker")
    readable = json.dumps(grants(statements, "dynamodb:GetItem"))
    assert f'"{runs}"' in readable
    assert grants(statements, "dynamodb:PutItem") == []
    assert grants(statements, "dynamodb:UpdateItem") == []


def test_lambdas_get_the_store_table_names_from_the_environment(template: Any) -> None:
    fn = next(f for f in resources(template, "AWS::Lambda::Function").values()
          if f["Properties"]["Handler"].endswith("trigger_manager.handle"))
    env = fn["Properties"]["Environment"]["Variables"]
    for key in ("DPC_TABLE_REGISTRY", "DPC_TABLE_RUNS", "DPC_TABLE_WINDOWS", "DPC_CENTRAL_BUS"):
        assert key in env


def test_no_rule_routes_triggers_the_trigger_manager_puts_them_on_the_childs_bus(
        template: Any) -> None:
    """Delivery is PutEvents by bus ARN from the trigger manager (no rule per account, so
    no redeploy for a new account): its role may put dpc.trigger events on the
    dpc-pipelines bus of any organisation account and of the listed ones, nothing else."""
    rules = [r["Properties"] for r in resources(template, "AWS::Events::Rule").values()
             if r["Properties"].get("EventPattern", {}).get("source") == ["dpc.trigger"]]
    assert rules == []
    puts = [st for st in role_statements(template, "trigger_manager")
            if "events:PutEvents" in as_list(st["Action"]) and "Sid" in st
            and st["Sid"].startswith("PutTriggers")]
    org = next(st for st in puts if st["Sid"] == "PutTriggersOnOrganisationPipelineBuses")
    assert org["Condition"] == {"StringEquals": {"aws:ResourceOrgID": "o-abc123",
                                                 "events:source": ["dpc.trigger"]}}
    assert json.dumps(org["Resource"]).endswith(':*:event-bus/dpc-pipelines"]]}')
    listed = next(st for st in puts if st["Sid"] == "PutTriggersOnMemberPipelineBuses")
    assert all(f":{m}:event-bus/dpc-pipelines" in json.dumps(listed["Resource"])
               for m in MEMBERS)


def test_refused_triggers_are_retried_from_a_queue_then_dead_lettered_with_an_alarm(
        template: Any) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    _, props = function(template, "trigger_manager")
    env = props["Environment"]["Variables"]
    retry, dlq = env["DPC_DELIVERY_RETRY_URL"]["Ref"], env["DPC_DELIVERY_DLQ_URL"]["Ref"]
    redrive = queues[retry]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq, "Arn"]}
    # The trigger manager drains the retry queue and reports failures per message.
    mappings = [m["Properties"] for m in resources(
        template, "AWS::Lambda::EventSourceMapping").values()]
    assert any(m["EventSourceArn"] == {"Fn::GetAtt": [retry, "Arn"]}
               and m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings)
    statements = role_statements(template, "trigger_manager")
    assert {"Fn::GetAtt": [retry, "Arn"]} in grants(statements, "sqs:ChangeMessageVisibility")
    assert {"Fn::GetAtt": [dlq, "Arn"]} in grants(statements, "sqs:SendMessage")
    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()]
    assert any(a["MetricName"] == "ApproximateNumberOfMessagesVisible"
               and {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}
               in a["Dimensions"] and a["AlarmActions"] for a in alarms)
    # The reconciler's sweep delivers the same way.
    _, rec = function(template, "reconciler")
    assert rec["Environment"]["Variables"]["DPC_DELIVERY_RETRY_URL"] == {"Ref": retry}


def test_registration_api_requires_iam_auth_on_every_method(template: Any) -> None:
    methods = resources(template, "AWS::ApiGateway::Method")
    assert methods
    assert {m["Properties"]["AuthorizationType"] for m in methods.values()} == {"AWS_IAM"}
    api = next(iter(resources(template, "AWS::ApiGateway::RestApi").values()))
    conditions = json.dumps(api["Properties"]["Policy"])
    assert "aws:PrincipalOrgID" in conditions


def test_slack_token_lives_in_secrets_manager_and_the_poster_reads_it(template: Any) -> None:
    """dpc-notify-slack is installed: its dpc_central_constructs hook adds the poster, the
    token secret and the threads table (the central stack names no channel)."""
    template.resource_count_is("AWS::SecretsManager::Secret", 1)
    poster = next(f for f in resources(template, "AWS::Lambda::Function").values()
                  if f["Properties"]["Handler"] == "dpc_notify_slack.poster.handle")
    assert poster["Properties"]["FunctionName"] == "dpc-slack-poster"
    env = poster["Properties"]["Environment"]["Variables"]
    secret = next(iter(resources(template, "AWS::SecretsManager::Secret")))
    assert env["DPC_SLACK_SECRET_ARN"] == {"Ref": secret}
    threads = env["DPC_TABLE_SLACK_THREADS"]["Ref"]
    assert resources(template, "AWS::DynamoDB::Table")[threads]["Properties"]["KeySchema"] == [
        {"AttributeName": "executionArn", "KeyType": "HASH"}]
    # Pipeline topics of the member accounts may invoke it.
    permissions = [p["Properties"] for p in resources(template, "AWS::Lambda::Permission")
                   .values() if p["Properties"].get("Principal") == "sns.amazonaws.com"]
    assert sorted(p["SourceAccount"] for p in permissions if "SourceAccount" in p) == MEMBERS
    # ... and those of organisation accounts set up later: only dpc-* topics (the poster
    # checks that a note's topic is in the account it names).
    (org,) = [p for p in permissions if "SourceAccount" not in p]
    assert org["SourceArn"] == {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"},
                                                  f":sns:{REGION}:*:dpc-*"]]}
    assert all(json.dumps(p["SourceArn"]).endswith(':dpc-*"]]}') for p in permissions)


@pytest.mark.parametrize("handler", ["execution_tracker", "reconciler"])
def test_notices_may_go_to_pipeline_topics_of_any_organisation_account(
        template: Any, handler: str) -> None:
    """Accounts of the organisation not listed at setup get notifications without a
    central redeploy: wildcard account, limited by aws:ResourceOrgID (and SNS-only keys)."""
    by_sid = {st.get("Sid"): st for st in role_statements(template, handler)}
    sns_ = by_sid["PublishToOrganisationPipelineTopics"]
    assert sns_["Action"] == "sns:Publish"
    assert json.dumps(sns_["Resource"]).endswith(f':sns:{REGION}:*:dpc-*"]]}}')
    assert sns_["Condition"] == {"StringEquals": {"aws:ResourceOrgID": "o-abc123"}}
    kms = by_sid["EncryptForOrganisationPipelineTopics"]
    assert kms["Action"] == ["kms:GenerateDataKey*", "kms:Decrypt"]
    assert json.dumps(kms["Resource"]).endswith(f':kms:{REGION}:*:key/*"]]}}')
    assert kms["Condition"] == {"StringEquals": {
        "kms:ViaService": f"sns.{REGION}.amazonaws.com", "aws:ResourceOrgID": "o-abc123"}}
    # No grant on every account's topics without the organisation condition.
    for st in by_sid.values():
        if ":*:" in json.dumps(st.get("Resource")) and st["Action"] in (
                "sns:Publish", ["kms:GenerateDataKey*", "kms:Decrypt"]):
            assert "aws:ResourceOrgID" in json.dumps(st["Condition"]), st


def test_reconciler_may_assume_the_read_role_in_any_organisation_account(
        template: Any) -> None:
    """Accounts of the organisation not listed at setup are reconciled without a central
    redeploy: the role name in any account, limited by aws:ResourceOrgID; the listed
    accounts by ARN; no unconditioned wildcard."""
    assumes = [st for st in role_statements(template, "reconciler")
               if "sts:AssumeRole" in as_list(st["Action"])]
    by_sid = {st.get("Sid"): st for st in assumes}
    assert set(by_sid) == {"AssumeListedReadRoles", "AssumeOrganisationReadRoles"}
    org = by_sid["AssumeOrganisationReadRoles"]
    assert json.dumps(org["Resource"]).endswith(
        f':iam::*:role/dpc-central-reconciler-read-{REGION}"]]}}')
    assert org["Condition"] == {"StringEquals": {"aws:ResourceOrgID": "o-abc123"}}
    listed = json.dumps(by_sid["AssumeListedReadRoles"]["Resource"])
    assert all(f":iam::{m}:role/dpc-central-reconciler-read-{REGION}" in listed
               for m in MEMBERS)
    assert "Condition" not in by_sid["AssumeListedReadRoles"]


def test_reconciler_runs_on_a_schedule(template: Any) -> None:
    from aws_cdk.assertions import Match

    template.has_resource_properties("AWS::Events::Rule", {
        "ScheduleExpression": "rate(15 minutes)",
        "Targets": Match.array_with([Match.object_like({"DeadLetterConfig": Match.any_value()})]),
    })


def test_every_lambda_has_a_dead_letter_queue_and_an_errors_alarm(template: Any) -> None:
    functions = resources(template, "AWS::Lambda::Function")
    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()]
    error_alarms = [a for a in alarms if a.get("MetricName") == "Errors"]
    assert len(functions) == 5
    for fn in functions.values():
        assert "DeadLetterConfig" in fn["Properties"]
    assert len(error_alarms) == len(functions)


def test_every_dead_letter_queue_has_a_depth_alarm(template: Any) -> None:
    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()
              if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"]
    queues = resources(template, "AWS::SQS::Queue")
    work_queues = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert len(alarms) == len(queues) - len(work_queues)
    assert all(a["AlarmActions"] for a in alarms)


def test_every_async_rule_target_has_a_dead_letter_queue(template: Any) -> None:
    for rule in resources(template, "AWS::Events::Rule").values():
        for target in rule["Properties"]["Targets"]:
            assert "DeadLetterConfig" in target, rule


def test_queues_are_encrypted_and_tls_only(template: Any) -> None:
    for q in resources(template, "AWS::SQS::Queue").values():
        assert q["Properties"]["SqsManagedSseEnabled"] is True
    policies = json.dumps(resources(template, "AWS::SQS::QueuePolicy"))
    assert '"aws:SecureTransport": "false"' in policies


#: Actions that AWS offers only on "*" (no resource-level permissions), and why.
STAR_RESOURCE_ACTIONS = {
    "xray:PutTraceSegments", "xray:PutTelemetryRecords",  # X-Ray tracing of the Lambdas
    "xray:GetSamplingRules", "xray:GetSamplingTargets",
}


def iam_statements(template: Any) -> list[dict[str, Any]]:
    out = []
    for kind in ("AWS::IAM::Policy", "AWS::IAM::Role"):
        for res in template.find_resources(kind).values():
            docs = [res["Properties"].get("PolicyDocument")] + [
                p["PolicyDocument"] for p in res["Properties"].get("Policies", [])]
            for doc in filter(None, docs):
                out.extend(doc["Statement"])
    return out


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_role_may_do_anything_and_star_resources_are_justified(template: Any) -> None:
    for st in iam_statements(template):
        actions = as_list(st["Action"])
        assert "*" not in actions
        if "*" in as_list(st.get("Resource")):
            assert set(actions) <= STAR_RESOURCE_ACTIONS, st


def test_template_passes_cfn_lint(central: tuple[Any, Path]) -> None:
    from dpc_central.testing import cfn_lint

    assert cfn_lint(central[1]) == []


def test_execution_tracker_may_encrypt_for_member_topics_only_through_sns(template: Any) -> None:
    """A cross-account publisher to a topic with a customer key needs the key actions in
    its own identity policy (and the key policy; see test_cdk_pipeline)."""
    statements = role_statements(template, "execution_tracker")
    (kms,) = [st for st in statements if st.get("Sid") == "EncryptForPipelineTopics"]
    assert kms["Action"] == ["kms:GenerateDataKey*", "kms:Decrypt"]
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": f"sns.{REGION}.amazonaws.com"}}
    resources = json.dumps(kms["Resource"])
    assert all(f":kms:{REGION}:{m}:key/*" in resources for m in MEMBERS)
