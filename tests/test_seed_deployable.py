"""``dpc validate`` reports what ``dpc synth`` would refuse: a step script that does not
exist is a deployability problem. And the seed example validates and synthesizes as it
ships (its four pipelines name scripts that exist)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SEED = Path(__file__).resolve().parents[1] / "examples" / "seed"


def _dpc(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from dpc_core.cli.main import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(("pipeline", "script", "step"), [
    ("listings", "jobs/aggregate_listings.py", "aggregate-listings"),
    ("searches", "export_searches.sh", "export-searches"),
])
def test_validate_reports_a_missing_step_script_as_synth_would_refuse_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], pipeline: str, script: str,
        step: str) -> None:
    project = tmp_path / "seed"
    shutil.copytree(SEED, project, ignore=shutil.ignore_patterns("events"))
    (project / pipeline / script).unlink()
    code, _, err = _dpc(["validate", str(project)], capsys)
    assert code == 0  # valid for the local runtime; a warning, as for other AWS problems
    prefix = "./" if script.endswith(".sh") else ""
    assert (f"warning: {project / pipeline / 'pipeline.yaml'}: not deployable to AWS: "
            f"step {step!r}: script {prefix + script!r} not found in {project / pipeline}"
            ) in err
    assert err.count("not deployable") == 1


def test_the_seed_validates_without_warnings_and_synthesizes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _dpc(["validate", str(SEED)], capsys)
    assert (code, err) == (0, "")
    assert "4 pipeline(s) valid" in out
    code, out, err = _dpc(["synth", "--project", str(SEED), "--out", str(tmp_path / "out"),
                           "--region", "eu-west-1"], capsys)
    assert code == 0, err
    assert sorted(line.split()[1] for line in out.splitlines()
                  if line.startswith("synthesized")) == [
        "dpc-pipeline-listings", "dpc-pipeline-listings-fallback", "dpc-pipeline-pipeline-x",
        "dpc-pipeline-searches"]
