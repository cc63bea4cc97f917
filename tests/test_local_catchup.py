"""``trigger.catchup``: firings of a schedule missed while the local runtime was stopped.
The runtime knows them from the last firing it recorded (lr_schedules in state.db), which
the tests set as a runtime that stopped a while ago would have left it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from local_helpers import A, runs_of, wait_for, write_pipeline

from dpc_core.loader import load_pipelines
from dpc_core.local.runtime import Runtime, missed_firings

KEY = f"{A}/hourly"


def _workspace(tmp: Path, catchup: str) -> Path:
    ws = tmp / "ws"
    write_pipeline(ws, "hourly", A, "trigger:\n  schedule: {rate: rate(1 hour)}\n  window: "
                   f"hourly\n{catchup}steps:\n  - {{name: s, type: shell, command: 'true'}}\n")
    return ws


def _up(ws: Path, last_fire: datetime | None, expect: int) -> list[str]:
    """Start the runtime with schedules (the last firing set in state.db when given),
    until ``expect`` runs of the pipeline exist and none is left to run."""
    lines: list[str] = []
    rt = Runtime(ws, schedules=True, out=lines.append)
    rt.open()
    try:
        if last_fire is not None:
            with rt.store.transaction():
                rt.store.conn.execute(
                    "INSERT OR REPLACE INTO lr_schedules (pipeline, last_fire_ms) VALUES (?, ?)",
                    (KEY, int(last_fire.timestamp() * 1000)))
        rt.start()
        wait_for(lambda: len(runs_of(ws, "hourly")) >= expect, f"{expect} runs")
        # A moment for a catch-up firing that should not be there to show up.
        time.sleep(0.5)
        rt.serve(until_idle=True)
    finally:
        rt.shutdown()
    return lines


def _hour(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H")


def test_catchup_all_runs_the_latest_missed_firings_oldest_first_and_once(
        tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "  catchup: all\n  catchupLimit: 3\n")
    last = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5, minutes=30)
    lines = _up(ws, last, 3)
    got = runs_of(ws, "hourly")
    # Five firings were missed (last + 1h ... last + 5h); the limit keeps the latest three.
    assert [(r["logical_date"], r["reason"], r["status"]) for r in got] == [
        (_hour(last + timedelta(hours=h)), "catch-up", "SUCCEEDED") for h in (3, 4, 5)]
    assert any("catch-up" in ln and "3 missed firing(s)" in ln for ln in lines)
    # Restarted: the catch-up runs are not created again.
    _up(ws, None, 3)
    assert len(runs_of(ws, "hourly")) == 3


def test_catchup_latest_runs_only_the_most_recent_missed_firing(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "  catchup: latest\n")
    last = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5, minutes=30)
    _up(ws, last, 1)
    (run,) = runs_of(ws, "hourly")
    assert (run["logical_date"], run["reason"]) == (_hour(last + timedelta(hours=5)),
                                                    "catch-up")


@pytest.mark.parametrize("catchup", ["", "  catchup: none\n"])
def test_without_catchup_missed_firings_are_skipped(tmp_path: Path, catchup: str) -> None:
    ws = _workspace(tmp_path, catchup)
    _up(ws, datetime.now(UTC) - timedelta(hours=5, minutes=30), 0)
    assert runs_of(ws, "hourly") == []


def _daily(tmp: Path, body: str) -> Any:
    write_pipeline(tmp, "daily", A, body + "steps:\n  - {name: s, type: shell, command: 'true'}\n")
    (p,) = load_pipelines([tmp / f"{A}-daily"])
    return p


def test_missed_firings_of_a_cron_in_its_time_zone(tmp_path: Path) -> None:
    p = _daily(tmp_path, "trigger:\n  schedule: {hour: 3}\n  timezone: Europe/Madrid\n")
    last = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 03:00 in Madrid
    until = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert missed_firings(p, last, until, 10) == [
        datetime(2026, 11, d, 2, 0, tzinfo=UTC) for d in range(21, 27)]
    assert missed_firings(p, last, until, 2) == [
        datetime(2026, 11, d, 2, 0, tzinfo=UTC) for d in (25, 26)]
    # A firing at the instant the runtime started was missed too; the last one was not.
    assert missed_firings(p, last, datetime(2026, 11, 21, 2, 0, tzinfo=UTC), 10) == [
        datetime(2026, 11, 21, 2, 0, tzinfo=UTC)]
    assert missed_firings(p, last, last, 10) == []


def test_a_year_of_missed_minutes_gives_the_latest_ones(tmp_path: Path) -> None:
    p = _daily(tmp_path, "trigger:\n  schedule: {cron: '* * * * ? *'}\n  catchup: all\n")
    until = datetime(2026, 11, 26, 0, 0, 30, tzinfo=UTC)
    got = missed_firings(p, until - timedelta(days=365), until, 100)
    assert len(got) == 100
    assert got[-1] == datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
    assert got[0] == datetime(2026, 11, 25, 22, 21, tzinfo=UTC)
