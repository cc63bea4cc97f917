"""Backfills you can manage: `dpc backfill list` (each date rolled up with its children's
outcome) and `dpc backfill cancel` (dates not started dropped, running runs cancelled,
who and why recorded); issue 24 defect 2: a child's failure is not hidden behind its
parent's SUCCEEDED in `dpc local status`. Real CLI, real shell steps, real state.db."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from local_helpers import DPC, C, dpc, listings_and_child, runs_of, wait_for

DAYS = ["2026-11-24", "2026-11-25", "2026-11-26"]




def _listed(ws: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = json.loads(
        dpc("backfill", "list", "--format", "json", "-w", ws).stdout)["backfills"]
    return out


def test_a_date_whose_child_failed_is_not_succeeded(tmp_path: Path) -> None:
    # The child fails on the second date only.
    ws = listings_and_child(tmp_path / "ws", "true",
                'test "$DPC_LOGICAL_DATE" != 2026-11-25 || exit 3')
    dpc("backfill", "listings", "--from", DAYS[0], "--to", DAYS[-1], "--downstream", "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, check=False)
    assert {r["status"] for r in runs_of(ws, "listings")} == {"SUCCEEDED"}
    assert sorted((r["logical_date"], r["status"]) for r in runs_of(ws, "child")) == [
        (DAYS[0], "SUCCEEDED"), (DAYS[1], "FAILED"), (DAYS[2], "SUCCEEDED")]

    status = dpc("local", "status", "--date", DAYS[1], "-w", ws).stdout
    assert f"{DAYS[0]} SUCCEEDED  {DAYS[1]} FAILED  {DAYS[2]} SUCCEEDED" in status
    assert f"{DAYS[1]}: child child FAILED" in status
    assert "2 SUCCEEDED, 1 FAILED" in status
    as_json = json.loads(dpc("local", "status", "--date", DAYS[1], "--format", "json",
                             "-w", ws).stdout)
    dates = as_json["backfills"][0]["dates"]
    assert [(d["status"], d["rollup"]) for d in dates] == [
        ("SUCCEEDED", "SUCCEEDED"), ("SUCCEEDED", "FAILED"), ("SUCCEEDED", "SUCCEEDED")]

    (bf,) = _listed(ws)
    assert bf["counts"] == {"pending": 0, "running": 0, "succeeded": 2, "failed": 1,
                            "cancelled": 0}
    assert bf["downstream"] is True and bf["downstreamPipelines"] == [f"{C}/child"]
    assert bf["from"] == DAYS[0] and bf["to"] == DAYS[-1] and bf["created"]
    second = bf["dates"][1]  # type: ignore[index]
    assert second["rollup"] == "FAILED" and second["children"][0]["status"] == "FAILED"
    text = dpc("backfill", "list", "-w", ws).stdout
    assert "--downstream" in text and "downstream: child (333333333333)" in text
    assert f"{DAYS[1]}  FAILED" in text and "(its run SUCCEEDED)" in text


def test_cancel_without_a_runtime_drops_the_dates_not_started(tmp_path: Path) -> None:
    ws = listings_and_child(tmp_path / "ws", "true", "true")
    out = dpc("backfill", "listings", "--from", DAYS[0], "--to", DAYS[-1], "-w", ws).stdout
    bid = out.split()[1].rstrip(":")
    done = dpc("backfill", "cancel", bid[:6], "--reason", "wrong range", "-w", ws,
               env={"DPC_USER": "alice"}).stdout
    assert "cancelled by alice (wrong range): 3 date(s) not started dropped" in done
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    assert runs_of(ws, "listings") == []  # nothing was started
    (bf,) = _listed(ws)
    assert bf["cancelled"]["by"] == "alice"  # type: ignore[index]
    assert bf["cancelled"]["reason"] == "wrong range"  # type: ignore[index]
    assert bf["counts"]["cancelled"] == 3  # type: ignore[index]
    # The same command again resumes it.
    dpc("backfill", "listings", "--from", DAYS[0], "--to", DAYS[-1], "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    assert sorted(r["logical_date"] for r in runs_of(ws, "listings")) == DAYS
    (bf,) = _listed(ws)
    assert bf["cancelled"] is None and bf["counts"]["succeeded"] == 3  # type: ignore[index]


def test_cancel_ends_the_running_run_through_the_runtime(tmp_path: Path) -> None:
    ws = listings_and_child(tmp_path / "ws", "sleep 60", "true")
    dpc("backfill", "listings", "--from", DAYS[0], "--to", DAYS[-1], "--max-parallel", "1",
        "-w", ws)
    proc = subprocess.Popen([DPC, "local", "up", "--no-schedule", "-w", str(ws)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(r["status"] == "RUNNING" for r in runs_of(ws, "listings")),
                 "listings RUNNING")
        (bf,) = _listed(ws)
        out = json.loads(dpc("backfill", "cancel", str(bf["id"]), "--reason", "stop",
                             "--format", "json", "-w", ws, env={"DPC_USER": "bob"}).stdout)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert out["dropped"] == 2 and out["aborted"] == 1
    (run,) = runs_of(ws, "listings")
    assert run["status"] == "ABORTED" and "cancelled by bob" in run["error"]
    assert [d["rollup"] for d in out["dates"]] == ["CANCELLED"] * 3
    assert runs_of(ws, "child") == []


def test_cancel_of_an_unknown_backfill_is_one_clear_error(tmp_path: Path) -> None:
    ws = listings_and_child(tmp_path / "ws", "true", "true")
    dpc("backfill", "listings", "--from", DAYS[0], "--to", DAYS[0], "-w", ws)
    proc = dpc("backfill", "cancel", "zzzz", "-w", ws, check=False)
    assert proc.returncode == 2
    assert "no backfill 'zzzz'; `dpc backfill list` shows them" in proc.stderr
    assert "Traceback" not in proc.stderr
