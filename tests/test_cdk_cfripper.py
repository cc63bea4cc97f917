"""cfripper's security rules over every synthesized template: the central account's, a
team account's and the case study's four pipeline stacks (seed pipelines as shipped).

checkov was the first choice; it pins boto3 to 1.35 (the workspace runs 1.44) and drags
networkx, packaging and hatchling back with it, so cfripper (Skyscanner's CloudFormation
rules, pure Python, no pins that conflict) runs instead, beside cdk-nag and cfn-lint.

Every finding cfripper reports at BLOCKING or MONITOR level must be acknowledged in
``central/cfripper-skips.yaml`` with its reason, matched by rule and by the logical id
*prefix* CDK derives from the construct path (never the hash); an acknowledgement that
no longer matches anything fails too, so the file stays honest.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SKIPS = ROOT / "central" / "cfripper-skips.yaml"
CASE_STUDY = ROOT / "examples" / "seed"


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every dpc template, synthesized once (cdk-nag runs in the other test modules)."""
    from dpc_central.app import (
        CENTRAL_STACK,
        USER_STACK,
        central_app,
        pipeline_app,
        pipeline_stack_name,
        user_app,
    )
    from dpc_central.testing import case_study_project
    from dpc_core.loader import load_pipelines

    root = tmp_path_factory.mktemp("cfripper")
    out: dict[str, Path] = {}
    central_app(outdir=root / "central", org_id="o-abc123", nag=False,
                member_accounts=["111111111111", "222222222222", "333333333333"],
                account="999999999999", region="eu-west-1").synth()
    out[CENTRAL_STACK] = root / "central" / f"{CENTRAL_STACK}.template.json"
    user_app(outdir=root / "user", central_account="999999999999", account="333333333333",
             region="eu-west-1", nag=False).synth()
    out[USER_STACK] = root / "user" / f"{USER_STACK}.template.json"
    pipelines = load_pipelines([case_study_project(CASE_STUDY, root / "project", add_emr=())])
    pipeline_app(pipelines, outdir=root / "pipelines", region="eu-west-1", nag=False).synth()
    for p in pipelines:
        name = pipeline_stack_name(p)
        out[name] = root / "pipelines" / f"{name}.template.json"
    return {name: json.loads(path.read_text()) for name, path in out.items()}


#: The account each stack is deployed to: cross-account trust is judged against it.
ACCOUNTS = {"dpc-central": "999999999999", "dpc-user-account": "333333333333",
            "dpc-pipeline-listings": "111111111111", "dpc-pipeline-searches": "222222222222",
            "dpc-pipeline-pipeline-x": "333333333333",
            "dpc-pipeline-listings-fallback": "333333333333"}


def findings(stack: str, template: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(rule, logical id, reason)`` of every BLOCKING/MONITOR finding of cfripper's
    default rules (DEBUG findings, e.g. its stack-name convention, are advice)."""
    from cfripper.config.config import Config
    from cfripper.model.enums import RuleMode
    from cfripper.rule_processor import RuleProcessor
    from cfripper.rules import DEFAULT_RULES
    from pycfmodel import parse

    config = Config(stack_name=stack, rules=list(DEFAULT_RULES),
                    aws_account_id=ACCOUNTS.get(stack))
    model = parse(template).resolve(extra_params={"AWS::Region": "eu-west-1"})
    processor = RuleProcessor(*[DEFAULT_RULES[r](config) for r in config.rules])
    result = processor.process_cf_template(model, config)
    return sorted({(f.rule, rid, f.reason) for f in result.failures
                   if f.rule_mode in (RuleMode.BLOCKING, RuleMode.MONITOR)
                   for rid in sorted(f.resource_ids or {"<stack>"})})


def load_skips() -> list[dict[str, str]]:
    skips = yaml.safe_load(SKIPS.read_text())
    for s in skips:
        assert set(s) == {"rule", "resource", "reason"}, s
        assert len(s["reason"]) > 30, f"say why: {s}"
    return list(skips)


def test_every_cfripper_finding_is_acknowledged_with_a_reason(
        templates: dict[str, dict[str, Any]]) -> None:
    skips = load_skips()
    used: set[int] = set()
    unacknowledged = []
    for stack, template in templates.items():
        for rule, rid, reason in findings(stack, template):
            hit = [i for i, s in enumerate(skips) if s["rule"] == rule
                   and re.match(s["resource"], rid)]
            used.update(hit)
            if not hit:
                unacknowledged.append(f"{stack}: {rule} {rid}: {reason[:160]}")
    assert not unacknowledged, "unacknowledged cfripper findings:\n" + "\n".join(unacknowledged)
    stale = [s for i, s in enumerate(skips) if i not in used]
    assert stale == [], "acknowledgements that match no finding any more"


def test_an_unacknowledged_finding_is_reported(tmp_path: Path) -> None:
    """The check can fail: a role any account may assume is a cfripper finding."""
    template = {"Resources": {"OpenRole": {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}}}}}
    found = findings("probe", template)
    assert any(rid == "OpenRole" for _, rid, _ in found)
    skips = load_skips()
    assert not any(re.match(s["resource"], "OpenRole") for s in skips)
