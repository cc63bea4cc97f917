"""The Slack poster (central account): pipeline notifications → one Slack thread per run.

Deployed by this plugin's ``dpc_central_constructs`` (:mod:`dpc_notify_slack.central`)
and built on :mod:`dpc_central.plugin_api` only, as any channel's central service is.

Invoked by the notes queue the pipelines' SNS topics deliver to (SQS records whose body
is the SNS message, the note as JSON in its message attribute ``dpc-notification``
written by the execution tracker; a ``SubscriptionConfirmation`` is confirmed), by an
SNS topic directly (``{"Records": [{"EventSource": "aws:sns", "Sns": {...}}]}``) or
with an EventBridge event whose ``detail`` is the note (``detail-type``
``dpc Notification``).

The channels are the pipeline's registered ``SLACK`` targets (from the registry, not from
the message). Posting is :class:`dpc_notify_slack.backend.SlackBackend`: the first
message of a run is its root, later ones reply in its thread, the final status updates
the root. The root of each run and channel is kept in DynamoDB (``executionArn`` →
``t#<channel>`` attributes), so every container finds the thread. A note delivered twice
(SNS and EventBridge are at-least-once) is posted once per channel: a conditional write
(``n#<channel>#<note>``) marks it first, and the mark is removed when posting fails so a
retry posts it.

The bot token is read from Secrets Manager once per container (a plain ``xoxb-...``
string, or JSON with ``token`` or ``SLACK_BOT_TOKEN``) and never logged.

Environment:

* ``DPC_SLACK_SECRET_ARN``: the secret holding the bot token;
* ``DPC_TABLE_SLACK_THREADS``: the threads table (hash key ``executionArn``);
* ``DPC_TABLE_REGISTRY``, ``DPC_TABLE_RUNS``, ``DPC_TABLE_WINDOWS``: the registry;
* ``DPC_SLACK_API_URL`` (optional): Slack Web API base URL (tests: a local fake);
* ``DPC_NOTIFY_TIMEOUT`` (optional): seconds per HTTP call, default 10.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dpc_central import plugin_api as common
from dpc_central.plugin_api import NOTE_ATTRIBUTE, note_from_json

if TYPE_CHECKING:
    from dpc_notify_slack.threads import ThreadRef

NOTIFICATION_DETAIL_TYPE = "dpc Notification"
ENV_SLACK_API_URL = "DPC_SLACK_API_URL"
#: Set by :class:`dpc_notify_slack.central.SlackService`.
ENV_SLACK_SECRET_ARN = "DPC_SLACK_SECRET_ARN"
ENV_TABLE_SLACK_THREADS = "DPC_TABLE_SLACK_THREADS"


class DynamoThreadStore:
    """:class:`dpc_notify_slack.threads.ThreadStore` on the Slack threads table."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def get(self, run_id: str, channel: str) -> ThreadRef | None:
        """The root of ``run_id`` in ``channel``, if any container posted it."""
        from dpc_notify_slack.threads import ThreadRef

        item = self.client.get_item(
            TableName=self.table, Key={"executionArn": {"S": run_id}},
            ProjectionExpression="#t", ExpressionAttributeNames={"#t": "t#" + channel},
            ConsistentRead=True).get("Item")
        if not item or "t#" + channel not in item:
            return None
        ref = item["t#" + channel]["M"]
        return ThreadRef(channel_id=ref["id"]["S"], ts=ref["ts"]["S"])

    def put(self, run_id: str, channel: str, ref: ThreadRef) -> None:
        """Remember the root of ``run_id`` in ``channel``."""
        self.client.update_item(
            TableName=self.table, Key={"executionArn": {"S": run_id}},
            UpdateExpression="SET #t = :ref",
            ExpressionAttributeNames={"#t": "t#" + channel},
            ExpressionAttributeValues={":ref": {"M": {"id": {"S": ref.channel_id},
                                                      "ts": {"S": ref.ts}}}})

    def mark(self, run_id: str, key: str) -> bool:
        """Mark a note as posted; False when it was marked before (a redelivery)."""
        try:
            self.client.update_item(
                TableName=self.table, Key={"executionArn": {"S": run_id}},
                UpdateExpression="SET #n = :now", ConditionExpression="attribute_not_exists(#n)",
                ExpressionAttributeNames={"#n": "n#" + key},
                ExpressionAttributeValues={":now": {"N": str(int(time.time()))}})
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") == \
                    "ConditionalCheckFailedException":
                return False
            raise
        return True

    def unmark(self, run_id: str, key: str) -> None:
        """Forget a mark (posting failed: let a retry post it)."""
        self.client.update_item(
            TableName=self.table, Key={"executionArn": {"S": run_id}},
            UpdateExpression="REMOVE #n", ExpressionAttributeNames={"#n": "n#" + key})


