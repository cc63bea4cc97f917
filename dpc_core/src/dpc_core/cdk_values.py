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
import weakref
from typing import Any

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


def in_stack_of(child: Any, scope: Any) -> Any:
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
