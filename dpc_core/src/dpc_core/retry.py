"""A step's ``retries:`` and ``timeout:`` (pipeline.yaml), the same on both runtimes.

```yaml
steps:
  - name: export
    type: shell
    command: ./export.sh
    timeout: 30m               # the attempt is stopped after 30 minutes (at most 7d)
    retries: 2                 # shorthand: 2 more attempts, default backoff, on ALL errors
  - name: load
    type: spark
    script: load.py
    retries:
      count: 3                 # attempts after the first (0-10)
      backoff: {initial: 30s, rate: 2.0, max: 10m}
      on: [TIMEOUT]            # ALL (default), TIMEOUT, FAILED
```

On AWS the step's task state gets ``Retry`` and ``TimeoutSeconds`` (see
``dpc_central.pipeline.state_machine``); locally the runtime waits the backoff and runs the
step again, killing an attempt's process group at its timeout. Attempt ``n`` (``n`` ≥ 1
counting the retries) waits ``min(initial × rate^(n-1), max)``: Step Functions' formula.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

#: ``90s``, ``30m``, ``2h``, ``1d``, or a sum of them (``1h30m``).
DURATION_PATTERN = r"^\s*(?:[0-9]{1,6}[dhms])+\s*$"
_PART = re.compile(r"([0-9]{1,6})([dhms])")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
#: A step's timeout and a backoff's bounds (Step Functions' own limits are looser).
MAX_TIMEOUT_S = 7 * 86400
MAX_BACKOFF_S = 86400
MAX_RETRIES = 10
#: What ``on:`` names, and the Step Functions errors each one is (AWS: "Handling errors in
#: Step Functions workflows"; ``States.TaskFailed`` matches every error but a timeout).
ERROR_NAMES: dict[str, str] = {"ALL": "States.ALL", "TIMEOUT": "States.Timeout",
                               "FAILED": "States.TaskFailed"}


def parse_duration(value: object, *, least: int = 1, most: int = MAX_TIMEOUT_S) -> int:
    """Seconds of a duration string (``30s``, ``10m``, ``1h30m``, ``2d``); ValueError with
    the reason for anything else or out of ``[least, most]``."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"must be a duration such as '30m', got {type(value).__name__}")
    if isinstance(value, int):
        raise ValueError(f"write a unit: '{value}s' or '{value}m' (s, m, h, d)")
    text = value.strip()
    if len(text) > 40 or not re.fullmatch(DURATION_PATTERN, text):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ValueError(f"{shown!r} is not a duration: write a number and a unit (s, m, h, "
                         "d), e.g. '90s', '30m', '1h30m'")
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(text))
    if not least <= seconds <= most:
        raise ValueError(f"{text!r} is {seconds}s; allowed from {_human(least)} to "
                         f"{_human(most)}")
    return seconds


def _human(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[int, WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN})]


class Backoff(BaseModel):
    """How long to wait before each retry."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Backoff")

    initial: Duration = Field(default=30, title="Initial wait", json_schema_extra={
                                  "default": "30s"},
                              description="Before the first retry, e.g. 30s (1s to 1d).")
    rate: float = Field(default=2.0, ge=1.0, le=10.0, title="Rate",
                        description="Each wait is the previous one times this (1.0-10.0).")
    max: Duration | None = Field(default=None, title="Longest wait",
                                 description="No wait is longer, e.g. 10m (1s to 1d).")

    @field_validator("initial", "max", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return None if value is None else parse_duration(value, most=MAX_BACKOFF_S)

    @model_validator(mode="after")
    def _bounds(self) -> Backoff:
        if self.max is not None and self.max < self.initial:
            raise ValueError(f"max ({_human(self.max)}) is shorter than initial "
                             f"({_human(self.initial)})")
        return self

    def delay(self, retry: int) -> int:
        """Seconds before retry number ``retry`` (1 is the first retry)."""
        wait = self.initial * self.rate ** (retry - 1)
        return int(min(wait, self.max) if self.max is not None else min(wait, 10**8))


ErrorWord = Literal["ALL", "TIMEOUT", "FAILED"]
_ON_SCHEMA: dict[str, Any] = {"anyOf": [
    {"enum": list(ERROR_NAMES)},
    {"type": "array", "items": {"enum": list(ERROR_NAMES)}, "minItems": 1},
]}


class Retries(BaseModel):
    """``retries:``: how many more attempts a failed step gets, when, and after which errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Retries")

    count: int = Field(ge=0, le=MAX_RETRIES, title="Retries",
                       description="Attempts after the first (0-10).")
    backoff: Backoff = Field(default_factory=Backoff, title="Backoff",
                             description="{initial: 30s, rate: 2.0, max: 10m}.")
    on: Annotated[tuple[ErrorWord, ...], WithJsonSchema(_ON_SCHEMA)] = Field(
        default=("ALL",), title="On errors",
        description="ALL (default): any failure; TIMEOUT: the step's timeout; FAILED: any "
                    "failure but a timeout.")

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, value: object) -> object:
        # YAML 1.1 (PyYAML) reads the key `on` as the boolean true.
        if isinstance(value, dict) and True in value and "on" not in value:
            value = {("on" if k is True else k): v for k, v in value.items()}
        return value

    @field_validator("count", mode="before")
    @classmethod
    def _int(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number from 0 to {MAX_RETRIES}, got {value!r}")
        return value

    @field_validator("on", mode="before")
    @classmethod
    def _words(cls, value: object) -> object:
        words = [value] if isinstance(value, str) else value
        if not isinstance(words, list | tuple) or not words:
            raise ValueError("must be ALL, TIMEOUT or FAILED, or a list of them")
        out: list[str] = []
        for word in words:
            up = word.strip().upper() if isinstance(word, str) else word
            if up not in ERROR_NAMES:
                raise ValueError(f"unknown error {word!r}; allowed: ALL, TIMEOUT, FAILED")
            if up not in out:
                out.append(up)
        if "ALL" in out and len(out) > 1:
            raise ValueError("ALL already covers TIMEOUT and FAILED: give ALL alone")
        return tuple(out)

    def retries_after(self, timed_out: bool) -> bool:
        """Whether an attempt that failed this way is retried."""
        return "ALL" in self.on or ("TIMEOUT" if timed_out else "FAILED") in self.on

    def asl(self) -> dict[str, Any]:
        """The Step Functions ``Retry`` rule."""
        rule: dict[str, Any] = {"ErrorEquals": [ERROR_NAMES[w] for w in self.on],
                                "IntervalSeconds": self.backoff.initial,
                                "MaxAttempts": self.count,
                                "BackoffRate": self.backoff.rate}
        if self.backoff.max is not None:
            rule["MaxDelaySeconds"] = self.backoff.max
        return rule


RETRIES_SCHEMA: dict[str, Any] = {"anyOf": [
    {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES},
    {"$ref": "#/$defs/Retries"},
]}


def shorthand(value: object) -> object:
    """``retries: 3`` is ``retries: {count: 3}``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"count": value}
    return value
