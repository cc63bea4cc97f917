"""Whether a pipeline can be deployed to AWS with the installed plugins, and why not.

``dpc validate`` prints these problems as warnings (a pipeline may be meant for the local
runtime only); ``dpc synth``/``deploy`` refuse the pipeline with the same message. Plain
Python: nothing here imports aws_cdk.

A step plugin whose AWS form runs on a cluster says which compute type provides it by
decorating its ``aws_states`` with :func:`needs_compute`; a pipeline that declares no
compute with an AWS form then runs on that compute's defaults (a transient EMR cluster for
``spark`` and ``shell``), so users never provision compute themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_ATTR = "dpc_needs_compute"


def needs_compute(compute: str) -> Callable[[F], F]:
    """Mark a step type's ``aws_states`` as running on compute type ``compute`` on AWS.

    Example::

        @needs_compute("emr")
        def _aws_states(ctx):
            ...
        StepType(name="spark", config=SparkStep, aws_states=_aws_states)
    """

    def mark(fn: F) -> F:
        setattr(fn, _ATTR, compute)
        return fn

    return mark


def step_compute(step_type: Any) -> str | None:
    """The compute type a step type's AWS form runs on (:func:`needs_compute`), or None."""
    states = getattr(step_type, "aws_states", None)
    return getattr(states, _ATTR, None) if states is not None else None


@dataclass(frozen=True)
class AwsCompute:
    """The compute a pipeline runs on AWS: its type name and validated config, and whether
    dpc chose it because the pipeline declared none with an AWS form."""

    type: str
    config: Any
    defaulted: bool


def _owner(registry: Any, kind: str, name: str) -> str:
    try:
        return str(registry.owner(kind, name))
    except (KeyError, AttributeError):
        return "an unknown plugin"


def aws_compute(pipeline: Any, registry: Any) -> AwsCompute | None:
    """The compute the pipeline's state machine provisions, or None (no cluster needed).

    The declared compute when its plugin has an AWS form; otherwise the compute the
    steps need (its config defaults). Raises ``ValueError`` with a message naming the
    step when that compute is not installed or the steps disagree.
    """
    declared = registry.computes.get(pipeline.compute.type)
    if declared is not None and declared.aws is not None:
        return AwsCompute(pipeline.compute.type, pipeline.compute, defaulted=False)
    needed: dict[str, str] = {}
    for step in pipeline.steps:
        step_type = registry.steps.get(step.type)
        compute = step_compute(step_type) if step_type is not None else None
        if compute is not None:
            needed.setdefault(compute, step.name)
    if not needed:
        return None
    if len(needed) > 1:
        listed = ", ".join(f"{step!r} needs {c!r}" for c, step in needed.items())
        raise ValueError(f"the steps need different computes on AWS ({listed}); declare "
                         "one with `compute: {type: ...}` or split the pipeline")
    ((name, step_name),) = needed.items()
    compute_type = registry.computes.get(name)
    if compute_type is None or compute_type.aws is None:
        raise ValueError(f"step {step_name!r} runs on compute {name!r} on AWS, which is not "
                         f"installed with an AWS form; install dpc-compute-{name}")
    return AwsCompute(name, compute_type.config.model_validate({"type": name}), defaulted=True)


def aws_problems(pipeline: Any, registry: Any) -> list[str]:
    """Why ``dpc synth`` would refuse ``pipeline`` with the installed plugins, one line per
    problem (empty: it deploys). Each line names the step or target and its plugin."""
    problems: list[str] = []
    project = Path(getattr(pipeline, "project_dir", "") or ".")
    for step in pipeline.steps:
        step_type = registry.steps.get(step.type)
        files = getattr(step_type, "files", None)
        if step_type is not None and step_type.aws_states is not None and files is not None:
            for relative in files(step):
                if not (project / relative).is_file():
                    problems.append(
                        f"step {step.name!r}: script {relative!r} not found in {project}: "
                        "`dpc synth`/`dpc deploy` upload it to the account's artifacts "
                        "bucket; add the file or fix the path")
        if step_type is not None and step_type.aws_states is None:
            problems.append(
                f"step {step.name!r} (type {step.type}, plugin "
                f"{_owner(registry, 'step', step.type)}) has no AWS form: its plugin runs it "
                "only locally, so `dpc synth`/`dpc deploy` refuse this pipeline; use a step "
                "type with AWS support or run it with dpc local")
    try:
        compute = aws_compute(pipeline, registry)
    except ValueError as exc:
        problems.append(str(exc))
    else:
        # A compute config may know problems only the pipeline reveals (its account).
        check = getattr(compute.config, "aws_problems", None) if compute else None
        problems.extend(check(pipeline) if callable(check) else [])
    for i, target in enumerate(pipeline.notifications.targets):
        notifier = registry.notifiers.get(target.channel)
        if notifier is not None and notifier.aws_subscriptions is None:
            problems.append(
                f"notifications.targets[{i}]: channel {target.channel!r} (plugin "
                f"{_owner(registry, 'channel', target.channel)}) has no AWS form; remove the "
                "target or install a plugin version that subscribes it on AWS")
    return problems


def aws_notes(pipeline: Any, registry: Any) -> list[str]:
    """What someone other than the deployer must do before ``pipeline`` runs on AWS (e.g.
    a resource policy in another account), from its compute config's ``aws_notes``;
    ``dpc validate`` and ``dpc synth`` print them. Empty when nothing is needed."""
    try:
        compute = aws_compute(pipeline, registry)
    except ValueError:
        return []
    notes = getattr(compute.config, "aws_notes", None) if compute else None
    return [str(n) for n in notes(pipeline)] if callable(notes) else []
