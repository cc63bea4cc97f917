"""Public types that plugins use: registrations returned by hooks, config bases, contexts.

Every registration is a frozen dataclass that validates itself in ``__post_init__``
and carries the pydantic model of the configuration it owns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dpc_core.retry import MAX_RETRIES, Retries, parse_duration, shorthand

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_CHANNEL = re.compile(r"^[A-Z][A-Z0-9_]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _retries_schema(schema: dict[str, Any]) -> None:
    # A count alone is the shorthand of {count: N}.
    schema["anyOf"] = [{"type": "integer", "minimum": 0, "maximum": MAX_RETRIES},
                       *schema.get("anyOf", [])]


def _timeout_schema(schema: dict[str, Any]) -> None:
    from dpc_core.retry import DURATION_PATTERN

    schema.pop("anyOf", None)
    schema.pop("type", None)
    schema["anyOf"] = [{"type": "string", "pattern": DURATION_PATTERN}, {"type": "null"}]


class StepConfig(BaseModel):
    """Base of every step plugin's config model. ``name``, ``type``, ``passEnv``,
    ``retries`` and ``timeout`` belong to the core."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: str
    #: Locally a step gets a minimal environment (``DPC_*``, ``PATH``, ``HOME``, locale, ...);
    #: these are the names of further variables of the runtime's environment it needs.
    #: ``passEnv``, not ``env``: the shell step's ``env`` already sets values.
    pass_env: tuple[str, ...] = Field(
        default=(), alias="passEnv",
        description="names of environment variables the step gets from the runtime's "
                    "environment (locally; notifier secrets are never passed)")

    @field_validator("pass_env")
    @classmethod
    def _env_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return names

    #: ``retries`` and ``timeout`` (dpc_core/retry.py): core fields every step type has.
    retries: Retries | None = Field(
        default=None, json_schema_extra=_retries_schema,
        description="More attempts after a failure: a count (0-10), or {count, backoff: "
                    "{initial, rate, max}, on: ALL | TIMEOUT | FAILED}")
    timeout: int | None = Field(
        default=None, json_schema_extra=_timeout_schema,
        description="How long one attempt may run, e.g. 30m, 2h (at most 7d); then it "
                    "fails with TIMEOUT")

    @field_validator("retries", mode="before")
    @classmethod
    def _retries(cls, value: object) -> object:
        return shorthand(value)

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: object) -> object:
        return None if value is None else parse_duration(value)


class ComputeConfig(BaseModel):
    """Base of every compute plugin's config model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str


@dataclass(frozen=True)
class RunContext:
    """What a step sees when it runs locally: the run, its logical date and its parents."""

    pipeline: str
    account: str
    run_id: str
    logical_date: str
    project_dir: Path
    work_dir: Path
    data_dir: Path
    parents: Sequence[Mapping[str, str]] = ()

    def environment(self) -> dict[str, str]:
        """Environment variables every local step gets (``DPC_*``)."""
        import json
        import sys

        return {
            "DPC_PYTHON": sys.executable,
            "DPC_PIPELINE": self.pipeline,
            "DPC_ACCOUNT": self.account,
            "DPC_RUN_ID": self.run_id,
            "DPC_LOGICAL_DATE": self.logical_date,
            "DPC_PROJECT_DIR": str(self.project_dir),
            "DPC_WORK_DIR": str(self.work_dir),
            "DPC_DATA_DIR": str(self.data_dir),
            "DPC_PARENTS": json.dumps(list(map(dict, self.parents))),
        }


@dataclass(frozen=True)
class LocalCommand:
    """A subprocess the local runtime runs for a step."""

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    #: Names of the runtime's environment variables the command needs when set (a Spark
    #: step: ``JAVA_HOME``, ``SPARK_HOME``); the step's environment is otherwise minimal.
    pass_env: Sequence[str] = ()


#: Builds the subprocess of a step from its validated config and the run context.
LocalExecutor = Callable[[Any, RunContext], LocalCommand]


@dataclass(frozen=True)
class AwsStepContext:
    """What a step plugin gets when it contributes Step Functions states (CDK scope etc.)."""

    scope: Any
    pipeline: Any
    step: Any
    compute: Any
    artifacts_bucket: Any
    cluster_id_path: str
    project_dir: Path
    #: The compute's ``AwsCompute.run_command`` (None: the pipeline has no compute that
    #: runs commands); call it through :meth:`run_command`.
    runner: Callable[[AwsStepContext, list[str]], Any] | None = None

    def run_command(self, argv: list[str]) -> Any:
        """The state that runs ``argv`` on the pipeline's compute (dpc-compute-emr: an
        EMR step on the run's cluster); ValueError when the compute runs no commands."""
        if self.runner is None:
            raise ValueError(f"step {self.step.name!r} runs a command on the pipeline's "
                             "compute on AWS, and the pipeline's compute runs none")
        return self.runner(self, argv)

    def upload(self, relative: str, kind: str = "file") -> str:
        """Upload a project file to ``s3://<artifacts>/dpc/<pipeline>/<step>/`` at deploy and
        return its S3 URI; ValueError when the file does not exist."""
        from dpc_core.cdk_values import upload_project_file

        return upload_project_file(self, relative, kind)


