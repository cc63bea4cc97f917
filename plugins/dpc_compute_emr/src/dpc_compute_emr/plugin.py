"""``compute: {type: emr}``: a transient EMR cluster per run.

On AWS the state machine creates the cluster before the steps and terminates it
after them (and in the catch path). The local runtime runs steps on this machine.

In each team account (``dpc setup-user-account --vpc-id ... --subnet-id ...``) the
plugin adds what the runs share: roles, security groups, the cluster reaper
(:mod:`dpc_compute_emr.team`); before deploying it checks the subnet's EMR tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dpc_compute_emr.names import (
    EMR_MANAGED_TAG,
    INSTANCE_ROLE,
    SERVICE_ROLE,
    hive_service_role_name,
    regional,
)
from dpc_core import hookimpl
from dpc_core.types import AccountOption, AccountResource, ComputeConfig, ComputeType

DPC_PLUGIN_API = 1


_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$")
_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]{1,64}$")


class HiveMetastore(BaseModel):
    """An external Hive metastore: three Secrets Manager secrets (plaintext values), given
    by ARN. EMR reads them while it configures the cluster, so neither the URL, the user
    nor the password passes through the run's state or its logs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="ARN of the secret holding the JDBC URL")
    username: str = Field(description="ARN of the secret holding the user name")
    password: str = Field(description="ARN of the secret holding the password")
    kms_key: str | None = Field(
        default=None, alias="kmsKey",
        description="ARN of the customer managed KMS key the secrets are encrypted with "
                    "(required for secrets in another account)")

    @field_validator("url", "username", "password")
    @classmethod
    def _arn(cls, value: str) -> str:
        if not _SECRET_ARN.match(value):
            raise ValueError(f"{value!r} is not a Secrets Manager secret ARN "
                             "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-xxxxxx)")
        return value

    @field_validator("kms_key")
    @classmethod
    def _key_arn(cls, value: str | None) -> str | None:
        if value is not None and not _KEY_ARN.match(value):
            raise ValueError(f"{value!r} is not a KMS key ARN "
                             "(arn:aws:kms:REGION:ACCOUNT:key/KEY-ID)")
        return value


#: An EMR release label: ``emr-7.3.0``.
_RELEASE = re.compile(r"emr-(\d{1,3})\.(\d{1,3})\.(\d{1,3})")


