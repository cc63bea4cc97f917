"""The local runtime's state on a full or read-only disk: a real tmpfs (mounted for the
test, which needs root), real `dpc` processes. One clear error and exit 2 for commands; a
run whose result could not be written is recorded with its true outcome once it can be."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_helpers import DPC, A, C, dpc, noop_case_study, runs_of, wait_for, write_pipeline

DAY = "2026-11-26"
pytestmark = pytest.mark.case_study


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` at ``where`` (skips the test where mounting is not
    allowed: it needs root or CAP_SYS_ADMIN)."""
    where.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(where)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)



def fill(directory: Path) -> Path:
    """Write a file until the disk is full; return it."""
    filler = directory / "filler"
    # Unbuffered: a buffered file that met ENOSPC raises it again when closed (the bytes
    # left in its buffer), outside the suppress.
    with filler.open("wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
    return filler


def step_pid(ws: Path) -> int | None:
    conn = sqlite3.connect(ws / ".dpc" / "state.db")
    try:
        row = conn.execute("SELECT pid FROM lr_steps WHERE pid IS NOT NULL").fetchone()
    except sqlite3.OperationalError:
        row = None
    finally:
        conn.close()
    return int(row[0]) if row else None


def assert_clear_error(proc: subprocess.CompletedProcess[str], db: Path, what: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "state database unavailable" in proc.stderr and str(db) in proc.stderr
    assert what in proc.stderr


def test_read_only_state_is_one_clear_error_from_every_command(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "8m") as mnt:
        ws = noop_case_study(mnt / "ws")
        dpc("local", "start", "listings", "--date", DAY, "-w", ws)
        dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        db = ws / ".dpc" / "state.db"
        for args in (("local", "up", "--until-idle"), ("local", "start", "listings"),
                     ("run", "searches"), ("local", "runs"), ("local", "status"),
                     ("runs",), ("status",)):
            assert_clear_error(dpc(*args, "-w", ws, check=False), db, "cannot be written")


def test_a_full_disk_is_one_clear_error_for_start(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "2m") as mnt:
        ws = noop_case_study(mnt / "ws")
        dpc("local", "runs", "-w", ws)  # the state database exists
        fill(mnt)
        proc = dpc("local", "start", "listings", "--date", DAY, "-w", ws, check=False)
        assert_clear_error(proc, ws / ".dpc" / "state.db", "is full")


def test_a_result_that_could_not_be_written_is_recorded_once_space_is_freed(
        tmp_path: Path) -> None:
    """The disk fills while a step runs: the runtime keeps the run's result, says so, and
    writes it (SUCCEEDED, with its event, so the child is triggered) once space is freed;
    `up --until-idle` then ends as usual."""
    flag = tmp_path / "go"
    with tmpfs(tmp_path / "mnt", "4m") as mnt:
        ws = noop_case_study(mnt / "ws")
        write_pipeline(ws, "listings", A, "steps:\n  - {name: wait, type: shell, "
                       f"command: 'while [ ! -e {flag} ]; do sleep 0.05; done'}}\n")
        write_pipeline(ws, "child", C, "trigger:\n  executions:\n    allOf:\n"
                       f"      - {{name: listings, account: \"{A}\", status: [SUCCEEDED]}}\n"
                       "steps:\n  - {name: s, type: shell, command: 'true'}\n")
        dpc("local", "start", "listings", "--date", DAY, "-w", ws)
        log = tmp_path / "up.log"
        with log.open("w") as out:
            proc = subprocess.Popen([DPC, "local", "up", "--until-idle", "--no-schedule", "-w",
                                     str(ws)], stdout=out, stderr=subprocess.STDOUT)
            try:
                wait_for(lambda: step_pid(ws), "the step started")
                filler = fill(mnt)
                flag.touch()
                try:
                    wait_for(lambda: "not written yet: step wait of" in log.read_text(),
                             "the runtime says it keeps the step's result")
                except AssertionError:
                    raise AssertionError(log.read_text()) from None
                assert proc.poll() is None  # still up, still trying
                filler.unlink()
                rc = proc.wait(timeout=120)
            finally:
                if proc.poll() is None:
                    proc.kill()
        text = log.read_text()
        assert rc == 0, text
        assert "is full" in text and "can be written again" in text
        assert "Traceback" not in text
        (listings,) = runs_of(ws, "listings")
        assert listings["status"] == "SUCCEEDED", listings["error"]
        assert [r["status"] for r in runs_of(ws, "child")] == ["SUCCEEDED"]