def bot_token() -> str:
    """The bot token from Secrets Manager, read once per container."""
    def read() -> str:
        arn = common.require_env(ENV_SLACK_SECRET_ARN)
        value = str(common.client("secretsmanager").get_secret_value(SecretId=arn)
                    .get("SecretString") or "").strip()
        if value.startswith("{"):
            try:
                data = json.loads(value)
            except ValueError:
                data = {}
            value = str(data.get("token") or data.get("SLACK_BOT_TOKEN") or "").strip()
        if not value:
            raise RuntimeError(f"the secret {arn} holds no Slack bot token")
        return value

    token: str = common.cached("slack-token", read)
    return token


def backend() -> Any:
    """The Slack backend (client with retries, DynamoDB threads), built once."""
    def build() -> Any:
        from slack_sdk import WebClient
        from slack_sdk.http_retry.builtin_handlers import (
            ConnectionErrorRetryHandler,
            RateLimitErrorRetryHandler,
            ServerErrorRetryHandler,
        )

        from dpc_notify_slack.backend import DEFAULT_API_URL, SlackBackend

        client = WebClient(
            token=bot_token(), base_url=os.environ.get(ENV_SLACK_API_URL) or DEFAULT_API_URL,
            timeout=int(os.environ.get("DPC_NOTIFY_TIMEOUT", "10")),
            retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2),
                            ConnectionErrorRetryHandler(max_retry_count=2),
                            ServerErrorRetryHandler(max_retry_count=2)])
        threads = DynamoThreadStore(common.client("dynamodb"),
                                    common.require_env(ENV_TABLE_SLACK_THREADS))
        return SlackBackend(client, threads)

    return common.cached("slack-backend", build)


def handle(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point.

    SQS records (the notes queue): each body is an SNS envelope; a record whose channels
    could not all be told is returned in ``batchItemFailures`` (SQS gives it again;
    channels already told are not told again). SNS records or one EventBridge event:
    raises when a channel could not be told (SNS/Lambda retries the delivery)."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if isinstance(records, list) and records and all(
            isinstance(r, Mapping) and r.get("eventSource") == "aws:sqs" for r in records):
        failures = []
        posted = 0
        for record in records:
            try:
                envelope = json.loads(str(record.get("body")))
            except ValueError:
                envelope = None
            if not isinstance(envelope, Mapping):
                common.emit(logging.WARNING, "slack-ignored", reason="body is no SNS message")
                continue
            try:
                if envelope.get("Type") == "SubscriptionConfirmation":
                    confirm_subscription(envelope)
                    continue
                count, problems = _post_notes([_note_of(envelope)])
                posted += count
            except Exception as exc:  # Slack or DynamoDB trouble: SQS gives it again
                problems = [f"{type(exc).__name__}: {exc}"]
            if problems:
                failures.append({"itemIdentifier": str(record.get("messageId", ""))})
                _log_problems(problems)
        return {"posted": posted, "batchItemFailures": failures}
    notes: list[tuple[str, str | None] | None] = []
    if isinstance(records, list):
        for record in records:
            sns = record.get("Sns") if isinstance(record, Mapping) else None
            notes.append(_note_of(sns) if isinstance(sns, Mapping) else None)
    elif isinstance(event, Mapping) and event.get("detail-type") == NOTIFICATION_DETAIL_TYPE \
            and isinstance(event.get("detail"), Mapping):
        notes.append((json.dumps(event["detail"]), None))
    else:
        common.emit(logging.WARNING, "slack-ignored", reason="not an SNS or notification event")
    posted, problems = _post_notes(notes)
    if problems:
        raise RuntimeError(_log_problems(problems))
    return {"posted": posted}


