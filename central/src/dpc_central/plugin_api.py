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
  (:data:`NOTE_ATTRIBUTE`, :func:`note_from_json`), Step Functions' status events
  (:data:`SFN_SOURCE`, :data:`SFN_DETAIL_TYPE`) and :class:`DeployError` (a one-line
  error of ``setup-*``/``deploy``). No ``aws_cdk`` here.

A notification channel's central service (dpc-notify-slack's poster is one) is built
from these alone, so a third-party channel contributes its own exactly the same way.

For a team account (the ``dpc_team_account_constructs`` hook), :class:`TeamContext`,
and the constructs a compute backend builds its account resources from (imported on
first use, they need ``aws_cdk``): :data:`DpcFunction`, :data:`dead_letter_queue`,
:data:`alarm_on_queue_depth`, and the cdk-nag
helpers :data:`suppress`, :data:`bucket_grant_findings`, :data:`region_in_finding`,
:data:`logical_ref`, :data:`LAMBDA_BASICS`. dpc-compute-emr's roles, security groups
and cluster reaper are built from these alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpc_central.conventions import SFN_DETAIL_TYPE, SFN_SOURCE
from dpc_central.errors import DeployError
from dpc_central.handlers._common import cached, client, emit, require_env, store
from dpc_central.handlers.execution_tracker import NOTE_ATTRIBUTE, note_from_json

if TYPE_CHECKING:  # imported on first use (module __getattr__ below): they need aws_cdk
    from dpc_central.common.function import (
        DpcFunction,
        alarm_on_queue_depth,
        dead_letter_queue,
    )
    from dpc_central.common.nag import (
        LAMBDA_BASICS,
        bucket_grant_findings,
        logical_ref,
        region_in_finding,
        suppress,
    )

__all__ = ["LAMBDA_BASICS", "NOTE_ATTRIBUTE", "SFN_DETAIL_TYPE", "SFN_SOURCE", "CentralContext",
           "DeployError", "DpcFunction",
           "TeamContext", "alarm_on_queue_depth",
           "bucket_grant_findings", "cached", "client", "dead_letter_queue", "emit",
           "logical_ref", "note_from_json", "region_in_finding", "require_env", "store",
           "suppress"]

#: Synth-time names, imported from their module on first use (they import aws_cdk).
_LAZY = {
    "DpcFunction": "dpc_central.common.function",
    "dead_letter_queue": "dpc_central.common.function",
    "alarm_on_queue_depth": "dpc_central.common.function",
    "suppress": "dpc_central.common.nag",
    "bucket_grant_findings": "dpc_central.common.nag",
    "region_in_finding": "dpc_central.common.nag",
    "logical_ref": "dpc_central.common.nag",
    "LAMBDA_BASICS": "dpc_central.common.nag",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


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


@dataclass
class TeamContext:
    """A team account's stack as a plugin's constructs see it (``team`` of the
    ``dpc_team_account_constructs`` hook).

    Attributes: ``stack``, ``central_account``, ``artifacts`` (the account's bucket:
    scripts uploaded at deploy, logs), ``alarm_topic`` (alarms of the stack notify
    it), ``code_dir`` and ``layers`` (the Lambda asset with every installed plugin, and
    its dependency layers), ``options`` (the account options given on the command
    line, by name) and ``declared`` (every declared ``AccountOption``, by name).
    """

    stack: Any
    central_account: str
    artifacts: Any
    alarm_topic: Any
    code_dir: Path
    layers: Sequence[Any] = ()
    options: Mapping[str, str | None] = field(default_factory=dict)
    declared: Mapping[str, Any] = field(default_factory=dict)

    def option(self, name: str) -> str:
        """The value of the account option ``name`` given on the command line, else a
        CloudFormation parameter of its type (created once, logical id ``VpcId`` for
        ``vpc-id``) whose value is given at deploy."""
        value = self.options.get(name)
        if value:
            return value
        spec = self.declared.get(name)
        if spec is None:
            raise KeyError(f"no plugin declares the account option {name!r}")
        from aws_cdk import CfnParameter

        existing = self.stack.node.try_find_child(spec.parameter_id)
        param = existing or CfnParameter(self.stack, spec.parameter_id, type=spec.cfn_type,
                                         description=spec.description or spec.help)
        return str(param.value_as_string)

    def publish(self, name: str, value: str) -> Any:
        """An SSM parameter ``name`` (under ``/dpc/``) with ``value``, read by pipeline
        stacks at deploy."""
        from aws_cdk import aws_ssm as ssm

        if not name.startswith("/dpc/"):
            raise ValueError(f"SSM parameter {name!r}: dpc's parameters are under /dpc/")
        return ssm.StringParameter(self.stack, "Param" + name.replace("/", "-"),
                                   parameter_name=name, string_value=value)
