"""A small delivery harness for the cross-account flow on moto.

moto stands in for EventBridge, SQS, SNS, DynamoDB, Secrets Manager, STS and Step
Functions, but it does not deliver everything the real services do, so this harness
does it, *reading the rules and targets back through boto3* (``list_rules``,
``list_targets_by_rule``) and matching patterns with moto's own EventBridge pattern
matcher (``moto.events.models.EventPattern``):

* **bus → bus across accounts**: EventBridge keeps the sender's ``account`` on a
  forwarded event; moto re-stamps it with the receiving account (and cannot put on
  another account's bus by ARN), so the harness forwards events itself, unchanged;
* **rule → SQS**: the harness sends the event to the target queue with the target's
  ``MessageGroupId`` (moto's FIFO queue then applies content-based deduplication);
* **SQS → Lambda**: the harness receives messages and invokes the handler with the
  SQS event shape (``Records`` with ``messageId``, ``body``, ``attributes``...);
* **rule → Lambda** and **SNS → Lambda**: recorded and invoked by the test
  (SNS → Lambda via an SQS subscription tap standing in for the Lambda subscription);
* **rule → Step Functions** (the idempotent starter of the pipeline stack, an Express
  state machine): the harness does what its one task does: ``StartExecution`` of the
  child with ``Name = detail.executionName`` and ``Input = detail.input``, an
  ``ExecutionAlreadyExists`` answer being success;
* **Step Functions status events**: moto emits none; the test builds them from
  ``DescribeExecution`` in the real shape and puts them on the account's default bus.

moto's own (partial) target delivery is switched off for every rule except the
test's observation points, rules named ``test-tap-*`` (an SQS queue receiving what the
handlers put on the central bus, which moto delivers itself): otherwise moto would
forward bus → bus with the wrong ``account`` and fail on Lambda and Step Functions
targets. Every product delivery is therefore the harness's, explicit and in order.

The rules' patterns mirror the CDK constructs (built from the same
:mod:`dpc_central.conventions` constants); the synthesized templates are checked by
the CDK tests, not here.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from dpc_central import conventions as names

REGION = "eu-west-1"
CENTRAL = "123456789012"  # moto's default account: the handlers' own credentials
A, B, C = "111111111111", "222222222222", "333333333333"
MEMBERS = (A, B, C)
CASE_STUDY = Path(__file__).resolve().parents[2] / "examples" / "seed"
SLACK_TOKEN = "xoxb-test-token-0123456789"
STATUS_QUEUE = "dpc-status.fifo"
TAP_QUEUE = "test-tap-central"
TRACKER_ARN = f"arn:aws:lambda:{REGION}:{CENTRAL}:function:dpc-execution-tracker"
SFN_ROLE = "arn:aws:iam::{account}:role/dpc-sfn"
_PASS = json.dumps({"StartAt": "Run", "States": {"Run": {"Type": "Pass", "End": True}}})


@dataclass
class Delivery:
    """One event arriving on one bus (what the harness routed)."""

    account: str
    bus: str
    event: dict[str, Any]


@dataclass
class World:
    """The central account and the member accounts on moto."""

    sessions: dict[str, Any] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    lambda_invocations: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    starts: list[dict[str, Any]] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    secret_arn: str = ""

    # -- accounts -----------------------------------------------------------------

    def session(self, account: str) -> Any:
        """A session in ``account``: assume_role into it (moto keys resources on it)."""
        if account not in self.sessions:
            if account == CENTRAL:
                self.sessions[account] = boto3.Session(region_name=REGION)
            else:
                creds = boto3.client("sts", region_name=REGION).assume_role(
                    RoleArn=f"arn:aws:iam::{account}:role/test-admin",
                    RoleSessionName="dpc-test")["Credentials"]
                self.sessions[account] = boto3.Session(
                    aws_access_key_id=creds["AccessKeyId"],
                    aws_secret_access_key=creds["SecretAccessKey"],
                    aws_session_token=creds["SessionToken"], region_name=REGION)
        return self.sessions[account]

    def client(self, account: str, service: str) -> Any:
        """A client of ``service`` in ``account``."""
        return self.session(account).client(service)

    # -- setup ----------------------------------------------------------------------

    def setup(self, members: bool = True) -> None:
        """Create what the central, user-account and pipeline stacks create (only the
        central account's resources when ``members`` is false: the unit tests)."""
        from dpc_core.stores.dynamodb import create_tables

        central_ev = self.client(CENTRAL, "events")
        ddb = self.client(CENTRAL, "dynamodb")
        create_tables(ddb, prefix="dpc-")
        ddb.create_table(TableName="dpc-slack-threads", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "executionArn", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "executionArn",
                                                "AttributeType": "S"}])
        self.secret_arn = self.client(CENTRAL, "secretsmanager").create_secret(
            Name="dpc-slack-bot-token", SecretString=SLACK_TOKEN)["ARN"]
        central_ev.create_event_bus(Name=names.CENTRAL_BUS_NAME)
        sqs = self.client(CENTRAL, "sqs")
        self.urls["status"] = sqs.create_queue(QueueName=STATUS_QUEUE, Attributes={
            "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
        self.urls["poison"] = sqs.create_queue(QueueName="dpc-poison.fifo", Attributes={
            "FifoQueue": "true"})["QueueUrl"]
        self.urls["tap"] = sqs.create_queue(QueueName=TAP_QUEUE)["QueueUrl"]
        bus = names.CENTRAL_BUS_NAME
        # TriggerManager: one status rule per member account, message group = account.
        for account in MEMBERS:
            self._rule(CENTRAL, bus, f"status-{account}", {
                "source": [names.SFN_SOURCE, names.RUN_STATUS_SOURCE],
                "detail-type": [names.SFN_DETAIL_TYPE, names.RUN_STATUS_DETAIL_TYPE],
                "account": [account]},
                [{"Id": "queue", "Arn": self._queue_arn(CENTRAL, STATUS_QUEUE),
                  "SqsParameters": {"MessageGroupId": account}}])
            # TargetedDelivery: trigger events for this account → its pipeline bus only.
            self._rule(CENTRAL, bus, f"to-{account}", {
                "source": [names.TRIGGER_SOURCE], "detail-type": [names.TRIGGER_DETAIL_TYPE],
                "detail": {"account": [account]}},
                [{"Id": "bus", "Arn": self._bus_arn(account, names.PIPELINE_BUS_NAME),
                  "RoleArn": f"arn:aws:iam::{CENTRAL}:role/dpc-delivery"}])
        # ExecutionTracker: run and step events → the tracker Lambda.
        self._rule(CENTRAL, bus, "run-events", {
            "source": [names.SFN_SOURCE, names.RUN_STATUS_SOURCE]},
            [{"Id": "tracker", "Arn": TRACKER_ARN}])
        # The test's tap: what the trigger manager puts on the central bus.
        self._rule(CENTRAL, bus, "test-tap-central", {
            "source": [names.TRIGGER_SOURCE, "dpc.trigger-manager"]},
            [{"Id": "tap", "Arn": self._queue_arn(CENTRAL, TAP_QUEUE)}])
        if not members:
            return
        for account in MEMBERS:
            ev = self.client(account, "events")
            ev.create_event_bus(Name=names.PIPELINE_BUS_NAME)
            # StatusForwarding: the default bus's Step Functions events → central bus.
            self._rule(account, "default", "dpc-status-forwarding", {
                "source": [names.SFN_SOURCE], "detail-type": [names.SFN_DETAIL_TYPE]},
                [{"Id": "central", "Arn": self._bus_arn(CENTRAL, bus),
                  "RoleArn": f"arn:aws:iam::{account}:role/dpc-forwarding"}])
        for pipeline in self.case_study():
            account = pipeline.account or ""
            sfn = self.client(account, "stepfunctions")
            sfn.create_state_machine(name=pipeline.name, definition=_PASS,
                                     roleArn=SFN_ROLE.format(account=account))
            if pipeline.trigger.executions is not None:
                starter = sfn.create_state_machine(
                    name=f"{pipeline.name}-starter", definition=_PASS, type="EXPRESS",
                    roleArn=SFN_ROLE.format(account=account))["stateMachineArn"]
                # ExecutionsTrigger: trigger events for this pipeline → its starter.
                self._rule(account, names.PIPELINE_BUS_NAME, f"trigger-{pipeline.name}", {
                    "source": [names.TRIGGER_SOURCE],
                    "detail-type": [names.TRIGGER_DETAIL_TYPE],
                    "detail": {"pipeline": [pipeline.name], "account": [account]}},
                    [{"Id": "starter", "Arn": starter, "InputPath": "$.detail",
                      "RoleArn": f"arn:aws:iam::{account}:role/dpc-trigger"}])
            # The pipeline's topic; an SQS subscription stands in for the Slack poster's
            # Lambda subscription (moto does not invoke Lambda).
            topic = self.client(account, "sns").create_topic(
                Name=f"dpc-{pipeline.name}")["TopicArn"]
            tap = self.client(account, "sqs").create_queue(
                QueueName=f"test-tap-sns-{pipeline.name}")["QueueUrl"]
            self.urls[f"sns:{pipeline.name}"] = tap
            self.client(account, "sns").subscribe(
                TopicArn=topic, Protocol="sqs",
                Endpoint=self._queue_arn(account, f"test-tap-sns-{pipeline.name}"))

    def handler_env(self) -> dict[str, str]:
        """The environment the central stack gives its Lambdas."""
        return {names.ENV_TABLE_REGISTRY: "dpc-registry", names.ENV_TABLE_RUNS: "dpc-runs",
                names.ENV_TABLE_WINDOWS: "dpc-windows",
                names.ENV_TABLE_SLACK_THREADS: "dpc-slack-threads",
                names.ENV_CENTRAL_BUS: names.CENTRAL_BUS_NAME,
                names.ENV_SLACK_SECRET_ARN: self.secret_arn,
                names.ENV_READ_ROLE_NAME: names.RECONCILER_READ_ROLE,
                "DPC_POISON_DLQ_URL": self.urls["poison"]}

    def _rule(self, account: str, bus: str, name: str, pattern: dict[str, Any],
              targets: list[dict[str, Any]]) -> None:
        ev = self.client(account, "events")
        ev.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
        ev.put_targets(Rule=name, EventBusName=bus, Targets=targets)

    @staticmethod
    def _bus_arn(account: str, bus: str) -> str:
        return f"arn:aws:events:{REGION}:{account}:event-bus/{bus}"

    @staticmethod
    def _queue_arn(account: str, name: str) -> str:
        return f"arn:aws:sqs:{REGION}:{account}:{name}"

    # -- the case study ---------------------------------------------------------------

    @staticmethod
    def case_study() -> list[Any]:
        """The case study's pipelines, validated."""
        from dpc_core.loader import load_pipelines
        from dpc_core.plugins import get_registry

        return load_pipelines([CASE_STUDY], require_account=True, check_refs=True,
                              registry=get_registry())

    # -- delivery -------------------------------------------------------------------------

    def put(self, account: str, event: dict[str, Any]) -> None:
        """``event`` happens on ``account``'s default bus (as Step Functions puts it)."""
        answer = self.client(account, "events").put_events(Entries=[{
            "Source": event["source"], "DetailType": event["detail-type"],
            "Detail": json.dumps(event["detail"]), "Resources": event.get("resources", [])}])
        assert answer["FailedEntryCount"] == 0, answer
        self.route(account, "default", event)

    def route(self, account: str, bus: str, event: dict[str, Any]) -> None:
        """Deliver ``event`` on ``bus`` of ``account`` along every matching rule."""
        from moto.events.models import EventPattern

        self.deliveries.append(Delivery(account, bus, event))
        ev = self.client(account, "events")
        for rule in ev.list_rules(EventBusName=bus)["Rules"]:
            if rule["Name"].startswith("test-tap-") or not rule.get("EventPattern"):
                continue
            if not EventPattern.load(rule["EventPattern"]).matches_event(event):
                continue
            for target in ev.list_targets_by_rule(Rule=rule["Name"],
                                                  EventBusName=bus)["Targets"]:
                self._deliver(target, event)

    def _deliver(self, target: dict[str, Any], event: dict[str, Any]) -> None:
        arn = target["Arn"]
        parts = arn.split(":")
        service, account = parts[2], parts[4]
        if service == "events":
            self.route(account, arn.split("/", 1)[1], event)
        elif service == "sqs":
            sqs = self.client(account, "sqs")
            url = sqs.get_queue_url(QueueName=parts[5])["QueueUrl"]
            kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": json.dumps(event)}
            group = target.get("SqsParameters", {}).get("MessageGroupId")
            if group:
                kwargs["MessageGroupId"] = group
            sqs.send_message(**kwargs)
        elif service == "lambda":
            self.lambda_invocations.append((arn, event))
        elif service == "states":
            self.start_idempotently(account, event["detail"] if target.get("InputPath") ==
                                    "$.detail" else event)
        else:  # pragma: no cover - a rule the harness does not know how to deliver
            raise AssertionError(f"no delivery for target {arn}")

    def start_idempotently(self, account: str, detail: dict[str, Any]) -> None:
        """What the pipeline stack's starter does with a trigger's ``detail``."""
        sfn = self.client(account, "stepfunctions")
        sm = f"arn:aws:states:{REGION}:{account}:stateMachine:{detail['pipeline']}"
        try:
            sfn.start_execution(stateMachineArn=sm, name=detail["executionName"],
                                input=json.dumps(detail["input"]))
            self.starts.append({"started": True, **detail})
        except sfn.exceptions.ExecutionAlreadyExists:
            self.starts.append({"started": False, **detail})

    # -- queues ---------------------------------------------------------------------------

    def receive(self, account: str, url: str, *, delete: bool = True) -> list[dict[str, Any]]:
        """Every message of a queue, as SQS Lambda records (``messageId``, ``body``...)."""
        sqs = self.client(account, "sqs")
        records: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                      AttributeNames=["All"], WaitTimeSeconds=0,
                                      VisibilityTimeout=0 if not delete else 30)
            messages = got.get("Messages", [])
            if not messages:
                return records
            for m in messages:
                records.append({
                    "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"], "attributes": m.get("Attributes", {}),
                    "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": f"arn:aws:sqs:{REGION}:{account}:{url.rsplit('/', 1)[1]}",
                    "awsRegion": REGION})
                if delete:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            if not delete:
                return records

    def tap(self) -> list[dict[str, Any]]:
        """What the handlers put on the central bus (trigger events, reports)."""
        return [json.loads(r["body"]) for r in self.receive(CENTRAL, self.urls["tap"])]

    def sns_records(self, pipeline: str, account: str) -> list[dict[str, Any]]:
        """Messages published to a pipeline's topic, as SNS → Lambda records."""
        out = []
        for r in self.receive(account, self.urls[f"sns:{pipeline}"]):
            envelope = json.loads(r["body"])
            out.append({"EventSource": "aws:sns", "EventVersion": "1.0",
                        "EventSubscriptionArn": f"{envelope['TopicArn']}:{uuid.uuid4()}",
                        "Sns": {"Type": envelope["Type"], "MessageId": envelope["MessageId"],
                                "TopicArn": envelope["TopicArn"],
                                "Subject": envelope.get("Subject"),
                                "Message": envelope["Message"],
                                "Timestamp": envelope["Timestamp"],
                                "SignatureVersion": "1", "Signature": "EXAMPLE",
                                "SigningCertUrl": "EXAMPLE", "UnsubscribeUrl": "EXAMPLE",
                                "MessageAttributes": envelope.get("MessageAttributes", {})}})
        return out


