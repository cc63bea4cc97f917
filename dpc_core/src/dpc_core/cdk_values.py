"""CDK values that are the same in every stack, made once per process (for the central
stacks and for plugins' AWS forms alike; aws_cdk is imported only when one is asked for).

Nearly all synth time is spent waiting on the jsii Node process, one round trip per
call: ``Duration.minutes(5)`` or ``JsonPath.string_at("$$.Execution.Id")`` is a call
each time it is written. These values are immutable (a duration; a JSONPath token,
which CDK's global token map resolves the same way in any stack and any app), so each
distinct one is asked for once and shared by every state, alarm and queue that uses it.
Stack attributes (region, account, partition) are per stack: :func:`stack_info` reads
them once per stack.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any, Protocol, TypeVar


class StepSite(Protocol):
    """What the helpers here read of a step's :class:`dpc_core.types.AwsStepContext`
    (structural, so that this module, below ``types``, does not import it)."""

    @property
    def scope(self) -> Any: ...
    @property
    def pipeline(self) -> Any: ...
    @property
    def step(self) -> Any: ...
    @property
    def compute(self) -> Any: ...
    @property
    def artifacts_bucket(self) -> Any: ...
    @property
    def project_dir(self) -> Path: ...


#: CDK's marker of an unresolved string (``${Token[...]}``): what ``Token.is_unresolved``
#: looks for in a string, checked here without a round trip.
_TOKEN_MARK = "${Token["


def is_unresolved(value: str) -> bool:
    """``Token.is_unresolved`` of a string, without asking Node."""
    return _TOKEN_MARK in value


@functools.cache
def minutes(n: int) -> Any:
    from aws_cdk import Duration

    return Duration.minutes(n)


@functools.cache
def seconds(n: int) -> Any:
    from aws_cdk import Duration

    return Duration.seconds(n)


@functools.cache
def days(n: int) -> Any:
    from aws_cdk import Duration

    return Duration.days(n)


@functools.cache
def timeout_minutes(n: int) -> Any:
    """``sfn.Timeout.duration(Duration.minutes(n))``."""
    from aws_cdk import aws_stepfunctions as sfn

    return sfn.Timeout.duration(minutes(n))


@functools.cache
def string_at(path: str) -> str:
    """``JsonPath.string_at(path)`` (a token string, the same in every stack)."""
    from aws_cdk import aws_stepfunctions as sfn

    return sfn.JsonPath.string_at(path)


@functools.cache
def number_at(path: str) -> Any:
    from aws_cdk import aws_stepfunctions as sfn

    return sfn.JsonPath.number_at(path)


@functools.cache
def json_to_string_of_object_at(path: str) -> str:
    """``JsonPath.json_to_string(JsonPath.object_at(path))``."""
    from aws_cdk import aws_stepfunctions as sfn

    return sfn.JsonPath.json_to_string(sfn.JsonPath.object_at(path))


@functools.cache
def discard() -> str:
    """``JsonPath.DISCARD`` (a static property: a round trip on every read)."""
    from aws_cdk import aws_stepfunctions as sfn

    return sfn.JsonPath.DISCARD


@functools.cache
def partition() -> str:
    """``Aws.PARTITION`` (a token string, the same in every stack; a static property, so
    a round trip on every read)."""
    from aws_cdk import Aws

    return Aws.PARTITION


class StackInfo:
    """A stack's attributes as strings (tokens where the environment is not concrete),
    each read from Node at most once."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack

    @functools.cached_property
    def region(self) -> str:
        return str(self.stack.region)

    @functools.cached_property
    def account(self) -> str:
        return str(self.stack.account)

    @functools.cached_property
    def partition(self) -> str:
        return str(self.stack.partition)

    @functools.cached_property
    def checked(self) -> bool:
        """Whether the stack's app runs policy-validation checks (cdk-nag) at synth, so
        acknowledgements matter. Set by :func:`in_app` for an app dpc made; otherwise the
        app is looked up (two round trips) and an app dpc did not make counts as checked:
        its owner may add checks at any time."""
        return _APP_CHECKS.get(self.node.root, True)

    @functools.cached_property
    def node(self) -> Any:
        """The stack's construct node (reading ``.node`` is a round trip too)."""
        return self.stack.node

    @property
    def region_in_finding(self) -> str:
        """How cdk-nag prints the region inside a finding (concrete or a pseudo)."""
        return "<AWS::Region>" if is_unresolved(self.region) else self.region

    @property
    def account_in_finding(self) -> str:
        """How cdk-nag prints the account inside a finding (concrete or a pseudo)."""
        return "<AWS::AccountId>" if is_unresolved(self.account) else self.account


#: StackInfo of each stack (``Stack.of`` returns the same Python object for a stack), and
#: of each construct already asked about (``Stack.of`` is a round trip).
_STACKS: weakref.WeakKeyDictionary[Any, StackInfo] = weakref.WeakKeyDictionary()


def stack_info(scope: Any) -> StackInfo:
    """Region, account and partition of ``scope``'s stack, read once per stack."""
    from aws_cdk import Stack

    info = _STACKS.get(scope)
    if info is not None:
        return info
    stack = scope if isinstance(scope, Stack) else Stack.of(scope)
    info = _STACKS.get(stack)
    if info is None:
        info = _STACKS[stack] = StackInfo(stack)
    _STACKS[scope] = info
    return info


#: Apps made by dpc (``new_app``, ``PipelineApp``): whether cdk-nag runs on them at synth.
_APP_CHECKS: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def record_checks(app: Any, checked: bool) -> None:
    """Remember whether ``app`` runs cdk-nag at synth (call it before adding stacks)."""
    _APP_CHECKS[app] = checked


def in_app(stack: Any, scope: Any, env: Any = None) -> None:
    """Called by a stack's constructor with its scope and ``env``: what Python knows
    already is not asked of Node. :attr:`StackInfo.checked` when the scope is an app dpc
    made; the region and account where ``env`` gives them as plain strings (CDK's stack
    takes them from its ``env`` before anything else)."""
    info = stack_info(stack)
    checked = _APP_CHECKS.get(scope)
    if checked is not None:
        info.checked = checked
    for attr in ("region", "account"):
        value = getattr(env, attr, None) if env is not None else None
        if isinstance(value, str) and value and not is_unresolved(value):
            setattr(info, attr, value)


def acknowledge(scope: Any, *acks: Any) -> None:
    """``Validations.of(scope).acknowledge(*acks)``: accept cdk-nag findings on ``scope``
    and below. Skipped when the app runs no checks: an acknowledgement is metadata that
    only a check reads, and recording one costs two round trips."""
    if not acks or not stack_info(scope).checked:
        return
    from aws_cdk import Validations

    Validations.of(scope).acknowledge(*acks)


_Construct = TypeVar("_Construct")


def in_stack_of(child: _Construct, scope: Any) -> _Construct:
    """``child``, a construct just made in ``scope``: :func:`stack_info` then knows its
    stack without asking Node (a construct's stack is its scope's, unless it is one)."""
    _STACKS[child] = stack_info(scope)
    return child


#: The name of each bucket already asked about (a token for an imported bucket).
_BUCKET_NAMES: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def bucket_name(bucket: Any) -> str:
    """``bucket.bucket_name``, read from Node once per bucket."""
    name = _BUCKET_NAMES.get(bucket)
    if name is None:
        name = _BUCKET_NAMES[bucket] = str(bucket.bucket_name)
    return name


def upload_project_file(ctx: StepSite, relative: str, kind: str) -> str:
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
