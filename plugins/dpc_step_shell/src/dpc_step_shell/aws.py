"""Step Functions states of a ``shell`` step: an EMR step on the compute's cluster.

A command that starts with a project script (``./export.sh args``) uploads the script
to the artifacts bucket and runs it with EMR's script-runner; any other command runs
with ``bash -c`` through command-runner. Imported only while a CDK app is built.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dpc_core.types import AwsStepContext


# The same upload as dpc-step-spark's: plugins do not depend on each other.
def upload(ctx: AwsStepContext, relative: str, kind: str) -> str:
    """Upload one project file to ``s3://<artifacts>/dpc/<pipeline>/<step>/`` at deploy;
    return its S3 URI. ValueError when the file does not exist."""
    from aws_cdk import aws_s3_deployment as s3deploy

    source = (Path(ctx.project_dir) / relative).resolve()
    if not source.is_file():
        raise ValueError(f"{kind} {relative!r} not found in {ctx.project_dir}")
    staging = Path(tempfile.mkdtemp(prefix="dpc-upload-"))
    shutil.copy2(source, staging / source.name)
    prefix = f"dpc/{ctx.pipeline.name}/{ctx.step.name}/"
    s3deploy.BucketDeployment(
        ctx.scope, "Upload", sources=[s3deploy.Source.asset(str(staging))],
        destination_bucket=ctx.artifacts_bucket, destination_key_prefix=prefix, prune=False,
        retain_on_delete=False)
    _acknowledge_deployment(ctx.scope, ctx.artifacts_bucket)
    return f"s3://{ctx.artifacts_bucket.bucket_name}/{prefix}{source.name}"


def _acknowledge_deployment(scope: Any, bucket: Any) -> None:
    """cdk-nag findings of CDK's own BucketDeployment handler (one per stack)."""
    from aws_cdk import Acknowledgment, Stack, Token, Validations

    stack = Stack.of(scope)
    region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
    account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
    name = stack.resolve(bucket.bucket_name)
    shown = f"<{name['Ref']}>" if isinstance(name, dict) and "Ref" in name else str(name)
    reason = "CDK's BucketDeployment copies the script from the CDK asset bucket into the " \
             "artifacts bucket with its generated grant; it runs only at deploy"
    for child in stack.node.children:
        if not child.node.id.startswith("Custom::CDKBucketDeployment"):
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
        Validations.of(child).acknowledge(*acks)


def _project_script(command: str, project_dir: Path) -> tuple[str, list[str]] | None:
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words or not words[0].startswith(("./", "scripts/")) or \
            any(c in command for c in "|;&><`$"):
        return None
    return words[0], words[1:]


def shell_states(ctx: AwsStepContext) -> Any:
    """``addStep.sync`` running the command on the cluster."""
    from aws_cdk import Stack
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk import aws_stepfunctions_tasks as tasks

    step = ctx.step
    if not ctx.cluster_id_path:
        raise ValueError("shell steps run on the pipeline's cluster on AWS; add "
                         "`compute: {type: emr}` to the pipeline")
    env = [f"{k}={v}" for k, v in sorted(step.env.items())]
    env.append(f"DPC_PIPELINE={ctx.pipeline.name}")
    script = _project_script(step.command, Path(ctx.project_dir))
    if script is not None:
        uri = upload(ctx, script[0], "script")
        region = Stack.of(ctx.scope).region
        jar = f"s3://{region}.elasticmapreduce/libs/script-runner/script-runner.jar"
        args = [uri, *script[1]]
    else:
        jar = "command-runner.jar"
        args = ["env", *env, "bash", "-c", step.command]
    return tasks.EmrAddStep(
        ctx.scope, step.name, cluster_id=sfn.JsonPath.string_at(ctx.cluster_id_path),
        name=step.name, jar=jar, args=args, action_on_failure=tasks.ActionOnFailure.CONTINUE,
        integration_pattern=sfn.IntegrationPattern.RUN_JOB, result_path=sfn.JsonPath.DISCARD)
