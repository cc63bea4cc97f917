"""The pipeline's state machine, assembled from the compute and step plugins.

The definition is built as plain ASL (Python dicts, JSON at synth): every CDK state, task,
retry, catch and chain call is a jsii round trip, and those were most of a pipeline's
synth time (issue #12). Plugins return :class:`~dpc_core.types.AslState` forms (the
first-party ones do) or CDK chainables (``IChainable``), which are rendered into the same
definition with their grants.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from dpc_central.conventions import SFN_TAG_PIPELINE
from dpc_central.errors import SynthError
from dpc_central.pipeline.status_report import run_status, step_status
from dpc_core.cdk_values import in_stack_of, minutes, partition
from dpc_core.deployability import aws_compute, aws_problems
from dpc_core.types import AslState, AwsComputeContext, AwsStepContext

#: A run's time limit when its compute sets none (Step Functions allows up to a year).
DEFAULT_RUN_TIMEOUT_MINUTES = 720
#: Where the compute plugin leaves the cluster id in the state (``ResultPath`` ``$.cluster``).
CLUSTER_ID_PATH = "$.cluster.ClusterId"
#: The execution's start date (``YYYY-MM-DD``), the logical date of a run started by hand.
START_DATE = "States.ArrayGetItem(States.StringSplit($$.Execution.StartTime, 'T'), 0)"
#: Where a failure goes: the error (``Error``, ``Cause``) is kept for the FAILED report.
CATCH_PATH = "$.error"


class PipelineStateMachine(Construct):
    """``Start → [logical date] → provision → steps → teardown → report SUCCEEDED``; a
    failure in the steps goes ``catch teardown → report FAILED → Fail``; a failure while
    provisioning or tearing down goes straight to ``report FAILED``.

    The steps run in a one-branch ``Parallel`` so that one ``Catch`` covers every step
    whatever states a plugin contributes. The state machine is named exactly the
    pipeline name (docs/triggers.md: the pipeline's identity on AWS).

    Attributes: ``state_machine``, ``definition`` (the ASL, CDK tokens in its strings).
    """

    def __init__(self, scope: Construct, id: str, *, pipeline: Any, registry: Any,
                 central_bus_arn: str, artifacts: s3.IBucket) -> None:
        super().__init__(scope, id)
        in_stack_of(self, scope)
        project_dir = Path(pipeline.project_dir or ".")
        # The same checks and messages as `dpc validate`'s warnings, here as errors.
        problems = aws_problems(pipeline, registry)
        if problems:
            raise SynthError(f"{pipeline.source}: " + f"\n{pipeline.source}: ".join(problems))
        # A pipeline whose steps need a cluster gets one without declaring it (the compute
        # plugin's defaults): users never provision compute themselves.
        chosen = aws_compute(pipeline, registry)
        compute = None
        cluster_path = ""
        compute_config = chosen.config if chosen is not None else pipeline.compute
        if chosen is not None:
            cluster_path = CLUSTER_ID_PATH
            try:
                compute = registry.computes[chosen.type].aws(AwsComputeContext(
                    scope=in_stack_of(Construct(self, "Compute"), self), pipeline=pipeline,
                    compute=compute_config, artifacts_bucket=artifacts,
                    cluster_id_path=cluster_path))
            except (ValueError, TypeError) as exc:
                raise SynthError(f"{pipeline.source}: compute {chosen.type!r}: "
                                 f"{exc}") from None

        aws = partition()
        bus_arn = central_bus_arn
        graph = _Graph(self)
        provision = teardown = catch_teardown = None
        if compute is not None:
            where = f"{pipeline.source}: compute {compute_config.type!r}"
            provision = graph.part(compute.provision, where)
            teardown = graph.part(compute.teardown, where)
            catch_teardown = graph.part(compute.catch_teardown, where)
        full = pipeline.notifications.type.value == "FULL_EXECUTION"
        branch: list[_Part] = []
        for step in pipeline.steps:
            step_type = registry.steps[step.type]
            where = f"{pipeline.source}: step {step.name!r} (type {step.type})"
            step_scope = in_stack_of(Construct(self, f"Step-{step.name}"), self)
            try:
                states = step_type.aws_states(AwsStepContext(
                    scope=step_scope, pipeline=pipeline, step=step, compute=compute_config,
                    artifacts_bucket=artifacts, cluster_id_path=cluster_path,
                    project_dir=project_dir,
                    runner=compute.run_command if compute is not None else None))
            except (ValueError, TypeError, FileNotFoundError) as exc:
                raise SynthError(f"{where}: {exc}") from None
            if full:
                branch.append(graph.part(step_status(
                    f"{step.name} started", bus_arn=bus_arn, step=step.name,
                    status="RUNNING", partition=aws)))
            branch.extend(_retried(graph, graph.parts(states, where), step))
            if full:
                branch.append(graph.part(step_status(
                    f"{step.name} succeeded", bus_arn=bus_arn, step=step.name,
                    status="SUCCEEDED", partition=aws)))

        report_failed = graph.part(run_status("Report FAILED", bus_arn=bus_arn,
                                              status="FAILED", partition=aws))
        report_ok = graph.part(run_status("Report SUCCEEDED", bus_arn=bus_arn,
                                          status="SUCCEEDED", partition=aws))
        body_start = provision.start if provision is not None else "Run steps"
        failed = {"Next": report_failed.start}

        # States in the order CDK's graph listed them (definitions stay comparable).
        graph.add("Has logical date?", {
            "Type": "Choice",
            "Choices": [{"Variable": "$.dpc.logicalDate", "IsPresent": True,
                         "Next": body_start}],
            "Default": "Default logical date"})
        graph.add("Default logical date", {
            "Type": "Pass", "ResultPath": "$.dpc",
            "Parameters": {"logicalDate.$": START_DATE}, "Next": body_start})
        after_steps = report_ok.start
        if provision is not None and teardown is not None and catch_teardown is not None:
            # A failure while provisioning or tearing down is reported straight away.
            graph.chain([provision], "Run steps", catch=failed)
            after_steps = teardown.start
        graph.add("Run steps", {
            "Type": "Parallel", "ResultPath": None, "Next": after_steps,
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": CATCH_PATH,
                       "Next": (catch_teardown or report_failed).start}],
            "Branches": [graph.branch(branch)]})
        if teardown is not None:
            graph.chain([teardown], report_ok.start, catch=failed)
        # A report that fails for ten minutes fails the run: a lost SUCCEEDED would leave
        # children waiting, and a failed run is visible and redrivable.
        graph.chain([report_ok], "Run succeeded")
        graph.add("Run succeeded", {"Type": "Succeed"})
        graph.chain([report_failed], "Run failed")
        if catch_teardown is not None:
            graph.chain([catch_teardown], report_failed.start, catch=failed)
        graph.add("Run failed", {"Type": "Fail", "ErrorPath": "$.error.Error",
                                 "CausePath": "$.error.Cause"})

        #: How long a run may take: the compute's ``runTimeoutMinutes`` where it has one.
        self.timeout_minutes = int(getattr(compute_config, "run_timeout_minutes", None)
                                   or DEFAULT_RUN_TIMEOUT_MINUTES)
        self.definition: dict[str, Any] = {"StartAt": "Has logical date?",
                                           "States": graph.states,
                                           "TimeoutSeconds": self.timeout_minutes * 60}
        log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.THREE_MONTHS,
                                  removal_policy=RemovalPolicy.DESTROY)
        self.state_machine = in_stack_of(sfn.StateMachine(
            self, "StateMachine", state_machine_name=pipeline.name,
            definition_body=sfn.DefinitionBody.from_string(_to_json(self.definition, self)),
            timeout=minutes(self.timeout_minutes), tracing_enabled=True,
            # Every state transition, but not the data: inputs and outputs may hold
            # whatever a plugin passes (and the logs are kept three months).
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL,
                                include_execution_data=False),
        ), self)
        # The team account's status forwarder sends only tagged state machines' events.
        # (the resource's tag manager: no aspect visiting the state machine's children)
        cast(sfn.CfnStateMachine, self.state_machine.node.default_child).tags.set_tag(
            SFN_TAG_PIPELINE, pipeline.name)
        statements = graph.policy
        if compute is not None and compute.scope_policy is not None:
            statements = compute.scope_policy(statements)
        for statement in merged_statements(statements):
            _grant(self.state_machine, statement)
        for cdk_statement in graph.cdk_policy:
            self.state_machine.add_to_role_policy(cdk_statement)
        if graph.cdk_graphs:
            for cdk_graph in graph.cdk_graphs:
                cdk_graph.bind(self.state_machine)
            if compute is not None and compute.on_cdk_states is not None:
                compute.on_cdk_states(self)
        from dpc_central.common.nag import suppress

        suppress(self.state_machine, [("AwsSolutions-IAM5", "only actions without resource "
                                       "types: X-Ray (PutTraceSegments, PutTelemetryRecords, "
                                       "sampling), CloudWatch Logs log delivery (CreateLogDelivery"
                                       " & co.) and, with a cluster, elasticmapreduce:RunJobFlow, "
                                       "which is allowed only when the request tags the new "
                                       "cluster with its pipeline (aws:RequestTag)",
                                       ["Resource::*"])])


@dataclass
class _Part:
    """States to run in sequence: where they start, and those that end (to be linked)."""

    start: str
    states: dict[str, dict[str, Any]]
    ends: list[str] = field(default_factory=list)


class _Graph:
    """The definition's states, in order, and the grants they need."""

    def __init__(self, scope: Construct) -> None:
        self.scope = scope
        self.states: dict[str, dict[str, Any]] = {}
        #: Every state name so far, the branch's included (unique in a state machine).
        self.names: set[str] = set()
        #: IAM statements (JSON) of the ASL states.
        self.policy: list[dict[str, Any]] = []
        #: Grants of CDK states (``PolicyStatement``), and their graphs.
        self.cdk_policy: list[Any] = []
        self.cdk_graphs: list[Any] = []

    def parts(self, states: Any, where: str) -> list[_Part]:
        if isinstance(states, Sequence) and not isinstance(states, str | Mapping):
            if not states:
                raise SynthError(f"{where}: no states")
            return [self.part(s, where) for s in states]
        return [self.part(states, where)]

    def part(self, states: Any, where: str = "") -> _Part:
        """One AslState, or a CDK chainable rendered by CDK (with its grants)."""
        if isinstance(states, AslState):
            self.policy.extend(dict(s) for s in states.policy)
            state = dict(states.state)
            ends = [] if state.get("Type") in ("Succeed", "Fail", "Choice") else [states.name]
            return _Part(states.name, {states.name: state}, ends)
        # A state is its own start state: reading ``start_state`` is a round trip.
        start = states if isinstance(states, sfn.State) else getattr(states, "start_state",
                                                                     None)
        if start is None:
            raise SynthError(f"{where}: the AWS form must be an AslState, a sequence of "
                             f"them or a CDK IChainable, not {type(states).__name__}")
        cdk_graph = sfn.StateGraph(start, f"{where}")
        rendered = cdk_graph.to_graph_json()
        self.cdk_graphs.append(cdk_graph)
        self.cdk_policy.extend(cdk_graph.policy_statements)
        graph_states = {name: _nulls(dict(state), self.scope)
                        for name, state in rendered["States"].items()}
        ends = [name for name, state in graph_states.items() if state.get("End")]
        return _Part(rendered["StartAt"], graph_states, ends)

    def add(self, name: str, state: dict[str, Any],
            into: dict[str, Any] | None = None) -> None:
        if name in self.names:
            raise SynthError(f"two states of the state machine are named {name!r}")
        self.names.add(name)
        (self.states if into is None else into)[name] = state

    def chain(self, parts: list[_Part], then: str | None, *,
              catch: dict[str, str] | None = None, into: dict[str, Any] | None = None) -> None:
        """Add ``parts`` in sequence, the last going to ``then`` (the end when None); with
        ``catch`` (``{"Next": handler}``), every task state without a catch gets a
        catch-all to ``handler``."""
        for i, p in enumerate(parts):
            nxt = parts[i + 1].start if i + 1 < len(parts) else then
            for name, state in p.states.items():
                if name in p.ends:
                    state = _link(state, nxt)
                if catch is not None and state.get("Type") == "Task" and not state.get("Catch"):
                    state = _with_catch(state, [{"ErrorEquals": ["States.ALL"],
                                                 "ResultPath": CATCH_PATH, **catch}])
                self.add(name, state, into)

    def branch(self, parts: list[_Part]) -> dict[str, Any]:
        """A branch of the ``Parallel``: ``parts`` in sequence."""
        states: dict[str, Any] = {}
        self.chain(parts, None, into=states)
        return {"StartAt": parts[0].start, "States": states}


def _retried(graph: _Graph, parts: list[_Part], step: Any) -> list[_Part]:
    """A step's states with its ``timeout`` (``TimeoutSeconds`` of each of its task
    states, in place of the compute's step timeout) and ``retries`` (a ``Retry`` rule); a
    step without them is left exactly as its plugin made it.

    ``Retry`` goes on the step's task state when the step is that one state; a step type
    whose AWS form is several states is wrapped in a one-branch ``Parallel`` named after
    the step, which retries the whole sequence (a ``Parallel`` has no ``TimeoutSeconds``:
    there the timeout is each task state's)."""
    retries = getattr(step, "retries", None)
    timeout = getattr(step, "timeout", None)
    if timeout is not None:
        for part in parts:
            for name, state in part.states.items():
                if state.get("Type") == "Task":
                    part.states[name] = _keyed(state, "TimeoutSeconds", int(timeout), "Type")
    if retries is None or retries.count == 0:
        return parts
    rule = retries.asl()
    if len(parts) == 1 and len(parts[0].states) == 1:
        (name, state), = parts[0].states.items()
        if state.get("Type") == "Task":
            parts[0].states[name] = {**state, "Retry": _with_rule(state.get("Retry"), rule)}
            return parts
    name = f"{step.name} (retried)"
    wrapper = {"Type": "Parallel", "ResultPath": None,
               "Branches": [graph.branch(parts)], "Retry": [rule]}
    return [_Part(name, {name: wrapper}, [name])]


def _keyed(state: dict[str, Any], key: str, value: Any, after: str) -> dict[str, Any]:
    """``state`` with ``key`` set, placed after ``after`` when it is new."""
    if key in state:
        return {**state, key: value}
    out: dict[str, Any] = {}
    for k, v in state.items():
        out[k] = v
        if k == after:
            out[key] = value
    out.setdefault(key, value)
    return out


def _with_rule(existing: Any, rule: dict[str, Any]) -> list[Any]:
    """A plugin's own ``Retry`` rules with the step's: last, but before a plugin's
    ``States.ALL`` rule (which Step Functions requires to be the last)."""
    rules = list(existing or [])
    if rules and "States.ALL" in rules[-1].get("ErrorEquals", []):
        # The step's own catch-all replaces the plugin's.
        return [*rules[:-1], rule] if "States.ALL" in rule["ErrorEquals"] \
            else [*rules[:-1], rule, rules[-1]]
    return [*rules, rule]


def _to_json(definition: dict[str, Any], scope: Construct) -> str:
    """The definition as CDK's ``Stack.to_json_string`` writes it (compact, unescaped
    non-ASCII); string tokens stay in the text and become ``Fn::Join`` at synth. In
    Python, because through jsii a ``None`` (``ResultPath: null``) would be dropped."""

    def token(value: Any) -> Any:
        # What a CDK-rendered state holds besides JSON: CDK's null (a discarded result)
        # or another IResolvable, kept as a string token.
        from aws_cdk import Stack, Token

        if Stack.of(scope).resolve(value) is None:
            return None
        return str(Token.as_string(value))

    return json.dumps(definition, ensure_ascii=False, separators=(",", ":"), default=token)


def merged_statements(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same permissions in fewer statements (each is a round trip to add).

    IAM allows a request when any statement allows it, so plain allows (no ``Sid``, no
    ``NotAction``/``NotResource``/``Principal``) that differ only in their actions become
    one statement with the union of the actions, then those that differ only in their
    resources one with the union of the resources. Exact duplicates go (CDK would drop
    them when rendering). Order: where each group first appears."""

    def one(values: list[Any]) -> Any:
        return values[0] if len(values) == 1 else values

    def merge(items: list[dict[str, Any]], same: str, union: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        groups: dict[str, dict[str, Any]] = {}
        for st in items:
            if not _plain_allow(st):
                out.append(st)
                continue
            key = json.dumps([sorted(map(str, _listed(st[same]))), st.get("Condition")],
                             sort_keys=True, default=str)
            group = groups.get(key)
            if group is None:
                groups[key] = group = {**st, union: _listed(st[union])}
                out.append(group)
            else:
                group[union] = group[union] + [v for v in _listed(st[union])
                                               if v not in group[union]]
        for group in groups.values():
            group[union] = one(group[union])
        return out

    return merge(merge(statements, "Resource", "Action"), "Action", "Resource")


def _plain_allow(statement: Mapping[str, Any]) -> bool:
    """An allow of actions on resources, at most with a condition (no ``Sid``,
    ``NotAction``, ``NotResource`` or ``Principal``)."""
    return set(statement) <= {"Action", "Effect", "Resource", "Condition"} and \
        statement.get("Effect") == "Allow"


def _listed(value: Any) -> list[Any]:
    """An IAM element that may be one value or a list, as a list."""
    return list(value) if isinstance(value, list) else [value]


def _grant(machine: sfn.StateMachine, statement: dict[str, Any]) -> None:
    """Add ``statement`` to the state machine role's policy: one round trip where the
    statement is a plain allow (``Grant.add_to_principal``), two otherwise."""
    if _plain_allow(statement):
        iam.Grant.add_to_principal(grantee=machine, actions=_listed(statement["Action"]),
                                   resource_arns=_listed(statement["Resource"]),
                                   conditions=statement.get("Condition"))
    else:
        machine.add_to_role_policy(iam.PolicyStatement.from_json(statement))


def _nulls(value: Any, scope: Construct) -> Any:
    """A state rendered by CDK with its nulls (a discarded result): through jsii each is
    a string token that resolves to null."""
    if isinstance(value, dict):
        return {k: _nulls(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulls(v, scope) for v in value]
    if isinstance(value, str) and value.startswith("${Token[") and value.endswith("]}"):
        from aws_cdk import Stack

        if Stack.of(scope).resolve(value) is None:
            return None
    return value


def _link(state: dict[str, Any], nxt: str | None) -> dict[str, Any]:
    """``state`` going to ``nxt`` (ending when None), keys where CDK renders them."""
    key, value = ("Next", nxt) if nxt is not None else ("End", True)
    if "End" in state or "Next" in state:  # rendered by CDK: relinked in place
        return {(key if k in ("End", "Next") else k): (value if k in ("End", "Next") else v)
                for k, v in state.items()}
    if state.get("Type") == "Task":  # CDK renders a task's Next first
        return {key: value, **state}
    return {**state, key: value}


def _with_catch(state: dict[str, Any], catch: list[dict[str, Any]]) -> dict[str, Any]:
    """``state`` with ``catch``, after its ``Retry`` (where CDK renders it)."""
    out: dict[str, Any] = {}
    for k, v in state.items():
        if k == "Type" and "Catch" not in out:
            out["Catch"] = catch
        out[k] = v
    if "Catch" not in out:
        out["Catch"] = catch
    return out
