"""The caller's AWS session, with the region resolved the way AWS tools agree on.

``--region`` first, then ``AWS_REGION`` (what the AWS CLI v2, the other SDKs and Lambda
set; botocore itself reads only ``AWS_DEFAULT_REGION``), then boto3's own resolution:
``AWS_DEFAULT_REGION``, then the profile's ``region`` in ``~/.aws/config``.
"""

from __future__ import annotations

import os
from typing import Any

from dpc_core.errors import DpcError

NO_REGION = ("no AWS region: pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), or "
             "set one in your AWS profile (aws configure set region eu-west-1)")


def resolve_region(region: str | None = None) -> str | None:
    """The region to use, or None when neither the flag, the environment nor the
    profile names one. Without boto3 installed, only the flag and the environment."""
    if region:
        return region
    if os.environ.get("AWS_REGION"):
        return os.environ["AWS_REGION"]
    try:
        import boto3
    except ImportError:
        return os.environ.get("AWS_DEFAULT_REGION") or None
    name: str | None = boto3.session.Session().region_name
    return name


def aws_session(region: str | None = None) -> Any:
    """A boto3 session in the resolved region; :class:`DpcError` without boto3 or region."""
    try:
        import boto3
    except ImportError:
        raise DpcError("AWS commands need boto3: pip install 'dpc-core[aws]'") from None
    resolved = resolve_region(region)
    if resolved is None:
        raise DpcError(NO_REGION)
    return boto3.session.Session(region_name=resolved)
