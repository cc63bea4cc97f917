"""A ``shell`` step on EMR tells auto-termination it is busy.

EMR 6.4.0+ counts a cluster as idle when no YARN application runs, and a shell step runs
none; AWS's answer is to touch ``/emr/metricscollector/isbusy`` on the primary node
(Management Guide, "Using an auto-termination policy"). The step's arguments, as
synthesized, are run here with the real ``env`` and ``bash`` (only the file's path is
moved into a temporary directory): the command's exit code and environment are kept,
the file is touched while it runs, and the step ends with the command.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

BUSY = "/emr/metricscollector/isbusy"
PIPELINE = """\
name: shelly
account: "111111111111"
trigger:
    schedule:
        hour: 5
compute:
    type: emr
steps:
    - name: work
      type: shell
      command: {command}
      env:
          GREETING: hello
"""


def _step_args(tmp: Path, command: str, files: dict[str, str] | None = None) -> list[str]:
    """HadoopJarStep.Args of the step ``work`` of a pipeline running ``command`` (with
    ``files`` in its project)."""
    import json

    from dpc_central.testing import Placeholders, state_machine_definitions, synth_pipeline_yaml

    template = synth_pipeline_yaml(tmp, PIPELINE.format(command=json.dumps(command)), files)
    # The pipeline's state machine (a scheduled pipeline also has its idempotent starter).
    (asl,) = [d for d in state_machine_definitions(template, Placeholders()).values()
              if "Run steps" in d["States"]]
    state = asl["States"]["Run steps"]["Branches"][0]["States"]["work"]
    jar = state["Parameters"]["Step"]["HadoopJarStep"]
    assert jar["Jar"] == "command-runner.jar"
    return list(jar["Args"])


def _run_here(args: list[str], busy: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    assert any(BUSY in a for a in args), args
    return subprocess.run([a.replace(BUSY, str(busy)) for a in args], capture_output=True,
                          text=True, timeout=20, **kwargs)


def test_the_command_keeps_its_exit_code_and_environment(tmp_path: Path) -> None:
    args = _step_args(tmp_path, 'echo "$GREETING from $DPC_PIPELINE"; exit 3')
    t0 = time.monotonic()
    done = _run_here(args, tmp_path / "isbusy")
    assert done.returncode == 3, done.stderr
    assert done.stdout == "hello from shelly\n"
    # The keep-busy loop sleeps 30 s between touches but holds none of the step's output:
    # command-runner sees the end of the command, not of the loop.
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("command", ["sleep 2", "exec sleep 2"])
def test_the_busy_file_is_touched_while_the_command_runs(tmp_path: Path, command: str) -> None:
    busy = tmp_path / "isbusy"
    args = _step_args(tmp_path, command)
    proc = subprocess.Popen([a.replace(BUSY, str(busy)) for a in args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 5
    while not busy.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert busy.exists(), "the step did not touch the busy file while running"
    assert proc.wait(timeout=15) == 0


def test_a_project_script_runs_from_the_bucket_with_its_arguments_and_environment(
        tmp_path: Path) -> None:
    """The cluster's ``aws s3 cp`` stands in as a script that copies the project's file
    (the URI it is given must be the uploaded one)."""
    script = '#!/bin/bash\necho "$GREETING $DPC_PIPELINE $1 $2"\nsleep 1\nexit 4\n'
    args = _step_args(tmp_path, "./export.sh a 'b c'", {"export.sh": script})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    source = tmp_path / "project" / "export.sh"
    fake_aws = bin_dir / "aws"
    fake_aws.write_text(f'#!/bin/sh\n[ "$1 $2 $3" = "s3 cp --quiet" ] || exit 9\n'
                        f'case "$4" in s3://*/export.sh) ;; *) exit 8 ;; esac\n'
                        f'cp "{source}" "$5"\n')
    fake_aws.chmod(0o755)
    import os

    busy = tmp_path / "isbusy"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = _run_here(args, busy, env=env)
    assert done.returncode == 4, done.stderr
    assert done.stdout == "hello shelly a b c\n"
    assert busy.exists()
