"""The DynamoDB tables of the trigger engine's store (plugins add their own through
``dpc_central.plugin_api.CentralContext.table``)."""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER,
          "B": dynamodb.AttributeType.BINARY}


def _key(definition: dict[str, Any], schema: list[dict[str, str]], kind: str) -> Any:
    names = [k["AttributeName"] for k in schema if k["KeyType"] == kind]
    if not names:
        return None
    types = {a["AttributeName"]: a["AttributeType"] for a in definition["AttributeDefinitions"]}
    return dynamodb.Attribute(name=names[0], type=_TYPES[types[names[0]]])


def store_table(scope: Construct, id: str, definition: dict[str, Any]) -> dynamodb.Table:
    """A table from ``CreateTable``-style ``definition`` (keys, GSIs): on demand,
    encrypted, point-in-time recovery, retained with the stack."""
    table = dynamodb.Table(
        scope, id,
        partition_key=_key(definition, definition["KeySchema"], "HASH"),
        sort_key=_key(definition, definition["KeySchema"], "RANGE"),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True),
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        # The run log and claims are the product's memory: never dropped with the stack.
        removal_policy=RemovalPolicy.RETAIN,
    )
    _suppress_backup(table)
    for gsi in definition.get("GlobalSecondaryIndexes", []):
        table.add_global_secondary_index(
            index_name=gsi["IndexName"],
            partition_key=_key(definition, gsi["KeySchema"], "HASH"),
            sort_key=_key(definition, gsi["KeySchema"], "RANGE"),
            projection_type=dynamodb.ProjectionType[gsi["Projection"]["ProjectionType"]],
        )
    return table


class TriggerTables(Construct):
    """The store's tables, mirrored from :func:`dpc_core.stores.dynamodb.table_definitions`
    (the single source of keys and indexes).

    Attributes: ``registry``, ``runs``, ``windows`` and
    ``environment`` (the variables a Lambda needs to open the store).
    """

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        from dpc_central.conventions import (
            ENV_TABLE_REGISTRY,
            ENV_TABLE_RUNS,
            ENV_TABLE_WINDOWS,
        )
        from dpc_core.stores.dynamodb import DynamoTables, table_definitions

        # Names are left to CloudFormation; definitions are keyed by role, not by name.
        defs = table_definitions(DynamoTables("registry", "runs", "windows"))
        by_role = {d["TableName"]: d for d in defs}
        self.registry = store_table(self, "Registry", by_role["registry"])
        self.runs = store_table(self, "Runs", by_role["runs"])
        self.windows = store_table(self, "Windows", by_role["windows"])
        self.environment = {
            ENV_TABLE_REGISTRY: self.registry.table_name,
            ENV_TABLE_RUNS: self.runs.table_name,
            ENV_TABLE_WINDOWS: self.windows.table_name,
        }

    def grant_engine(self, grantee: Any) -> None:
        """Read/write on the store's three tables (the engine's needs)."""
        for t in (self.registry, self.runs, self.windows):
            t.grant_read_write_data(grantee)
        self.acknowledge_index_access(grantee)

    def acknowledge_index_access(self, grantee: Any) -> None:
        """CDK grants ``<table>/index/*`` with table access; the wildcard names the
        indexes of one table: the run log's ``by_pipeline`` and the windows'
        ``undelivered`` (the registry has none)."""
        from dpc_central.common.nag import logical_ref, suppress

        suppress(grantee, [("AwsSolutions-IAM5", "the grant covers the indexes of one "
                            "table (runs: by_pipeline; windows: undelivered), not other "
                            "tables",
                            [f"Resource::{logical_ref(t)}/index/*"
                             for t in (self.runs, self.windows)])])


def _suppress_backup(table: dynamodb.Table) -> None:
    # DDB4 (a warning) asks for AWS Backup; point-in-time recovery covers 35 days.
    from dpc_central.common.nag import suppress

    suppress(table, [("AwsSolutions-DDB4", "point-in-time recovery (35 days) is the backup; "
                      "an AWS Backup plan is the platform team's choice")])
