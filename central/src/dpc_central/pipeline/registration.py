"""The custom resource that registers the pipeline with the central API at deploy."""

from __future__ import annotations

import json
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
        from dpc_core.engine import spec_of

        spec = spec_of(pipeline)
        self.resource = CustomResource(
            self, "Resource", service_token=service_token, resource_type="Custom::DpcRegistration",
            properties={
                "Pipeline": pipeline.name,
                "Spec": spec.to_json(),
                "NotificationType": pipeline.notifications.type.value,
                "AlertChannels": json.dumps([
                    {"channel": t.channel, "addresses": list(t.addresses)}
                    for t in pipeline.notifications.targets]),
                "TopicArn": topic_arn,
            })
