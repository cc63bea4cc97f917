"""The Step Functions "Execution Status Change" event, in its real AWS shape."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dpc_core.errors import BadEvent
from dpc_core.model import Status


class memoized:
    """functools.cached_property without its lock (Python 3.11 takes one on every read;
    these are read several times per event on the engine's hot path)."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        cache = obj.__dict__
        try:
            return cache[self.name]
        except KeyError:
            value = cache[self.name] = self.fn(obj)
            return value


DETAIL_TYPE = "Step Functions Execution Status Change"
SOURCE = "aws.states"


class ExecutionDetail(BaseModel):
    """``detail`` of a status-change event (fields dpc reads; others are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    execution_arn: str = Field(alias="executionArn", pattern=r"^arn:aws[\w-]*:states:")
    state_machine_arn: str = Field(alias="stateMachineArn", pattern=r"^arn:aws[\w-]*:states:")
    name: str | None = None
    status: Status
    start_date: int = Field(alias="startDate", ge=0)
    stop_date: int | None = Field(default=None, alias="stopDate")
    input: str | None = None
    redrive_count: int = Field(default=0, alias="redriveCount", ge=0)
    error: str | None = None
    cause: str | None = None

    @field_validator("redrive_count", mode="before")
    @classmethod
    def _none_is_zero(cls, value: object) -> object:
        return 0 if value is None else value


class StatusEvent(BaseModel):
    """An EventBridge event from ``aws.states`` about one execution."""

    model_config = ConfigDict(extra="ignore", frozen=True, ignored_types=(memoized,))

    id: str = ""
    detail_type: Literal["Step Functions Execution Status Change"] = Field(alias="detail-type")
    source: Literal["aws.states"]
    account: str
    time: str = ""
    region: str = ""
    detail: ExecutionDetail

    @classmethod
    def parse(cls, raw: Any) -> StatusEvent:
        """Validate a decoded event; :class:`BadEvent` says why another shape is refused."""
        if isinstance(raw, StatusEvent):
            return raw
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BadEvent(f"not a Step Functions status event: {where}: {first['msg']}") from None

    @memoized
    def pipeline(self) -> str:
        """The state machine name, which is the pipeline name."""
        return self.detail.state_machine_arn.rsplit(":", 1)[-1]

    @memoized
    def arn_account(self) -> str:
        """The account named in the state machine ARN."""
        parts = self.detail.state_machine_arn.split(":")
        return parts[4] if len(parts) > 4 else ""

    @memoized
    def run_input(self) -> dict[str, Any]:
        """``detail.input`` decoded; ``{}`` when absent or not a JSON object."""
        if not self.detail.input or '"dpc"' not in self.detail.input:
            return {}  # most runs were not started by dpc: no need to parse their input
        try:
            value = json.loads(self.detail.input)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @memoized
    def downstream(self) -> bool:
        """True for runs started by ``dpc rerun --downstream`` (and the runs they trigger)."""
        dpc = self.run_input.get("dpc")
        return bool(dpc.get("downstream")) if isinstance(dpc, dict) else False

    @memoized
    def logical_date(self) -> str | None:
        """``dpc.logicalDate`` from the run's input, when dpc started the run."""
        dpc = self.run_input.get("dpc")
        value = dpc.get("logicalDate") if isinstance(dpc, dict) else None
        return str(value) if value else None


def make_status_event(
    *, account: str, region: str, pipeline: str, execution: str, status: str, start_ms: int,
    stop_ms: int | None = None, input: dict[str, Any] | None = None, redrive_count: int = 0,
    error: str | None = None, cause: str | None = None, time: str = "", event_id: str = "",
) -> dict[str, Any]:
    """Build a status event in the exact AWS shape (used by the local runtime and tests)."""
    sm = f"arn:aws:states:{region}:{account}:stateMachine:{pipeline}"
    arn = f"arn:aws:states:{region}:{account}:execution:{pipeline}:{execution}"
    return {
        "version": "0",
        "id": event_id,
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": account,
        "time": time,
        "region": region,
        "resources": [arn],
        "detail": {
            "executionArn": arn,
            "stateMachineArn": sm,
            "name": execution,
            "status": status,
            "startDate": start_ms,
            "stopDate": stop_ms,
            "input": json.dumps(input or {}),
            "output": None,
            "inputDetails": {"included": True},
            "outputDetails": None,
            "error": error,
            "cause": cause,
            "redriveCount": redrive_count,
            "redriveDate": None,
            "redriveStatus": "NOT_REDRIVABLE",
            "redriveStatusReason": "",
        },
    }
