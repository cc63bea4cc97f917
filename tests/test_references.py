"""References to parents (``trigger.executions``) checked across a workspace.

A parent that no pipeline.yaml of the workspace defines is normal (another team's
repository defines it): `dpc validate` warns and exits 0. A parent one typo away from a
pipeline the workspace defines in that account is a mistake: exit 2 with a did-you-mean,
in `dpc validate` and in `dpc local up` alike.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dpc_core.errors import ValidationFailed
from dpc_core.loader import load_pipelines, near_miss

DPC = str(Path(sys.executable).parent / "dpc")
A, B = "111111111111", "222222222222"


def _project(ws: Path, name: str, account: str = A, parents: str = "") -> Path:
    """A project directory with a one-step shell pipeline; ``parents`` as allOf items."""
    trigger = f"trigger:\n  executions:\n    allOf:\n{parents}" if parents else ""
    d = ws / name
    d.mkdir(parents=True)
    (d / "pipeline.yaml").write_text(
        f'name: {name}\naccount: "{account}"\n{trigger}'
        'steps:\n  - {name: run, type: shell, command: "true"}\n')
    return d


def _ref(name: str, account: str | None = None) -> str:
    acct = f', account: "{account}"' if account else ""
    return f"      - {{name: {name}{acct}, status: [SUCCEEDED]}}\n"


def _dpc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DPC_PLUGINS"}
    return subprocess.run([DPC, *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_parent_in_another_repository_is_a_warning_with_its_position(tmp_path: Path) -> None:
    _project(tmp_path, "report", parents=_ref("sales", B))
    proc = _dpc("validate", ".", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "warning: report/pipeline.yaml:6:16: trigger.executions.allOf[0].name: no "
        "pipeline.yaml here defines 'sales' in account 222222222222; fine if another team's "
        "repository does"]
    assert "1 pipeline(s) valid" in proc.stdout


def test_a_parent_one_letter_from_a_pipeline_of_its_account_fails_with_did_you_mean(
    tmp_path: Path,
) -> None:
    _project(tmp_path, "ingest")
    _project(tmp_path, "report", parents=_ref("ingestt"))
    proc = _dpc("validate", ".", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "report/pipeline.yaml:6:16: trigger.executions.allOf[0].name: no pipeline 'ingestt' "
        "in account 111111111111; did you mean 'ingest' (defined in ingest/pipeline.yaml)? A "
        "parent one letter away from a pipeline of the same account is taken for a typo"]


def test_the_same_name_in_another_account_is_a_warning_that_names_the_account(
    tmp_path: Path,
) -> None:
    _project(tmp_path, "ingest", account=A)
    _project(tmp_path, "report", parents=_ref("ingest", B))
    proc = _dpc("validate", ".", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no pipeline.yaml here defines 'ingest' in account 222222222222 ('ingest' is " \
        "defined in account 111111111111)" in proc.stderr


def test_local_up_refuses_the_typo_before_starting(tmp_path: Path) -> None:
    _project(tmp_path, "ingest")
    _project(tmp_path, "report", parents=_ref("ingset"))
    proc = _dpc("local", "up", "-w", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "no pipeline 'ingset' in account 111111111111; did you mean 'ingest'" in proc.stderr
    assert f"{tmp_path}/report/pipeline.yaml:6:16: " in proc.stderr


def test_simulation_requires_every_parent_and_still_suggests_the_near_one(
    tmp_path: Path,
) -> None:
    _project(tmp_path, "ingest")
    _project(tmp_path, "report", parents=_ref("ingestt") + _ref("sales", B))
    with pytest.raises(ValidationFailed) as info:
        load_pipelines([tmp_path], require_account=True, check_refs=True)
    messages = [p.message for p in info.value.problems]
    assert messages[0].startswith("no pipeline 'ingestt' in account 111111111111; did you mean")
    assert messages[1] == "no pipeline.yaml defines 'sales' in account 222222222222"


def test_warnings_are_given_to_the_caller_and_do_not_fail_the_load(tmp_path: Path) -> None:
    _project(tmp_path, "report", parents=_ref("sales", B))
    seen = []
    pipelines = load_pipelines([tmp_path], warn=seen.append)
    assert [p.name for p in pipelines] == ["report"]
    assert [(w.line, w.column, w.field) for w in seen] == [
        (6, 16, "trigger.executions.allOf[0].name")]


@pytest.mark.parametrize(("name", "defined", "typo"), [
    ("ingestt", {"ingest"}, "ingest"),        # a letter added
    ("ingst", {"ingest"}, "ingest"),          # a letter dropped
    ("ingesr", {"ingest"}, "ingest"),         # a letter changed
    ("ingset", {"ingest"}, "ingest"),         # two letters swapped
    ("Listings", {"listings"}, "listings"),   # case
    ("my_job", {"my-job"}, "my-job"),         # - for _
    ("sales-v1", {"sales-v2"}, None),         # versions differ in a digit
    ("report-2025", {"report-2026"}, None),
    ("ingestion", {"ingest"}, None),          # three letters: another pipeline
    ("search", {"ingest"}, None),
])
def test_a_typo_is_one_edit_not_a_digit(name: str, defined: set[str], typo: str | None) -> None:
    assert near_miss(name, defined) == typo
