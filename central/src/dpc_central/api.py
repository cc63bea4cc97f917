"""Pipelines in code: the Python API for the rare pipeline that pipeline.yaml cannot say.

A pipeline written in Python is the same :class:`~dpc_core.model.Pipeline` a
``pipeline.yaml`` becomes, validated by the same rules (the core model, then each
step's plugin config model), and deployed as the same stack ``dpc deploy`` builds
(``dpc-pipeline-<name>``). What code adds: step types defined in the app itself (their
Step Functions states are CDK constructs the app builds), and any CDK construct beside
the pipeline's in the same stack::

    from aws_cdk import aws_s3 as s3
    from dpc_central.api import PipelineApp, PipelineStack, pipeline, steps

    app = PipelineApp()                       # cdk-nag on; writes to $CDK_OUTDIR
    p = pipeline(name="metric-x", account="333333333333",
                 trigger={"schedule": {"hour": 3}},
                 steps=[steps.spark("metric-x", script="jobs/metric_x.py")],
                 compute={"type": "emr"})
    stack = PipelineStack(app, pipeline=p)    # id: dpc-pipeline-metric-x
    s3.Bucket(stack, "Extra", enforce_ssl=True)
    app.synth()

Deploy with ``dpc deploy --app "python app.py"`` (``dpc synth --app ...`` writes the
cloud assembly only): dpc runs the command as the CDK toolkit runs ``--app`` (see
``dpc_central.app_command``). Errors name the file and line of the call and the field,
as ``dpc validate`` does for YAML.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from constructs import Construct

from dpc_central.app import pipeline_stack_name
from dpc_central.common.cdk_env import prepare_jsii
from dpc_central.pipeline.stack import PipelineStack as _YamlPipelineStack
from dpc_core.errors import ValidationFailed
from dpc_core.loader import Positions, validate_document
from dpc_core.model import Pipeline
from dpc_core.plugins import Registry, get_registry
from dpc_core.types import AwsStepStates, LocalExecutor, StepConfig, StepType

__all__ = ["Pipeline", "PipelineApp", "PipelineStack", "StepConfig", "StepType", "acknowledge",
           "pipeline", "steps"]

#: Who "provides" a step type defined in the app (``dpc plugins``-style messages name it).
IN_PROCESS = "<defined in the app>"


def _caller(depth: int = 2) -> tuple[str, int, Path]:
    """File, line and directory of the user's call (errors point there, as to YAML)."""
    frame = sys._getframe(depth)
    file = Path(frame.f_code.co_filename).resolve()
    return str(file), frame.f_lineno, file.parent


class StepTypes:
    """The step types of the installed plugins, plus those the app defines; ``steps``.

    ``steps.spark("metric-x", script="jobs/x.py")`` builds a step of type ``spark``
    (``steps.acme_marker(...)`` the type ``acme-marker``; ``steps.of("acme-marker",
    ...)`` any name), validated at once by the type's plugin config model: a wrong or
    missing field is a :class:`~dpc_core.errors.ValidationFailed` naming the file, line
    and field. Keyword arguments take the Python field names or the YAML spellings
    (``main_class=`` or ``mainClass=``).
    """

    def __init__(self) -> None:
        self._defined: dict[str, StepType] = {}
        self._registry: Registry | None = None

    def registry(self) -> Registry:
        """The installed plugins' registry with the app's own step types added."""
        if self._registry is None:
            base = get_registry()
            if not self._defined:
                return base
            self._registry = dataclasses.replace(
                base, steps={**base.steps, **self._defined},
                owners={**base.owners, **{("step", n): IN_PROCESS for n in self._defined}})
        return self._registry

    def define(self, step_type: StepType) -> StepType:
        """Add a step type for this app only (no plugin, no entry point). A name an
        installed plugin already provides is refused: a pipeline must mean one thing."""
        taken = step_type.name in get_registry().steps or step_type.name in self._defined
        if taken and self._defined.get(step_type.name) is not step_type:
            owner = get_registry().owners.get(("step", step_type.name), "the app")
            raise ValueError(f"step type {step_type.name!r} is already defined (by {owner})")
        self._defined[step_type.name] = step_type
        self._registry = None
        return step_type

    def custom(self, name: str, *, config: type[StepConfig], local: LocalExecutor | None = None,
               description: str = "") -> Callable[[AwsStepStates], StepType]:
        """Decorator: a function ``(ctx: AwsStepContext) -> IChainable`` becomes the AWS
        form of a new step type ``name`` whose fields ``config`` validates. The function
        builds its states (and any construct they need) in ``ctx.scope``, one construct
        per step (``Pipeline/Step-<step name>``); ``ctx.step`` is the validated config."""
        def wrap(aws_states: AwsStepStates) -> StepType:
            return self.define(StepType(name=name, config=config, local=local,
                                        aws_states=aws_states, description=description))
        return wrap

    def of(self, type: str, name: str, **fields: Any) -> StepConfig:
        """A step of type ``type`` called ``name``, validated by its plugin's model."""
        file, line, _ = _caller()
        return self._build(type, name, fields, file, line)

    def _build(self, type: str, name: str, fields: Mapping[str, Any], file: str,
               line: int) -> StepConfig:
        from dpc_core.errors import Problem
        from dpc_core.loader import _validate_plugin_item

        reg = self.registry()
        raw: dict[str, Any] = {"name": name, "type": type}
        model = reg.steps[type].config if type in reg.steps else None
        aliases = {n: f.alias for n, f in model.model_fields.items() if f.alias} if model else {}
        raw.update({aliases.get(k, k): v for k, v in fields.items()})
        problems: list[Problem] = []
        step = _validate_plugin_item(raw, ("steps", name), "step", reg, file,
                                     Positions(values={(): (line, 1)}), problems)
        if step is None:
            raise ValidationFailed(problems)
        return step  # type: ignore[return-value]

    def __getattr__(self, attr: str) -> Callable[..., StepConfig]:
        if attr.startswith("_"):
            raise AttributeError(attr)
        type = attr.replace("_", "-")

        def build(name: str, **fields: Any) -> StepConfig:
            file, line, _ = _caller()
            return self._build(type, name, fields, file, line)

        build.__name__ = attr
        build.__doc__ = f"A step of type {type!r}: ``steps.{attr}(name, **fields)``."
        return build

    def __dir__(self) -> Iterable[str]:
        names = [n.replace("-", "_") for n in self.registry().steps]
        return sorted({*super().__dir__(), *names})


