"""The custom resource that registers the pipeline with the central API at deploy."""

from __future__ import annotations

from typing import Any

from aws_cdk import CustomResource
from constructs import Construct


class PipelineRegistration(Construct):
    """``Custom::DpcRegistration`` served by the account's registration provider: the
    pipeline's engine spec (condition, window, time zone, rerun), its alert channels and
    topic. Deleting the stack unregisters the pipeline. Attribute: ``resource``."""

    def __init__(self, scope: Construct, id: str, *, pipeline: Any, service_token: str,
                 topic_arn: str) -> None:
        super().__init__(scope, id)
        from dpc_central.handlers.registration_client import resource_properties

        self.resource = CustomResource(
            self, "Resource", service_token=service_token, resource_type="Custom::DpcRegistration",
            properties=resource_properties(pipeline, topic_arn))
