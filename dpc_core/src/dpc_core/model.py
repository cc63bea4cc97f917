"""The pipeline.yaml contract as pydantic v2 models.

Step and compute fields are owned by plugins: :mod:`dpc_core.loader` validates each
step with the config model of the plugin that owns its ``type``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from dpc_core.schedule import Cron, Rate, ScheduleError, check_field, cron_from_fields
from dpc_core.types import ComputeConfig, StepConfig

ACCOUNT_RE = re.compile(r"^\d{12}$")
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,80}$"


class Status(StrEnum):
    """Run statuses of Step Functions executions."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"

    @property
    def terminal(self) -> bool:
        """True for every status but RUNNING."""
        return self is not Status.RUNNING


#: Accepted in pipeline.yaml as synonyms (the seed's own example writes SUCCESS).
STATUS_SYNONYMS = {"SUCCESS": "SUCCEEDED", "FAILURE": "FAILED"}
ALLOWED_STATUS_WORDS = [s.value for s in Status] + list(STATUS_SYNONYMS)


def parse_status(value: object) -> Status:
    """A status word from pipeline.yaml, with synonyms; ValueError names the allowed words."""
    if isinstance(value, Status):
        return value
    hint = ""
    if isinstance(value, str):
        word = STATUS_SYNONYMS.get(value.strip().upper(), value.strip().upper())
        if word in Status.__members__:
            return Status(word)
        hint = _did_you_mean(value.strip().upper(), ALLOWED_STATUS_WORDS)
    raise ValueError(
        f"unknown status {value!r}{hint}; allowed: {', '.join(ALLOWED_STATUS_WORDS)}"
    )


