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
                assert set(pattern["source"]) == {"aws.states", "dpc.states", "dpc.pipeline"}
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
    dpc-pipelines bus of any account (the bus's own policy admits the central account),
    in one statement, with no aws:ResourceOrgID (EventBridge does not supply it)."""
    rules = [r["Properties"] for r in resources(template, "AWS::Events::Rule").values()
             if r["Properties"].get("EventPattern", {}).get("source") == ["dpc.trigger"]]
    assert rules == []
    for handler in ("trigger_manager", "reconciler"):
        puts = [st for st in role_statements(template, handler)
                if "events:PutEvents" in as_list(st["Action"])
                and "dpc-pipelines" in json.dumps(st["Resource"])]
        assert len(puts) == 1, puts
        (put,) = puts
        assert put["Condition"] == {"StringEquals": {"events:source": ["dpc.trigger"]}}
        assert json.dumps(put["Resource"]).endswith(':*:event-bus/dpc-pipelines"]]}')
    assert "aws:ResourceOrgID" not in json.dumps(
        [st for st in iam_statements(template) if "events:" in json.dumps(st["Action"])])


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
    # Pipeline topics deliver to the notes queue the poster consumes; no function
    # permission admits SNS (a Lambda permission takes one SourceArn/SourceAccount: a
    # statement per account, and W1032 refuses an account field "*").
    assert [p for p in resources(template, "AWS::Lambda::Permission").values()
            if p["Properties"].get("Principal") == "sns.amazonaws.com"] == []
    queues = resources(template, "AWS::SQS::Queue")
    notes = next(k for k, q in queues.items()
                 if q["Properties"].get("QueueName") == "dpc-slack-notes")
    mappings = [m["Properties"] for m in resources(
        template, "AWS::Lambda::EventSourceMapping").values()]
    assert any(m["EventSourceArn"] == {"Fn::GetAtt": [notes, "Arn"]}
               and m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings)
    assert "RedrivePolicy" in queues[notes]["Properties"]
    allows = [st for p in resources(template, "AWS::SQS::QueuePolicy").values()
              for st in p["Properties"]["PolicyDocument"]["Statement"]
              if st["Effect"] == "Allow" and st["Resource"] == {"Fn::GetAtt": [notes, "Arn"]}]
    by_sid = {st["Sid"]: st for st in allows}
    assert set(by_sid) == {"PipelineTopicsOfListedAccounts", "PipelineTopicsOfTheOrganisation"}
    for st in allows:
        assert st["Principal"] == {"Service": "sns.amazonaws.com"}
        assert st["Action"] == "sqs:SendMessage"
        assert st["Condition"]["ArnLike"]["aws:SourceArn"] == {"Fn::Join": ["", [
            "arn:", {"Ref": "AWS::Partition"}, f":sns:{REGION}:*:dpc-*"]]}
    assert by_sid["PipelineTopicsOfListedAccounts"]["Condition"]["StringEquals"] == {
        "aws:SourceAccount": MEMBERS}
    assert by_sid["PipelineTopicsOfTheOrganisation"]["Condition"]["StringEquals"] == {
        "aws:SourceOrgID": "o-abc123"}


def test_no_function_permission_names_an_account_wildcard(template: Any) -> None:
    """AddPermission (and CloudFormation's schema; cfn-lint W1032) takes a SourceArn whose
    account is 12 digits or empty: "*" would not deploy, and would admit every account."""
    for p in resources(template, "AWS::Lambda::Permission").values():
        arn = json.dumps(p["Properties"].get("SourceArn", ""))
        assert ":*:" not in arn, arn


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
    # No grant on every account's topics without the organisation's or the listed
    # accounts' condition.
    for st in by_sid.values():
        if ":*:" in json.dumps(st.get("Resource")) and st["Action"] in (
                "sns:Publish", ["kms:GenerateDataKey*", "kms:Decrypt"]):
            keys = set(st["Condition"]["StringEquals"])
            assert keys & {"aws:ResourceOrgID", "aws:ResourceAccount"}, st


def test_reconciler_may_assume_the_read_role_in_any_organisation_account(
        template: Any) -> None:
    """Accounts of the organisation not listed at setup are reconciled without a central
    redeploy: the role name in any account, limited by aws:ResourceOrgID; the listed
    accounts by aws:ResourceAccount (one ARN per account outgrew IAM's managed-policy size
    at 85 accounts); no unconditioned wildcard."""
    assumes = [st for st in role_statements(template, "reconciler")
               if "sts:AssumeRole" in as_list(st["Action"])]
    by_sid = {st.get("Sid"): st for st in assumes}
    assert set(by_sid) == {"AssumeListedReadRoles", "AssumeOrganisationReadRoles"}
    org = by_sid["AssumeOrganisationReadRoles"]
    assert json.dumps(org["Resource"]).endswith(
        f':iam::*:role/dpc-central-reconciler-read-{REGION}"]]}}')
    assert org["Condition"] == {"StringEquals": {"aws:ResourceOrgID": "o-abc123"}}
    listed = by_sid["AssumeListedReadRoles"]
    assert json.dumps(listed["Resource"]).endswith(
        f':iam::*:role/dpc-central-reconciler-read-{REGION}"]]}}')
    assert listed["Condition"] == {"StringEquals": {"aws:ResourceAccount": MEMBERS}}


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


def test_template_has_no_source_arn_cloudformation_would_refuse(
        central: tuple[Any, Path]) -> None:
    """cfn-lint W1032 (a pattern of the resource schema: a Lambda permission's SourceArn
    account must be 12 digits or empty) is a warning to cfn-lint and an error to
    CloudFormation."""
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(central[1], config=ManualArgs(regions=[REGION]))
    assert [f"{m.rule.id}: {m.message}" for m in matches if m.rule.id == "W1032"] == []


def test_execution_tracker_may_encrypt_for_member_topics_only_through_sns(template: Any) -> None:
    """A cross-account publisher to a topic with a customer key needs the key actions in
    its own identity policy (and the key policy; see test_cdk_pipeline)."""
    statements = role_statements(template, "execution_tracker")
    (kms,) = [st for st in statements if st.get("Sid") == "EncryptForPipelineTopics"]
    assert kms["Action"] == ["kms:GenerateDataKey*", "kms:Decrypt"]
    assert kms["Condition"] == {"StringEquals": {
        "kms:ViaService": f"sns.{REGION}.amazonaws.com", "aws:ResourceAccount": MEMBERS}}
    assert json.dumps(kms["Resource"]).endswith(f':kms:{REGION}:*:key/*"]]}}')
    (sns_,) = [st for st in statements if st.get("Sid") == "PublishToPipelineTopics"]
    assert sns_["Condition"] == {"StringEquals": {"aws:ResourceAccount": MEMBERS}}
    assert json.dumps(sns_["Resource"]).endswith(f':sns:{REGION}:*:dpc-*"]]}}')


# -- scale: 100 member accounts and an organisation --------------------------------------

#: SQS: 20 statements and 8,192 bytes per queue policy (Amazon SQS Developer Guide,
#: "Amazon SQS policy quotas"); Lambda: a function's resource-based policy at most 20 KB
#: (AWS Lambda Developer Guide, "Lambda quotas").
SQS_POLICY_STATEMENTS, SQS_POLICY_BYTES, LAMBDA_POLICY_BYTES = 20, 8192, 20 * 1024
MANY = [f"{100000000000 + i:012d}" for i in range(100)]


def _flat(value: Any) -> Any:
    """A template value with its intrinsics replaced by strings as long as what
    CloudFormation puts there (ids, names: 64 characters), for policy sizes."""
    if isinstance(value, list):
        return [_flat(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(str(_flat(p)) for p in parts)
    if "Ref" in value:
        return {"AWS::Partition": "aws", "AWS::Region": REGION,
                "AWS::AccountId": "999999999999", "AWS::URLSuffix": "amazonaws.com"}.get(
            value["Ref"], "x" * 64)
    if "Fn::GetAtt" in value:
        return f"arn:aws:service:{REGION}:999999999999:{'x' * 64}"
    return {k: _flat(v) for k, v in value.items()}


@pytest.fixture(scope="module")
def many_members(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Central with 100 listed member accounts and the organisation (the seed's scale)."""
    from dpc_central.app import CENTRAL_STACK, central_app

    out = tmp_path_factory.mktemp("central100") / "cdk.out"
    central_app(outdir=out, org_id="o-abc123", member_accounts=MANY,
                account="999999999999", region=REGION).synth()
    template: dict[str, Any] = json.loads((out / f"{CENTRAL_STACK}.template.json").read_text())
    return template


def test_central_with_100_member_accounts_keeps_every_queue_policy_within_sqs_quotas(
        many_members: dict[str, Any]) -> None:
    policies = [r["Properties"]["PolicyDocument"] for r in many_members["Resources"].values()
                if r["Type"] == "AWS::SQS::QueuePolicy"]
    assert policies
    for doc in policies:
        size = len(json.dumps(_flat(doc), separators=(",", ":")))
        assert len(doc["Statement"]) <= SQS_POLICY_STATEMENTS, doc["Statement"][:3]
        assert size <= SQS_POLICY_BYTES, size


def test_central_with_100_member_accounts_keeps_every_function_policy_within_20_kb(
        many_members: dict[str, Any]) -> None:
    """Each AWS::Lambda::Permission is one statement of the function's policy (Sid: the
    permission's physical id, up to 100 characters)."""
    per_function: dict[str, list[dict[str, Any]]] = {}
    for res in many_members["Resources"].values():
        if res["Type"] != "AWS::Lambda::Permission":
            continue
        p = _flat(res["Properties"])
        cond: dict[str, Any] = {}
        if "SourceArn" in p:
            cond["ArnLike"] = {"AWS:SourceArn": p["SourceArn"]}
        if "SourceAccount" in p:
            cond["StringEquals"] = {"AWS:SourceAccount": p["SourceAccount"]}
        per_function.setdefault(json.dumps(res["Properties"]["FunctionName"]), []).append({
            "Sid": "x" * 100, "Effect": "Allow", "Principal": {"Service": p["Principal"]},
            "Action": p["Action"], "Resource": p["FunctionName"], "Condition": cond})
    for function_name, statements in per_function.items():
        size = len(json.dumps({"Version": "2012-10-17", "Id": "default",
                               "Statement": statements}, separators=(",", ":")))
        assert size <= LAMBDA_POLICY_BYTES, (function_name, len(statements), size)


def test_status_rules_share_one_queue_statement_whatever_the_number_of_accounts(
        template: Any, many_members: dict[str, Any]) -> None:
    """One rule per listed account, but one statement in the status queue's policy and
    one in the rule DLQ's: any rule of the central bus (aws:SourceArn, which EventBridge
    supplies as the rule's ARN)."""
    from aws_cdk.assertions import Template

    for tpl, members in ((template, MEMBERS), (Template.from_json(many_members), MANY)):
        rules = [r for r in resources(tpl, "AWS::Events::Rule").values()
                 if "SqsParameters" in json.dumps(r["Properties"].get("Targets", []))]
        assert len(rules) == len(members) + 1  # + the organisation's other accounts
        queues = {json.dumps(t["Arn"]) for r in rules for t in r["Properties"]["Targets"]} | \
            {json.dumps(t["DeadLetterConfig"]["Arn"]) for r in rules
             for t in r["Properties"]["Targets"]}
        assert len(queues) == 2
        allows = [st for p in resources(tpl, "AWS::SQS::QueuePolicy").values()
                  for st in p["Properties"]["PolicyDocument"]["Statement"]
                  if st["Effect"] == "Allow" and json.dumps(st["Resource"]) in queues]
        assert len(allows) == 2, allows
        for st in allows:
            assert st["Principal"] == {"Service": "events.amazonaws.com"}
            assert st["Action"] == "sqs:SendMessage"
            arn = json.dumps(st["Condition"]["ArnLike"]["aws:SourceArn"])
            assert ":999999999999:rule/" in arn and arn.endswith('/*"]]}'), arn


def test_reserved_concurrency_guarantees_the_trigger_manager_and_leaves_100_unreserved(
        template: Any) -> None:
    """Lambda keeps 100 concurrent executions unreserved and defaults to 1,000 per
    account (Lambda Developer Guide, "Configuring reserved concurrency", "Lambda quotas");
    every central function has a reservation (a cap on a flood), the trigger manager the
    largest (its guarantee)."""
    from dpc_central.central_account.concurrency import (
        DEFAULT_ACCOUNT_CONCURRENCY,
        UNRESERVED_MINIMUM,
    )

    functions = resources(template, "AWS::Lambda::Function")
    reserved = {f["Properties"]["Handler"]: f["Properties"].get("ReservedConcurrentExecutions")
                for f in functions.values()}
    # dpc's functions (CDK's own custom-resource handlers run only at deploy).
    missing = [h for h, n in reserved.items() if n is None and h.startswith("dpc_")]
    assert missing == []
    assert sum(n for n in reserved.values() if n) <= \
        DEFAULT_ACCOUNT_CONCURRENCY - UNRESERVED_MINIMUM
    tm = reserved["dpc_central.handlers.trigger_manager.handle"]
    assert tm == max(n for n in reserved.values() if n)


def test_the_trigger_manager_regroups_other_accounts_on_its_own_queue(template: Any) -> None:
    _, props = function(template, "trigger_manager")
    env = props["Environment"]["Variables"]
    queues = resources(template, "AWS::SQS::Queue")
    status = env["DPC_STATUS_QUEUE_URL"]["Ref"]
    assert queues[status]["Properties"].get("FifoQueue")
    assert {"Fn::GetAtt": [status, "Arn"]} in grants(role_statements(template,
                                                                     "trigger_manager"),
                                                     "sqs:SendMessage")


def test_sqs_event_sources_never_poll_beyond_their_functions_reservation(
        template: Any) -> None:
    """A throttled SQS batch goes back to the queue and counts as a receive (toward the
    DLQ after 5): each function's mappings together stay within its reservation
    (ScalingConfig.MaximumConcurrency)."""
    functions = resources(template, "AWS::Lambda::Function")
    queues = resources(template, "AWS::SQS::Queue")
    per_function: dict[str, int] = {}
    for m in resources(template, "AWS::Lambda::EventSourceMapping").values():
        props = m["Properties"]
        if props["EventSourceArn"]["Fn::GetAtt"][0] not in queues:
            continue
        fn = props["FunctionName"]["Ref"]
        per_function[fn] = per_function.get(fn, 0) + props["ScalingConfig"]["MaximumConcurrency"]
    assert len(per_function) >= 2  # the trigger manager and the Slack poster
    for fn, total in per_function.items():
        assert total <= functions[fn]["Properties"]["ReservedConcurrentExecutions"], fn
