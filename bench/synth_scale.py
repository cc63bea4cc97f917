"""Synthesize an organisation at scale and check it against AWS's quotas.

Run: ``.venv/bin/python bench/synth_scale.py [--members 100] [--pipelines 150]``.

It synthesizes the central account (``--member-account`` x M, and again with ``--org-id``),
one team account's stack and N pipeline stacks of that account in one app (half of them
reading a Hive metastore from Secrets Manager), runs :mod:`dpc_central.quotas` on each
account's stacks (the team stack and its pipeline stacks together, so a role's inline
policies add up across stacks), and prints the synth times, the violations and the quota
closest to its limit. ``tests/test_quotas.py`` runs the same functions at the issue's
size and requires zero violations.

Import from a test::

    sys.path.insert(0, str(Path(__file__).parent))  # bench/
    from synth_scale import synth_central, synth_team
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from orggen import account_ids, generate_org

REGION = "eu-west-1"
CENTRAL = "999999999999"
TEAM = "111111111111"
ORG_ID = "o-abc123def4"


def hive(account: str, i: int) -> dict[str, str]:
    arn = f"arn:aws:secretsmanager:{REGION}:{account}:secret:dpc/hive/{i:05d}/{{}}-AbCdEf"
    return {k: arn.format(k) for k in ("url", "username", "password")}


def team_project(root: Path, n: int, *, account: str = TEAM, hive_every: int = 2) -> Path:
    """``n`` pipelines of one team account under ``root`` (orggen's trigger graph, every
    pipeline a shell step on EMR with its script; every ``hive_every``-th one with a Hive
    metastore)."""
    import yaml

    for i, doc in enumerate(generate_org(n, 1, seed=7)):
        doc["account"] = account
        for block in _refs(doc.get("trigger", {}).get("executions")):
            block["account"] = account
        doc["compute"] = {"type": "emr"}
        if hive_every and i % hive_every == 0:
            doc["compute"]["hiveMetastore"] = hive(account, i)
        d = root / doc["name"]
        d.mkdir(parents=True, exist_ok=True)
        (d / "pipeline.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        (d / "work.sh").write_text("#!/bin/bash\necho work\n")
    return root


def _refs(block: Any) -> list[dict[str, Any]]:
    """Every pipeline reference of a trigger condition."""
    if not isinstance(block, dict):
        return []
    if "name" in block:
        return [block]
    return [r for key in ("allOf", "anyOf") for item in block.get(key, [])
            for r in _refs(item)]


def synth_central(out: Path, members: int, org_id: str | None) -> tuple[float, Path]:
    """Seconds to synthesize central with ``members`` listed accounts (and ``org_id``)."""
    from dpc_central.app import central_app

    t0 = time.perf_counter()
    central_app(outdir=out, org_id=org_id, member_accounts=account_ids(members),
                account=CENTRAL, region=REGION, nag=False).synth()
    return time.perf_counter() - t0, out


def synth_team(work: Path, n: int, *, hive_every: int = 2) -> tuple[float, float, list[Path]]:
    """Seconds to synthesize the team account's stack, and its ``n`` pipeline stacks in
    one app; the two assembly directories."""
    from dpc_central.app import pipeline_app, user_app
    from dpc_core.loader import load_pipelines

    account_out, pipelines_out = work / "cdk.out.account", work / "cdk.out"
    t0 = time.perf_counter()
    user_app(outdir=account_out, central_account=CENTRAL, account=TEAM, region=REGION,
             nag=False).synth()
    t1 = time.perf_counter()
    pipelines = load_pipelines([team_project(work / "project", n, hive_every=hive_every)])
    pipeline_app(pipelines, outdir=pipelines_out, region=REGION, nag=False).synth()
    return t1 - t0, time.perf_counter() - t1, [account_out, pipelines_out]


def _report(label: str, outs: list[Path], account: str) -> Any:
    from dpc_central.quotas import check_assembly

    t0 = time.perf_counter()
    report = check_assembly(outs, account=account, region=REGION)
    s = time.perf_counter() - t0
    c = report.closest()
    near = (f"{c.quota.what} {c.figure:,} of {c.quota.limit:,} ({c.ratio:.0%}) at "
            f"{c.stack}/{c.resource}") if c else "-"
    print(f"{label}: {len(report.violations)} violations (check {s:.1f} s); closest: {near}")
    for v in report.violations:
        print(f"    {v.line()[:240]}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--pipelines", type=int, default=150)
    parser.add_argument("--hive-every", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="write under this directory")
    args = parser.parse_args()
    from dpc_central.common.cdk_env import prepare_jsii

    prepare_jsii()
    t0 = time.perf_counter()
    import aws_cdk  # noqa: F401

    print(f"import aws_cdk: {time.perf_counter() - t0:.1f} s")
    work = args.keep or Path(tempfile.mkdtemp(prefix="dpc-scale-"))
    try:
        s, out = synth_central(work / "central-members", args.members, None)
        print(f"central, {args.members} --member-account: synth {s:.1f} s")
        _report("  central (members)", [out], CENTRAL)
        s, out = synth_central(work / "central-org", args.members, ORG_ID)
        print(f"central, --org-id and {args.members} members: synth {s:.1f} s")
        _report("  central (org)", [out], CENTRAL)
        a, p, outs = synth_team(work / "team", args.pipelines, hive_every=args.hive_every)
        print(f"team account: stack {a:.1f} s; {args.pipelines} pipeline stacks in one app "
              f"{p:.1f} s ({p / args.pipelines:.2f} s per pipeline)")
        _report("  team account + pipelines", outs, TEAM)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
