"""Progress on long work: plain lines off a terminal, a rich spinner on one, heartbeats
of long local steps, and start-up that never imports rich."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dpc_core.progress import elapsed_text, heartbeat, progress
from tests.local_helpers import DPC, A, dpc, write_pipeline


def test_off_a_terminal_progress_prints_a_start_line_heartbeats_and_the_total() -> None:
    out = io.StringIO()
    with progress("synthesizing demo", stream=out, every=0.1):
        time.sleep(0.35)
    lines = out.getvalue().splitlines()
    assert lines[0] == "synthesizing demo ..."
    beats = [ln for ln in lines if ln.startswith("synthesizing demo: still running (")]
    assert len(beats) >= 2
    assert re.fullmatch(r"synthesizing demo: done in 0\.[3-9]s", lines[-1])


def test_progress_says_when_the_work_failed_and_lets_the_error_through() -> None:
    out = io.StringIO()
    with pytest.raises(RuntimeError), progress("deploying", stream=out, every=10):
        raise RuntimeError("boom")
    assert out.getvalue().splitlines()[-1].startswith("deploying: failed after ")


def test_on_a_terminal_progress_draws_a_spinner_with_elapsed_time() -> None:
    master, slave = os.openpty()
    with open(slave, "w", closefd=True) as tty:
        assert tty.isatty()
        with progress("synthesizing demo", stream=tty):
            time.sleep(0.5)
    chunks = b""
    os.set_blocking(master, False)
    try:
        while True:
            chunks += os.read(master, 65536)
    except (BlockingIOError, OSError):
        pass
    os.close(master)
    text = chunks.decode(errors="replace")
    assert "synthesizing demo" in text
    assert "0:00:00" in text  # rich's elapsed-time column
    assert "\x1b[" in text  # drawn (and erased) with terminal control sequences
    assert re.search(r"synthesizing demo: done in \d+\.\ds", text)
    assert "still running" not in text


def test_a_heartbeat_stops_when_the_block_ends() -> None:
    said: list[float] = []
    with heartbeat(said.append, every=0.05):
        time.sleep(0.2)
    n = len(said)
    time.sleep(0.15)
    assert n >= 2 and len(said) == n
    assert said == sorted(said)


@pytest.mark.parametrize(("seconds", "text"), [
    (4.24, "4.2s"), (65, "1m05s"), (3725, "1h02m")])
def test_elapsed_time_reads_at_a_glance(seconds: float, text: str) -> None:
    assert elapsed_text(seconds) == text


def test_the_cdk_toolkit_runs_under_plain_progress_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from dpc_central import cli as central_cli

    # The real subprocess path, with a stand-in for `npx aws-cdk` (no Node here).
    monkeypatch.setattr(central_cli, "CDK_TOOLKIT",
                        [sys.executable, "-c", "import time; time.sleep(0.3)"])
    monkeypatch.setenv("DPC_HEARTBEAT_S", "0.1")
    central_cli._toolkit(["deploy", "--all"], tmp_path)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "cdk deploy ..."
    assert any(ln.startswith("cdk deploy: still running (") for ln in err)
    assert err[-1].startswith("cdk deploy: done in ")


def test_a_long_local_step_reports_that_it_is_still_running(tmp_path: Path) -> None:
    write_pipeline(tmp_path, "slow", A,
                   "steps:\n  - name: wait\n    type: shell\n    command: 'sleep 1.5'\n")
    dpc("local", "start", "slow", "--date", "2026-11-26", "-w", tmp_path)
    out = dpc("local", "up", "--until-idle", "--no-schedule", "-w", tmp_path,
              env={"DPC_HEARTBEAT_S": "0.4"}).stdout
    beats = [ln for ln in out.splitlines() if "step wait for " in ln]
    assert len(beats) >= 2, out
    assert all(f"slow@{A}  RUNNING" in ln for ln in beats)
    assert re.search(r"step wait for 0\.[3-9]s$", beats[0])


def test_dpc_help_does_not_import_rich() -> None:
    script = ("import sys\nfrom dpc_core.cli.main import main\n"
              "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
              "print('rich' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.splitlines()[-1] == "False"
    assert Path(DPC).exists()
