"""The Step Functions "Execution Status Change" event, in its real AWS shape."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
)

from dpc_core.errors import BadEvent
from dpc_core.jsonlimits import TooDeep, loads
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


#: Limits of the fields dpc reads (docs/triggers.md rule 8): anything outside them is bad input.
#: Epoch ms before 9999-12-31 UTC, so that the date in any time zone is a real date.
MAX_EPOCH_MS = 253_402_214_399_999
#: Step Functions counts redrives in a 32-bit integer; more is not a real run.
MAX_REDRIVE_COUNT = 2**31 - 1
#: Step Functions' own limit on an execution's input (256 KiB).
MAX_INPUT_CHARS = 262_144
#: JSON nesting accepted in ``detail.input`` (Python's parser would otherwise recurse
#: until RecursionError).
MAX_INPUT_DEPTH = 64
#: Run names in ARNs: no ``:``, whitespace or control characters (the SQLite store's slot
#: encoding and DynamoDB keys rely on it), bounded so keys stay far below DynamoDB's 2 KiB.
_NAME = r"[^:\s\x00-\x1f\x7f]"
STATE_MACHINE_ARN = (r"^arn:aws[a-z-]{0,16}:states:[a-z0-9-]{1,32}:[0-9]{12}:stateMachine:"
                     rf"{_NAME}{{1,200}}$")
EXECUTION_ARN = (r"^arn:aws[a-z-]{0,16}:states:[a-z0-9-]{1,32}:[0-9]{12}:execution:"
                 rf"{_NAME}{{1,200}}:{_NAME}{{1,80}}$")
#: ``dpc.logicalDate``: a date, or a date and hour, optionally with the UTC offset that
#: names one of the two repeated hours of a day when clocks go back (the engine's own
#: hourly window names, which rule 6 puts back into the child run's input).
LOGICAL_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2})(?:([+-])(\d{2}):(\d{2}))?)?",
                          re.ASCII)  # ASCII digits only: the date becomes a window name

#: What a field that failed its pattern should have looked like (for the message).
_EXPECTED = {
    "detail.executionArn": "malformed execution ARN (expected "
                           "arn:aws:states:REGION:ACCOUNT:execution:STATE_MACHINE:NAME)",
    "detail.stateMachineArn": "malformed state machine ARN (expected "
                              "arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)",
    "account": "an AWS account is 12 digits",
}


def is_status_shape(raw: Any) -> bool:
    """True for an object that says it is a Step Functions status event (source and
    detail-type), whatever its fields: bad fields then make it bad input, not another
    source's event."""
    return isinstance(raw, dict) and raw.get("source") == SOURCE and \
        raw.get("detail-type") == DETAIL_TYPE


EpochMs = Annotated[StrictInt, Field(ge=0, le=MAX_EPOCH_MS)]


class ExecutionDetail(BaseModel):
    """``detail`` of a status-change event (fields dpc reads; others are ignored).

    Integers are strict (``true`` is not ``1``, ``"5"`` is not ``5``) and bounded, ARNs
    must have the Step Functions shape: the engine rejects anything else as bad input.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    execution_arn: str = Field(alias="executionArn", pattern=EXECUTION_ARN)
    state_machine_arn: str = Field(alias="stateMachineArn", pattern=STATE_MACHINE_ARN)
    name: str | None = None
    status: Status
    start_date: EpochMs = Field(alias="startDate")
    stop_date: EpochMs | None = Field(default=None, alias="stopDate")
    input: str | None = Field(default=None, max_length=MAX_INPUT_CHARS)
    redrive_count: StrictInt = Field(default=0, alias="redriveCount", ge=0,
                                     le=MAX_REDRIVE_COUNT)
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
    account: str = Field(pattern=r"^[0-9]{12}$")  # ASCII digits (\d is any Unicode digit)
    time: str = ""
    region: str = ""
    detail: ExecutionDetail

    @classmethod
    def parse(cls, raw: Any) -> StatusEvent:
        """Validate a decoded event; :class:`BadEvent` says why another shape is refused
        (naming the field for a status event whose fields are bad)."""
        if isinstance(raw, StatusEvent):
            return raw
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            msg = _EXPECTED.get(where) if first["type"] == "string_pattern_mismatch" else None
            if is_status_shape(raw):
                raise BadEvent(f"bad status event: {where}: {msg or first['msg']}") from None
            raise BadEvent(f"not a Step Functions status event: {where}: "
                           f"{msg or first['msg']}") from None

    @memoized
    def pipeline(self) -> str:
        """The state machine name, which is the pipeline name."""
        return self.detail.state_machine_arn.rsplit(":", 1)[-1]

    @memoized
    def arn_account(self) -> str:
        """The account named in the state machine ARN."""
        return self.detail.state_machine_arn.split(":", 5)[4]

    @memoized
    def run_input(self) -> dict[str, Any]:
        """``detail.input`` decoded; ``{}`` when absent or not a JSON object.

        Raises :class:`BadEvent` when the input is nested deeper than
        :data:`MAX_INPUT_DEPTH` levels.
        """
        text = self.detail.input
        if not text or '"dpc"' not in text:
            return {}  # most runs were not started by dpc: no need to parse their input
        try:
            value = loads(text, max_depth=MAX_INPUT_DEPTH)
        except TooDeep:
            raise BadEvent(f"detail.input: JSON nested deeper than {MAX_INPUT_DEPTH} "
                           "levels") from None
        except ValueError:
            return {}  # not JSON: not an input dpc wrote
        return value if isinstance(value, dict) else {}

    @memoized
    def downstream(self) -> bool:
        """True for runs started by ``dpc rerun --downstream`` (and the runs they trigger)."""
        dpc = self.run_input.get("dpc")
        return bool(dpc.get("downstream")) if isinstance(dpc, dict) else False

    @memoized
    def logical_date(self) -> str | None:
        """``dpc.logicalDate`` from the run's input, when dpc started the run.

        Raises :class:`BadEvent` when it is present but not a real date
        (``YYYY-MM-DD``) or date and hour (``YYYY-MM-DDTHH``, optionally with the UTC
        offset of a repeated hour, ``YYYY-MM-DDTHH-05:00``).
        """
        dpc = self.run_input.get("dpc")
        value = dpc.get("logicalDate") if isinstance(dpc, dict) else None
        if value is None:
            return None
        if not isinstance(value, str) or not is_logical_date(value):
            shown = repr(value)[:60] if isinstance(value, str | int | float | bool) else \
                f"a JSON {type(value).__name__}"
            raise BadEvent(f"detail.input: dpc.logicalDate must be YYYY-MM-DD or "
                           f"YYYY-MM-DDTHH (a real date and hour), got {shown}")
        return value


def is_logical_date(text: str) -> bool:
    """True for ``YYYY-MM-DD``, ``YYYY-MM-DDTHH`` and ``YYYY-MM-DDTHH±HH:MM`` naming a real
    date, hour (00-23) and UTC offset (at most 18 hours)."""
    m = LOGICAL_DATE.fullmatch(text)
    if m is None:
        return False
    year, month, day, hour, sign, oh, om = m.groups()
    try:
        date(int(year), int(month), int(day))
    except ValueError:
        return False
    if hour is not None and int(hour) > 23:
        return False
    return sign is None or (int(oh) * 60 + int(om) <= 18 * 60 and int(om) < 60)


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
