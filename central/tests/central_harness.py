"""A small delivery harness for the cross-account flow on moto.

moto stands in for EventBridge, SQS, SNS, DynamoDB, Secrets Manager, STS and Step
Functions, but it does not deliver everything the real services do, so this harness
does it, *reading the rules and targets back through boto3* (``list_rules``,
``list_targets_by_rule``) and matching patterns with moto's own EventBridge pattern
matcher (``moto.events.models.EventPattern``):

* **bus → bus across accounts**: EventBridge keeps the sender's ``account`` on a
  forwarded event; moto re-stamps it with the receiving account, so the harness
  forwards events itself, unchanged;
* **PutEvents on another account's bus by ARN** (how the trigger manager delivers):
  moto drops the ARN's account and looks the bus up in the caller's own account, and it
  enforces no bus policy. :func:`cross_account_put_events` makes moto do what the
  EventBridge documentation says (PutEventsRequestEntry ``EventBusName``: "the name or
  ARN of the event bus"; "Permissions for event buses": a resource-based policy allows
  PutEvents from another account): the entry goes to the bus of the ARN's account, and
  is accepted (an ``EventId``) only when that bus exists and its policy allows the
  caller's account (and the event's ``source``, when the policy has that condition);
  otherwise the entry fails with ``AccessDeniedException``. What AWS answers exactly for
  a bus that does not exist in another account is not documented; the handler treats
  every refusal alike. Accepted events are recorded in :attr:`World.puts` for the test
  to route;
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
RETRY_QUEUE = "dpc-trigger-retry"
DELIVERY_DLQ = "dpc-trigger-dlq"
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
    #: Events put by ARN on another account's bus and accepted, not yet routed.
    puts: list[Delivery] = field(default_factory=list)
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
        # TriggerDelivery: the retry queue of refused triggers and its DLQ.
        self.urls["retry"] = sqs.create_queue(QueueName=RETRY_QUEUE)["QueueUrl"]
        self.urls["delivery-dlq"] = sqs.create_queue(QueueName=DELIVERY_DLQ)["QueueUrl"]
        bus = names.CENTRAL_BUS_NAME
        # TriggerManager: one status rule per member account, message group = account.
        for account in MEMBERS:
            self._rule(CENTRAL, bus, f"status-{account}", {
                "source": [names.SFN_SOURCE, names.RUN_STATUS_SOURCE],
                "detail-type": [names.SFN_DETAIL_TYPE, names.RUN_STATUS_DETAIL_TYPE],
                "account": [account]},
                [{"Id": "queue", "Arn": self._queue_arn(CENTRAL, STATUS_QUEUE),
                  "SqsParameters": {"MessageGroupId": account}}])
        # ExecutionTracker: run and step events → the tracker Lambda.
        self._rule(CENTRAL, bus, "run-events", {
            "source": [names.SFN_SOURCE, names.RUN_STATUS_SOURCE]},
            [{"Id": "tracker", "Arn": TRACKER_ARN}])
        # The test's tap: what the handlers put on the central bus (reports; a trigger
        # put there would be a bug: triggers go to the child's bus).
        self._rule(CENTRAL, bus, "test-tap-central", {
            "source": [names.TRIGGER_SOURCE, "dpc.trigger-manager"]},
            [{"Id": "tap", "Arn": self._queue_arn(CENTRAL, TAP_QUEUE)}])
        # Every member has run setup-user-account: its pipeline bus admits the central
        # account's trigger events.
        # (The fixture registers them with the API once the handlers' environment is set:
        # register_accounts.)
        for account in MEMBERS:
            self.set_up_account(account, register=False)
        if not members:
            return
        for account in MEMBERS:
            # The default bus's Step Functions events → central bus, as a team stack did
            # before its status forwarder (central still accepts aws.states; the
            # forwarder's path is tested in test_handler_status_forwarder.py and
            # test_handler_trigger_manager.py).
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

    def set_up_account(self, account: str, *, register: bool = True) -> None:
        """What ``dpc setup-user-account`` makes that delivery needs: the ``dpc-pipelines``
        bus with PipelineBus's resource policy (the central account may put
        ``dpc.trigger`` events), and (``register``) its ``Custom::DpcAccount`` record
        through the registration API."""
        self.client(account, "events").create_event_bus(Name=names.PIPELINE_BUS_NAME)
        self.admit_central(account)
        if register:
            self.register_accounts([account])

    def register_accounts(self, accounts: tuple[str, ...] | list[str] = MEMBERS) -> None:
        """``PUT /accounts/{account}`` by each account itself (its user-account stack)."""
        from dpc_central.handlers import registration

        for account in accounts:
            answer = registration.handle(account_event("PUT", account, account), None)
            assert answer["statusCode"] == 200, answer

    def admit_central(self, account: str) -> None:
        """PipelineBus's policy statement on ``account``'s pipeline bus."""
        bus_arn = self._bus_arn(account, names.PIPELINE_BUS_NAME)
        self.client(account, "events").put_permission(
            EventBusName=names.PIPELINE_BUS_NAME, Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Sid": "CentralAccountMayPutTriggers", "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{CENTRAL}:root"},
                "Action": "events:PutEvents", "Resource": bus_arn,
                "Condition": {"StringEquals": {"events:source": [names.TRIGGER_SOURCE]}}}]}))

    def refuse_central(self, account: str) -> None:
        """Drop the pipeline bus's policy: PutEvents from the central account is denied."""
        self.client(account, "events").remove_permission(
            EventBusName=names.PIPELINE_BUS_NAME, RemoveAllPermissions=True)

    def triggers(self) -> list[dict[str, Any]]:
        """Trigger events accepted by pipeline buses since the last call (not routed)."""
        taken = [p.event for p in self.puts if p.event.get("source") == names.TRIGGER_SOURCE]
        self.puts = [p for p in self.puts if p.event.get("source") != names.TRIGGER_SOURCE]
        return taken

    def route_puts(self) -> list[dict[str, Any]]:
        """Route every accepted cross-account put along its bus's rules; the events."""
        pending, self.puts = self.puts, []
        for put in pending:
            self.route(put.account, put.bus, put.event)
        return [p.event for p in pending]

    def handler_env(self) -> dict[str, str]:
        """The environment the central stack gives its Lambdas."""
        return {names.ENV_TABLE_REGISTRY: "dpc-registry", names.ENV_TABLE_RUNS: "dpc-runs",
                names.ENV_TABLE_WINDOWS: "dpc-windows",
                # The Slack service's (dpc-notify-slack's central construct).
                "DPC_TABLE_SLACK_THREADS": "dpc-slack-threads",
                names.ENV_CENTRAL_BUS: names.CENTRAL_BUS_NAME,
                "DPC_SLACK_SECRET_ARN": self.secret_arn,
                names.ENV_READ_ROLE_NAME: names.regional(names.RECONCILER_READ_ROLE, REGION),
                "DPC_POISON_DLQ_URL": self.urls["poison"],
                names.ENV_DELIVERY_RETRY_URL: self.urls["retry"],
                names.ENV_DELIVERY_DLQ_URL: self.urls["delivery-dlq"],
                # The first retry without the deployed 30 s delay (tests do not wait).
                "DPC_DELIVERY_FIRST_DELAY_S": "0",
                "AWS_REGION": REGION}

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

    def sqs_records(self, pipeline: str, account: str) -> list[dict[str, Any]]:
        """Messages published to a pipeline's topic, as the central notes queue hands
        them to the Slack poster (SNS → SQS → Lambda: the SNS message is the body)."""
        return [{"messageId": str(uuid.uuid4()), "receiptHandle": "r", "body": r["body"],
                 "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                 "eventSource": "aws:sqs",
                 "eventSourceARN": f"arn:aws:sqs:{REGION}:{CENTRAL}:dpc-slack-notes",
                 "awsRegion": REGION}
                for r in self.receive(account, self.urls[f"sns:{pipeline}"])]

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


