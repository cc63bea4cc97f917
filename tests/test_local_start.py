"""The local runtime's start-up (issue 11): what it defers past "ready" stays correct.

In-process runtimes over small workspaces; a "crash" is a runtime abandoned without its
shutdown (its state connection and workspace lock simply closed)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from local_helpers import A, C, noop_case_study, write_pipeline

from dpc_core.engine import Engine
from dpc_core.local import catalog
from dpc_core.local.runtime import Runtime
from dpc_core.store import PipelineSpec
from dpc_core.stores.sqlite import SqliteStore

KEYS = {f"{A}/listings", "222222222222/searches", f"{C}/pipeline-x",
        f"{C}/listings-fallback"}


def crash(rt: Runtime) -> None:
    """What a kill -9 leaves: nothing of shutdown() runs."""
    rt.stopping.set()  # the runtime's own threads, if any, stop touching the state
    rt.store.conn.close()
    rt._lock_file.close()


def remembered(ws: Path) -> dict[str, str]:
    """lr_catalog: pipeline.yaml path -> key."""
    conn = sqlite3.connect(ws / ".dpc" / "state.db")
    try:
        return dict(conn.execute("SELECT path, key FROM lr_catalog").fetchall())
    finally:
        conn.close()


def up_and_down(ws: Path, out: list[str] | None = None) -> Runtime:
    rt = Runtime(ws, schedules=False, out=(out.append if out is not None else lambda _: None))
    rt.open()
    try:
        rt.start()
    finally:
        rt.shutdown()
    return rt


def test_a_crash_before_remembering_loses_nothing_the_next_start_reads_the_files_again(
        tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    rt = Runtime(ws, schedules=False, out=lambda _: None)
    rt.open()  # ready; the files it read are remembered only once it runs (start)
    assert set(rt.pipelines) == KEYS
    assert remembered(ws) == {}
    crash(rt)

    again = up_and_down(ws)
    assert set(again.pipelines) == KEYS
    assert sorted(remembered(ws).values()) == sorted(KEYS)
    # A third start reads nothing: every pipeline comes from what the second remembered,
    # equal to what the files define.
    third = Runtime(ws, schedules=False, out=lambda _: None)
    third.open()
    try:
        assert third._unremembered == []
        assert set(third.pipelines) == KEYS
        assert third.pipelines[f"{C}/pipeline-x"] == again.pipelines[f"{C}/pipeline-x"]
    finally:
        third.shutdown()


def test_a_failing_remember_is_reported_and_the_next_start_gives_the_same_pipelines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = noop_case_study(tmp_path / "ws")
    real = catalog.remember

    def broken(conn: sqlite3.Connection, entries: list[Any], gone: list[str],
               fp: str) -> None:
        if entries:
            raise RuntimeError("pickle store broke")
        real(conn, entries, gone, fp)

    monkeypatch.setattr(catalog, "remember", broken)
    out: list[str] = []
    first = up_and_down(ws, out)
    assert set(first.pipelines) == KEYS
    # Not silent: said on the console and recorded for `dpc local problems`.
    assert any("pickle store broke" in line and "problem" in line for line in out), out
    conn = sqlite3.connect(ws / ".dpc" / "state.db")
    assert any("pickle store broke" in str(row) for row in conn.execute(
        "SELECT * FROM lr_problems").fetchall())
    conn.close()
    assert remembered(ws) == {}

    monkeypatch.setattr(catalog, "remember", real)
    second = up_and_down(ws)
    assert set(second.pipelines) == KEYS
    assert sorted(remembered(ws).values()) == sorted(KEYS)


def test_an_edit_applied_before_the_deferred_remember_is_not_overwritten_by_it(
        tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    step = "steps:\n  - {name: s, type: shell, command: 'true'}\n"
    write_pipeline(ws, "listings", A, "description: before\n" + step)
    rt = Runtime(ws, schedules=False, out=lambda _: None)
    rt.open()
    path = str(ws / f"{A}-listings" / "pipeline.yaml")
    stale = rt.entries[path]
    # Same size, same mtime: only the watcher's hint says it changed, and only the
    # remembered pipeline tells the next start which definition it is.
    write_pipeline(ws, "listings", A, "description: edited\n" + step)
    os.utime(path, ns=(stale.stat[0], stale.stat[0]))
    rt.apply_changes([path])  # remembers the edit itself
    rt._remember_read()  # then the start-up's batch, which still holds the old entry
    assert rt.entries[path] is not stale
    crash(rt)
    again = Runtime(ws, schedules=False, out=lambda _: None)
    again.open()
    try:
        assert again.pipelines[f"{A}/listings"].description == "edited"
    finally:
        again.shutdown()


def test_a_restart_after_a_crash_still_refuses_a_misspelled_parent_with_its_line(
        tmp_path: Path) -> None:
    from dpc_core.errors import ValidationFailed

    ws = noop_case_study(tmp_path / "ws")
    rt = Runtime(ws, schedules=False, out=lambda _: None)
    rt.open()
    crash(rt)  # nothing remembered
    x = ws / f"{C}-pipeline-x" / "pipeline.yaml"
    x.write_text(x.read_text().replace("name: listings,", "name: listing,"))
    again = Runtime(ws, schedules=False, out=lambda _: None)
    with pytest.raises(ValidationFailed) as caught:
        again.open()
    assert f"{x}:" in str(caught.value) and "listing" in str(caught.value)


def test_deadlines_are_found_without_reading_every_pipeline(tmp_path: Path) -> None:
    ws = noop_case_study(tmp_path / "ws")
    x = ws / f"{C}-pipeline-x" / "pipeline.yaml"
    x.write_text(x.read_text().replace("name: pipeline-x\n", 'name: pipeline-x\n'
                                       'owner: team-x\ndeadline: "06:00"\n'))
    s = ws / f"{A}-listings" / "pipeline.yaml"
    s.write_text(s.read_text().replace("name: listings\n", "name: listings\n"
                                       "description: deadline\n"))  # not one
    rt = Runtime(ws, schedules=False, out=lambda _: None)
    rt.open()
    try:
        rt._check_deadlines()
        assert [s.key for s in rt._deadline_specs] == [f"{C}/pipeline-x"]
    finally:
        rt.shutdown()


def spec(name: str, *parents: str, account: str = A) -> PipelineSpec:
    return PipelineSpec(account=account, name=name, parents=tuple(f"{A}/{p}" for p in parents))


@pytest.mark.parametrize("exclusive", [False, True])
def test_register_many_writes_what_registering_one_by_one_writes(
        tmp_path: Path, exclusive: bool) -> None:
    before = [spec("a"), spec("b", "a"), spec("c", "a", "b")]
    # c replaced (its edges move), d new, d given twice: the last one counts.
    batch = [spec("c", "b"), spec("d", "a"), spec("d", "c")]

    def state(store: SqliteStore) -> tuple[Any, ...]:
        return (sorted(store.conn.execute("SELECT key, spec FROM pipelines").fetchall()),
                sorted(store.conn.execute("SELECT parent, child FROM edges").fetchall()),
                [(s.key, sorted(c.key for c in store.lookup(s.key)[1]))  # type: ignore[index]
                 for s in store.pipelines()])

    one = SqliteStore(tmp_path / "one.db", exclusive=exclusive)
    many = SqliteStore(tmp_path / "many.db", exclusive=exclusive)
    for store in (one, many):
        Engine(store).register_many(before)
    for s in batch:
        Engine(one).register(s)
    Engine(many).register_many(batch)
    assert state(many) == state(one)
    assert [c.key for c in many.lookup(f"{A}/c")[1]] == [f"{A}/d"]  # type: ignore[index]


def a_workspace_with_problems(ws: Path) -> Path:
    """The case study, plus an invalid file, a duplicate and a misspelled parent."""
    noop_case_study(ws)
    step = "steps:\n  - {name: s, type: shell, command: 'true'}\n"
    write_pipeline(ws, "broken", A, "trigger: {rerun: sometimes}\n" + step)
    write_pipeline(ws, "typo", C, "trigger:\n  executions:\n    allOf:\n      - {name: listings, "
                   f"account: \"{A}\", status: [SUCCESS]}}\n      - {{name: searchs, account: "
                   "\"222222222222\", status: [SUCCESS]}\n      - {name: elsewhere, account: "
                   "\"444444444444\", status: [SUCCESS]}\n" + step)
    d = ws / "zz-copy-of-listings"
    d.mkdir()
    (d / "pipeline.yaml").write_text((ws / f"{A}-listings" / "pipeline.yaml").read_text())
    return ws


def read_here_and_in_workers(ws: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """:func:`a_workspace_with_problems` at ``ws``, loaded in this process and then by two
    worker processes (several chunks each): (here, there)."""
    from dpc_core.plugins import get_registry

    a_workspace_with_problems(ws)
    reg = get_registry()
    files = catalog.scan(ws)
    here = catalog.load(files, {}, "fp", reg)
    monkeypatch.setattr(catalog, "PARALLEL_FROM", 1)
    monkeypatch.setattr(catalog, "CHUNK_MIN", 1)
    return here, catalog.load(files, {}, "fp", reg, workers=2)


def test_files_read_in_worker_processes_give_what_reading_them_here_gives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    here, there = read_here_and_in_workers(ws, monkeypatch)

    def view(loaded: Any) -> Any:
        entries, fresh, problems = loaded
        return ([(p, e.key, e.stat, e.spec, e.meta) for p, e in entries.items()],
                [e.path for e in fresh], [str(p) for p in problems])

    assert view(there) == view(here)
    assert len(here[0]) == 6 and len(here[2]) == 1  # the invalid file's problem
    # Read there: as if remembered, the pipeline comes from its pickle when used.
    entry = there[0][str(ws / f"{C}-pipeline-x" / "pipeline.yaml")]
    assert entry._pipeline is None
    assert entry.pipeline == here[0][entry.path].pipeline


def test_the_reference_check_over_entries_finds_what_checking_every_pipeline_finds(
        tmp_path: Path) -> None:
    from dpc_core.loader import check_references
    from dpc_core.plugins import get_registry

    ws = a_workspace_with_problems(tmp_path / "ws")
    reg = get_registry()
    files = catalog.scan(ws)
    entries, _, _ = catalog.load(files, {}, "fp", reg)
    expected = [str(p) for p in check_references(e.pipeline for e in entries.values())]
    assert len(expected) == 1 and "'searchs'" in expected[0]
    assert [str(p) for p in catalog.reference_problems(entries)] == expected
    # The same from remembered entries (nothing unpickled but the suspect).
    conn = sqlite3.connect(tmp_path / "c.db")
    from dpc_core.local import state

    state.init(conn)
    catalog.remember(conn, list(entries.values()), [], "fp")
    cached, fresh, _ = catalog.load(files, catalog.remembered(conn), "fp", reg,
                                    catalog.blob_reader(conn, contextlib.nullcontext()))
    assert fresh == []
    assert [str(p) for p in catalog.reference_problems(cached)] == expected
    assert [p for p, e in cached.items() if e._pipeline is not None] == [
        str(ws / f"{C}-typo" / "pipeline.yaml")]


def test_an_invalid_file_stops_a_start_that_reads_in_worker_processes_with_its_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dpc_core.errors import ValidationFailed

    ws = a_workspace_with_problems(tmp_path / "ws")
    texts = []
    for parallel in (False, True):
        if parallel:
            monkeypatch.setattr(catalog, "PARALLEL_FROM", 1)
            monkeypatch.setattr(catalog, "parse_workers", lambda: 2)
        rt = Runtime(ws, schedules=False, out=lambda _: None)
        with pytest.raises(ValidationFailed) as caught:
            rt.open()
        rt._lock_file.close()
        rt.store.close()
        texts.append(str(caught.value))
    assert texts[1] == texts[0]
    assert f"{ws / f'{A}-broken' / 'pipeline.yaml'}:3:18: trigger.rerun" in texts[0]
    assert "also defined in" in texts[0] and "'searchs'" in texts[0]


def test_files_are_read_in_worker_processes_only_with_idle_cpus(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.setattr(catalog.os, "sched_getaffinity", lambda _: {0, 1, 2, 3})
    monkeypatch.setattr(catalog, "_busy_cpus", lambda: 0.2)
    assert catalog.parse_workers() == 4
    monkeypatch.setattr(catalog, "_busy_cpus", lambda: 2.1)
    assert catalog.parse_workers() == 2
    monkeypatch.setattr(catalog, "_busy_cpus", lambda: 7.0)
    assert catalog.parse_workers() == 1
    monkeypatch.setattr(catalog, "_busy_cpus", lambda: 0.0)
    monkeypatch.setattr(threading, "active_count", lambda: 2)  # forking would be unsafe
    assert catalog.parse_workers() == 1


def test_busy_cpus_are_measured_now_not_a_minute_ago() -> None:
    """A CPU kept busy by another process during the sample counts; the figure is within
    the machine's CPUs."""
    import subprocess
    import sys

    idle = catalog._busy_cpus(0.3)
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = catalog._busy_cpus(0.5)
    finally:
        burner.kill()
        burner.wait()
    assert 0 <= idle <= (os.cpu_count() or 1) and busy <= (os.cpu_count() or 1) + 0.01
    assert busy >= 0.8  # the burner's CPU, whatever else the machine does


