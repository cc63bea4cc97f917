"""One pipeline stack's template, pinned byte for byte.

Synth speed work (issue #12: fewer jsii round trips, values shared between stacks,
aspects that visit fewer nodes) must not change what is deployed. The case study's
``listings`` stack (scheduled, EMR cluster, spark step with an uploaded script, topic
with subscriptions, registration) is compared with ``fixtures/golden/``; only asset
hashes are masked (they follow aws-cdk-lib's bundled handlers, not dpc).

A deliberate change of the template: rerun with ``DPC_UPDATE_GOLDEN=1`` and review the
diff of the golden file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

GOLDEN = Path(__file__).parent / "fixtures" / "golden" / "dpc-pipeline-listings.template.json"
CASE_STUDY = Path(__file__).resolve().parents[1] / "examples" / "seed"
_HASH = re.compile(r"\b[0-9a-f]{64}\b")


def listings_template(tmp: Path) -> str:
    """The ``listings`` stack of the case study as dpc synthesizes it, hashes masked."""
    from dpc_central.app import pipeline_app, pipeline_stack_name
    from dpc_central.testing import case_study_project
    from dpc_core.loader import load_pipelines

    project = case_study_project(CASE_STUDY, tmp / "project")
    (listings,) = [p for p in load_pipelines([project]) if p.name == "listings"]
    out = tmp / "cdk.out"
    pipeline_app([listings], outdir=out, region="eu-west-1", nag=False).synth()
    text = (out / f"{pipeline_stack_name(listings)}.template.json").read_text()
    return _HASH.sub("<asset-hash>", text)


def test_listings_template_is_unchanged(tmp_path: Path) -> None:
    got = listings_template(tmp_path)
    if os.environ.get("DPC_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(got)
    assert json.loads(got) == json.loads(GOLDEN.read_text())
    assert got == GOLDEN.read_text(), "same values, different bytes (key order?)"
