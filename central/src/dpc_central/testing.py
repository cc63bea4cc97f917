"""Helpers to test dpc stacks and plugins' AWS forms (no AWS account needed).

Plugin authors use them as dpc's own tests do: build a project, synthesize its
pipeline stacks, lint the templates, and run a state machine definition on moto.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CASE_STUDY_FILES = {
    "listings/jobs/aggregate_listings.py": "print('aggregate listings')\n",
    "pipeline-x/jobs/metric_x.py": "print('metric x')\n",
    "searches/export_searches.sh": "#!/bin/bash\necho export\n",
    "listings-fallback/copy_previous_partition.sh": "#!/bin/bash\necho copy\n",
}


def case_study_project(source: Path, dest: Path, *, add_emr: tuple[str, ...] = (
        "searches", "listings-fallback")) -> Path:
    """Copy the case study's pipelines to ``dest``, add ``compute: {type: emr}`` to the
    pipelines named in ``add_emr`` (their shell steps need a cluster on AWS) and the
    script files the steps name."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("events"))
    for name in add_emr:
        p = dest / name / "pipeline.yaml"
        p.write_text(p.read_text() + "compute:\n    type: emr\n")
    for rel, text in CASE_STUDY_FILES.items():
        f = dest / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return dest


#: cfn-lint warnings that mean CloudFormation (or the service it calls) refuses the
#: template at deploy time, so :func:`cfn_lint` reports them with the errors. cfn-lint
#: makes them warnings because it cannot always resolve the value; a synthesized template
#: that triggers them is refused all the same. Every other warning is style or advice.
REFUSING_WARNINGS: dict[str, str] = {
    "W1030": "a Ref resolves to a value the property's schema refuses (pattern, enum, length)",
    "W1031": "an Fn::Sub resolves to a value the property's schema refuses",
    "W1032": "an Fn::Join resolves to a value the property's schema refuses (e.g. a "
             "Lambda permission SourceArn with `*` as account: AddPermission wants 12 digits)",
    "W1033": "an Fn::Split yields values the property's schema refuses",
    "W1034": "an Fn::FindInMap yields a value the property's schema refuses",
    "W1035": "an Fn::Select yields a value the property's schema refuses",
    "W1036": "an Fn::GetAZs yields a value the property's schema refuses",
    "W1040": "an Fn::ToJsonString yields a value the property's schema refuses",
    "W1053": "a dynamic reference with spaces does not resolve",
    "W2030": "a parameter's default is not one its property accepts",
    "W2031": "a parameter's default does not match its AllowedPattern",
    "W3034": "a parameter's default is outside its MinValue/MaxValue",
    "W2511": "an IAM resource policy is malformed (the service answers MalformedPolicyDocument)",
    "W3701": "SSM refuses parameter names that start with /aws or /ssm",
}


def cfn_lint(template: Path, regions: tuple[str, ...] = ("eu-west-1",)) -> list[str]:
    """cfn-lint's errors (``E…``) and the warnings that mean CloudFormation refuses the
    template (:data:`REFUSING_WARNINGS`) for one template, as lines
    ``RULE path: message``."""
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(template, config=ManualArgs(regions=list(regions)))
    return [f"{m.rule.id} {'/'.join(map(str, m.path or []))}: {m.message}" for m in matches
            if m.rule.id.startswith("E") or m.rule.id in REFUSING_WARNINGS]


def resolve(value: Any, refs: Mapping[str, str]) -> Any:
    """Resolve ``Ref``/``Fn::Join``/``Fn::GetAtt`` of a template value with ``refs``
    (logical id or pseudo parameter → value; ``Name.Attr`` for attributes)."""
    if isinstance(value, dict) and len(value) == 1:
        (k, v), = value.items()
        if k == "Ref":
            return refs[v]
        if k == "Fn::GetAtt":
            return refs[f"{v[0]}.{v[1]}"]
        if k == "Fn::Join":
            return v[0].join(str(resolve(x, refs)) for x in v[1])
    if isinstance(value, dict):
        return {k: resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, refs) for v in value]
    return value


class Placeholders(dict[str, str]):
    """Refs for :func:`resolve` that show each name as ``<name>`` (a template read without
    the values it will be deployed with); set a name to give it a value."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


def synth_pipeline_yaml(tmp: Path, yaml_text: str, files: Mapping[str, str] | None = None,
                        registry: Any = None) -> dict[str, Any]:
    """The template of the one pipeline ``yaml_text`` describes (a project in ``tmp``
    with ``files`` beside its ``pipeline.yaml``), synthesized in eu-west-1 without
    cdk-nag."""
    from dpc_central.app import pipeline_app, pipeline_stack_name
    from dpc_core.loader import load_pipelines

    project = tmp / "project"
    project.mkdir(parents=True)
    (project / "pipeline.yaml").write_text(yaml_text)
    for rel, text in (files or {}).items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    (p,) = load_pipelines([project], registry=registry)
    out = tmp / "cdk.out"
    pipeline_app([p], outdir=out, region="eu-west-1", registry=registry, nag=False).synth()
    template: dict[str, Any] = json.loads(
        (out / f"{pipeline_stack_name(p)}.template.json").read_text())
    return template


def state_machine_definitions(template: Mapping[str, Any], refs: Mapping[str, str]) -> dict[
        str, dict[str, Any]]:
    """Logical id → parsed ASL of every state machine of a synthesized template."""
    out = {}
    for lid, res in template["Resources"].items():
        if res["Type"] == "AWS::StepFunctions::StateMachine":
            out[lid] = json.loads(resolve(res["Properties"]["DefinitionString"], refs))
    return out


def central_engine_with_listings_succeeded(client: Any, seed: Path) -> Any:
    """The central tables (prefix ``dpc-``) on DynamoDB ``client`` (moto in tests) with
    ``seed``'s pipelines registered and the first two events of its happy path decided
    (listings RUNNING, then SUCCEEDED): the engine over them."""
    from dpc_core.engine import Engine
    from dpc_core.loader import load_pipelines
    from dpc_core.stores.dynamodb import DynamoStore, create_tables

    engine = Engine(DynamoStore(client, create_tables(client, "dpc-")))
    engine.register_many(load_pipelines([seed], require_account=True))
    for line in (seed / "events" / "s01_happy_path.jsonl").read_text().splitlines()[:2]:
        engine.handle(json.loads(line))
    return engine