PARENT, READ_CHUNK = os.getpid(), catalog._read_chunk


def dies_in_a_worker(paths: list[str]) -> Any:
    """catalog._read_chunk, but a worker given pipeline-x dies (as if killed)."""
    if os.getpid() != PARENT and any("pipeline-x" in p for p in paths):
        os._exit(9)
    return READ_CHUNK(paths)


def test_a_worker_process_that_dies_loses_no_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "_read_chunk", dies_in_a_worker)
    here, there = read_here_and_in_workers(tmp_path / "ws", monkeypatch)
    assert [(p, e.key, e.spec) for p, e in there[0].items()] == [
        (p, e.key, e.spec) for p, e in here[0].items()]
    assert [str(p) for p in there[2]] == [str(p) for p in here[2]]


def test_a_stop_signal_right_after_the_ready_line_still_stops_cleanly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before serve() takes over, a Ctrl-C used to end the process without shutdown():
    the files the start-up read were then never remembered (nor runs recorded ABORTED)."""
    import faulthandler
    import signal

    from click.testing import CliRunner

    from dpc_core.cli.local import up

    ws = noop_case_study(tmp_path / "ws")
    stopped: list[Runtime] = []
    real_shutdown = Runtime.shutdown

    def serve(self: Runtime, until_idle: bool = False) -> None:
        raise KeyboardInterrupt  # the signal, just before serve()'s own handling

    def shutdown(self: Runtime) -> None:
        stopped.append(self)
        real_shutdown(self)

    monkeypatch.setattr(Runtime, "serve", serve)
    monkeypatch.setattr(Runtime, "shutdown", shutdown)
    monkeypatch.setattr(faulthandler, "register", lambda *a, **k: None)  # needs a real fd
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        result = CliRunner().invoke(up, ["-w", str(ws), "--no-schedule"])
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    assert "ready in" in result.output and "stopping" in result.output, result.output
    assert len(stopped) == 1
    assert sorted(remembered(ws).values()) == sorted(KEYS)
