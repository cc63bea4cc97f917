"""What a plugin may use of the central account: the one module plugins import.

Two halves:

* **at synth** — :class:`CentralContext`, the ``central`` argument of the
  ``dpc_central_constructs`` hook: the central stack's bus, alarms topic, member
  accounts, the engine's tables, and factories for a dpc Lambda (:meth:`function`) and a
  DynamoDB table with the house settings (:meth:`table`). Importing this half needs
  ``aws_cdk``, so it is imported inside the hook implementation.
* **in a Lambda** — :func:`client`, :func:`cached`, :func:`require_env`, :func:`emit`,
  :func:`store` (the engine's DynamoDB store: the registry, e.g. a pipeline's alert
  targets) and the notification wire format of the execution tracker
  (:data:`NOTE_ATTRIBUTE`, :func:`note_from_json`). No ``aws_cdk`` here.

A notification channel's central service (dpc-notify-slack's poster is one) is built
from these alone, so a third-party channel contributes its own exactly the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpc_central.handlers._common import cached, client, emit, require_env, store
from dpc_central.handlers.execution_tracker import NOTE_ATTRIBUTE, note_from_json

if TYPE_CHECKING:
    from dpc_central.common.function import DpcFunction

__all__ = ["NOTE_ATTRIBUTE", "CentralContext", "cached", "client", "emit", "note_from_json",
           "require_env", "store"]


@dataclass
class CentralContext:
    """The central stack as a plugin's constructs see it.

    Attributes: ``stack``, ``bus`` (the central bus), ``alarm_topic`` (every alarm
    notifies it), ``member_accounts`` (listed at setup; more may join through
    ``org_id``), ``org_id``, ``tables`` (``registry``, ``runs``, ``windows`` and
    ``environment``: the variables that open the store), ``code_dir`` and ``layers``
    (the Lambda asset with every installed plugin, and its dependency layers).
    """

    stack: Any
    bus: Any
    alarm_topic: Any
    member_accounts: tuple[str, ...]
    org_id: str | None
    tables: Any
    code_dir: Path
    layers: Sequence[Any] = ()

    def function(self, scope: Any, id: str, *, handler: str,
                 environment: Mapping[str, str] | None = None, description: str = "",
                 function_name: str | None = None, timeout_s: int = 60) -> DpcFunction:
        """A dpc Lambda running ``handler`` (``module.function`` inside an installed
        plugin): async DLQ, X-Ray, a log group kept a month, alarms on errors and on the
        DLQ to the alarms topic; the store's table names in its environment; reserved
        concurrency ``RESERVED["plugin"]`` (a cap: whatever reaches it from member
        accounts cannot take the account's pool from the trigger manager)."""
        from aws_cdk import Duration

        from dpc_central.central_account.concurrency import RESERVED
        from dpc_central.common.function import DpcFunction

        return DpcFunction(scope, id, handler=handler, code_dir=self.code_dir,
                           environment={**self.tables.environment, **(environment or {})},
                           description=description, alarm_topic=self.alarm_topic,
                           layers=self.layers, function_name=function_name,
                           timeout=Duration.seconds(timeout_s),
                           reserved_concurrency=RESERVED["plugin"])

    @property
    def event_source_max_concurrency(self) -> int:
        """The ``max_concurrency`` of an SQS event source of a :meth:`function`: its
        reserved concurrency, so the mapping is never throttled."""
        from dpc_central.central_account.concurrency import EVENT_SOURCE_MAX

        return EVENT_SOURCE_MAX["plugin"]

    def queue(self, scope: Any, id: str, *, queue_name: str, visibility_timeout_s: int) -> Any:
        """A standard SQS queue named ``queue_name``: SSE-SQS, TLS only, kept 4 days,
        a dead-letter queue after 5 receives with a depth alarm to the alarms topic."""
        from aws_cdk import Duration
        from aws_cdk import aws_sqs as sqs

        from dpc_central.common.function import alarm_on_queue_depth, dead_letter_queue

        dlq = dead_letter_queue(scope, f"{id}Dlq")
        alarm_on_queue_depth(scope, f"{id}DlqAlarm", queue=dlq, topic=self.alarm_topic)
        return sqs.Queue(scope, id, queue_name=queue_name,
                         encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                         retention_period=Duration.days(4),
                         visibility_timeout=Duration.seconds(visibility_timeout_s),
                         dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=5))

    def table(self, scope: Any, id: str, *, key: str) -> Any:
        """A DynamoDB table keyed by the string ``key``: on demand, encrypted,
        point-in-time recovery, retained when the stack goes."""
        from dpc_central.central_account.tables import store_table

        return store_table(scope, id, {
            "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"}]})
