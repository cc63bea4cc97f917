"""README.md runs as written: its commands, from a copy of the clone, after the setup.

Every ```bash block of README.md is read line by line (backslash continuations joined,
comments kept out). Lines that need an AWS account (``--aws``, ``--central``) are left
out, and so are the setup script (this suite already runs in its result) and the
whole-suite command (this test is part of it); each exclusion is named in ``EXCLUDED``.
The remaining lines run in one bash session with ``set -e``, in a copy of the tracked
files whose ``.venv`` is this suite's own, so a command that fails, or that needs a file
outside the clone, fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from local_helpers import runs_of

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

#: (pattern, why the line is not run here)
EXCLUDED: list[tuple[str, str]] = [
    (r"--aws\b", "needs an AWS account"),
    (r"--central\b", "needs the central account's AWS credentials"),
    (r"^bash scripts/setup\.sh", "this suite already runs in the environment it sets up"),
    (r"^bash scripts/test\.sh", "the whole suite: this test is part of it"),
    (r"^bash scripts/case-study\.sh", "run by test_the_main_command_runs_the_case_study"),
]


def bash_blocks(text: str) -> list[str]:
    """The bodies of the ```bash fenced blocks, in order."""
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)


def commands(block: str) -> list[str]:
    """The block's commands: continuations joined, blank and comment-only lines dropped."""
    out: list[str] = []
    pending = ""
    for raw in block.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(line.strip())
    return out


def excluded(command: str) -> str | None:
    """Why ``command`` is not run here, or None."""
    for pattern, why in EXCLUDED:
        if re.search(pattern, command):
            return why
    return None


def tracked_copy(dst: Path) -> Path:
    """The clone's tracked files (as a fresh clone would have them) under ``dst``."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    (dst / ".venv").symlink_to(Path(sys.prefix))
    return dst


def test_readme_has_both_commands_and_a_tour() -> None:
    blocks = bash_blocks(README.read_text())
    first = commands(blocks[0])
    assert first == ["bash scripts/case-study.sh", "bash scripts/test.sh"]
    runnable = [c for b in blocks for c in commands(b) if not excluded(c)]
    assert any(c.startswith("dpc simulate") for c in runnable)
    assert any(c.startswith("dpc local up") for c in runnable)


def test_every_offline_readme_command_runs_as_written(tmp_path: Path) -> None:
    clone = tracked_copy(tmp_path / "alone" / "dpc")
    lines = [c for b in bash_blocks(README.read_text()) for c in commands(b) if not excluded(c)]
    script = "set -euo pipefail\n" + "".join(
        f"echo '>>> {c.replace(chr(39), '')}'\n{c}\n" for c in lines)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VIRTUAL_ENV"))}
    proc = subprocess.run(["bash", "-c", script], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, (
        f"README command failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    # What the tour promises, seen in its output and files.
    assert '"pipeline": "listings-fallback"' in proc.stdout  # simulate of scenario 4
    assert (clone / "my-pipeline" / "pipeline.yaml").is_file()
    assert (clone / "lineage.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert "SUCCEEDED" in proc.stdout and "pipeline-x" in proc.stdout


def test_the_main_command_runs_the_case_study() -> None:
    # README's first command, as written, in this clone: real Spark for listings and
    # pipeline-x, a shell step for searches; pipeline-x only after both parents.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    proc = subprocess.run(["bash", "scripts/case-study.sh"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert re.search(r"^X = \d", proc.stdout, flags=re.M), proc.stdout[-2000:]
    timeline = proc.stdout.split("== timeline", 1)[1]
    # Timeline rows: "+ START → STOP  NAME  ACCOUNT  STATUS DATE  reason".
    rows = {m.group(3): (float(m.group(1)), float(m.group(2))) for m in re.finditer(
        r"\+\s*([\d.]+)s →\s*([\d.]+)s\s+(listings|searches|pipeline-x)\s+\d{12}\s+SUCCEEDED",
        timeline)}
    assert set(rows) == {"listings", "searches", "pipeline-x"}, timeline
    assert rows["pipeline-x"][0] >= max(rows["listings"][1], rows["searches"][1])
    assert "triggered by listings@111111111111 SUCCEEDED" in proc.stdout
    (x,) = runs_of(REPO / "examples" / "case-study", "pipeline-x")
    assert x["status"] == "SUCCEEDED"
    assert {p["pipeline"] for p in x["parents"]} == {"listings", "searches"}
