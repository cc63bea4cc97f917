"""The artifacts and logs bucket of an account's pipelines."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from dpc_central.common.nag import suppress


class ArtifactsBucket(Construct):
    """Scripts uploaded at deploy and the logs of the compute plugins: encrypted
    (S3-managed keys), TLS-only, versioned, public access blocked; server access logs go
    to a second bucket. A compute plugin adds the expiry of its own logs
    (``dpc_team_account_constructs``); noncurrent versions expire after 90 days.

    Attributes: ``bucket``, ``access_logs``.
    """

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.access_logs = s3.Bucket(
            self, "AccessLogs", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))],
            removal_policy=RemovalPolicy.RETAIN)
        suppress(self.access_logs, [("AwsSolutions-S1", "this is the access-log bucket; logging "
                                     "it into itself would loop")])
        self.bucket = s3.Bucket(
            self, "Bucket", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, versioned=True,
            server_access_logs_bucket=self.access_logs, server_access_logs_prefix="artifacts/",
            lifecycle_rules=[
                s3.LifecycleRule(noncurrent_version_expiration=Duration.days(90))],
            removal_policy=RemovalPolicy.RETAIN)