def _note_of(message: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """(note JSON, delivering topic) of an SNS message (a Lambda record's ``Sns`` or the
    envelope SNS puts in an SQS body: the same fields), or None."""
    attrs = message.get("MessageAttributes")
    attr = attrs.get(NOTE_ATTRIBUTE) if isinstance(attrs, Mapping) else None
    value = attr.get("Value") if isinstance(attr, Mapping) else None
    if not isinstance(value, str):
        common.emit(logging.WARNING, "slack-ignored",
                    reason=f"message without the {NOTE_ATTRIBUTE} attribute")
        return None
    return value, str(message.get("TopicArn") or "")


def _post_notes(notes: list[tuple[str, str | None] | None]) -> tuple[int, list[str]]:
    posted = 0
    problems: list[str] = []
    for item in notes:
        if item is None:
            continue
        text, topic = item
        try:
            note = note_from_json(text)
        except (TypeError, ValueError) as exc:
            common.emit(logging.WARNING, "slack-ignored", reason=f"bad note: {exc}")
            continue
        if topic is not None and not topic_may_speak_for(topic, note.account):
            # A topic speaks only for pipelines of its own account, which the registry
            # then must know (the queue admits dpc-* topics of every admitted account).
            common.emit(logging.WARNING, "slack-ignored", reason="topic of another account",
                        topic=topic, account=note.account, pipeline=note.pipeline)
            continue
        count, failed = post(note)
        posted += count
        problems.extend(failed)
    return posted, problems


def _log_problems(problems: list[str]) -> str:
    from dpc_core.notify import redact

    text = redact("Slack delivery failed: " + "; ".join(problems), [bot_token()])
    common.emit(logging.ERROR, "slack-failed", error=text)
    return text


#: Limits of the confirmation call (a GET to SNS answering a few hundred bytes).
CONFIRM_TIMEOUT_S = 10
CONFIRM_MAX_BYTES = 64 * 1024


def subscribe_url_ok(url: str, topic_arn: str) -> bool:
    """Whether ``url`` is SNS's confirmation link for ``topic_arn``: HTTPS to the SNS
    endpoint of the topic's Region (``sns.<region>.amazonaws.com``, ``.com.cn`` in
    China; ``AWS_ENDPOINT_URL_SNS`` when the SDK is pointed elsewhere),
    ``Action=ConfirmSubscription`` for that very topic. Anything else is not fetched."""
    from urllib.parse import parse_qs, urlsplit

    parts = topic_arn.split(":")
    if len(parts) != 6 or parts[2] != "sns" or not parts[5].startswith("dpc-"):
        return False
    try:
        link = urlsplit(url)
    except ValueError:
        return False
    override = os.environ.get("AWS_ENDPOINT_URL_SNS", "").strip()
    if override:
        allowed = urlsplit(override)
        place_ok = (link.scheme, link.netloc) == (allowed.scheme, allowed.netloc)
    else:
        suffix = "amazonaws.com.cn" if parts[1] == "aws-cn" else "amazonaws.com"
        place_ok = link.scheme == "https" and link.netloc == f"sns.{parts[3]}.{suffix}"
    query = parse_qs(link.query)
    return place_ok and query.get("Action") == ["ConfirmSubscription"] \
        and query.get("TopicArn") == [topic_arn] and bool(query.get("Token"))


def confirm_subscription(envelope: Mapping[str, Any]) -> None:
    """Confirm a pipeline topic's subscription of the notes queue: SNS sends the queue a
    ``SubscriptionConfirmation`` whose ``SubscribeURL`` the queue owner visits (Amazon
    SNS Developer Guide, "Sending Amazon SNS messages to an Amazon SQS queue in a
    different account"). Only a message the queue policy admitted gets here (a dpc-*
    topic of an admitted account), and only SNS's own link is fetched."""
    import urllib.request

    topic = str(envelope.get("TopicArn") or "")
    url = str(envelope.get("SubscribeURL") or "")
    if not subscribe_url_ok(url, topic):
        common.emit(logging.WARNING, "slack-ignored", reason="not SNS's confirmation link",
                    topic=topic)
        return
    with urllib.request.urlopen(url, timeout=CONFIRM_TIMEOUT_S) as answer:
        answer.read(CONFIRM_MAX_BYTES)
    common.emit(logging.INFO, "slack-subscription-confirmed", topic=topic)


def topic_may_speak_for(topic_arn: str, account: str) -> bool:
    """Whether the SNS topic that delivered a note may speak for ``account``'s pipelines:
    only a topic of that very account (``arn:aws:sns:<region>:<account>:<name>``)."""
    parts = topic_arn.split(":")
    return len(parts) == 6 and parts[2] == "sns" and parts[4] == str(account)


def post(note: Any) -> tuple[int, list[str]]:
    """Post one note to the pipeline's Slack channels; (messages posted, problems)."""
    spec = common.store().get_pipeline(f"{note.account}/{note.pipeline}")
    if spec is None:
        common.emit(logging.INFO, "slack-ignored", reason="pipeline not registered",
                    account=note.account, pipeline=note.pipeline)
        return 0, []
    targets = (spec.info.get("notifications") or {}).get("targets") or []
    addresses = [a for t in targets if str(t.get("channel", "")).upper() == "SLACK"
                 for a in t.get("addresses") or []]
    slack = backend()
    threads: DynamoThreadStore = slack.threads
    key = f"{note.kind}#{note.step or ''}#{note.status}"
    posted, problems = 0, []
    for address in dict.fromkeys(addresses):
        mark = f"{address}#{key}"
        if not threads.mark(note.run_id, mark):
            continue  # told before: a redelivered note
        try:
            slack.send(note, [address])
            posted += 1
        except Exception as exc:
            threads.unmark(note.run_id, mark)
            problems.append(f"{address}: {exc}")
    common.emit(logging.INFO, "slack-posted", run=note.run_id, kind=note.kind,
                channels=posted, failed=len(problems))
    return posted, problems
