"""The local runtime process (``dpc local up``).

Threads, all sharing one SQLite connection under the store's lock:

- the *executor pool* runs each run's steps as subprocesses (PENDING → RUNNING →
  terminal), writing each state change and the events it causes in one transaction, in
  which the trigger engine also decides those events and creates the child runs it
  decides (PENDING): no hand-over on the trigger path;
- the *engine loop* decides, in order, the status events nobody decided yet (those of
  other sources, or of an executor that found the engine busy);
- the *notify loop* delivers notifications from the outbox through the notifier
  plugins (slow or failing channels never hold up triggering);
- the *scheduler* fires cron/rate schedules at their instants.

Nothing sleeps on the hot path: a commit that adds work wakes the loop that owns it.
A ``kill -9`` loses nothing: the outbox and PENDING runs are picked up by the next
``dpc local up``; runs left RUNNING by the dead process end as FAILED with a status
event, so fallbacks fire.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dpc_core.engine import Engine
from dpc_core.errors import DpcError, Problem, UnknownPipeline, ValidationFailed
from dpc_core.events import make_status_event
from dpc_core.loader import PIPELINE_FILE, check_references, load_pipelines
from dpc_core.local import backfill, notices, operator, state
from dpc_core.local import redrive_state as redrive
from dpc_core.local.state import REGION, RUN_COLUMNS, TERMINAL, RunRow, now_ms, run_row
from dpc_core.local.views import reason_text
from dpc_core.model import Pipeline
from dpc_core.notify import Secrets
from dpc_core.plugins import Registry, get_registry
from dpc_core.schedule import Rate
from dpc_core.store import pkey, spec_from_json
from dpc_core.stores.sqlite import SqliteStore, connect
from dpc_core.types import Notification, RunContext

Printer = Callable[[str], None]



#: ``sh -c`` script of every step: write ``$$`` to the pid file (``$0``), then exec the
#: step's command (``$@``) in the same process.
_PID_THEN_EXEC = 'echo $$ > "$0" 2>/dev/null; exec "$@"'


def _check_runnable(program: str, cwd: str | os.PathLike[str], env: dict[str, str]) -> None:
    """OSError (as ``Popen`` would raise it) when ``program`` cannot be started, so a
    missing program is still "cannot start", not the wrapper shell's exit 127."""
    import errno
    import shutil

    if os.sep in program:
        path = program if os.path.isabs(program) else os.path.join(cwd, program)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


class RuntimeBusy(DpcError):
    """Another ``dpc local up`` holds the workspace."""


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic garbage collection inside, and what was built inside is then frozen.

    Loading a workspace allocates objects by the million (10,000 pipelines) and frees
    almost none, so every collection would scan them all for nothing; and they live as
    long as the runtime, so later full collections would scan them again, pausing every
    thread (the engine's trigger latency) for tens of milliseconds. ``gc.freeze()`` takes
    them out of the collector's reach before it is enabled again (which would otherwise
    start with a full pass); reference counting still frees what is replaced later."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S.%f")[:-3]