#: The step registry of this process (installed plugins + the app's own step types).
steps = StepTypes()


def _step_document(step: StepConfig | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(step, StepConfig):
        return step.model_dump(by_alias=True, exclude_unset=True, mode="json") | {
            "name": step.name, "type": step.type}
    return dict(step)


def pipeline(*, name: str, steps: Iterable[StepConfig | Mapping[str, Any]],
             account: str | None = None, trigger: Mapping[str, Any] | None = None,
             notifications: Mapping[str, Any] | None = None,
             compute: Mapping[str, Any] | None = None, description: str | None = None,
             owner: str | Mapping[str, str] | None = None,
             tags: Mapping[str, str] | None = None, deadline: str | None = None,
             project_dir: str | Path | None = None) -> Pipeline:
    """A pipeline, validated exactly as a ``pipeline.yaml`` with these fields would be.

    ``trigger``, ``notifications``, ``compute`` and ``owner`` take the YAML shapes
    (``{"executions": {"allOf": [...]}}``, ``{"type": "FAILURES_ONLY", "targets":
    [...]}``); ``steps`` the values of ``steps.<type>(...)`` (or YAML-shaped mappings).
    Script paths are relative to ``project_dir``, by default the calling file's
    directory. Raises :class:`~dpc_core.errors.ValidationFailed`, each problem with the
    calling file and line and the field (``trigger.schedule.hour: ...``).
    """
    file, line, here = _caller()
    doc: dict[str, Any] = {"name": name, "steps": [_step_document(s) for s in steps]}
    optional = {"account": account, "trigger": trigger, "notifications": notifications,
                "compute": compute, "description": description, "owner": owner,
                "tags": tags, "deadline": deadline}
    doc.update({k: (dict(v) if isinstance(v, Mapping) else v)
                for k, v in optional.items() if v is not None})
    return validate_document(doc, Positions(values={(): (line, 1)}), file, steps_registry(),
                             project_dir=str(Path(project_dir) if project_dir else here))


def steps_registry() -> Registry:
    """The registry pipelines in code are validated and synthesized with."""
    return steps.registry()


def acknowledge(scope: Construct, rules: Iterable[tuple[str, str]]) -> None:
    """Accept cdk-nag findings on ``scope`` and below: ``[(rule id, reason), ...]`` (a
    rule id may narrow to one finding: ``"AwsSolutions-IAM5[Resource::*]"``). The
    reason is required: it is what a reviewer reads next to the exception."""
    from dpc_central.common.nag import suppress

    suppress(scope, list(rules))


class PipelineApp(cdk.App):
    """A CDK app for pipeline stacks: cdk-nag's AwsSolutions pack runs at synth (a
    finding nobody acknowledged fails it), as in ``dpc synth``.

    ``outdir`` defaults to ``$CDK_OUTDIR`` (set by ``dpc synth --app``/``deploy --app``
    and by the CDK toolkit), else a temporary directory. ``nag=False`` turns the checks
    off (and dpc then records no acknowledgements: only a check reads them).
    """

    def __init__(self, *, outdir: str | Path | None = None, nag: bool = True,
                 **kwargs: Any) -> None:
        prepare_jsii()
        if outdir is not None:
            kwargs["outdir"] = str(outdir)
        super().__init__(**kwargs)
        from dpc_central.common.nag import apply_stack_checks

        apply_stack_checks(self, enabled=nag)

    def synth(self, **kwargs: Any) -> Any:
        """Write the cloud assembly; a CDK error (a cdk-nag finding among them) exits 1
        with its one-line message instead of a Node and Python stack trace."""
        try:
            return super().synth(**kwargs)
        except RuntimeError as exc:  # jsii wraps CDK's errors
            raise SystemExit(f"error: {str(exc).splitlines()[0]}") from None


class PipelineStack(_YamlPipelineStack):
    """One pipeline's stack, the same ``dpc deploy`` builds from a ``pipeline.yaml``:
    state machine, trigger, notification topic, registration. Add any construct with
    the stack as its scope. Attributes: ``machine`` (``machine.state_machine``),
    ``topic`` (``topic.topic``), ``trigger``, ``registration``.

    ``id`` defaults to ``dpc-pipeline-<name>`` (the stack name dpc uses, so a pipeline
    moved from YAML to code updates its stack in place); ``env`` to the pipeline's
    account and ``$CDK_DEFAULT_REGION``; ``registry`` to the installed plugins plus the
    app's own step types.
    """

    def __init__(self, scope: Construct, id: str | None = None, *, pipeline: Pipeline,
                 registry: Registry | None = None, env: cdk.Environment | None = None,
                 **kwargs: Any) -> None:
        if env is None:
            region = os.environ.get("CDK_DEFAULT_REGION")
            if pipeline.account or region:
                env = cdk.Environment(account=pipeline.account, region=region)
        super().__init__(scope, id or pipeline_stack_name(pipeline), pipeline=pipeline,
                         registry=registry or steps_registry(), env=env, **kwargs)
        self.pipeline = pipeline