class EmrCompute(ComputeConfig):
    """A transient EMR cluster, terminated after the run, after a failure, and by EMR
    itself once idle for ``idleTimeoutMinutes`` (a run that times out or is stopped)."""

    release_label: str = Field(default="emr-7.3.0", alias="releaseLabel")
    instance_type: str = Field(default="m5.xlarge", alias="instanceType")
    core_instance_count: int = Field(default=2, ge=0, le=100, alias="coreInstanceCount")
    subnet_id: str | None = Field(default=None, alias="subnetId")
    hive_metastore: HiveMetastore | None = Field(
        default=None, alias="hiveMetastore",
        description="secrets of an external Hive metastore, read by EMR into hive-site and "
                    "spark-hive-site")
    applications: list[str] = Field(default_factory=lambda: ["Spark", "Hadoop"])
    idle_timeout_minutes: int = Field(
        default=60, ge=1, le=10080, alias="idleTimeoutMinutes",
        description="EMR terminates the cluster after this long without work")
    run_timeout_minutes: int = Field(
        default=720, ge=10, le=525600, alias="runTimeoutMinutes",
        description="the run fails (and its state machine stops) after this long")
    step_timeout_minutes: int = Field(
        default=480, ge=1, alias="stepTimeoutMinutes",
        description="an EMR step that runs longer fails; the cluster is terminated")

    @field_validator("release_label")
    @classmethod
    def _with_auto_termination(cls, value: str) -> str:
        """Auto-termination, dpc's guard against a cluster its run left behind, exists
        from EMR 5.30.0 and 6.1.0 (Management Guide, "Using an auto-termination policy")."""
        m = _RELEASE.fullmatch(value)
        if m is None:
            raise ValueError(f"{value!r} is not an EMR release label (emr-MAJOR.MINOR.PATCH, "
                             "e.g. emr-7.3.0)")
        version = tuple(int(g) for g in m.groups())
        if version < (5, 30, 0) or (6, 0, 0) <= version < (6, 1, 0):
            raise ValueError(f"{value} has no auto-termination (EMR 5.30.0+, 6.1.0+ or 7.x), "
                             "which dpc relies on to end a cluster its run left behind; use "
                             "emr-7.3.0 or later")
        return value

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "hiveMetastoreSecret" in data:
            raise ValueError("hiveMetastoreSecret was replaced by hiveMetastore: {url, "
                             "username, password}, each the ARN of a plaintext secret (EMR "
                             "reads them; the password no longer passes through the run)")
        return data

    def _foreign_secrets(self, pipeline: Any) -> tuple[str, str] | None:
        """(secrets' account, their region) when they are not in the pipeline's account."""
        hive = self.hive_metastore
        if hive is None or not pipeline.account:
            return None
        parts = hive.url.split(":")
        return (parts[4], parts[3]) if parts[4] != pipeline.account else None

    def aws_problems(self, pipeline: Any) -> list[str]:
        """A secret in another account must be under a customer managed key, named here."""
        foreign = self._foreign_secrets(pipeline)
        if foreign is None or (self.hive_metastore and self.hive_metastore.kms_key):
            return []
        return [f"compute.hiveMetastore: the secrets are in account {foreign[0]}, not the "
                f"pipeline's ({pipeline.account}); a secret read from another account must "
                "be encrypted with a customer managed KMS key (the aws/secretsmanager key "
                "cannot be shared): name it in compute.hiveMetastore.kmsKey"]

    def aws_notes(self, pipeline: Any) -> list[str]:
        """For secrets in another account: the statements their owner must add to each
        secret's resource policy and to the key's policy (dpc grants the pipeline side)."""
        import json

        foreign = self._foreign_secrets(pipeline)
        hive = self.hive_metastore
        if foreign is None or hive is None:
            return []
        owner, region = foreign
        partition = hive.url.split(":")[1]
        role = (f"arn:{partition}:iam::{pipeline.account}:role/"
                f"{hive_service_role_name(pipeline.name, region)}")
        secret = {"Version": "2012-10-17", "Statement": [{
            "Sid": "DpcEmrReadsHiveMetastore", "Effect": "Allow",
            "Principal": {"AWS": role}, "Action": "secretsmanager:GetSecretValue",
            "Resource": "*"}]}
        notes = [f"the Hive metastore secrets are in account {owner}: EMR reads them with "
                 f"{role} (created by this pipeline's stack). Their owner must add this "
                 "resource policy to each of the three secrets (aws secretsmanager "
                 f"put-resource-policy --secret-id ARN --resource-policy ...):\n"
                 f"{json.dumps(secret, indent=2)}"]
        if hive.kms_key:
            key = {"Sid": "DpcEmrDecryptsHiveMetastore", "Effect": "Allow",
                   "Principal": {"AWS": role}, "Action": "kms:Decrypt", "Resource": "*",
                   "Condition": {"StringEquals": {
                       "kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}}}
            notes.append(f"and this statement to the policy of the key {hive.kms_key}:\n"
                         f"{json.dumps(key, indent=2)}")
        return notes

    @model_validator(mode="after")
    def _step_within_run(self) -> EmrCompute:
        if self.step_timeout_minutes >= self.run_timeout_minutes:
            raise ValueError("stepTimeoutMinutes must be shorter than runTimeoutMinutes, so "
                             "a stuck step fails the run through its catch path (which "
                             "terminates the cluster) before the run itself times out")
        return self


def _aws(ctx):  # type: ignore[no-untyped-def]
    from dpc_compute_emr.aws import emr_states

    return emr_states(ctx)


@hookimpl
def dpc_compute_types() -> Iterator[ComputeType]:
    """The ``emr`` compute type."""
    yield ComputeType(name="emr", config=EmrCompute, aws=_aws,
                      description="transient EMR cluster per run")


@hookimpl
def dpc_team_account_options() -> Iterator[AccountOption]:
    """``--vpc-id`` and ``--subnet-id`` of ``dpc setup-user-account``."""
    yield AccountOption(name="vpc-id", help="VPC of the EMR clusters",
                        cfn_type="AWS::EC2::VPC::Id")
    yield AccountOption(name="subnet-id", help="private subnet of the EMR clusters, tagged "
                        "for-use-with-amazon-emr-managed-policies=true",
                        cfn_type="AWS::EC2::Subnet::Id",
                        description="private subnet of the EMR clusters",
                        required_tags=(EMR_MANAGED_TAG,),
                        tags_reason="AmazonEMRServicePolicy_v2 launches clusters only in "
                                    "subnets with it")


@hookimpl
def dpc_team_account_resources(region: str, account: str) -> Iterator[AccountResource]:
    """What ``aws-calls.yaml`` calls ``member:emr-*``: the account's EMR roles (checked
    ``--as-deployed`` as EmrServiceRole/EmrInstanceRole), its clusters and groups."""
    for key, caller, role in (("emr-service-role", "EmrServiceRole", SERVICE_ROLE),
                              ("emr-instance-role", "EmrInstanceRole", INSTANCE_ROLE)):
        yield AccountResource(key=key, caller=caller,
                              arn=f"arn:aws:iam::{account}:role/{regional(role, region)}")
    yield AccountResource(key="emr-cluster", exact=False,
                          arn=f"arn:aws:elasticmapreduce:{region}:{account}:cluster/*")
    yield AccountResource(key="emr-security-group", exact=False,
                          arn=f"arn:aws:ec2:{region}:{account}:security-group/*")


@hookimpl
def dpc_team_account_preflight(options: Any, region: str | None) -> None:
    """The subnet exists, lies in the VPC and carries the tag EMR's service policy
    requires (an untagged subnet deploys, and every cluster fails at its first run)."""
    from dpc_compute_emr.subnet_check import check_emr_subnet

    check_emr_subnet(options.get("subnet-id") or "", vpc_id=options.get("vpc-id") or "",
                     region=region)


@hookimpl
def dpc_team_account_constructs(scope: Any, team: Any) -> None:
    """The account's EMR roles, security groups, their rules cleanup and the reaper."""
    from dpc_compute_emr.team import add_team_resources

    add_team_resources(scope, team)
