"""What synth skips or merges to save jsii round trips (issue #12, synth speed) keeps the
deployed meaning: acknowledgements are recorded wherever a check may read them, and the
state machine's merged policy allows exactly what the separate statements allowed."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dpc_central.pipeline.state_machine import merged_statements

CASE_STUDY = Path(__file__).resolve().parents[1] / "examples" / "seed"
ACKNOWLEDGED = "aws:cdk:acknowledged-rules"


def _listings(tmp: Path) -> Any:
    from dpc_central.testing import case_study_project
    from dpc_core.loader import load_pipelines

    project = case_study_project(CASE_STUDY, tmp / "project")
    (listings,) = [p for p in load_pipelines([project]) if p.name == "listings"]
    return listings


def _metadata_types(out: Path, stack: str) -> dict[str, int]:
    entries = json.loads((out / f"{stack}.metadata.json").read_text())
    types: dict[str, int] = {}
    for items in entries.values():
        for item in items:
            types[item["type"]] = types.get(item["type"], 0) + 1
    return types


def test_acknowledgements_are_recorded_only_when_checks_run(tmp_path: Path) -> None:
    from dpc_central.app import pipeline_app, pipeline_stack_name

    listings = _listings(tmp_path)
    name = pipeline_stack_name(listings)
    pipeline_app([listings], outdir=tmp_path / "off", region="eu-west-1", nag=False).synth()
    assert ACKNOWLEDGED not in _metadata_types(tmp_path / "off", name)
    # With the checks on, they are there, and cdk-nag (which fails synth on a finding
    # nobody acknowledged) passes.
    pipeline_app([listings], outdir=tmp_path / "on", region="eu-west-1", nag=True).synth()
    assert _metadata_types(tmp_path / "on", name).get(ACKNOWLEDGED, 0) >= 5


def test_an_app_dpc_did_not_make_gets_its_acknowledgements(tmp_path: Path) -> None:
    """Its owner may add checks after the stacks: dpc cannot know, so it records them."""
    import aws_cdk as cdk

    from dpc_central.common.cdk_env import prepare_jsii
    from dpc_central.pipeline.stack import PipelineStack
    from dpc_core.plugins import get_registry

    prepare_jsii()
    app = cdk.App(outdir=str(tmp_path / "out"))
    PipelineStack(app, "listings", pipeline=_listings(tmp_path), registry=get_registry(),
                  env=cdk.Environment(account="111111111111", region="eu-west-1"))
    app.synth()
    assert _metadata_types(tmp_path / "out", "listings").get(ACKNOWLEDGED, 0) >= 5


# --- merged_statements: the same decisions for every request ---------------------------

ACTIONS = ["s3:GetObject", "s3:PutObject", "sqs:SendMessage", "iam:PassRole"]
RESOURCES = ["arn:a", "arn:b", "arn:c", "*"]
CONDITIONS: list[dict[str, Any] | None] = [
    None, {"StringEquals": {"aws:RequestTag/t": "x"}}, {"StringEquals": {"aws:ResourceTag/t": "y"}}]


def _one_or_list(values: list[str]) -> Any:
    return values[0] if len(values) == 1 else values


plain = st.builds(
    lambda actions, resources, condition: {
        "Action": _one_or_list(actions), "Effect": "Allow", "Resource": _one_or_list(resources),
        **({"Condition": condition} if condition is not None else {})},
    st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3, unique=True),
    st.lists(st.sampled_from(RESOURCES), min_size=1, max_size=3, unique=True),
    st.sampled_from(CONDITIONS))
other = st.builds(
    lambda action, resource, effect: {"Action": action, "Effect": effect, "Resource": resource,
                                      "Sid": "Kept"},
    st.sampled_from(ACTIONS), st.sampled_from(RESOURCES), st.sampled_from(["Allow", "Deny"]))


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _decision(statements: list[dict[str, Any]], action: str, resource: str,
              holds: set[int]) -> str:
    """IAM's evaluation for these shapes: an explicit deny wins, else any allow; a
    statement applies when its action and resource match and its condition holds
    (``holds``: indexes of CONDITIONS that are true for the request)."""
    decision = "implicit-deny"
    for s in statements:
        condition = CONDITIONS.index(s.get("Condition"))
        if (action in _listed(s["Action"])
                and (resource in _listed(s["Resource"]) or "*" in _listed(s["Resource"]))
                and (condition == 0 or condition in holds)):
            if s["Effect"] == "Deny":
                return "deny"
            decision = "allow"
    return decision


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(plain, plain, other), max_size=12))
def test_merged_statements_decide_every_request_the_same(statements: list[dict[str, Any]]) -> None:
    merged = merged_statements([dict(s) for s in statements])
    assert len(merged) <= len(statements)
    assert [s for s in merged if "Sid" in s] == [s for s in statements if "Sid" in s]
    for action, resource in itertools.product(ACTIONS, [*RESOURCES[:-1], "arn:other"]):
        for holds in ({0}, {0, 1}, {0, 2}, {0, 1, 2}):
            assert _decision(merged, action, resource, holds) == \
                _decision(statements, action, resource, holds), (action, resource, holds)


def test_merged_statements_join_what_differs_only_in_actions_or_only_in_resources() -> None:
    tag = {"StringEquals": {"aws:RequestTag/dpc-pipeline": "p"}}
    statements = [
        {"Action": "elasticmapreduce:RunJobFlow", "Condition": tag, "Effect": "Allow",
         "Resource": "*"},
        {"Action": "iam:PassRole", "Effect": "Allow", "Resource": ["arn:service", "arn:instance"]},
        {"Action": "elasticmapreduce:AddTags", "Condition": tag, "Effect": "Allow",
         "Resource": "*"},
        {"Action": "iam:PassRole", "Effect": "Allow", "Resource": "arn:service"},
        {"Action": ["events:PutRule"], "Effect": "Allow", "Resource": "arn:rule1"},
        {"Action": ["events:PutRule"], "Effect": "Allow", "Resource": "arn:rule2"},
    ]
    assert merged_statements(statements) == [
        {"Action": ["elasticmapreduce:RunJobFlow", "elasticmapreduce:AddTags"], "Condition": tag,
         "Effect": "Allow", "Resource": "*"},
        {"Action": "iam:PassRole", "Effect": "Allow", "Resource": ["arn:service", "arn:instance"]},
        {"Action": "events:PutRule", "Effect": "Allow", "Resource": ["arn:rule1", "arn:rule2"]},
    ]