def _policy_allows(policy: str | None, sender: str, source: str) -> bool:
    """Whether a bus policy lets ``sender`` put an event of ``source`` (the statement
    shapes PipelineBus writes: an account principal, optionally ``events:source``)."""
    if not policy:
        return False
    for st in json.loads(policy).get("Statement", []):
        actions = st.get("Action")
        actions = actions if isinstance(actions, list) else [actions]
        principal = st.get("Principal")
        principals = principal.get("AWS") if isinstance(principal, dict) else principal
        principals = principals if isinstance(principals, list) else [principals]
        sources = (st.get("Condition") or {}).get("StringEquals", {}).get("events:source")
        sources = sources if isinstance(sources, list) or sources is None else [sources]
        if st.get("Effect") == "Allow" and "events:PutEvents" in actions \
                and any(p in (sender, f"arn:aws:iam::{sender}:root") for p in principals) \
                and (sources is None or source in sources):
            return True
    return False


def cross_account_put_events(monkeypatch: Any, world: World) -> None:
    """PutEvents by bus ARN of another account, as EventBridge documents it (see the
    module doc); accepted events are appended to ``world.puts``."""
    from moto.events.models import EventsBackend, events_backends

    original = EventsBackend.put_events

    def put_events(self: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any] | None] = [None] * len(events)
        local = []
        for i, entry in enumerate(events):
            bus = str(entry.get("EventBusName") or "")
            parts = bus.split(":")
            if not (bus.startswith("arn:") and len(parts) > 5 and parts[4] != self.account_id):
                local.append(i)
                continue
            account, region, name = parts[4], parts[3], bus.split("/", 1)[1]
            target = events_backends[account][region].event_buses.get(name)
            if target is None or not _policy_allows(target.policy, self.account_id,
                                                    str(entry.get("Source"))):
                results[i] = {"ErrorCode": "AccessDeniedException", "ErrorMessage":
                              f"{self.account_id} is not authorized to put events on {bus}"}
                continue
            event_id = str(uuid.uuid4())
            results[i] = {"EventId": event_id}
            world.puts.append(Delivery(account, name, {
                "version": "0", "id": event_id, "detail-type": entry["DetailType"],
                "source": entry["Source"], "account": self.account_id,
                "time": "2026-11-26T05:00:00Z", "region": region,
                "resources": entry.get("Resources", []),
                "detail": json.loads(entry["Detail"])}))
        if local:
            for i, answer in zip(local, original(self, [events[i] for i in local]),
                                 strict=True):
                results[i] = answer
        return [r for r in results if r is not None]

    monkeypatch.setattr(EventsBackend, "put_events", put_events)


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


def account_event(method: str, account: str, caller: str) -> dict[str, Any]:
    """An API Gateway proxy event of ``/accounts/{account}`` (IAM auth)."""
    event = api_event(method, account, None, caller)
    event.update({"resource": "/accounts/{account}", "path": f"/accounts/{account}",
                  "pathParameters": {"account": account}})
    event["requestContext"]["resourcePath"] = "/accounts/{account}"
    return event


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
