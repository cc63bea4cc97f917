"""Scale is a tested property: an organisation of 100 member accounts (central with
``--member-account`` x100, and with ``--org-id``) and a team account with 150 pipelines
(half reading a Hive metastore) synthesize within every AWS quota ``dpc_central.quotas``
knows, the inline policies of the team's shared roles summed across all its stacks.
The synth functions are ``bench/synth_scale.py``'s (which prints the times and the quota
closest to its limit)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from dpc_central.quotas import Report

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def scale(tmp_path_factory: pytest.TempPathFactory) -> Any:
    sys.path.insert(0, str(BENCH))
    import synth_scale

    return synth_scale, tmp_path_factory.mktemp("scale")


def _zero(report: Report) -> list[str]:
    return [v.line() for v in report.violations]


def test_central_with_100_listed_member_accounts_is_within_every_quota(scale: Any) -> None:
    from dpc_central.quotas import check_assembly

    mod, work = scale
    _, out = mod.synth_central(work / "members", 100, None)
    assert _zero(check_assembly([out], account=mod.CENTRAL, region=mod.REGION)) == []


def test_central_with_an_organisation_and_100_members_is_within_every_quota(
        scale: Any) -> None:
    from dpc_central.quotas import check_assembly

    mod, work = scale
    _, out = mod.synth_central(work / "org", 100, mod.ORG_ID)
    assert _zero(check_assembly([out], account=mod.CENTRAL, region=mod.REGION)) == []


def test_a_team_account_with_150_pipelines_half_with_hive_is_within_every_quota(
        scale: Any) -> None:
    """The team stack and its 150 pipeline stacks are checked together: the inline
    policies each pipeline stack adds to the shared EMR roles are summed per role."""
    from dpc_central.quotas import check_assembly

    mod, work = scale
    _, _, outs = mod.synth_team(work / "team", 150, hive_every=2)
    assert _zero(check_assembly(outs, account=mod.TEAM, region=mod.REGION)) == []
