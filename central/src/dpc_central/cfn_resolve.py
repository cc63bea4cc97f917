"""Resolve CloudFormation intrinsics of a synthesized template to concrete values for
test accounts: ``Ref`` of a resource → a fake physical id (its name property when it
has one), ``Fn::GetAtt Arn`` → the ARN built the way the resource type builds it,
``Fn::Join``/``Fn::Sub``/``Fn::Select``/``Fn::Split``, pseudo parameters and template
parameters (values given by the test).

Fake ids are deterministic per logical id, so a value resolved in one template (a
security group id in the team account's stack) equals the same value given to another
(the pipeline stack's SSM parameter).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any


def fake_id(logical_id: str, n: int = 8) -> str:
    """A stable hex id of a logical id."""
    return hashlib.sha256(logical_id.encode()).hexdigest()[:n]


class Resolver:
    """Intrinsic-function resolution of one template in one account and region."""

    def __init__(self, template: Mapping[str, Any], *, account: str, region: str,
                 parameters: Mapping[str, str] | None = None, partition: str = "aws",
                 stack_name: str = "stack") -> None:
        self.template = template
        self.resources: Mapping[str, Any] = template.get("Resources", {})
        self.account, self.region, self.partition = account, region, partition
        self.parameters = dict(parameters or {})
        self.stack_name = stack_name

    # -- names and ids ------------------------------------------------------------------

    def _props(self, lid: str) -> Mapping[str, Any]:
        props: Mapping[str, Any] = self.resources[lid].get("Properties", {})
        return props

    def _name(self, lid: str, *keys: str) -> str:
        props = self._props(lid)
        for key in keys:
            if key in props:
                return str(self.resolve(props[key]))
        return f"{self.stack_name}-{lid}-{fake_id(lid, 6)}".lower()

    def ref(self, lid: str) -> str:
        """What ``Ref`` returns for a resource, parameter or pseudo parameter."""
        pseudo = {"AWS::AccountId": self.account, "AWS::Region": self.region,
                  "AWS::Partition": self.partition, "AWS::URLSuffix": "amazonaws.com",
                  "AWS::StackName": self.stack_name, "AWS::NoValue": ""}
        if lid in pseudo:
            return pseudo[lid]
        if lid in self.template.get("Parameters", {}):
            if lid in self.parameters:
                return self.parameters[lid]
            default = self.template["Parameters"][lid].get("Default")
            if default is None:
                raise KeyError(f"parameter {lid} needs a value")
            return str(default)
        kind = self.resources[lid]["Type"]
        if kind in ("AWS::SNS::Topic", "AWS::StepFunctions::StateMachine",
                    "AWS::SecretsManager::Secret", "AWS::Events::Rule",
                    "AWS::CloudWatch::Alarm"):
            return self.arn(lid)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/" \
                   f"{self.arn(lid).rsplit(':', 1)[1]}"
        if kind == "AWS::KMS::Key":
            return self._uuid(lid)
        if kind == "AWS::EC2::SecurityGroup":
            return self.get_att(lid, "GroupId")
        if kind == "AWS::ApiGateway::RestApi":
            return fake_id(lid, 10)
        if kind == "AWS::ApiGateway::Stage":
            return self._name(lid, "StageName")
        if kind == "AWS::ApiGateway::Deployment":
            return fake_id(lid, 6)
        if kind == "AWS::SSM::Parameter":
            return self._name(lid, "Name")
        return self._name(lid, *_NAME_KEYS.get(kind, ()))

    def _uuid(self, lid: str) -> str:
        h = hashlib.sha256(lid.encode()).hexdigest()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

    def arn(self, lid: str) -> str:
        """The ARN of a resource, built as its type builds it."""
        kind = self.resources[lid]["Type"]
        p, r, a = self.partition, self.region, self.account
        props = self._props(lid)
        if kind == "AWS::SNS::Topic":
            return f"arn:{p}:sns:{r}:{a}:{self._name(lid, 'TopicName')}"
        if kind == "AWS::SQS::Queue":
            name = self._name(lid, "QueueName")
            if props.get("FifoQueue") and not name.endswith(".fifo"):
                name += ".fifo"
            return f"arn:{p}:sqs:{r}:{a}:{name}"
        if kind == "AWS::Lambda::Function":
            return f"arn:{p}:lambda:{r}:{a}:function:{self._name(lid, 'FunctionName')}"
        if kind == "AWS::IAM::Role":
            return f"arn:{p}:iam::{a}:role{props.get('Path', '/')}{self.ref(lid)}"
        if kind == "AWS::DynamoDB::Table":
            return f"arn:{p}:dynamodb:{r}:{a}:table/{self.ref(lid)}"
        if kind == "AWS::Events::EventBus":
            return f"arn:{p}:events:{r}:{a}:event-bus/{self._name(lid, 'Name')}"
        if kind == "AWS::Events::Rule":
            bus = str(self.resolve(props.get("EventBusName", "default")))
            bus = bus.rsplit("/", 1)[-1]
            name = self._name(lid, "Name")
            return f"arn:{p}:events:{r}:{a}:rule/{name}" if bus == "default" else \
                f"arn:{p}:events:{r}:{a}:rule/{bus}/{name}"
        if kind == "AWS::StepFunctions::StateMachine":
            return f"arn:{p}:states:{r}:{a}:stateMachine:" \
                   f"{self._name(lid, 'StateMachineName')}"
        if kind == "AWS::SecretsManager::Secret":
            return f"arn:{p}:secretsmanager:{r}:{a}:secret:{self._name(lid, 'Name')}-" \
                   f"{fake_id(lid, 6)}"
        if kind == "AWS::KMS::Key":
            return f"arn:{p}:kms:{r}:{a}:key/{self._uuid(lid)}"
        if kind == "AWS::S3::Bucket":
            return f"arn:{p}:s3:::{self.ref(lid)}"
        if kind == "AWS::Logs::LogGroup":
            return f"arn:{p}:logs:{r}:{a}:log-group:{self._name(lid, 'LogGroupName')}:*"
        if kind == "AWS::EC2::SecurityGroup":
            return f"arn:{p}:ec2:{r}:{a}:security-group/{self.get_att(lid, 'GroupId')}"
        if kind == "AWS::ApiGateway::RestApi":
            return f"arn:{p}:apigateway:{r}::/restapis/{self.ref(lid)}"
        if kind == "AWS::CloudWatch::Alarm":
            return f"arn:{p}:cloudwatch:{r}:{a}:alarm:{self._name(lid, 'AlarmName')}"
        if kind == "AWS::Lambda::LayerVersion":
            return f"arn:{p}:lambda:{r}:{a}:layer:{lid.lower()}:1"
        raise KeyError(f"no ARN rule for {kind} ({lid})")

    def get_att(self, lid: str, attr: str) -> str:
        """``Fn::GetAtt`` of the attributes dpc's templates use."""
        kind = self.resources[lid]["Type"]
        if attr == "Arn":
            return self.arn(lid)
        if kind == "AWS::EC2::SecurityGroup" and attr == "GroupId":
            return f"sg-{fake_id(lid, 17)}"
        if kind == "AWS::SQS::Queue" and attr == "QueueName":
            return self.arn(lid).rsplit(":", 1)[1]
        if kind == "AWS::SQS::Queue" and attr == "QueueUrl":
            return self.ref(lid)
        if kind == "AWS::SNS::Topic" and attr == "TopicName":
            return self.arn(lid).rsplit(":", 1)[1]
        if kind == "AWS::StepFunctions::StateMachine" and attr == "Name":
            return self.arn(lid).rsplit(":", 1)[1]
        if kind == "AWS::KMS::Key" and attr == "KeyId":
            return self._uuid(lid)
        if kind == "AWS::ApiGateway::RestApi" and attr == "RootResourceId":
            return fake_id(lid + "/", 10)
        if kind == "AWS::S3::Bucket" and attr == "RegionalDomainName":
            return f"{self.ref(lid)}.s3.{self.region}.amazonaws.com"
        if attr == "Name":
            return self.ref(lid)
        raise KeyError(f"no rule for Fn::GetAtt {lid}.{attr} ({kind})")

    # -- intrinsics ---------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function replaced by its concrete value."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                lid, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(lid, attr)
            if key == "Fn::Join":
                return arg[0].join(str(self.resolve(x)) for x in self.resolve(arg[1]))
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                return self._sub(text, self.resolve(variables))
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key == "Fn::Split":
                return str(self.resolve(arg[1])).split(arg[0])
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                lid, attr = name.split(".", 1)
                return self.get_att(lid, attr)
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolved_json(self, value: Any) -> str:
        """Shortcut for state machine definitions (a ``Fn::Join`` of JSON text)."""
        out = self.resolve(value)
        return out if isinstance(out, str) else json.dumps(out)


_NAME_KEYS: dict[str, tuple[str, ...]] = {
    "AWS::IAM::Role": ("RoleName",),
    "AWS::Lambda::Function": ("FunctionName",),
    "AWS::DynamoDB::Table": ("TableName",),
    "AWS::Events::EventBus": ("Name",),
    "AWS::S3::Bucket": ("BucketName",),
    "AWS::Logs::LogGroup": ("LogGroupName",),
    "AWS::IAM::InstanceProfile": ("InstanceProfileName",),
}
