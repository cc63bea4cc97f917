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
from pydantic_core import PydanticCustomError

from dpc_core.deadlines import DEADLINE_PATTERN, parse_deadline
from dpc_core.schedule import (
    Cron,
    Rate,
    ScheduleError,
    check_field,
    cron_from_fields,
    cron_pattern,
    field_pattern,
    field_range,
    rate_pattern,
)
from dpc_core.types import ComputeConfig, StepConfig

# `[0-9]`, not `\d` (which takes any Unicode digit), and fullmatch, not `$` (which lets a
# trailing newline through).
ACCOUNT_RE = re.compile(r"[0-9]{12}")
#: Pipeline and step names: what a Step Functions state machine name allows, starting with
#: a letter or digit (a name is also a directory, a file name and a command-line word).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$"
NAME_RULE = "must start with a letter or digit and contain only letters, digits, '-' and '_' " \
    "(at most 80 characters)"
#: The most missed firings ``catchup: all`` runs at once (``trigger.catchupLimit``).
MAX_CATCHUP = 100
#: docs/triggers.md rule 8: a condition nested deeper than this is bad input.
MAX_CONDITION_DEPTH = 32

_ACCOUNT_SCHEMA: dict[str, Any] = {"anyOf": [
    {"type": "string", "pattern": "^[0-9]{12}$"},
    # YAML reads an unquoted 12-digit account as a number; dpc takes it when no zero leads.
    {"type": "integer", "minimum": 100_000_000_000, "maximum": 999_999_999_999},
]}


def _any_case(words: list[str], padded: bool = False) -> dict[str, Any]:
    """Schema of words accepted in any case (and with spaces around when ``padded``): the
    enum, which editors offer for completion, or a pattern that says the rest."""
    spelled = "|".join("".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in w)
                       for w in words)
    pad = r"\s*" if padded else ""
    return {"anyOf": [{"enum": words},
                      {"type": "string", "pattern": f"^{pad}(?:{spelled}){pad}$"}]}


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
        if not ACCOUNT_RE.fullmatch(str(value)):
            # An unquoted 0-leading number is read by YAML as octal or loses its zeros:
            # show what YAML made of it, the user only sees what they typed.
            raise ValueError(
                "must be 12 digits in quotes (\"012345678901\"); without quotes YAML read "
                f"it as the number {value}"
            )
        value = str(value)
    if isinstance(value, str) and not ACCOUNT_RE.fullmatch(value):
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise ValueError(
            f"must be 12 digits in quotes (\"012345678901\"), got {shown!r}"
        )
    return value


Account = Annotated[str, WithJsonSchema(_ACCOUNT_SCHEMA)]


class Ref(Strict):
    """A parent: another pipeline (in any account) and the run statuses that satisfy it."""

    model_config = ConfigDict(title="Parent reference")

    name: str = Field(pattern=NAME_PATTERN, title="Parent pipeline",
                      description="The parent pipeline's name (its state machine name).")
    account: Account | None = Field(
        default=None, title="Parent account",
        description="The parent's 12-digit AWS account, quoted; defaults to this pipeline's.",
    )
    # The schema lists the words pipeline.yaml accepts (synonyms too, any case, a single
    # word or a list), not the normalized enum, so editors do not flag the seed's `SUCCESS`.
    status: Annotated[list[Status], WithJsonSchema({
        "anyOf": [{"type": "array", "items": _any_case(ALLOWED_STATUS_WORDS, True),
                   "minItems": 1},
                  _any_case(ALLOWED_STATUS_WORDS, True)],
    })] = Field(min_length=1, title="Statuses",
                description="The parent's latest run in the window must have one of these "
                            "statuses (SUCCESS and FAILURE are synonyms of SUCCEEDED, FAILED).")

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

    model_config = ConfigDict(title="Condition", json_schema_extra={
        "anyOf": [{"required": ["allOf"]}, {"required": ["anyOf"]}]})

    all_of: list[Item] | None = Field(
        default=None, alias="allOf", min_length=1, title="All of",
        description="Holds when every item holds: parents or nested conditions.")
    any_of: list[Item] | None = Field(
        default=None, alias="anyOf", min_length=1, title="Any of",
        description="Holds when at least one item holds: parents or nested conditions.")
    operator: Annotated[Literal["AND", "OR"], WithJsonSchema(_any_case(["AND", "OR"]))] = Field(
        default="AND", title="Operator",
        description="How allOf and anyOf combine when both are given (default AND).")

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