@dataclass(frozen=True)
class AslState:
    """One Step Functions state as plain Amazon States Language: the AWS form a step or
    compute plugin may return instead of CDK constructs.

    ``state`` is the state's JSON without ``Next``/``End`` (dpc chains the states);
    strings may hold CDK tokens (an SSM parameter, the partition), resolved at synth.
    ``policy`` holds the IAM statements (JSON) the state machine's role needs to run it.
    Building a state this way costs no jsii round trip, where every CDK state, task, retry
    and chain call is one (issue #12: nearly all synth time). A step returns one
    ``AslState``, a sequence of them (run in order) or a CDK ``IChainable``.
    """

    name: str
    state: Mapping[str, Any]
    policy: Sequence[Mapping[str, Any]] = ()


#: Returns a CDK ``IChainable`` (one state or a chain), an :class:`AslState` or a sequence
#: of them for a step.
AwsStepStates = Callable[[AwsStepContext], Any]


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"{kind} name {name!r} must match {_NAME.pattern}")


@dataclass(frozen=True)
class StepType:
    """A step type (``type:`` of a step) contributed by a plugin.

    ``config`` validates the step's fields; ``local`` builds the subprocess of the
    local runtime; ``aws_states`` contributes the Step Functions states on AWS;
    ``files`` names the project files (relative to the project directory) a step's AWS
    form uploads, so ``dpc validate`` reports a missing one as ``dpc synth`` would.
    """

    name: str
    config: type[StepConfig]
    local: LocalExecutor | None = None
    aws_states: AwsStepStates | None = None
    description: str = ""
    files: Callable[[Any], Sequence[str]] | None = None

    def __post_init__(self) -> None:
        _check_name("step type", self.name)
        if not (isinstance(self.config, type) and issubclass(self.config, StepConfig)):
            raise TypeError(f"step type {self.name!r}: config must subclass StepConfig")


@dataclass(frozen=True)
class AwsComputeContext:
    """What a compute plugin gets to build its provision and teardown states."""

    scope: Any
    pipeline: Any
    compute: Any
    artifacts_bucket: Any
    cluster_id_path: str


@dataclass(frozen=True)
class AwsCompute:
    """States a compute plugin contributes: provision before the steps, teardown after.

    Each is a CDK ``IChainable`` or an :class:`AslState`. ``scope_policy`` (optional)
    rewrites the IAM statements of the ``AslState`` forms (the compute's and the steps')
    before they are granted, e.g. to confine them to the run's own cluster;
    ``on_cdk_states`` (optional) is called with the state machine construct when some
    step's states are CDK constructs, whose grants CDK writes itself. ``run_command``
    (optional) builds the state that runs a step's command (an argv) on this compute,
    what ``AwsStepContext.run_command`` returns to the shell and spark steps."""

    provision: Any
    teardown: Any
    catch_teardown: Any
    scope_policy: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None
    on_cdk_states: Callable[[Any], None] | None = None
    run_command: Callable[[AwsStepContext, list[str]], Any] | None = None