def only_taps_delivered_by_moto(monkeypatch: Any) -> None:
    """Let moto deliver to targets only for ``test-tap-*`` rules (see the module doc), for
    the duration of one test: ``monkeypatch`` undoes it, so other test modules get moto's
    own delivery back."""
    from moto.events.models import Rule

    original = Rule.send_to_targets

    def send_to_targets(self: Any, event: Any, transform_input: bool = True) -> None:
        if self.name.startswith("test-tap-"):
            original(self, event, transform_input)

    monkeypatch.setattr(Rule, "send_to_targets", send_to_targets)


def api_event(method: str, account: str, name: str | None, caller: str,
              body: Any = None) -> dict[str, Any]:
    """An API Gateway REST proxy event (AWS documentation sample shape, IAM auth)."""
    path = "/pipelines" + (f"/{account}/{name}" if name else "")
    return {
        "resource": "/pipelines/{account}/{name}" if name else "/pipelines",
        "path": path, "httpMethod": method,
        "headers": {"Content-Type": "application/json", "Host": "api.example.com"},
        "multiValueHeaders": {}, "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"account": account, "name": name} if name else None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "abc123", "resourcePath": "/pipelines/{account}/{name}",
            "httpMethod": method, "extendedRequestId": "x", "requestTime":
            "26/Nov/2026:03:00:00 +0000", "path": "/v1" + path, "accountId": CENTRAL,
            "protocol": "HTTP/1.1", "stage": "v1", "domainPrefix": "api",
            "requestTimeEpoch": 1795662000000, "requestId": str(uuid.uuid4()),
            "identity": {"cognitoIdentityPoolId": None, "accountId": caller,
                         "cognitoIdentityId": None,
                         "caller": "AROAEXAMPLE:dpc-registration",
                         "sourceIp": "10.0.0.1", "principalOrgId": "o-example",
                         "accessKey": "ASIAEXAMPLE", "cognitoAuthenticationType": None,
                         "cognitoAuthenticationProvider": None,
                         "userArn": f"arn:aws:sts::{caller}:assumed-role/dpc-registration/x",
                         "userAgent": "Boto3", "user": "AROAEXAMPLE:dpc-registration"},
            "domainName": "api.example.com", "apiId": "abcdef1234"},
        "body": body if body is None or isinstance(body, str) else json.dumps(body),
        "isBase64Encoded": False}


def registration_body(pipeline: Any, topic_arn: str | None = None) -> dict[str, Any]:
    """What a pipeline stack's registration sends for ``pipeline``."""
    from dpc_core.engine import spec_of

    spec = json.loads(spec_of(pipeline).to_json())
    body = {k: spec[k] for k in ("condition", "window", "timezone", "rerun", "info")}
    body["notifications"] = pipeline.notifications.model_dump(mode="json")
    if topic_arn:
        body["topicArn"] = topic_arn
    return body


def register_case_study(world: World) -> None:
    """Register the four pipelines, each by its own account."""
    from dpc_central.handlers import registration

    for p in world.case_study():
        account = p.account or ""
        topic = f"arn:aws:sns:{REGION}:{account}:dpc-{p.name}"
        answer = registration.handle(api_event("PUT", account, p.name, account,
                                               registration_body(p, topic)), None)
        assert answer["statusCode"] == 200, answer


def events_of(name: str) -> list[dict[str, Any]]:
    """The status events of a case-study scenario file, in delivery order."""
    lines = (CASE_STUDY / "events" / name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]
