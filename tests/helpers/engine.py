"""Builders shared by the engine's tests: times in epoch milliseconds and execution ARNs in
the shape :func:`dpc_core.events.make_status_event` gives them."""

from __future__ import annotations

from datetime import UTC, datetime

REGION = "eu-west-1"


def ms(text: str) -> int:
    """Epoch milliseconds of an ISO UTC timestamp such as ``2026-11-26T03:00``."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def epoch_ms(when: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int(when.timestamp() * 1000)


def arn(pipeline_name: str, account: str, run: str) -> str:
    """The execution ARN of run ``run`` of ``account/pipeline_name`` in :data:`REGION`."""
    return f"arn:aws:states:{REGION}:{account}:execution:{pipeline_name}:{run}"