def _did_you_mean(word: str, choices: list[str]) -> str:
    """``" (did you mean 'X'?)"`` for the closest choice, or ``""`` when none is close."""
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Strict(BaseModel):
    """Base of the core's models: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _account(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        if not ACCOUNT_RE.match(str(value)):
            # An unquoted 0-leading number is read by YAML as octal or loses its zeros:
            # show what YAML made of it, the user only sees what they typed.
            raise ValueError(
                "must be 12 digits in quotes (\"012345678901\"); without quotes YAML read "
                f"it as the number {value}"
            )
        value = str(value)
    if isinstance(value, str) and not ACCOUNT_RE.match(value):
        raise ValueError(
            f"must be 12 digits in quotes (\"012345678901\"), got {value!r}"
        )
    return value


class Ref(Strict):
    """A reference to another pipeline's run status."""

    name: str = Field(pattern=NAME_PATTERN, description="parent pipeline name")
    account: str | None = Field(
        default=None, description="parent's AWS account; defaults to this pipeline's"
    )
    # The schema lists the words pipeline.yaml accepts (synonyms too, a single word or a
    # list), not the normalized enum, so editors do not flag the seed's own `SUCCESS`.
    status: Annotated[list[Status], WithJsonSchema({
        "anyOf": [{"type": "array", "items": {"enum": ALLOWED_STATUS_WORDS}, "minItems": 1},
                  {"enum": ALLOWED_STATUS_WORDS}],
    })] = Field(min_length=1, description="statuses that satisfy the reference")

    _acct = field_validator("account", mode="before")(_account)

    @field_validator("status", mode="before")
    @classmethod
    def _statuses(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [parse_status(v) for v in value]
        return value


def _item_tag(value: Any) -> str:
    if isinstance(value, dict):
        return "block" if ("allOf" in value or "anyOf" in value or "operator" in value) else "ref"
    return "block" if isinstance(value, Block) else "ref"


Item = Annotated[
    Annotated[Ref, Tag("ref")] | Annotated["Block", Tag("block")],
    Discriminator(_item_tag),
]


class Block(Strict):
    """``allOf`` / ``anyOf`` lists, combined by ``operator`` when both are given."""

    all_of: list[Item] | None = Field(default=None, alias="allOf", min_length=1)
    any_of: list[Item] | None = Field(default=None, alias="anyOf", min_length=1)
    operator: Literal["AND", "OR"] = "AND"

    @field_validator("operator", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _non_empty(self) -> Block:
        if self.all_of is None and self.any_of is None:
            raise ValueError("a condition needs allOf or anyOf (or both)")
        return self


Block.model_rebuild()


#: One cron field. YAML reads ``hour: 3`` as a number: the model and the schema take both.
CronField = Annotated[str | None, WithJsonSchema({"type": ["string", "integer"]})]


class ScheduleSpec(Strict):
    """``trigger.schedule``: cron fields, a ``cron`` expression, or a ``rate``."""

    minute: CronField = None
    hour: CronField = None
    day: CronField = None
    month: CronField = None
    week_day: CronField = Field(default=None, alias="weekDay")
    year: CronField = None
    cron: str | None = Field(default=None, description='EventBridge cron, e.g. "0 3 * * ? *"')
    rate: str | None = Field(default=None, description='e.g. "rate(1 hour)"')

    @field_validator("minute", "hour", "day", "month", "week_day", "year", mode="before")
    @classmethod
    def _str(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    # Each field is checked on its own so that an error points at the field at fault.
    @field_validator("minute", "hour", "day", "month", "week_day", "year")
    @classmethod
    def _cron_field(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            name = "weekDay" if info.field_name == "week_day" else str(info.field_name)
            try:
                check_field(name, value.strip())
            except ScheduleError as exc:
                raise ValueError(exc.reason) from None
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Cron.parse(value)
            except ScheduleError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Rate.parse(value)
            except ScheduleError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleSpec:
        fields = any(v is not None for v in self._fields().values())
        kinds = [k for k, on in (("cron fields", fields), ("cron", self.cron is not None),
                                 ("rate", self.rate is not None)) if on]
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of: cron fields (minute hour day month weekDay year), "
                f"cron, rate; got {' and '.join(kinds) or 'none'}"
            )
        if self.day not in (None, "?") and self.week_day not in (None, "?"):
            raise ValueError(
                "give day or weekDay, not both: EventBridge cannot combine a day of the month "
                "with a day of the week"
            )
        try:
            self.parsed  # noqa: B018 - validates the expression
        except ScheduleError as exc:
            raise ValueError(str(exc)) from None
        return self

    def _fields(self) -> dict[str, str | None]:
        return {"minute": self.minute, "hour": self.hour, "day": self.day, "month": self.month,
                "weekDay": self.week_day, "year": self.year}

    @cached_property
    def parsed(self) -> Cron | Rate:
        """The schedule as a :class:`Cron` or :class:`Rate`."""
        if self.rate is not None:
            return Rate.parse(self.rate)
        if self.cron is not None:
            return Cron.parse(self.cron)
        return cron_from_fields(self._fields())

    def expression(self) -> str:
        """The EventBridge expression, ``cron(...)`` or ``rate(...)``."""
        return self.parsed.expression()


class Trigger(Strict):
    """When a pipeline runs: on a schedule, or when other pipelines reach statuses."""

    schedule: ScheduleSpec | None = None
    executions: Block | None = None
    window: Literal["daily", "hourly"] = "daily"
    timezone: str = "UTC"
    rerun: Literal["never", "on-new-parent-run"] = "never"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            from zoneinfo import available_timezones

            hint = _did_you_mean(value, sorted(available_timezones()))
            raise ValueError(
                f"unknown time zone {value!r}{hint}; use an IANA name such as 'UTC' or "
                "'Europe/Madrid'"
            ) from None
        return value

    @model_validator(mode="after")
    def _exclusive(self) -> Trigger:
        if self.schedule is not None and self.executions is not None:
            raise ValueError("schedule and executions are mutually exclusive; choose one")
        return self


class NotificationType(StrEnum):
    """Which events are notified."""

    FULL_EXECUTION = "FULL_EXECUTION"
    PIPELINE = "PIPELINE"
    FAILURES_ONLY = "FAILURES_ONLY"


class Target(Strict):
    """Where notifications go: a channel (SLACK, EMAIL, OPSGENIE, or a plugin's) and addresses."""

    channel: str
    addresses: list[str] = Field(min_length=1)

    @field_validator("channel", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class Notifications(Strict):
    """``notifications``: a type and a list of targets."""

    type: NotificationType = NotificationType.FAILURES_ONLY
    targets: list[Target] = Field(default_factory=list)


class PipelineBase(Strict):
    """Core fields of pipeline.yaml; steps and compute are kept raw for plugin validation."""

    name: str = Field(
        pattern=NAME_PATTERN, description="unique in its account; the state machine name"
    )
    account: str | None = Field(default=None, description="12-digit AWS account id")
    description: str | None = None
    owner: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    trigger: Trigger = Field(default_factory=Trigger)
    steps: list[dict[str, Any]] = Field(min_length=1)
    compute: dict[str, Any] | None = None
    notifications: Notifications = Field(default_factory=Notifications)

    _acct = field_validator("account", mode="before")(_account)


class Pipeline(BaseModel):
    """A validated pipeline: core fields plus the plugin-validated steps and compute."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    account: str | None
    description: str | None
    owner: str | None
    tags: dict[str, str]
    trigger: Trigger
    steps: list[StepConfig]
    compute: ComputeConfig
    notifications: Notifications
    source: str = ""
    project_dir: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """``(account, name)``; the account must be known."""
        if self.account is None:
            raise ValueError(f"pipeline {self.name!r} has no account")
        return (self.account, self.name)

    def parents(self) -> list[tuple[str, str]]:
        """Every ``(account, name)`` the trigger condition references, in order, unique."""
        seen: dict[tuple[str, str], None] = {}
        if self.trigger.executions is not None:
            for ref in iter_refs(self.trigger.executions):
                seen[(ref.account or self.account or "", ref.name)] = None
        return list(seen)


def iter_refs(block: Block) -> list[Ref]:
    """All references in a condition, depth first."""
    out: list[Ref] = []
    for items in (block.all_of or [], block.any_of or []):
        for item in items:
            out.extend(iter_refs(item) if isinstance(item, Block) else [item])
    return out