@dataclass(frozen=True)
class ComputeType:
    """A compute backend (``compute.type``) contributed by a plugin."""

    name: str
    config: type[ComputeConfig]
    aws: Callable[[AwsComputeContext], AwsCompute] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("compute type", self.name)
        if not (isinstance(self.config, type) and issubclass(self.config, ComputeConfig)):
            raise TypeError(f"compute type {self.name!r}: config must subclass ComputeConfig")


EventKind = Literal[
    "PIPELINE_STARTED", "PIPELINE_FINISHED", "STEP_STARTED", "STEP_FINISHED",
    # Notices about a window rather than a run (dpc_core.health): a missed deadline, a
    # failed upstream run, and their resolution when the window's run succeeds. Their
    # ``run_id`` names the notice (``late:2026-11-26``), so channels that thread by run
    # (Slack) keep a notice and its resolution together.
    "PIPELINE_LATE", "PIPELINE_BLOCKED", "NOTICE_RESOLVED",
]
#: The kinds of window notices: every pipeline's targets get them, whatever its
#: ``notifications.type``.
NOTICE_KINDS = frozenset({"PIPELINE_LATE", "PIPELINE_BLOCKED", "NOTICE_RESOLVED"})


@dataclass(frozen=True)
class Notification:
    """One thing to tell people about a run: what happened, where, and why it ran."""

    kind: EventKind
    pipeline: str
    account: str
    logical_date: str
    run_id: str
    status: str
    duration_s: float | None = None
    step: str | None = None
    error: str | None = None
    parents: Sequence[Mapping[str, str]] = ()
    #: The text of a window notice (LATE, BLOCKED, RECOVERED): why, and what happens next.
    message: str | None = None
    #: A key that names this notification (the same on every retry of its delivery), for
    #: channels that can make a retry harmless: Slack message metadata, OpsGenie alert
    #: details, the email Message-ID. None where the runtime keeps no outbox.
    key: str | None = None
    #: True when an earlier delivery of this notification may have been sent (the runtime
    #: stopped while it was under way): a channel looks for it before sending again.
    retry: bool = False

    @property
    def failed(self) -> bool:
        """True for a failed step or a run that did not succeed."""
        return self.status in {"FAILED", "TIMED_OUT", "ABORTED"}

    def summary(self) -> str:
        """One line a human reads in a chat message or an email subject."""
        if self.message:
            return f"[{self.status}] {self.message}"
        run_level = self.kind.startswith("PIPELINE")
        what = "pipeline" if run_level or not self.step else f"step {self.step}"
        text = f"[{self.status}] {self.pipeline} ({self.account}) {what} for {self.logical_date}"
        if self.duration_s is not None:
            text += f" in {self.duration_s:.1f}s"
        if run_level and self.step:
            # The run's final status names the step it failed in.
            text += f", failed step {self.step}"
        return text

    def details(self) -> list[str]:
        """Further lines: run, error, parents that caused the run."""
        lines = [f"run: {self.run_id}"]
        if self.error:
            lines.append(f"error: {self.error}")
        for p in self.parents:
            lines.append(
                f"triggered by: {p.get('pipeline')} ({p.get('account')}) "
                f"{p.get('status')} {p.get('executionArn')}"
            )
        return lines


class NotifierBackend(Protocol):
    """Delivers notifications to the addresses of one channel. Must never raise for
    delivery problems that the pipeline should not fail on; it logs them instead."""

    def send(self, note: Notification, addresses: Sequence[str]) -> None:
        """Deliver ``note`` to every address."""