def _cron_schema(name: str) -> WithJsonSchema:
    """One cron field. YAML reads ``hour: 3`` as a number: the model and the schema take both."""
    lo, hi = field_range(name)
    return WithJsonSchema({"anyOf": [
        {"type": "integer", "minimum": lo, "maximum": hi},
        {"type": "string", "pattern": field_pattern(name)},
        {"type": "null"},
    ]})


MinuteField = Annotated[str | None, _cron_schema("minute")]
HourField = Annotated[str | None, _cron_schema("hour")]
DayField = Annotated[str | None, _cron_schema("day")]
MonthField = Annotated[str | None, _cron_schema("month")]
WeekDayField = Annotated[str | None, _cron_schema("weekDay")]
YearField = Annotated[str | None, _cron_schema("year")]


_FIELDS_GIVEN: list[Any] = [
    {"required": [f]} for f in ("minute", "hour", "day", "month", "weekDay", "year")]


class ScheduleSpec(Strict):
    """``trigger.schedule``: cron fields, a ``cron`` expression, or a ``rate``."""

    model_config = ConfigDict(title="Schedule", json_schema_extra={
        # Exactly one kind, and never a day of the month with a day of the week.
        "oneOf": [{"required": ["cron"]}, {"required": ["rate"]}, {"anyOf": _FIELDS_GIVEN}],
        "not": {"required": ["day", "weekDay"], "properties": {
            "day": {"not": {"enum": ["?", None]}}, "weekDay": {"not": {"enum": ["?", None]}}}},
    })

    minute: MinuteField = Field(
        default=None, title="Minute", description="0-59; lists, ranges and */n as in cron.")
    hour: HourField = Field(
        default=None, title="Hour", description="0-23 in the trigger's time zone; minute "
        "defaults to 0.")
    day: DayField = Field(
        default=None, title="Day of month", description="1-31, L (last day), 15W (nearest "
        "weekday); not with weekDay.")
    month: MonthField = Field(
        default=None, title="Month", description="1-12 or JAN-DEC.")
    week_day: WeekDayField = Field(
        default=None, alias="weekDay", title="Day of week",
        description="1-7 (1 = SUN) or SUN-SAT, 6#3 (third Friday), 6L (last Friday); not "
                    "with day.")
    year: YearField = Field(
        default=None, title="Year", description="1970-2199.")
    cron: Annotated[str | None, WithJsonSchema({"anyOf": [
        {"type": "string", "pattern": cron_pattern()}, {"type": "null"}]})] = Field(
        default=None, title="Cron expression",
        description='EventBridge cron, six fields: "0 3 * * ? *" (minute hour day month '
                    "weekDay year; one of day and weekDay is ?).")
    rate: Annotated[str | None, WithJsonSchema({"anyOf": [
        {"type": "string", "pattern": rate_pattern()}, {"type": "null"}]})] = Field(
        default=None, title="Rate",
        description='A fixed rate: "rate(1 hour)", "rate(15 minutes)" (minute, hour, day; '
                    "plural above 1).")

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


def _timezones(schema: dict[str, Any]) -> None:
    # At schema time only: listing the zones reads hundreds of files (~0.5 s).
    from zoneinfo import available_timezones

    schema.pop("type", None)
    schema["enum"] = sorted(available_timezones() - {"localtime"})  # see Trigger._tz


def _condition_depth(value: object) -> None:
    """Refuse a condition nested deeper than MAX_CONDITION_DEPTH, before pydantic recurses.

    Walks the raw mapping without recursion; the error carries the path of the first
    block that is too deep, so the loader can point at its line.
    """
    stack: list[tuple[object, int, tuple[str | int, ...]]] = [(value, 1, ())]
    while stack:
        block, depth, path = stack.pop()
        if depth > MAX_CONDITION_DEPTH:
            raise PydanticCustomError(
                "condition_too_deep",
                "conditions nest at most {limit} levels deep; this block is level {level} "
                "(an allOf inside an allOf is one allOf: flatten it)",
                {"limit": MAX_CONDITION_DEPTH, "level": depth, "path": list(path)})
        if not isinstance(block, dict):
            continue
        for key in ("anyOf", "allOf"):
            items = block.get(key)
            if isinstance(items, list):
                for i in range(len(items) - 1, -1, -1):
                    item = items[i]
                    if isinstance(item, dict) and _item_tag(item) == "block":
                        stack.append((item, depth + 1, (*path, key, i)))