@dataclass
class Workspace:
    """A directory of projects (each with a pipeline.yaml) and its ``.dpc`` state."""

    root: Path
    registry: Registry = field(default_factory=get_registry)

    @property
    def state_dir(self) -> Path:
        """``.dpc`` under the workspace."""
        return self.root / ".dpc"

    @property
    def db_path(self) -> Path:
        """The SQLite state file."""
        return state.state_path(self.root)

    @property
    def socket_path(self) -> Path:
        """Where a running runtime listens for wake-ups."""
        return self.state_dir / "runtime.sock"

    def load(self) -> dict[str, Pipeline]:
        """Every pipeline of the workspace by ``account/name`` (each must name its account)."""
        pipelines = load_pipelines([self.root], require_account=True, registry=self.registry)
        return {pkey(p.account or "", p.name): p for p in pipelines}

    def keys(self) -> set[str]:
        """The ``account/name`` of every valid pipeline.yaml, fast: files unchanged since the
        runtime last read them are not parsed again (see :mod:`dpc_core.local.catalog`)."""
        from dpc_core.local import catalog

        files = catalog.scan(self.root)
        cache: catalog.Remembered = {}
        if self.db_path.exists():
            with state.guarded(self.db_path):
                conn = connect(self.db_path)
                try:
                    state.init(conn)
                    cache = catalog.remembered(conn, blobs=False)
                finally:
                    conn.close()
        fp = catalog.fingerprint(self.registry)
        keys: set[str] = set()
        for path, stat in files.items():
            hit = cache.get(path)
            if hit is not None and hit[0] == stat and hit[2] == fp:
                keys.add(hit[1])
                continue
            try:
                keys.add(catalog.read_file(path, stat, self.registry).key)
            except DpcError:
                if hit is not None:  # invalid now: its last good definition is in force
                    keys.add(hit[1])
        return keys

    def connect(self, exclusive: bool = False) -> SqliteStore:
        """Open (and create) the state database; ``exclusive`` only for the runtime, which
        holds the workspace lock (other commands never write the engine's tables). A full
        or read-only disk is a :class:`~dpc_core.local.state.StateUnavailable` error."""
        with state.guarded(self.db_path):
            self.state_dir.mkdir(parents=True, exist_ok=True)
            store = SqliteStore(connect(self.db_path), exclusive=exclusive)
            state.init(store.conn)
            notices.init(store.conn)
            backfill.init(store.conn)
            operator.init(store.conn)
            redrive.init(store.conn)
        return store

    def resolve(self, pipelines: Iterable[str], name: str) -> str:
        """``name`` or ``account/name`` → the pipeline key; an unknown name is an error with
        the nearest names (did you mean …)."""
        import difflib

        keys = set(pipelines)
        if name in keys:
            return name
        matches = [k for k in keys if k.split("/", 1)[1] == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UnknownPipeline(f"{name!r} exists in several accounts; write one of: "
                                  f"{', '.join(sorted(matches))}")
        if not keys:
            raise UnknownPipeline(f"no pipeline {name!r}: workspace {self.root} has no valid "
                                  f"pipeline.yaml (`dpc validate {self.root}` says why)")
        names = sorted({k.split("/", 1)[1] for k in keys} | keys)
        # A name far longer than any (at most 93 characters) is like none: no nearest names.
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6) \
            if len(name) <= 200 else []
        if len(name) > 200:
            name = name[:100] + "…"
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        known = (f"; known: {', '.join(sorted(k.split('/', 1)[1] for k in keys))}"
                 if len(keys) <= 20 else f" ({len(keys)} pipelines)")
        raise UnknownPipeline(f"no pipeline {name!r} in workspace {self.root}{hint}"
                              + ("" if close else known))

    def poke(self) -> bool:
        """Wake a running runtime; False when none is listening."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto(b"wake", str(self.socket_path))
            return True
        except OSError:
            return False


def run_input(logical_date: str, parents: list[dict[str, Any]], trigger: str | None,
              downstream: bool) -> dict[str, Any]:
    """The input a run carries (as on AWS): its logical date and the parents that caused it."""
    dpc: dict[str, Any] = {"logicalDate": logical_date, "parents": parents}
    if trigger:
        dpc["trigger"] = trigger
    if downstream:
        dpc["downstream"] = True
    return {"dpc": dpc}


def insert_run(store: SqliteStore, key: str, run_id: str, logical_date: str, reason: str,
               parents: list[dict[str, Any]] | None = None, downstream: bool = False) -> str | None:
    """Queue a run (PENDING). Returns its ARN, or None when that run already exists."""
    account, name = key.split("/", 1)
    arn = state.execution_arn(account, name, run_id)
    cur = store.conn.execute(
        "INSERT OR IGNORE INTO lr_runs (arn, run_id, pipeline, status, logical_date, reason, "
        "parents, downstream, created_ms) VALUES (?, ?, ?, 'PENDING', ?, ?, ?, ?, ?)",
        (arn, run_id, key, logical_date, reason, json.dumps(parents or []), int(downstream),
         now_ms()))
    return arn if cur.rowcount == 1 else None


def queue_events(store: SqliteStore, events: list[Any]) -> None:
    """Append events (dicts or StatusEvents) to the outbox, in order, in one transaction."""
    with store.transaction():
        for raw in events:
            payload = raw.model_dump(mode="json", by_alias=True) if hasattr(raw, "model_dump") \
                else raw
            store.conn.execute(
                "INSERT INTO lr_outbox (kind, payload, created_ms) VALUES ('event', ?, ?)",
                (json.dumps(payload), now_ms()))


def manual_run_id(prefix: str, logical_date: str) -> str:
    """A unique execution name for a run started by hand."""
    return f"{prefix}-{logical_date.replace(':', '')}-{uuid.uuid4().hex[:8]}"


class Runtime:
    """One ``dpc local up`` over a workspace."""

    def __init__(self, workspace: Path, *, schedules: bool = True, max_parallel: int = 8,
                 out: Printer = print, env: dict[str, str] | None = None,
                 registry: Registry | None = None) -> None:
        self.ws = Workspace(workspace.resolve(), registry or get_registry())
        self.schedules = schedules
        self.env = dict(os.environ if env is None else env)
        # Raises for a declared secret too short to redact. Every line printed is redacted:
        # a run's error quotes what its step printed.
        self.secrets = Secrets.from_env(self.env, self.ws.registry)
        self.out: Printer = lambda text: out(self.secrets.redact(text))
        self.max_parallel = max_parallel
        # Names this workspace's state in the keys of its notifications (with the outbox
        # item), so two workspaces posting to one channel never share a key.
        self._state_id = f"{socket.gethostname()}:{self.ws.db_path}"
        self.stopping = threading.Event()
        # Set by shutdown() once every run has ended: the outbox loops drain until then.
        self.runs_done = threading.Event()
        self.events_done = threading.Event()  # the engine loop has drained and ended
        self.wake_engine = threading.Event()
        self.wake_notify = threading.Event()
        self.wake_sched = threading.Event()
        self.changed = threading.Event()
        self.submitted: set[str] = set()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.active = 0
        self._active_lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self._lock_file: Any = None
        self._sock: socket.socket | None = None
        self.ready_at: float | None = None
        self.interrupted = False  # stopped by Ctrl-C or SIGTERM (exit 130)
        self._terminating: set[str] = set()  # runs whose step a cancel is terminating
        self.notifier: Any = None
        self.lineage: Any = None
        # The workspace as last read: pipeline.yaml path -> entry; files found invalid (by
        # their size and mtime, so an unchanged bad file is reported once).
        self.entries: dict[str, Any] = {}
        self._invalid: dict[str, tuple[int, int]] = {}
        self._catalog_lock = threading.Lock()
        #: Held by whoever is deciding queued events (the engine loop, or an executor
        #: thread committing a run's start or end); see _deciding.
        self._engine_turn = threading.Lock()
        self._catalog_version = 0
        self._unremembered: list[Any] = []  # read at start-up, not remembered yet
        # Runs this process executed (for `up --until-idle`'s exit code).
        self.ran: list[str] = []
        # Storage trouble (disk full, read-only state): reported once per outage.
        self._storage_down = False
        self._told: set[str] = set()
        # Pipelines with a deadline (re-read when the workspace changes).
        self._deadline_specs: list[Any] = []
        self._deadline_version = -1

    # -- start-up -----------------------------------------------------------------

    def open(self) -> None:
        """Lock the workspace, load and register pipelines, recover from a crash."""
        t0 = time.perf_counter()
        with state.guarded(self.ws.db_path):
            self.ws.state_dir.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.ws.state_dir / "runtime.lock", "a+")  # noqa: SIM115
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeBusy(f"another `dpc local up` is running on {self.ws.root}") from None
        self._lock_file.truncate(0)
        self._lock_file.write(str(os.getpid()))
        self._lock_file.flush()
        self.store = self.ws.connect(exclusive=True)
        reg = self.ws.registry
        self.engine = Engine(self.store, adapters=[(t.source, t.detail_type, t.to_status_event)
                                                   for t in reg.trigger_sources.values()],
                             paused=lambda key: operator.is_paused(self.store.conn, key))
        with state.guarded(self.ws.db_path), _no_gc():
            self._load_workspace()
            with self.store.transaction():
                self._recover()
        with contextlib.suppress(OSError):
            self._kept_path().unlink()  # recorded by _recover (or already recorded)
        self._open_socket()
        self._setup_notifications()
        self.ready_at = time.perf_counter() - t0

    def _load_workspace(self) -> None:
        """Read every pipeline.yaml (only those changed since the last start are parsed)
        and register what changed with the engine. Any invalid file stops the start-up."""
        from dpc_core.local import catalog

        reg = self.ws.registry
        self._fp = catalog.fingerprint(reg)
        files = catalog.scan(self.ws.root)
        if not files:
            raise ValidationFailed([Problem(str(self.ws.root), 1, 1, "",
                                            "no pipeline.yaml found")])
        cache = catalog.remembered(self.store.conn)
        entries, fresh, problems = catalog.load(
            files, cache, self._fp, reg, catalog.blob_reader(self.store.conn, self.store._lock),
            workers=catalog.parse_workers)
        problems += catalog.duplicates(entries)
        # The check of `dpc validate`: a parent one typo away from a pipeline of the same
        # account stops the start-up (other undefined parents are normal). It runs when a
        # file changed since the last start (unchanged files passed it then).
        if fresh or set(cache) != set(entries):
            problems += catalog.reference_problems(entries)
        if problems:
            raise ValidationFailed(problems)
        pipelines = catalog.Pipelines(entries.values())
        with self.store.transaction():
            registered = {k for (k,) in self.store.conn.execute("SELECT key FROM pipelines")}
            for key in registered - set(pipelines):
                self.store.delete_pipeline(*key.split("/", 1))
            todo = {e.key for e in fresh} | (set(pipelines) - registered)
            if todo:
                self.engine.register_many([pipelines.entries[k].spec for k in sorted(todo)])
            catalog.remember(self.store.conn, [], [p for p in cache if p not in entries],
                             self._fp)
        self.entries = entries
        self.pipelines = pipelines
        # What was read is remembered once the runtime is ready (_remember_read).
        self._unremembered = fresh

    def apply_changes(self, hinted: Iterable[str] | None = None) -> None:
        """Bring the runtime in line with the workspace's files: added, changed and removed
        pipeline.yaml files take effect at once (engine registry, scheduler, runs). A file
        that is now invalid (or would duplicate a pipeline or close a dependency cycle) is
        reported as FILE:LINE:COL lines and its last good definition stays in force.

        ``hinted``: the pipeline.yaml paths the watcher saw change (re-read even if size
        and mtime match; nothing else is looked at). None: walk the whole workspace."""
        from dpc_core.local import catalog

        with self._catalog_lock:
            if hinted is None:
                files = catalog.scan(self.ws.root)
                hinted = set()
            else:
                # Only the changed files: a walk over 10,000 projects costs ~0.5 s.
                hinted = set(hinted)
                files = {q: e.stat for q, e in self.entries.items()}
                files.update(self._invalid)
                for q in hinted:
                    try:
                        st = os.stat(q)
                        files[q] = (st.st_mtime_ns, st.st_size)
                    except OSError:
                        files.pop(q, None)
            changed = sorted(p for p, st in files.items()
                             if (p in hinted or self.entries.get(p) is None
                                 or self.entries[p].stat != st)
                             and not (p not in hinted and self._invalid.get(p) == st))
            gone = [p for p in self.entries if p not in files]
            for p in list(self._invalid):
                if p not in files:
                    del self._invalid[p]
            if not changed and not gone:
                return
            entries = dict(self.entries)
            for p in gone:
                del entries[p]
            read: list[Any] = []
            problems: list[Problem] = []
            for p in changed:
                try:
                    entry = catalog.read_file(p, files[p], self.ws.registry)
                except ValidationFailed as exc:
                    problems.extend(exc.problems)
                    self._invalid[p] = files[p]
                    continue
                owner = next((q for q, e in entries.items() if e.key == entry.key and q != p),
                             None)
                if owner is not None:
                    account, name = entry.key.split("/", 1)
                    problems.append(Problem(p, 1, 1, "name", f"pipeline {name!r} in account "
                                            f"{account} is also defined in {owner}"))
                    self._invalid[p] = files[p]
                    continue
                self._invalid.pop(p, None)
                entries[p] = entry
                read.append(entry)
            if read:
                # `dpc validate`'s check, on what changed: a parent one typo away from a
                # pipeline of the same account makes that file invalid (names come from the
                # catalog's keys: nothing is unpickled).
                defined = {(k[0], k[1]): q for q, e in entries.items()
                           for k in [e.key.split("/", 1)]}
                for entry in list(read):
                    typos = check_references([entry.pipeline], defined=defined)
                    if not typos:
                        continue
                    problems.extend(typos)
                    self._invalid[entry.path] = entry.stat
                    read.remove(entry)
                    if entry.path in self.entries:
                        entries[entry.path] = self.entries[entry.path]
                    else:
                        del entries[entry.path]
            old = self.pipelines
            pipelines = catalog.Pipelines(entries.values())
            removed = sorted(set(old) - set(pipelines))
            updated = sorted({e.key for e in read})
            if removed or read or gone:
                try:
                    with self.store.transaction():
                        for key in removed:
                            self.store.delete_pipeline(*key.split("/", 1))
                        if len(updated) > 20:
                            self.engine.register_many([pipelines[k] for k in updated])
                        else:  # checks only each one's ancestors, not the whole graph
                            for k in updated:
                                self.engine.register(pipelines[k])
                        catalog.remember(self.store.conn, read, gone, self._fp)
                except DpcError as exc:  # a dependency cycle: nothing of this change applies
                    self._reset_store()
                    self.out(f"{_fmt_ms(now_ms())}  workspace  change not applied: {exc}; the "
                             "previous definitions stay in force")
                    for e in read:
                        self._invalid[e.path] = e.stat
                    read, removed, updated = [], [], []
                    entries, pipelines = self.entries, old
                self.entries = entries
                self.pipelines = pipelines
                self._catalog_version += 1
                self.wake_sched.set()
            for problem in problems:
                self.out(str(problem))
            if problems:
                self.out(f"{_fmt_ms(now_ms())}  workspace  {len(problems)} problem(s) above; "
                         "each file's last good definition stays in force")
            added = [k for k in updated if k not in old]
            if added or removed or len(updated) > len(added):
                parts = [f"+{k}" for k in added] + [f"~{k}" for k in updated if k in old] + \
                    [f"-{k}" for k in removed]
                shown = " ".join(parts[:10]) + (f" (+{len(parts) - 10} more)"
                                                 if len(parts) > 10 else "")
                self.out(f"{_fmt_ms(now_ms())}  workspace  {len(pipelines)} pipeline(s): "
                         f"{shown}")
        self._submit_pending()

    def _watch(self) -> None:
        """Follow the workspace's files (inotify through watchfiles); apply each batch."""
        import watchfiles

        root = str(self.ws.root)
        state_dir = str(self.ws.state_dir) + os.sep

        def wanted(change: watchfiles.Change, path: str) -> bool:
            if path.startswith(state_dir):
                return False
            rel = path[len(root):].split(os.sep)
            if any(part.startswith(".") for part in rel):
                return False
            # pipeline.yaml files, and directories added or removed (a project moved in or
            # out holds one); other files are not pipelines.
            return rel[-1] == PIPELINE_FILE or change != watchfiles.Change.modified

        caught_up = False
        try:
            for changes in watchfiles.watch(root, watch_filter=wanted, stop_event=self.stopping,
                                            debounce=400, step=30, raise_interrupt=False,
                                            ignore_permission_denied=True, rust_timeout=500,
                                            yield_on_timeout=True):
                if not changes:
                    if not caught_up:
                        # The first quiet moment: the watches are in place, so read what
                        # changed between start-up and now (no change can be missed).
                        caught_up = True
                        self._guarded_call("workspace watcher", "catch-up", self.apply_changes)
                    continue
                paths = {p for _, p in changes}
                # A directory added, moved or removed may hold projects: walk everything.
                files = paths if all(p.endswith(os.sep + PIPELINE_FILE) for p in paths) \
                    else None
                self._guarded_call("workspace watcher", f"changes {sorted(paths)[:5]}",
                                   lambda files=files: self.apply_changes(  # type: ignore[misc]
                                       files))
        except Exception as exc:
            # No inotify (limits, file system): compare sizes and mtimes every 2 s instead.
            self.out(f"{_fmt_ms(now_ms())}  workspace  cannot watch {root} ({exc}); checking "
                     "for changes every 2 s")
            while not self.stopping.wait(2.0):
                self._guarded_call("workspace watcher", "periodic check", self.apply_changes)

    def _setup_notifications(self) -> None:
        from dpc_core.notify import Dispatcher, unconfigured_line

        # A channel without credentials prints its notifications (and says so once, here).
        self.notifier = Dispatcher(
            self.ws.registry, self.env, secrets=self.secrets,
            console=lambda text: self.out(f"{_fmt_ms(now_ms())}  notify  {text}"))
        from dpc_core.local.notifications import replay_printed_alerts

        replay_printed_alerts(self.store, self.notifier)
        missing = self.notifier.unconfigured(
            {c for e in self.pipelines.entries.values() for c in e.meta.get("channels", ())})
        if missing:
            self.out(unconfigured_line(missing))
        if self.env.get("DPC_OPENLINEAGE_URL"):
            from dpc_core.openlineage import OpenLineageEmitter

            self.lineage = OpenLineageEmitter(self.env["DPC_OPENLINEAGE_URL"])

    def _open_socket(self) -> None:
        path = str(self.ws.socket_path)
        if len(path) > 100:
            return  # too long for AF_UNIX; external commands are then seen within a second
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(path)
        self._sock.settimeout(1.0)

    def _recover(self) -> None:
        """Runs left RUNNING by a dead runtime end FAILED, with their status event; a run
        whose result was kept in ``.dpc/kept-results.jsonl`` (the state could not be
        written when it finished) gets that result instead."""
        kept = self._kept_results()
        rows = self.store.conn.execute(
            f"SELECT {RUN_COLUMNS} FROM lr_runs WHERE status = 'RUNNING'").fetchall()
        for row in map(run_row, rows):
            if row.arn in kept:
                status, error, step = kept[row.arn]
                self.store.conn.execute(
                    "UPDATE lr_steps SET status = ?, stop_ms = ? WHERE arn = ? AND "
                    "status = 'RUNNING'", (status, now_ms(), row.arn))
                self._finish(row, status, error, step)
                self.out(f"recovered {row.name}@{row.account} {row.run_id}: RUNNING -> {status} "
                         "(its result was kept while the state could not be written)")
                continue
            for pid, log_path in self.store.conn.execute(
                    "SELECT pid, log_path FROM lr_steps WHERE arn = ? AND status = 'RUNNING'",
                    (row.arn,)).fetchall():
                if pid is None and log_path:  # killed before the pid's row was written
                    with contextlib.suppress(OSError, ValueError):
                        pid = int(Path(log_path).with_suffix(".pid").read_text())
                if pid:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)  # steps run in their own session
            self.store.conn.execute(
                "UPDATE lr_steps SET status = 'FAILED', stop_ms = ? WHERE arn = ? AND "
                "status = 'RUNNING'", (now_ms(), row.arn))
            self._finish(row, "FAILED", "the runtime stopped while the run was in progress",
                         interrupted=True)
            self.out(f"recovered {row.name}@{row.account} {row.run_id}: RUNNING -> FAILED "
                     "(runtime had stopped)")

        def rerun(key: str, run_id: str, day: str, parents: list[dict[str, Any]],
                  downstream: bool) -> str | None:
            return insert_run(self.store, key, run_id, day, "resumed", parents, downstream)

        # What the last stop interrupted of a backfill runs again (local/backfill.py).
        for arn in backfill.resume_interrupted(self.store.conn, rerun):
            self.out(f"resumed {arn.rsplit(':', 1)[-1]}: its last run was interrupted by the "
                     "runtime's stop")

    # -- the loops ------------------------------------------------------------------

    def start(self) -> None:
        """Start the loops (after :meth:`open`)."""
        self.pool = ThreadPoolExecutor(max_workers=self.max_parallel,
                                       thread_name_prefix="dpc-run")
        for target, name in ((self._engine_loop, "dpc-engine"), (self._notify_loop, "dpc-notify"),
                             (self._listen, "dpc-wake"), (self._watch_pending, "dpc-pending")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self.threads.append(t)
        if self.schedules:
            t = threading.Thread(target=self._scheduler, name="dpc-scheduler", daemon=True)
            t.start()
            self.threads.append(t)
        self._submit_pending()
        # Deadlines that passed while no runtime ran fire now, before `--until-idle` can end.
        self._guarded_call("deadline check", "deadlines", self._check_deadlines)
        self._guarded_call("backfills", "held dates", self._release_backfills)
        # The watcher last: placing its inotify watches (one per directory, 10,000
        # projects) holds the GIL for ~0.5 s (watchfiles' RustNotify), which stopped every
        # other thread, the start-up included. A file changed meanwhile is not missed: the
        # watcher reads what changed once its watches are in place (catch-up).
        t = threading.Thread(target=self._watch, name="dpc-watch", daemon=True)
        t.start()
        self.threads.append(t)
        if self._unremembered:
            t = threading.Thread(target=self._guarded_call, name="dpc-remember", daemon=True,
                                 args=("workspace", "remembering the files read at start-up",
                                       self._remember_read))
            t.start()
            self.threads.append(t)

    def _remember_read(self) -> None:
        """Remember the pipelines that the start-up read (pickled in lr_catalog), after the
        runtime is ready: on a first start, pickling 10,000 took over a second before it.
        Until remembered, a file is simply read again by the next start (after a crash),
        which then also checks it again. In batches, between which the engine gets the
        store; an entry that an applied edit replaced meanwhile is not written (the edit
        remembered its own). A clean stop waits for the rest (shutdown joins this thread);
        while the state cannot be written, retried until the runtime stops."""
        from dpc_core.local import catalog

        todo: list[catalog.Entry] = self._unremembered
        self._unremembered = []
        for i in range(0, len(todo), 250):
            batch = todo[i:i + 250]
            for entry in batch:
                entry.blob()  # pickled before the store is taken

            while True:
                try:
                    with self._catalog_lock, self.store.transaction():
                        current = [e for e in batch if self.entries.get(e.path) is e]
                        catalog.remember(self.store.conn, current, [], self._fp)
                    self._storage_ok()
                    break
                except Exception as exc:
                    if not self._storage_failed(exc, "remembering the files read at "
                                                     "start-up (they are read again next time)"):
                        raise
                if self.stopping.wait(1.0):
                    return

    def _listen(self) -> None:
        while not self.stopping.is_set() and self._sock is not None:
            try:
                self._sock.recv(64)
            except TimeoutError:
                continue
            except OSError:
                return
            self._guarded_call("wake-up listener", "queued runs", self._submit_pending)
            self._guarded_call("wake-up listener", "requested cancels", self._carry_out_cancels)
            self._guarded_call("wake-up listener", "held triggers", self._release_resumed)
            self.wake_engine.set()

    def _watch_pending(self) -> None:
        # Safety net for runs queued by another process when no wake-up arrived
        # (not on the trigger path, which is event-driven).
        while not self.stopping.wait(1.0):
            self._guarded_call("pending-run check", "queued runs", self._submit_pending)
            self._guarded_call("deadline check", "deadlines", self._check_deadlines)
            self._guarded_call("backfills", "held dates", self._release_backfills)
            self._guarded_call("cancels", "requested cancels", self._carry_out_cancels)
            self._guarded_call("resumes", "held triggers", self._release_resumed)

    def _release_backfills(self) -> None:
        """Start held backfill dates while each backfill has fewer than its
        ``--max-parallel`` runs pending or running (dpc_core.local.backfill)."""
        if self.stopping.is_set():
            return

        def queue(key: str, run_id: str, day: str, downstream: bool) -> str | None:
            return insert_run(self.store, key, run_id, day, "backfill", downstream=downstream)

        with self.store.transaction():
            queued = backfill.release(self.store.conn, queue)
        for arn in queued:
            self._submit(arn)

    def _check_deadlines(self) -> None:
        """Fire the deadlines that passed (LATE notices); see dpc_core.local.notices."""
        if self.stopping.is_set():
            return
        if self._deadline_version != self._catalog_version:  # the workspace changed
            # Only the specs that can have a deadline are decoded (decoding all 10,000 took
            # ~0.25 s of CPU before the runtime was ready).
            with self.store.transaction():
                rows = self.store.conn.execute(
                    "SELECT spec FROM pipelines WHERE spec LIKE '%\"deadline\"%' "
                    "ORDER BY key").fetchall()
            self._deadline_specs = [s for s in (spec_from_json(t) for (t,) in rows)
                                    if s.info.get("deadline")]
            self._deadline_version = self._catalog_version
        if not self._deadline_specs:
            return
        with self.store.transaction():
            fired = notices.check_deadlines(self.store, self._deadline_specs, now_ms())
        if fired:
            self.wake_notify.set()

    def _submit_pending(self) -> None:
        if self.stopping.is_set():
            return
        with self.store.transaction():
            rows = self.store.conn.execute(
                "SELECT arn FROM lr_runs WHERE status = 'PENDING' ORDER BY created_ms").fetchall()
        for (arn,) in rows:
            self._submit(arn)

    def _submit(self, arn: str) -> None:
        with self._active_lock:
            if arn in self.submitted or self.stopping.is_set():
                return
            self.submitted.add(arn)
            self.active += 1
        self.pool.submit(self._execute_guarded, arn)

    def _outbox_loop(self, kind: str, limit: int, wake: threading.Event,
                     handle: Callable[[int, str], None],
                     producers_done: threading.Event | None = None,
                     turn: threading.Lock | None = None) -> None:
        """Take ``kind`` items from the outbox in order and hand each to ``handle`` (which
        marks it done); sleep until woken when there are none; drain before stopping.
        ``turn``, when given, is held over each batch (never while sleeping): another
        thread holding it may handle the queue's items meanwhile (see :meth:`_deciding`)."""
        source = {"event": "engine", "notify": "notifications"}.get(kind, kind)
        while True:
            with turn or contextlib.nullcontext():
                then = self._outbox_batch(kind, limit, handle, source)
            if then == "more":
                continue
            if then == "idle":
                self.changed.set()
                if (producers_done or self.runs_done).is_set():
                    return  # stopping, and nothing can add an item any more
                wake.wait(1.0)
                wake.clear()
                continue
            # "retry": the state cannot be read or written now
            if self.stopping.is_set():
                return  # nothing can be drained from a state that cannot be read
            self.stopping.wait(1.0)

    def _queued(self, kind: str, limit: int) -> list[tuple[int, str]]:
        """The first ``limit`` outbox items of ``kind`` not yet handled, in order (inside
        the caller's transaction)."""
        return self.store.conn.execute(
            "SELECT seq, payload FROM lr_outbox WHERE kind = ? AND done_ms IS NULL "
            "ORDER BY seq LIMIT ?", (kind, limit)).fetchall()

    def _outbox_batch(self, kind: str, limit: int, handle: Callable[[int, str], None],
                      source: str) -> str:
        """Handle up to ``limit`` queued items in order: "more" when some were handled,
        "idle" when there were none, "retry" when the state failed."""
        try:
            with self.store.transaction():
                items = self._queued(kind, limit)
        except Exception as exc:
            if not self._storage_failed(exc, f"the {source} loop's queue"):
                self._set_aside(source, "reading the outbox", exc)
            return "retry"
        if not items:
            return "idle"
        for seq, payload in items:
            try:
                handle(seq, payload)
            except Exception as exc:
                if self._storage_failed(exc, f"{kind} #{seq} (it stays queued)"):
                    return "retry"
                # One bad item must not stop the loop: set it aside, go on with the next.
                self._set_aside(source, f"outbox {kind} #{seq}: {payload[:300]}", exc, seq)
        return "more"

    # -- failures of background work ----------------------------------------------

    def _reset_store(self) -> None:
        """After a failed transaction: roll back what a failed COMMIT may have left open and
        drop the store's caches (they may hold what was not committed)."""
        with self.store._lock:
            if self.store.conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.store.conn.execute("ROLLBACK")
            self.store._forget()

    def _storage_failed(self, exc: BaseException, what: str) -> bool:
        """True when ``exc`` is the state file failing (disk full, read-only, I/O), which
        the same write survives once fixed: said once per outage, and the caller retries."""
        with contextlib.suppress(Exception):
            self._reset_store()
        cause = state.storage_cause(exc)
        if cause is None:
            return False
        if not self._storage_down:
            self._storage_down = True
            self.out(f"{_fmt_ms(now_ms())}  state  {state.unavailable(cause, self.ws.db_path)}; "
                     "the runtime keeps what it could not write and retries")
        if what not in self._told:  # once per item and outage, not once per retry
            self._told.add(what)
            self.out(f"{_fmt_ms(now_ms())}  state  not written yet: {what}")
        return True

    def _storage_ok(self) -> None:
        if self._storage_down:
            self._storage_down = False
            self._told.clear()
            self.out(f"{_fmt_ms(now_ms())}  state  {self.ws.db_path} can be written again")

    def _durably(self, write: Callable[[], None], what: str) -> bool:
        """Run ``write`` in one transaction; while the state file cannot be written (disk
        full, read-only) keep it and retry with back-off. False when the runtime stopped
        before it could be written."""
        delay, after_stop = 0.1, 0
        while True:
            try:
                with self.store.transaction():
                    write()
                self._storage_ok()
                return True
            except Exception as exc:
                if not self._storage_failed(exc, what):
                    raise
            if self.stopping.is_set():
                after_stop += 1
                if after_stop > 3:
                    return False
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _set_aside(self, source: str, item: str, exc: BaseException,
                   seq: int | None = None) -> None:
        """Record an item that failed with an unexpected error (``dpc local problems``) and
        take it off the outbox, so its loop goes on with the next item."""
        import traceback

        error = f"{type(exc).__name__}: {exc}"[:2000]
        detail = "".join(traceback.format_exception(exc))
        self.out(f"{_fmt_ms(now_ms())}  problem  {source}: {error}; set aside: {item[:200]} "
                 "(`dpc local problems` shows it)")

        def write() -> None:
            state.record_problem(self.store.conn, source, item, error, detail)
            if seq is not None:
                self.store.conn.execute("UPDATE lr_outbox SET done_ms = ? WHERE seq = ?",
                                        (now_ms(), seq))

        try:
            self._durably(write, f"the problem with {item[:80]}")
        except Exception as again:  # the record itself fails: say so, never die
            self.out(f"{_fmt_ms(now_ms())}  problem  could not record it: {again!r}")
            if seq is not None:
                with self.store.transaction():
                    self.store.conn.execute("UPDATE lr_outbox SET done_ms = ? WHERE seq = ?",
                                            (now_ms(), seq))

    def _guarded_call(self, source: str, item: str, fn: Callable[[], object]) -> None:
        """``fn()`` for a background thread: an unexpected error is recorded, not fatal."""
        try:
            fn()
        except Exception as exc:
            if not self._storage_failed(exc, f"{source}: {item}"):
                with contextlib.suppress(Exception):
                    self._set_aside(source, item, exc)

    def _kept_path(self) -> Path:
        return self.ws.state_dir / "kept-results.jsonl"

    def _keep_result(self, arn: str, status: str, error: str | None, step: str | None) -> None:
        """Best effort: a result the state database would not take goes to a small side
        file, so the next start records it instead of "the runtime stopped"."""
        line = json.dumps({"arn": arn, "status": status, "error": error, "step": step}) + "\n"
        try:
            fd = os.open(self._kept_path(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            self.out(f"{_fmt_ms(now_ms())}  state  result of {arn} ({status}) kept in "
                     f"{self._kept_path()}; the next `dpc local up` records it")
        except OSError as exc:
            self.out(f"{_fmt_ms(now_ms())}  state  result of {arn} ({status}) could not be kept "
                     f"anywhere ({exc.strerror}); the next start marks the run FAILED")

    def _kept_results(self) -> dict[str, tuple[str, str | None, str | None]]:
        kept: dict[str, tuple[str, str | None, str | None]] = {}
        try:
            text = self._kept_path().read_text()
        except OSError:
            return kept
        for line in text.splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                d = json.loads(line)
                kept[d["arn"]] = (d["status"], d.get("error"), d.get("step"))
        return kept

    def _engine_loop(self) -> None:
        try:
            self._outbox_loop("event", 200, self.wake_engine, self._dispatch_event,
                              turn=self._engine_turn)
        finally:
            self.events_done.set()
            self.wake_notify.set()

    @contextlib.contextmanager
    def _deciding(self, wait: float = 0.0) -> Iterator[Callable[[], None]]:
        """For a thread about to commit status events: yields ``decide``, which, called
        inside that transaction, has the engine decide the queued events there and then,
        so a parent's SUCCEEDED and the child runs it starts are committed together. The
        hand-over to the engine thread it saves (a wake-up, then waits for the GIL and the
        store) was nearly all of the trigger latency. The engine's turn keeps the events
        in order: whoever holds it decides the queue from its head; when another thread
        holds it longer than ``wait`` seconds, ``decide`` does nothing and the engine loop
        takes the events.
        Deciding never fails the caller's write: what it wrote is undone (a savepoint)
        and the engine loop meets the event again, and sets it aside if it fails there."""
        # The turn, then the store: the engine loop's order. On the way out the engine
        # loop is woken for whatever was not decided here.
        turn = self._engine_turn.acquire(timeout=wait) if wait else \
            self._engine_turn.acquire(blocking=False)
        started: list[str] = []

        def decide() -> None:
            started.clear()  # a retried transaction decides again
            if not turn:
                return
            try:
                with self.store.savepoint():
                    for seq, payload in self._queued("event", 200):
                        self._dispatch_event(seq, payload, started)
            except Exception:  # undone by the savepoint; the engine loop records it
                started.clear()

        try:
            yield decide
        finally:
            if turn:
                self._engine_turn.release()
            if started:
                self._submit_created(started)
            self.wake_engine.set()

    def _submit_created(self, arns: list[str]) -> None:
        """Submit the runs of ``arns`` that exist: a transaction that decided them may
        have failed after all (the pending-run check submits what this leaves out)."""
        with contextlib.suppress(Exception):
            with self.store.transaction():
                marks = ",".join("?" * len(arns))
                exist = {a for (a,) in self.store.conn.execute(
                    f"SELECT arn FROM lr_runs WHERE arn IN ({marks})", arns)}
            for arn in arns:
                if arn in exist:
                    self._submit(arn)

    def _dispatch_event(self, seq: int, payload: str,
                        started: list[str] | None = None) -> None:
        """Decide one queued event in one transaction (or the caller's, which then submits
        the child runs in ``started`` once it has committed)."""
        submit = started is None
        started = [] if started is None else started
        with self.store.transaction():
            outcome = self.engine.handle(json.loads(payload))
            # BLOCKED notices downstream of a failure, resolution on success: decided with
            # the engine's data, committed with its decisions (dpc_core.local.notices).
            if notices.after_event(self.store, outcome):
                self.wake_notify.set()
            for h in outcome.held:  # a paused child's triggers: released on resume
                operator.hold(self.store.conn, h.pipeline, h.window, "trigger", h.downstream)
            for d in outcome.decisions:
                key = pkey(d.account, d.pipeline)
                if key not in self.pipelines:
                    continue
                parents = [p.to_dict() for p in d.parents]
                arn = insert_run(self.store, key, d.execution_name, d.window, "trigger",
                                 parents, d.downstream)
                if arn:
                    started.append(arn)
            self.store.conn.execute("UPDATE lr_outbox SET done_ms = ? WHERE seq = ?",
                                    (now_ms(), seq))
        if outcome.rejected:
            self.out(f"event rejected: {outcome.rejected}")
        if submit:
            for arn in started:
                self._submit(arn)

    def _notify_loop(self) -> None:
        # The engine's events add notices (blocked downstream, …): drain after it.
        self._outbox_loop("notify", 100, self.wake_notify, self._notify_one, self.events_done)

    def _notify_one(self, seq: int, payload: str) -> None:
        item = json.loads(payload)
        # The outbox item is the intent; before anything is sent it gets a key that names
        # it on every retry and counts the attempt, committed: a delivery that a crash
        # interrupted is then retried as such, and each channel makes the retry harmless
        # with that key (Slack metadata, OpsGenie alert details, email Message-ID).
        item.setdefault("key", "dpc-" + hashlib.sha256(
            f"{self._state_id}|{seq}|{payload}".encode()).hexdigest()[:24])
        item["tries"] = int(item.get("tries", 0)) + 1
        with self.store.transaction():
            self.store.conn.execute("UPDATE lr_outbox SET payload = ? WHERE seq = ?",
                                    (json.dumps(item), seq))
        # What was sent where stays on the outbox item (`dpc local notifications`).
        item["deliveries"] = self._deliver(item)
        with self.store.transaction():
            self.store.conn.execute("UPDATE lr_outbox SET done_ms = ?, payload = ? WHERE seq = ?",
                                    (now_ms(), json.dumps(item), seq))

    def _deliver(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        pipeline = self.pipelines.get(item["pipeline"])
        note = self.secrets.redact_note(Notification(**item["note"], key=item.get("key"),
                                                     retry=int(item.get("tries", 1)) > 1))
        if self.lineage is not None:
            self.lineage.emit(note)
        if pipeline is None or self.notifier is None:
            return []
        return [d.__dict__ for d in self.notifier.deliver(pipeline.notifications, note)]

    # -- scheduler ----------------------------------------------------------------

    def _scheduler(self) -> None:
        started = now_ms()
        last: dict[str, int] = {}
        while not last and not self.stopping.is_set():
            try:
                with self.store.transaction():
                    last = dict(self.store.conn.execute(
                        "SELECT pipeline, last_fire_ms FROM lr_schedules").fetchall())
                break
            except Exception as exc:
                if not self._storage_failed(exc, "the scheduler's last firings"):
                    raise
                self.stopping.wait(1.0)
        version = -1
        scheduled: dict[str, Pipeline] = {}
        seen: dict[str, int] = {}  # when the runtime first had each scheduled pipeline
        broken: set[str] = set()
        while not self.stopping.is_set():
            if version != self._catalog_version:  # the workspace changed: re-read schedules
                version = self._catalog_version
                scheduled = {k: e.pipeline for k, e in self.pipelines.entries.items()
                             if e.meta.get("scheduled")}
                for k in scheduled:
                    if k not in seen and version == 0 and k in last:
                        self._guarded_call("scheduler", f"catch-up of {k}",
                                           lambda k=k, p=scheduled[k]: self._catch_up(  # type: ignore[misc]
                                               k, p, last, started))
                    seen.setdefault(k, started if version == 0 else now_ms())
            now = datetime.now(UTC)
            due: list[tuple[datetime, str]] = []
            for key, p in scheduled.items():
                if key in broken:
                    continue
                try:
                    first = seen.get(key, started)
                    since = datetime.fromtimestamp(max(last.get(key, first), first) / 1000,
                                                   tz=UTC)
                    anchor = datetime.fromtimestamp(last.get(key, first) / 1000, tz=UTC)
                    nxt = next_fire(p, since, anchor)
                except Exception as exc:  # one bad schedule must not stop the others
                    broken.add(key)
                    self._guarded_call("scheduler", f"schedule of {key}",
                                       lambda exc=exc, key=key: self._set_aside(  # type: ignore[misc]
                                           "scheduler", f"schedule of {key}", exc))
                    continue
                if nxt is not None:
                    due.append((nxt, key))
            wait = 3600.0
            if due:
                when, key = min(due)
                wait = (when - now).total_seconds()
            if wait > 0:
                self.wake_sched.wait(min(wait, 3600))
                self.wake_sched.clear()
                continue
            try:
                self._fire(key, when)
            except Exception as exc:
                if self._storage_failed(exc, f"schedule firing of {key} at {when:%H:%M}"):
                    self.stopping.wait(1.0)
                    continue  # retried: the firing is not lost
                self._guarded_call("scheduler", f"firing of {key}",
                                   lambda exc=exc, key=key: self._set_aside(  # type: ignore[misc]
                                       "scheduler", f"firing of {key}", exc))
            last[key] = int(when.timestamp() * 1000)

    def _catch_up(self, key: str, pipeline: Pipeline, last: dict[str, int],
                  started_ms: int) -> None:
        """At start, the firings of ``key``'s schedule missed since its last one (in
        lr_schedules) and before the runtime started, as its ``catchup`` says: none, the
        latest, or all (the most recent ``catchupLimit``, oldest first). Each is recorded
        as the last firing with its run, so a restart does not start it again."""
        trigger = pipeline.trigger
        if trigger.catchup == "none":
            return
        keep = trigger.catchup_limit if trigger.catchup == "all" else 1
        missed = missed_firings(pipeline, datetime.fromtimestamp(last[key] / 1000, tz=UTC),
                                datetime.fromtimestamp(started_ms / 1000, tz=UTC), keep)
        for when in missed:
            self._fire(key, when, reason="catch-up")
            last[key] = int(when.timestamp() * 1000)
        if missed:
            self.out(f"{_fmt_ms(now_ms())}  catch-up  {pipeline.name}@{pipeline.account}: "
                     f"{len(missed)} missed firing(s) ({trigger.catchup}), from "
                     f"{missed[0]:%Y-%m-%d %H:%M} to {missed[-1]:%Y-%m-%d %H:%M} UTC")

    def _fire(self, key: str, when: datetime, reason: str = "schedule") -> None:
        pipeline = self.pipelines.get(key)
        if pipeline is None:
            return  # removed from the workspace since the firing was planned
        logical = logical_date_of_firing(pipeline, when)
        digest = hashlib.sha256(f"{key}|{when.isoformat()}".encode()).hexdigest()[:8]
        run_id = f"sched-{when.strftime('%Y%m%dT%H%M')}-{digest}"
        with self.store.transaction():
            if operator.is_paused(self.store.conn, key):  # held, started on resume
                operator.hold(self.store.conn, key, logical, "schedule")
                arn = None
            else:
                arn = insert_run(self.store, key, run_id, logical, reason)
            self.store.conn.execute(
                "INSERT INTO lr_schedules (pipeline, last_fire_ms) VALUES (?, ?) ON CONFLICT "
                "(pipeline) DO UPDATE SET last_fire_ms = excluded.last_fire_ms",
                (key, int(when.timestamp() * 1000)))
        if arn:
            self._submit(arn)

    # -- runs -----------------------------------------------------------------------

    def _get_run(self, arn: str) -> RunRow:
        with self.store.transaction():
            row = self.store.conn.execute(f"SELECT {RUN_COLUMNS} FROM lr_runs WHERE arn = ?",
                                          (arn,)).fetchone()
        return run_row(row)

    def _event(self, row: RunRow, status: str, error: str | None = None,
               stop_ms: int | None = None) -> None:
        event = make_status_event(
            account=row.account, region=REGION, pipeline=row.name, execution=row.run_id,
            status=status, start_ms=row.start_ms or now_ms(), stop_ms=stop_ms,
            input=run_input(row.logical_date, row.parents,
                            row.run_id if row.reason == "trigger" else None, row.downstream),
            error="States.TaskFailed" if error else None, cause=error,
            time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            event_id=str(uuid.uuid4()), redrive_count=redrive.count(self.store.conn, row.arn))
        self.store.conn.execute(
            "INSERT INTO lr_outbox (kind, payload, created_ms) VALUES ('event', ?, ?)",
            (json.dumps(event), now_ms()))

    def _notify(self, row: RunRow, kind: str, status: str, step: str | None = None,
                error: str | None = None, duration_s: float | None = None) -> None:
        note = {"kind": kind, "pipeline": row.name, "account": row.account,
                "logical_date": row.logical_date, "run_id": row.run_id, "status": status,
                "duration_s": duration_s, "step": step,
                "error": self.secrets.redact_optional(error),
                "parents": row.parents}
        self.store.conn.execute(
            "INSERT INTO lr_outbox (kind, payload, created_ms) VALUES ('notify', ?, ?)",
            (json.dumps({"pipeline": row.pipeline, "note": note}), now_ms()))

    def _finish(self, row: RunRow, status: str, error: str | None,
                step: str | None = None, interrupted: bool = False) -> None:
        """Terminal status, its event and notification; inside the caller's transaction.
        ``interrupted``: the run ended because the runtime stopped, not because a step
        failed (a backfill runs it again at the next start, see local/backfill.py)."""
        if status == "ABORTED":
            error = self._abort_text(row.arn, error)
        error = self.secrets.redact_optional(error)
        stop = now_ms()
        self.store.conn.execute(
            "UPDATE lr_runs SET status = ?, stop_ms = ?, error = ?, interrupted = ? "
            "WHERE arn = ?", (status, stop, error, int(interrupted), row.arn))
        start = row.start_ms or stop
        row = RunRow(**{**row.__dict__, "start_ms": start, "stop_ms": stop})
        self._event(row, status, error, stop)
        self._notify(row, "PIPELINE_FINISHED", status, step=step, error=error,
                     duration_s=(stop - start) / 1000)

    # -- operators' aborts (dpc_core.local.operator) -----------------------------------

    def _abort_text(self, arn: str, error: str | None) -> str | None:
        """A run ending ABORTED: who aborted it and why, on record (``lr_aborts``); a
        stop of the runtime is recorded as an interrupt. Inside the caller's transaction."""
        if operator.abort_of(self.store.conn, arn) is None and self.stopping.is_set():
            operator.request(self.store.conn, arn, operator.INTERRUPT,
                             "the runtime was stopped (Ctrl-C or SIGTERM)")
        found = operator.abort_of(self.store.conn, arn)
        if found is None:
            return error
        operator.mark_done(self.store.conn, arn)
        return found.text()

    def _cancelled(self, arn: str) -> bool:
        with self.store.transaction():
            return operator.abort_of(self.store.conn, arn) is not None

    def _carry_out_cancels(self) -> None:
        """Carry out the cancels ``dpc local cancel`` recorded: a queued run ends ABORTED
        at once, a running step's process group is terminated (its run then ends
        ABORTED), a run between steps stops before the next one."""
        if self.stopping.is_set():
            return
        with self.store.transaction():
            todo = operator.pending(self.store.conn)
        for abort in todo:
            with self.store.transaction():
                row = self._get_run(abort.arn)
                if row.status == "PENDING":
                    self.store.conn.execute("UPDATE lr_runs SET status = 'ABORTED' WHERE arn = ?",
                                            (row.arn,))
                    self._finish(row, "ABORTED", None)
                elif row.status in TERMINAL:
                    operator.mark_done(self.store.conn, row.arn)
            proc = self.procs.get(abort.arn)
            if proc is not None and proc.poll() is None and abort.arn not in self._terminating:
                self._terminating.add(abort.arn)
                threading.Thread(target=operator.terminate_group, args=(proc.pid,),
                                 name="dpc-cancel", daemon=True).start()
            self.wake_engine.set()
            self.wake_notify.set()
            self.changed.set()

    def _release_resumed(self) -> None:
        """Start what resumed pipelines held while paused: the engine decides each held
        trigger's window again under the pipeline's ``rerun`` policy (Engine.release);
        a held schedule firing starts once per logical date."""
        if self.stopping.is_set():
            return
        with self.store.transaction():
            todo = operator.releasable(self.store.conn)
        if not todo:
            return
        started: list[str] = []
        with self._engine_turn, self.store.transaction():
            for key, items in todo.items():
                if key in self.pipelines:
                    triggers = [(w, down) for w, kind, down in items if kind == "trigger"]
                    for d in self.engine.release(key, triggers):
                        arn = insert_run(self.store, key, d.execution_name, d.window,
                                         "trigger", [p.to_dict() for p in d.parents],
                                         d.downstream)
                        if arn:
                            started.append(arn)
                    for window, kind, _ in items:
                        if kind != "schedule":
                            continue
                        digest = hashlib.sha256(f"{key}|{window}".encode()).hexdigest()[:8]
                        arn = insert_run(self.store, key, f"sched-resumed-"
                                         f"{window.replace(':', '')}-{digest}", window,
                                         "schedule")
                        if arn:
                            started.append(arn)
                operator.forget_held(self.store.conn, key)
        if started:
            self.out(f"{_fmt_ms(now_ms())}  resumed  {len(started)} held run(s) started")
        for arn in started:
            self._submit(arn)

    def _execute_guarded(self, arn: str) -> None:
        try:
            self._execute(arn)
        except Exception as exc:  # a runtime bug must not leave the run RUNNING forever
            self.out(f"internal error while running {arn}: {exc!r}")
            error = f"internal error: {exc!r}"

            def fail() -> None:
                row = self._get_run(arn)
                if row.status not in TERMINAL:
                    self._finish(row, "FAILED", error)

            with contextlib.suppress(Exception):
                self._set_aside("executor", f"run {arn}", exc)
            self._guarded_call("executor", f"run {arn}",
                               lambda: self._durably(fail, f"the failure of {arn}"))
            self.wake_engine.set()
            self.wake_notify.set()
        finally:
            with self._active_lock:
                self.active -= 1
                # Done with: a redrive (local/redrive.py) queues the same ARN again.
                self.submitted.discard(arn)
            self.changed.set()

    def _execute(self, arn: str) -> None:
        parts = arn.split(":")  # arn:aws:states:local:ACCOUNT:execution:NAME:RUN
        key = f"{parts[4]}/{parts[6]}"
        if key not in self.pipelines:
            # Queued by `dpc run` for a project added a moment ago, before the watcher
            # applied it: read the workspace now (before the run's RUNNING event, which
            # the engine must know the pipeline for).
            self.apply_changes()
        try:
            with self._deciding() as decide, self.store.transaction():
                start = now_ms()
                cur = self.store.conn.execute(
                    "UPDATE lr_runs SET status = 'RUNNING', start_ms = COALESCE(start_ms, ?), "
                    "owner_pid = ? WHERE arn = ? AND status = 'PENDING'",  # a redrive keeps it
                    (start, os.getpid(), arn))
                if cur.rowcount != 1:
                    return
                row = self._get_run(arn)
                self._event(row, "RUNNING")
                self._notify(row, "PIPELINE_STARTED", "RUNNING")
                decide()
        except Exception as exc:
            if not self._storage_failed(exc, f"start of {arn} (it stays PENDING)"):
                raise
            with self._active_lock:
                self.submitted.discard(arn)  # the pending-run check submits it again
            return
        self.ran.append(arn)
        self.wake_notify.set()
        defined = self.pipelines.get(row.pipeline)
        executions = defined.trigger.executions if defined is not None else None
        why = reason_text(row, executions is not None and executions.any_of is not None)
        self.out(f"{_fmt_ms(start)}  {row.name}@{row.account}  RUNNING    {row.run_id}  "
                 f"for {row.logical_date}  ({why})")
        pipeline = self.pipelines.get(row.pipeline)
        status: str
        error: str | None
        failed_step: str | None
        if pipeline is None:
            status, error, failed_step = "FAILED", (
                f"pipeline {row.name} (account {row.account}) is not defined in the workspace "
                "(its pipeline.yaml was removed or is invalid)"), None
        else:
            status, error, failed_step = self._run_steps(row, pipeline)

        # The end of a run waits a moment for the turn (its children wait on it); a start
        # does not (the step waits on it).
        with self._deciding(wait=0.02) as decide:
            def finish() -> None:
                current = self._get_run(arn)
                if current.status not in TERMINAL:
                    # ABORTED is the runtime stopping or an operator's cancel (_run_steps);
                    # only the first is an interruption a backfill runs again.
                    cancel = operator.abort_of(self.store.conn, arn)
                    self._finish(current, status, error, failed_step,
                                 interrupted=status == "ABORTED" and (
                                     cancel is None or cancel.by.startswith(operator.INTERRUPT)))
                decide()

            if not self._durably(finish, f"the result of {row.name} {row.run_id} ({status})"):
                self._keep_result(arn, status, error, failed_step)
                return
        self.wake_notify.set()
        done = self._get_run(arn)
        self.out(f"{_fmt_ms(done.stop_ms)}  {row.name}@{row.account}  {status:<10} {row.run_id}"
                 f"  in {done.duration_s or 0:.1f}s" + (f"  error: {error}" if error else ""))

    def _run_steps(self, row: RunRow, pipeline: Pipeline) -> tuple[str, str | None, str | None]:
        """Run the steps in order; (status, error, failed step)."""
        run_dir = self.ws.state_dir / "runs" / row.account / row.name / row.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        data_dir = self.ws.state_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        ctx = RunContext(pipeline=row.name, account=row.account, run_id=row.run_id,
                         logical_date=row.logical_date, project_dir=Path(pipeline.project_dir),
                         work_dir=run_dir, data_dir=data_dir, parents=row.parents)
        done = redrive.succeeded_steps(self.store, row.arn)
        for idx, step in enumerate(pipeline.steps):
            if self.stopping.is_set() or self._cancelled(row.arn):
                return "ABORTED", "the runtime was stopped", step.name
            if (idx, step.name) in done:  # a redriven run: not run again, as on AWS
                continue
            log_path = run_dir / f"{idx:02d}-{step.name}.log"

            def started(idx: int = idx, step: Any = step, log_path: Path = log_path) -> None:
                self.store.conn.execute(
                    "INSERT OR REPLACE INTO lr_steps (arn, idx, name, type, status, start_ms, "
                    "log_path) VALUES (?, ?, ?, ?, 'RUNNING', ?, ?)",
                    (row.arn, idx, step.name, step.type, now_ms(), str(log_path)))
                self._notify(row, "STEP_STARTED", "RUNNING", step=step.name)

            if not self._durably(started, f"start of step {step.name} of {row.run_id}"):
                return "ABORTED", "the runtime was stopped", step.name
            self.wake_notify.set()
            t0 = time.monotonic()
            # A long step says it is alive, with its elapsed time, every DPC_HEARTBEAT_S
            # seconds (plain lines: other runs print to the same console meanwhile).
            from dpc_core.progress import elapsed_text

            def beat(seconds: float, step: Any = step) -> None:
                self.out(f"{_fmt_ms(now_ms())}  {row.name}@{row.account}  RUNNING    "
                         f"{row.run_id}  step {step.name} for {elapsed_text(seconds)}")

            rc, error, timed_out = self._attempts(row, step, ctx, log_path, idx, beat)
            status = "SUCCEEDED" if rc == 0 else (
                "ABORTED" if self.stopping.is_set() or self._cancelled(row.arn) else
                "TIMED_OUT" if timed_out else "FAILED")
            took = time.monotonic() - t0

            def finished(idx: int = idx, step: Any = step, status: str = status, rc: int = rc,
                         error: str | None = error, took: float = took) -> None:
                self.store.conn.execute(
                    "UPDATE lr_steps SET status = ?, stop_ms = ?, exit_code = ? WHERE arn = ? "
                    "AND idx = ?", (status, now_ms(), rc, row.arn, idx))
                self._notify(row, "STEP_FINISHED", status, step=step.name, error=error,
                             duration_s=took)

            # Kept and retried while the state cannot be written: the step's outcome is true.
            self._durably(finished, f"step {step.name} of {row.run_id} ({status})")
            self.wake_notify.set()
            if rc != 0:
                # A step's timeout fails the run (as on AWS, where States.Timeout is caught).
                return ("FAILED" if status == "TIMED_OUT" else status), error, step.name
        return "SUCCEEDED", None, None

    def _attempts(self, row: RunRow, step: Any, ctx: RunContext, log_path: Path, idx: int,
                  beat: Callable[[float], None]) -> tuple[int, str | None, bool]:
        """Run a step, and again after its backoff while its ``retries`` allow (see
        dpc_core/retry.py): (exit code, error, timed out) of the last attempt. Every attempt
        writes to the step's log, after a line that names it."""
        from dpc_core.progress import heartbeat

        retries = getattr(step, "retries", None)
        timeout = getattr(step, "timeout", None)
        total = 1 + (retries.count if retries is not None else 0)
        attempt = 1
        while True:
            with heartbeat(beat):
                rc, error, timed_out = self._run_step(row, step, ctx, log_path, idx,
                                                      timeout=timeout, attempt=(attempt, total))
            if rc == 0 or attempt >= total or retries is None \
                    or not retries.retries_after(timed_out) \
                    or self.stopping.is_set() or self._cancelled(row.arn):
                if rc != 0 and attempt > 1:  # the run's error says it was retried
                    error = f"{error} (attempt {attempt} of {total})"
                return rc, error, timed_out
            delay = retries.backoff.delay(attempt)
            attempt += 1
            self.out(f"{_fmt_ms(now_ms())}  {row.name}@{row.account}  RETRYING   {row.run_id}  "
                     f"step {step.name}, attempt {attempt} of {total} in {delay}s: {error}")

            def waiting() -> None:
                # No pid while waiting: a cancel has no process to end, only the run.
                self.store.conn.execute("UPDATE lr_steps SET pid = NULL WHERE arn = ? AND "
                                        "idx = ?", (row.arn, idx))

            # Nor its pid file: a recovery after a kill -9 in the backoff would kill that
            # (ended) process's group id, which the system may have given to another.
            with contextlib.suppress(OSError):
                log_path.with_suffix(".pid").unlink(missing_ok=True)
            self._durably(waiting, f"backoff of step {step.name} of {row.run_id}")
            with contextlib.suppress(OSError), open(log_path, "ab") as log:
                log.write(f"dpc: waiting {delay}s before attempt {attempt} of {total}\n".encode())
            until = time.monotonic() + delay
            while time.monotonic() < until:
                if self.stopping.wait(min(0.5, max(until - time.monotonic(), 0))) \
                        or self._cancelled(row.arn):
                    return rc, error, timed_out

            def next_attempt(attempt: int = attempt) -> None:
                self.store.conn.execute("UPDATE lr_steps SET attempt = ? WHERE arn = ? AND "
                                        "idx = ?", (attempt, row.arn, idx))

            self._durably(next_attempt, f"attempt {attempt} of step {step.name} of "
                                        f"{row.run_id}")

    def _run_step(self, row: RunRow, step: Any, ctx: RunContext, log_path: Path,
                  idx: int, *, timeout: int | None = None,
                  attempt: tuple[int, int] = (1, 1)) -> tuple[int, str | None, bool]:
        """One attempt of a step: (exit code, error, timed out). The first attempt starts
        the log; a retry appends to it."""
        step_type = self.ws.registry.steps.get(step.type)
        if step_type is None or step_type.local is None:
            return 127, f"step {step.name}: type {step.type!r} has no local executor", False
        try:
            cmd = step_type.local(step, ctx)
        except Exception as exc:
            return 126, f"step {step.name}: {exc}", False
        from dpc_core.local.step_env import start_copy, step_environment, withheld_names

        # A minimal environment, never the notifiers' secrets (see local/step_env.py).
        asked = (*cmd.pass_env, *getattr(step, "pass_env", ()))
        env = step_environment(self.env, ctx.environment(), cmd, asked, self.secrets.names)
        timed_out = False
        with open(log_path, "wb" if attempt[0] == 1 else "ab") as log:
            if attempt[0] > 1:
                log.write(f"dpc: attempt {attempt[0]} of {attempt[1]}\n".encode())
            log.flush()
            begin = log.tell()  # this attempt's output starts here (its error's tail)
            for name in withheld_names(asked, self.secrets.names):
                log.write(f"dpc: {name} is not passed: steps never get notifier secrets\n"
                          .encode())
            cwd = cmd.cwd or ctx.project_dir
            try:
                _check_runnable(cmd.argv[0], cwd, env)
                # The step's own process writes its pid beside the log before the command
                # runs (then execs it, same pid): a kill -9 of the runtime at any moment
                # after the step started leaves the pid for the recovery to end the orphan.
                pid_path = log_path.with_suffix(".pid")
                proc = subprocess.Popen(["/bin/sh", "-c", _PID_THEN_EXEC, str(pid_path),
                                         *cmd.argv], cwd=cwd, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as exc:
                log.write(f"cannot start {cmd.argv[0]}: {exc}\n".encode())
                return 127, (f"step {step.name}: cannot start {cmd.argv[0]}: "
                             f"{exc.strerror}"), False
            # Also written here (the same pid), in case the step's shell could not: the
            # pid's row below waits for the store, which another thread may hold a while.
            with contextlib.suppress(OSError):
                pid_path.write_text(str(proc.pid))
            assert proc.stdout is not None
            copier = start_copy(proc.stdout, log, self.secrets)  # redacts on the way
            try:
                with self.store.transaction():
                    self.store.conn.execute("UPDATE lr_steps SET pid = ? WHERE arn = ? AND "
                                            "idx = ?", (proc.pid, row.arn, idx))
            except Exception as exc:  # the step runs anyway; only its pid is not on record
                if not self._storage_failed(exc, f"pid of step {step.name} of {row.run_id}"):
                    raise
            self.procs[row.arn] = proc
            if self.stopping.is_set():
                # Stopped while this step was starting: shutdown() may have looked at
                # self.procs before it was in there (it sets `stopping` first, so one of the
                # two always terminates the step).
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            try:
                try:
                    rc = proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    # The whole process group, as a cancel does; reaped by the wait below.
                    timed_out = True
                    threading.Thread(target=operator.terminate_group, args=(proc.pid,),
                                     name="dpc-timeout", daemon=True).start()
                    rc = proc.wait()
            finally:
                self.procs.pop(row.arn, None)
            copier.join(timeout=5)  # not forever: a step's leftover child may hold the pipe
            if not copier.is_alive():
                proc.stdout.close()
        if timed_out:
            with contextlib.suppress(OSError), open(log_path, "ab") as log:
                log.write(f"dpc: stopped after the step's timeout ({timeout}s)\n".encode())
            return rc or 124, f"step {step.name} timed out after {timeout}s", True
        if rc == 0:
            return 0, None, False
        tail = _tail(log_path, offset=begin)
        return rc, f"step {step.name} exited with code {rc}" + (
            f": {tail}" if tail else ""), False

    # -- running and stopping -------------------------------------------------------

    def idle(self) -> bool:
        """No run queued or running and nothing left in the outbox."""
        with self._active_lock:
            if self.active:
                return False
        try:
            with self.store.transaction():
                busy = self.store.conn.execute(
                    "SELECT (SELECT COUNT(*) FROM lr_runs WHERE status IN ('PENDING', 'RUNNING'))"
                    " + (SELECT COUNT(*) FROM lr_outbox WHERE done_ms IS NULL)"
                    # backfill dates held back by --max-parallel are work still to do
                    # (not those of a cancelled backfill: dropped)
                    " + (SELECT COUNT(*) FROM lr_backfill_dates d JOIN lr_backfills b ON "
                    "b.id = d.backfill WHERE d.arn IS NULL AND b.cancelled_ms IS NULL)"
                    # what resumed pipelines held, not released yet (dpc local resume)
                    " + (SELECT COUNT(*) FROM lr_held WHERE pipeline NOT IN "
                    "(SELECT pipeline FROM lr_paused))").fetchone()[0]
        except Exception as exc:
            if not self._storage_failed(exc, "the idle check"):
                raise
            return False
        return int(busy) == 0

    def unsuccessful(self) -> list[RunRow]:
        """Runs this process executed that did not end SUCCEEDED (``up --until-idle``)."""
        rows = []
        with self.store.transaction():
            for arn in dict.fromkeys(self.ran):
                row = self._get_run(arn)
                if row.status != "SUCCEEDED":
                    rows.append(row)
        return rows

    def serve(self, until_idle: bool = False) -> None:
        """Run until Ctrl-C (or until idle). Stops cleanly either way."""
        try:
            while True:
                self.changed.wait(0.5)
                self.changed.clear()
                if until_idle and self.idle():
                    break
        except KeyboardInterrupt:
            self.interrupted = True
            self.out("stopping: running steps are terminated, their runs end ABORTED")
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Terminate running steps, record their runs, drain events, release the workspace."""
        self.stopping.set()
        for proc in list(self.procs.values()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in list(self.procs.values()):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        if hasattr(self, "pool"):
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.runs_done.set()
        for ev in (self.wake_engine, self.wake_notify, self.wake_sched):
            ev.set()
        for t in self.threads:
            t.join(timeout=15)
        if self._sock is not None:
            self._sock.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.ws.socket_path)
        if self._lock_file is not None:
            self._lock_file.close()


def _tail(path: Path, lines: int = 3, offset: int = 0) -> str:
    """The last ``lines`` lines of a log, from byte ``offset`` (an attempt's own output)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(t.strip() for t in text[-lines:])[-400:]


def next_fire(pipeline: Pipeline, after: datetime, anchor: datetime) -> datetime | None:
    """When the runtime next starts a scheduled pipeline: the first instant strictly after
    ``after`` that its schedule (the same parsed expression AWS gets) matches, in its time
    zone; a rate counts from ``anchor`` (its last firing, or when the runtime started)."""
    schedule = pipeline.trigger.schedule
    if schedule is None:
        return None
    parsed = schedule.parsed
    if isinstance(parsed, Rate):
        return parsed.next_after(after, anchor)
    return parsed.next_after(after, ZoneInfo(pipeline.trigger.timezone))


def missed_firings(pipeline: Pipeline, last: datetime, until: datetime,
                   keep: int) -> list[datetime]:
    """The latest ``keep`` firings of ``pipeline``'s schedule strictly after ``last`` and
    at or before ``until``, oldest first. Scans back from ``until`` over a window that
    doubles from an hour, so a long outage costs about ``2 × keep`` firings to compute,
    not one per firing missed."""
    span = timedelta(hours=1)
    while True:
        start = max(last, until - span)
        found: list[datetime] = []
        t = start
        while (nxt := next_fire(pipeline, t, last)) is not None and nxt <= until:
            found.append(nxt)
            t = nxt
        if len(found) >= keep or start == last:
            return found[-keep:]
        span *= 2


def logical_date_of_firing(pipeline: Pipeline, when: datetime) -> str:
    """The logical date (or hour) of a scheduled run: the firing instant in the pipeline's
    time zone."""
    local = when.astimezone(ZoneInfo(pipeline.trigger.timezone))
    return local.strftime("%Y-%m-%d") if pipeline.trigger.window == "daily" \
        else local.strftime("%Y-%m-%dT%H")