@dataclass(frozen=True)
class NotifierType:
    """A notification channel (``targets[].channel``) contributed by a plugin.

    ``factory`` builds the backend from the environment (``os.environ`` locally);
    ``validate_address`` raises ``ValueError`` for an address the channel cannot use.

    ``required_env`` names the variables without which the channel cannot deliver (the
    local runtime then prints its notifications instead and says what to set);
    ``secret_env`` names the variables holding its secrets, which the local runtime never
    passes to a step and redacts from every text it writes; ``preview`` renders one line
    of what the channel sends to an address for a note (None: it sends nothing for it),
    used to print and record notifications. ``alert`` is for a channel that opens an alert
    and closes it later (OpsGenie): ``("open" | "close", key)`` for a note, None for
    others; where the channel is not configured, a close is printed only after its
    opening was (a close of nothing would be noise).
    """

    channel: str
    factory: Callable[[Mapping[str, str]], NotifierBackend]
    validate_address: Callable[[str], None] | None = None
    aws_subscriptions: Callable[[Any, Any, Sequence[str]], None] | None = None
    description: str = ""
    required_env: tuple[str, ...] = ()
    secret_env: tuple[str, ...] = ()
    preview: Callable[[Notification, str], str | None] | None = None
    alert: Callable[[Notification], tuple[str, str] | None] | None = None

    def __post_init__(self) -> None:
        if not _CHANNEL.match(self.channel):
            raise ValueError(f"channel {self.channel!r} must match {_CHANNEL.pattern}")
        for name in (*self.required_env, *self.secret_env):
            if not _ENV_NAME.match(name):
                raise ValueError(f"channel {self.channel!r}: {name!r} is not an environment "
                                 "variable name")


@dataclass(frozen=True)
class TriggerSource:
    """A source of trigger events other than Step Functions status changes.

    ``detail_type`` / ``source`` name the EventBridge events; ``to_status_event``
    turns one into the Step Functions status-change shape the engine reads.
    """

    name: str
    source: str
    detail_type: str
    to_status_event: Callable[[Mapping[str, Any]], Mapping[str, Any] | None]
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("trigger source", self.name)


_OPTION = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class AccountOption:
    """A command-line option a plugin adds to ``dpc setup-user-account`` (``--<name>``).

    ``help`` is the option's help line. Given, its value reaches the plugin's
    ``dpc_team_account_constructs`` (``team.option(name)``); omitted (``--synth-only``),
    it becomes a CloudFormation parameter of type ``cfn_type`` named after the option
    (``vpc-id`` -> ``VpcId``) described by ``description`` (default: ``help``). A
    ``required_to_deploy`` option must be given to deploy.
    """

    name: str
    help: str
    cfn_type: str = "String"
    required_to_deploy: bool = True
    #: The CloudFormation parameter's description (default: ``help``).
    description: str = ""
    #: For a subnet: tags it must carry (``dpc doctor --aws --subnet-id`` checks them),
    #: and why (one line naming the AWS policy that requires them).
    required_tags: tuple[tuple[str, str], ...] = ()
    tags_reason: str = ""

    def __post_init__(self) -> None:
        if not _OPTION.match(self.name):
            raise ValueError(f"account option {self.name!r}: lower-case words joined by "
                             "'-' (it becomes --NAME)")

    @property
    def flag(self) -> str:
        """``--<name>``."""
        return f"--{self.name}"

    @property
    def parameter_id(self) -> str:
        """The CloudFormation parameter's logical id: ``vpc-id`` -> ``VpcId``."""
        return "".join(part.capitalize() for part in self.name.split("-"))


@dataclass(frozen=True)
class AccountResource:
    """A resource a plugin keeps in a team account, by the key its runtime calls name it
    with in ``aws-calls.yaml`` (``member:<key>``), for ``dpc doctor --aws``.

    ``arn`` is exact, or a pattern with ``*`` where CloudFormation or a run chooses the
    name (``exact=False``). A role set up by ``setup-user-account`` whose permissions
    doctor checks ``--as-deployed`` names its ``caller`` (``role member:<caller>`` in
    ``aws-calls.yaml``).
    """

    key: str
    arn: str
    exact: bool = True
    caller: str | None = None