class Trigger(Strict):
    """When a pipeline runs: on a schedule, or when other pipelines reach statuses."""

    model_config = ConfigDict(title="Trigger", json_schema_extra={
        "not": {"required": ["schedule", "executions"]},
        "dependentRequired": {"catchup": ["schedule"], "catchupLimit": ["schedule"]}})

    schedule: ScheduleSpec | None = Field(
        default=None, title="Schedule",
        description="Run on a schedule: cron fields (hour: 3), cron or rate. Not with "
                    "executions.")
    executions: Block | None = Field(
        default=None, title="Parent runs",
        description="Run when other pipelines (any account) reach statuses: allOf / anyOf / "
                    "operator. Not with schedule.")
    window: Literal["daily", "hourly"] = Field(
        default="daily", title="Window",
        description="How parent runs are grouped: by logical date (daily) or hour (hourly).")
    timezone: Annotated[str, Field(json_schema_extra=_timezones)] = Field(
        default="UTC", title="Time zone",
        description="IANA time zone of the schedule and of the windows, e.g. Europe/Madrid.")
    rerun: Literal["never", "on-new-parent-run"] = Field(
        default="never", title="Rerun",
        description="never: once per window; on-new-parent-run: again when a newer parent "
                    "run satisfies the condition.")
    catchup: Literal["none", "latest", "all"] = Field(
        default="none", title="Catch-up",
        description="Firings of the schedule missed while the runtime was stopped: none "
                    "(default) skips them, latest runs the most recent one, all runs each "
                    "(oldest first, at most catchupLimit). Local runtime; see docs/aws.md.")
    catchup_limit: int = Field(
        default=10, ge=1, le=MAX_CATCHUP, alias="catchupLimit", title="Catch-up limit",
        description=f"With catchup: all, the most recent missed firings run (1-{MAX_CATCHUP}, "
                    "default 10).")

    @field_validator("executions", mode="before")
    @classmethod
    def _depth(cls, value: object) -> object:
        _condition_depth(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        if value == "localtime":
            # A link to the machine's own zone: the same file would mean one zone on a
            # laptop, another on a server, UTC in a Lambda.
            raise ValueError("'localtime' is whatever zone the machine is set to, so the "
                             "pipeline would run at different hours on different machines; "
                             "name an IANA zone such as 'Europe/Madrid' or 'UTC'")
        try:
            ZoneInfo(value)
            # ZoneInfo also opens what zoneinfo.available_timezones() (the schema's list)
            # leaves out: leap-second zones AWS does not know, and a symlink of the database.
            if value == "posixrules" or value.startswith(("right/", "posix/")):
                raise ValueError(value)
        except (ZoneInfoNotFoundError, ValueError):
            from zoneinfo import available_timezones

            hint = _did_you_mean(value, sorted(available_timezones())) if len(value) < 80 else ""
            shown = value if len(value) <= 40 else value[:37] + "..."
            raise ValueError(
                f"unknown time zone {shown!r}{hint}; use an IANA name such as 'UTC' or "
                "'Europe/Madrid'"
            ) from None
        return value

    @model_validator(mode="after")
    def _exclusive(self) -> Trigger:
        if self.schedule is not None and self.executions is not None:
            raise ValueError("schedule and executions are mutually exclusive; choose one")
        given = self.model_fields_set & {"catchup", "catchup_limit"}
        if given and self.schedule is None:
            raise ValueError(f"{'catchupLimit' if given == {'catchup_limit'} else 'catchup'} "
                             "applies to a schedule: this trigger has none (runs triggered by "
                             "parents are never missed)")
        return self


class NotificationType(StrEnum):
    """Which events are notified."""

    FULL_EXECUTION = "FULL_EXECUTION"
    PIPELINE = "PIPELINE"
    FAILURES_ONLY = "FAILURES_ONLY"


class Target(Strict):
    """Where notifications go: a channel (SLACK, EMAIL, OPSGENIE, or a plugin's) and addresses."""

    model_config = ConfigDict(title="Notification target")

    channel: str = Field(title="Channel", description="SLACK, EMAIL, OPSGENIE or an installed "
                         "notifier plugin's channel (`dpc plugins list`).")
    addresses: list[str] = Field(min_length=1, title="Addresses",
                                 description="Slack channels, email addresses, OpsGenie teams…")

    @field_validator("channel", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class Notifications(Strict):
    """``notifications``: a type and a list of targets."""

    type: NotificationType = Field(
        default=NotificationType.FAILURES_ONLY, title="What is notified",
        description="FULL_EXECUTION: every step and the pipeline; PIPELINE: start and final "
                    "status; FAILURES_ONLY (default).")
    targets: list[Target] = Field(default_factory=list, title="Targets",
                                  description="Channels and their addresses.")


class Owner(Strict):
    """``owner: {team, contact}``: who owns a pipeline and how to reach them."""

    model_config = ConfigDict(title="Owner")

    team: str = Field(min_length=1, max_length=128, title="Team",
                      description="The owning team, e.g. core-data-availability.")
    contact: str | None = Field(default=None, max_length=256, title="Contact",
                                description="How to reach them: an email, a Slack channel, "
                                            "an on-call rota.")


class PipelineBase(Strict):
    """Core fields of pipeline.yaml; steps and compute are kept raw for plugin validation."""

    name: str = Field(
        pattern=NAME_PATTERN, title="Pipeline name",
        description="Unique in its account; the Step Functions state machine name. Letters, "
                    "digits, - and _, at most 80.")
    account: Account | None = Field(
        default=None, title="AWS account",
        description='The 12-digit AWS account the pipeline lives in, quoted ("111111111111"); '
                    "taken from the credentials at deploy when left out.")
    description: str | None = Field(default=None, title="Description",
                                    description="What the pipeline produces, for people.")
    owner: str | Owner | None = Field(
        default=None, title="Owner",
        description="The owning team (a string), or {team, contact}; shown in every notice, "
                    "in status and in lineage.")
    tags: dict[str, str] = Field(default_factory=dict, title="Tags",
                                 description="Free key: value labels (also AWS resource tags).")
    trigger: Trigger = Field(default_factory=Trigger, title="Trigger",
                             description="When the pipeline runs; without one, only by hand.")
    deadline: Annotated[str | None, WithJsonSchema(
        {"type": "string", "pattern": DEADLINE_PATTERN})] = Field(
        default=None, title="Deadline",
        description='When a window\'s run should have succeeded: a time of day in '
                    'trigger.timezone ("06:00", daily windows) or an offset from the window\'s '
                    'start ("+45m", "+2h", "+1h30m"). Missed: one LATE notice per window.')
    steps: list[dict[str, Any]] = Field(
        min_length=1, title="Steps", description="What runs, in order: {name, type, ...}; "
        "type selects a step plugin (shell, spark, ...).")
    compute: dict[str, Any] | None = Field(
        default=None, title="Compute", description="Where Spark steps run on AWS: {type: emr, "
        "...}; local when left out.")
    notifications: Notifications = Field(
        default_factory=Notifications, title="Notifications",
        description="Who hears about runs, and about what.")

    _acct = field_validator("account", mode="before")(_account)

    @field_validator("deadline", mode="before")
    @classmethod
    def _deadline(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            return value
        trigger = info.data.get("trigger")
        window = trigger.window if isinstance(trigger, Trigger) else "daily"
        return parse_deadline(value, window).text()

    @property
    def owner_team(self) -> str | None:
        """The owning team, whichever way ``owner`` was written."""
        return self.owner.team if isinstance(self.owner, Owner) else self.owner

    @property
    def owner_contact(self) -> str | None:
        """The owner's contact, when ``owner`` gives one."""
        return self.owner.contact if isinstance(self.owner, Owner) else None


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
    #: The owner's contact (``owner: {team, contact}``); ``owner`` is the team.
    contact: str | None = None
    #: ``deadline`` as written (validated, see :mod:`dpc_core.deadlines`).
    deadline: str | None = None

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
