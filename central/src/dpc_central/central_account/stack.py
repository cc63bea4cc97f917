"""The central account's stack (``dpc setup-central-account``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from dpc_central.central_account.bus import CentralBus
from dpc_central.central_account.delivery import TriggerDelivery
from dpc_central.central_account.execution_tracker import ExecutionTracker
from dpc_central.central_account.plugin_functions import PluginConstructs, PluginFunctions
from dpc_central.central_account.reconciler import Reconciler
from dpc_central.central_account.registration_api import RegistrationApi
from dpc_central.central_account.tables import TriggerTables
from dpc_central.central_account.trigger_manager import TriggerManager
from dpc_central.common.alarms import allow_alarms_to_publish, subscription_dead_letters
from dpc_core.cdk_values import in_app


class _Shared(TypedDict):
    """What every Lambda-backed construct of the stack is given."""

    code_dir: Path
    alarm_topic: sns.ITopic
    layers: Sequence[lambda_.ILayerVersion]


class CentralStack(Stack):
    """Bus, trigger manager, tables, trigger delivery, registration API, reconciler,
    execution tracker, the alarms topic every alarm notifies, and whatever the installed
    plugins contribute (``dpc_lambda_handlers``, ``dpc_central_constructs``: e.g. the
    Slack service of dpc-notify-slack). ``registry``: the plugin registry (default: the
    installed plugins)."""

    def __init__(self, scope: Construct, id: str, *, org_id: str | None,
                 member_accounts: Sequence[str], code_dir: Path,
                 layer_arns: Sequence[str] = (), alarm_email: str | None = None,
                 plugin_handlers: Sequence[tuple[str, str]] = (), registry: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(scope, id, description="dpc central account", **kwargs)
        in_app(self, scope, kwargs.get("env"))
        members = sorted(set(member_accounts))
        layers = [lambda_.LayerVersion.from_layer_version_arn(self, f"Layer{i}", arn)
                  for i, arn in enumerate(layer_arns)]
        key = kms.Key(self, "AlarmsKey", enable_key_rotation=True,
                      description="dpc alarms topic")
        self.alarm_topic = sns.Topic(self, "Alarms", display_name="dpc alarms",
                                     master_key=key, enforce_ssl=True)
        # CloudWatch alarms publish to the encrypted topic.
        key.grant_encrypt_decrypt(iam.ServicePrincipal("cloudwatch.amazonaws.com"))
        allow_alarms_to_publish(self.alarm_topic)
        if alarm_email:
            from aws_cdk import aws_sns_subscriptions as subs

            self.alarm_topic.add_subscription(subs.EmailSubscription(alarm_email))
        self.bus = CentralBus(self, "CentralBus", org_id=org_id, member_accounts=members).bus
        self.tables = TriggerTables(self, "Tables")
        # `dpc lineage --central` finds the registry and run log through these outputs.
        for name, table in (("RegistryTable", self.tables.registry),
                            ("RunsTable", self.tables.runs),
                            ("WindowsTable", self.tables.windows)):
            CfnOutput(self, name, value=table.table_name)
        common = _Shared(code_dir=code_dir, alarm_topic=self.alarm_topic, layers=layers)
        # Triggers go straight to the child's pipeline bus (PutEvents by ARN): no rule per
        # account, so accounts set up later need no redeploy of this stack.
        self.delivery = TriggerDelivery(self, "Delivery", org_id=org_id, member_accounts=members,
                                        alarm_topic=self.alarm_topic)
        self.trigger_manager = TriggerManager(
            self, "TriggerManager", bus=self.bus, tables=self.tables, member_accounts=members,
            org_mode=bool(org_id), delivery=self.delivery, **common)
        self.registration = RegistrationApi(self, "Registration", tables=self.tables,
                                            org_id=org_id, member_accounts=members, **common)
        self.reconciler = Reconciler(self, "Reconciler", tables=self.tables,
                                     bus=self.bus, member_accounts=members,
                                     org_id=org_id, **common)
        # Its sweep re-sends unacknowledged triggers the same way.
        self.delivery.grant_deliver(self.reconciler.handler.function)
        self.tracker = ExecutionTracker(self, "ExecutionTracker", bus=self.bus,
                                        tables=self.tables, member_accounts=members,
                                        org_id=org_id, **common)
        # An alarm email that bounces is kept, not dropped.
        subscription_dead_letters(self, "AlarmSubscriptionsDlq", topic=self.alarm_topic,
                                  alarm_topic=self.alarm_topic)
        self.plugin_functions = PluginFunctions(self, "PluginHandlers", handlers=plugin_handlers,
                                                tables=self.tables, bus=self.bus, **common)
        from dpc_central.plugin_api import CentralContext
        from dpc_core.plugins import get_registry

        self.plugins = PluginConstructs(
            self, "Plugins", registry=registry if registry is not None else get_registry(),
            context=CentralContext(stack=self, bus=self.bus, alarm_topic=self.alarm_topic,
                                   member_accounts=tuple(members), org_id=org_id,
                                   tables=self.tables, code_dir=code_dir, layers=layers))
