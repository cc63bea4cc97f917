"""CDK helpers for plugins that contribute Step Functions states (public API).

Imported only while a CDK app is built (``aws_cdk`` is imported inside the functions).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dpc_core.cdk_values import acknowledge, bucket_name, stack_info
from dpc_core.types import AwsStepContext


def upload_project_file(ctx: AwsStepContext, relative: str, kind: str) -> str:
    """Upload one project file to ``s3://<artifacts>/dpc/<pipeline>/<step>/`` at deploy;
    return its S3 URI. ValueError when the file does not exist."""
    from aws_cdk import aws_s3_deployment as s3deploy

    source = (Path(ctx.project_dir) / relative).resolve()
    if not source.is_file():
        raise ValueError(f"{kind} {relative!r} not found in {ctx.project_dir}")
    staging = _staged(source)
    prefix = f"dpc/{ctx.pipeline.name}/{ctx.step.name}/"
    s3deploy.BucketDeployment(
        ctx.scope, "Upload", sources=[s3deploy.Source.asset(str(staging))],
        destination_bucket=ctx.artifacts_bucket, destination_key_prefix=prefix, prune=False,
        retain_on_delete=False)
    _acknowledge_deployment(ctx.scope, ctx.artifacts_bucket)
    return f"s3://{bucket_name(ctx.artifacts_bucket)}/{prefix}{source.name}"


def _staged(source: Path) -> Path:
    """A directory holding only ``source``, named after its name and content: the same
    file is staged once per machine, and CDK, which caches an asset's staging by its
    source directory, stages it once per process (a new directory each synth cost ~30 ms
    per upload in CDK)."""
    data = source.read_bytes()
    key = hashlib.sha256(source.name.encode() + b"\0" + data).hexdigest()[:32]
    staging = Path(tempfile.gettempdir()) / f"dpc-upload-{key}"
    if (staging / source.name).is_file():
        return staging
    # Written beside, then renamed: another process may stage the same file.
    work = Path(tempfile.mkdtemp(prefix="dpc-upload-"))
    shutil.copy2(source, work / source.name)
    try:
        work.rename(staging)
    except OSError:  # staged meanwhile (or a leftover without the file: keep ours)
        if not (staging / source.name).is_file():
            return work
        shutil.rmtree(work, ignore_errors=True)
    return staging


#: Id of the BucketDeployment handler's singleton in the stack (SingletonFunction: the
#: purpose plus CDK's UUID for default memory, storage and no VPC, without dashes).
BUCKET_DEPLOYMENT_HANDLER = "Custom::CDKBucketDeployment8693BB64968944B69AAFB0CC9EB8756C"


def _acknowledge_deployment(scope: Any, bucket: Any) -> None:
    """cdk-nag findings of CDK's own BucketDeployment handler (one per stack)."""
    from aws_cdk import Acknowledgment

    # Each read of a stack attribute is a jsii round trip: read once per stack.
    info = stack_info(scope)
    if not info.checked:
        return
    stack = info.stack
    region, account = info.region_in_finding, info.account_in_finding
    name = stack.resolve(bucket_name(bucket))
    shown = f"<{name['Ref']}>" if isinstance(name, dict) and "Ref" in name else str(name)
    reason = "CDK's BucketDeployment copies the script from the CDK asset bucket into the " \
             "artifacts bucket with its generated grant; it runs only at deploy"
    # CDK names the handler's singleton after a fixed UUID (default memory and storage, no
    # VPC: how upload_project_file builds it); looking it up is one jsii round trip, where
    # reading the id of every child of the stack is two per child.
    known = info.node.try_find_child(BUCKET_DEPLOYMENT_HANDLER)
    for child in [known] if known is not None else info.node.children:
        if child is not known and not child.node.id.startswith("Custom::CDKBucketDeployment"):
            continue
        acks = [Acknowledgment(id="AwsSolutions-L1", reason="CDK pins the BucketDeployment "
                               "handler's runtime; it runs only at deploy"),
                Acknowledgment(id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:"
                               "policy/service-role/AWSLambdaBasicExecutionRole]",
                               reason="the deployment handler's own log permissions")]
        for finding in ("Action::s3:GetObject*", "Action::s3:GetBucket*", "Action::s3:List*",
                        "Action::s3:DeleteObject*", "Action::s3:Abort*",
                        f"Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-{account}-"
                        f"{region}/*", f"Resource::arn:<AWS::Partition>:s3:::{shown}/*"):
            acks.append(Acknowledgment(id=f"AwsSolutions-IAM5[{finding}]", reason=reason))
        acknowledge(child, *acks)
