"""The pipeline.yaml files of a workspace, read incrementally.

Parsing and validating a pipeline.yaml costs ~0.6 ms (libyaml with positions, then pydantic
and the plugins' models): 6 s for 10,000 files. A workspace remembers, in its state
database (``lr_sources``), each file's size and modification time and the pipeline it
defined (pickled), so ``dpc local up`` and the commands that only need pipeline names
re-read only the files that changed. A change of dpc or of a plugin (version or source
file) invalidates every remembered pipeline. Remembered pipelines are unpickled only when
used (a run, a notification, a schedule): unpickling 10,000 takes seconds. Many files to
read (a first start) are read by forked worker processes, one per idle CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from dpc_core import __version__
from dpc_core.engine import spec_of
from dpc_core.errors import Problem, ValidationFailed
from dpc_core.loader import PIPELINE_FILE, check_references, load_file
from dpc_core.model import Pipeline
from dpc_core.plugins import Registry
from dpc_core.store import PipelineSpec, pkey

Stat = tuple[int, int]  # (mtime_ns, size)


class Entry:
    """One pipeline.yaml and the pipeline it defines. A remembered pipeline is unpickled
    when first used (10,000 of them take seconds: a start-up needs none of them)."""

    __slots__ = ("_blob", "_meta", "_pipeline", "_spec", "key", "path", "read_blob", "stat")

    def __init__(self, path: str, stat: Stat, key: str, pipeline: Pipeline | None = None,
                 blob: bytes | None = None, meta: str | None = None,
                 read_blob: Callable[[str], bytes] | None = None,
                 spec: PipelineSpec | None = None) -> None:
        self.path, self.stat, self.key = path, stat, key
        self._pipeline, self._blob, self._meta = pipeline, blob, meta
        self.read_blob = read_blob  # fetches a remembered pipeline's pickle when needed
        self._spec = spec

    @property
    def spec(self) -> PipelineSpec:
        """What the engine registers of the pipeline."""
        if self._spec is None:
            self._spec = spec_of(self.pipeline)
        return self._spec

    def parents(self) -> list[str]:
        """The keys of the parents the trigger condition references (from the meta when
        it has them: nothing unpickled)."""
        known = self.meta.get("parents")
        if known is None:  # remembered by an older dpc
            return list(self.spec.parents)
        return list(known)

    @property
    def meta(self) -> dict[str, Any]:
        """What the runtime needs of every pipeline without unpickling it."""
        if self._meta is None:
            self._meta = json.dumps(meta_of(self.pipeline))
        out: dict[str, Any] = json.loads(self._meta)
        return out

    @property
    def pipeline(self) -> Pipeline:
        """The validated pipeline (unpickled on first use)."""
        if self._pipeline is None:
            if self._blob is None:
                assert self.read_blob is not None
                self._blob = self.read_blob(self.path)
            self._pipeline = pickle.loads(self._blob)
            self._blob = None  # the object is kept; its pickle is not needed any more
        return self._pipeline

    def blob(self) -> bytes:
        """The pickled pipeline."""
        if self._blob is None:
            self._blob = pickle.dumps(self._pipeline, protocol=pickle.HIGHEST_PROTOCOL)
        return self._blob

    def written(self) -> None:
        """The pickle is stored: drop it when the pipeline object is kept anyway, or can be
        read back (10,000 pickles are tens of MiB)."""
        if self._pipeline is not None or self.read_blob is not None:
            self._blob = None


def meta_of(pipeline: Pipeline) -> dict[str, Any]:
    """What the runtime needs of every pipeline without unpickling it."""
    return {"scheduled": pipeline.trigger.schedule is not None,
            "channels": sorted({t.channel for t in pipeline.notifications.targets}),
            "parents": [pkey(a, n) for a, n in pipeline.parents()]}


class Pipelines(Mapping[str, Pipeline]):
    """Pipelines by key over catalog entries; each is unpickled when first looked up."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.entries = {e.key: e for e in entries}

    def __getitem__(self, key: str) -> Pipeline:
        return self.entries[key].pipeline

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def scan(root: Path) -> dict[str, Stat]:
    """Every pipeline.yaml below ``root`` (hidden directories such as ``.dpc`` skipped),
    with its (mtime_ns, size). One ``scandir`` walk: no per-file ``stat`` call."""
    found: dict[str, Stat] = {}
    stack = [str(root)]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue  # removed while walking, or unreadable: not a pipeline file
        with it:
            for e in it:
                if e.name.startswith("."):
                    continue
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.name == PIPELINE_FILE:
                        st = e.stat()
                        found[e.path] = (st.st_mtime_ns, st.st_size)
                except OSError:
                    continue
    return found


def fingerprint(registry: Registry) -> str:
    """What remembered pipelines depend on: dpc's and each plugin's version and the source
    files of the models that validated them (edited in a development install)."""
    parts = [__version__, sys.version]
    parts += sorted(f"{p.dist}={p.version}" for p in registry.plugins)
    modules = {Pipeline.__module__, load_file.__module__}
    for table in (registry.steps, registry.computes):
        for t in table.values():
            modules.add(t.config.__module__)
    for name in sorted(modules):
        file = getattr(sys.modules.get(name), "__file__", None)
        if file:
            try:
                parts.append(f"{name}:{os.stat(file).st_mtime_ns}")
            except OSError:
                parts.append(name)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


Remembered = dict[str, tuple[Stat, str, str, bytes, str]]


def remembered(conn: sqlite3.Connection, blobs: bool = False) -> Remembered:
    """lr_catalog: path -> ((mtime_ns, size), key, fingerprint, pickled pipeline (empty
    unless ``blobs``), meta)."""
    blob = "blob" if blobs else "x''"
    return {r[0]: ((r[1], r[2]), r[3], r[4], r[5], r[6]) for r in conn.execute(
        f"SELECT path, mtime_ns, size, key, fingerprint, {blob}, meta FROM lr_catalog")}


def remember(conn: sqlite3.Connection, entries: list[Entry], gone: list[str],
             fp: str) -> None:
    """Write entries and forget removed paths (inside the caller's transaction)."""
    conn.executemany(
        "INSERT INTO lr_catalog (path, mtime_ns, size, key, fingerprint, blob, meta) VALUES "
        "(?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET mtime_ns = excluded.mtime_ns, "
        "size = excluded.size, key = excluded.key, fingerprint = excluded.fingerprint, "
        "blob = excluded.blob, meta = excluded.meta",
        [(e.path, e.stat[0], e.stat[1], e.key, fp, e.blob(), json.dumps(e.meta))
         for e in entries])
    conn.executemany("DELETE FROM lr_catalog WHERE path = ?", [(p,) for p in gone])
    for e in entries:
        e.written()


def blob_reader(conn: sqlite3.Connection, lock: Any) -> Callable[[str], bytes]:
    """Reads one remembered pipeline's pickle (under ``lock``, the connection's owner's)."""
    def read(path: str) -> bytes:
        with lock:
            row = conn.execute("SELECT blob FROM lr_catalog WHERE path = ?", (path,)).fetchone()
        if row is None:
            raise KeyError(f"{path} is no longer remembered")
        return bytes(row[0])
    return read


def read_file(path: str, stat: Stat, registry: Registry) -> Entry:
    """Parse and validate one file; it must name its account. Raises ValidationFailed."""
    lp = load_file(Path(path), registry)
    p = lp.pipeline
    if p.account is None:
        line, col = lp.positions.of(("name",))
        raise ValidationFailed([Problem(path, line, col, "account", "required here: give the "
                                        "pipeline's 12-digit AWS account (account: "
                                        "\"111111111111\")")])
    return Entry(path, stat, pkey(p.account, p.name), p)


#: Fewer files to read than this are read in the calling process (forking costs more);
#: the files sent to a worker at a time, at least.
PARALLEL_FROM, CHUNK_MIN = 400, 50


def parse_workers() -> int:
    """Processes to read many files with: the CPUs this process may use that nothing else
    keeps busy right now (at most 8), or 1 where forking is not safe (not Linux, or other
    threads already running). On busy CPUs, workers cost more than they save (2 workers:
    6.3 -> 3.4 s with 2 idle cores, 4.5 -> 6.5 s with both busy)."""
    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        return 1
    idle = len(os.sched_getaffinity(0)) - _busy_cpus()
    return max(1, min(8, int(idle + 0.5)))


def _busy_cpus(sample_s: float = 0.05) -> float:
    """How many CPUs are busy now: /proc/stat sampled over ``sample_s`` (the load average
    lags by a minute: right after other work it still counts it, e.g. the previous
    start-up); the 1-minute load average where /proc/stat cannot be read."""
    def times() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = times()
        time.sleep(sample_s)
        total1, idle1 = times()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0]
    total = total1 - total0
    if total <= 0:
        return os.getloadavg()[0]
    return (os.cpu_count() or 1) * (1 - (idle1 - idle0) / total)


def load(files: dict[str, Stat], cache: Remembered, fp: str, registry: Registry,
         read_blob: Callable[[str], bytes] | None = None,
         workers: int | Callable[[], int] = 1,
         ) -> tuple[dict[str, Entry], list[Entry], list[Problem]]:
    """Entries for ``files``: remembered ones as they were, the others read. Returns
    (entries by path, the entries that were read, problems of the files that are invalid).

    With ``workers`` > 1 and many files to read (a first start: 10,000 files take ~5 s
    of CPU), forked processes read them; each sends back what the start-up needs (key,
    spec, meta, the pickle), so the entries are as if remembered: nothing is unpickled
    here, and the same problems come back in the same order. ``workers`` may be a
    function (:func:`parse_workers`), then called only when there is much to read.
    """
    entries: dict[str, Entry] = {}
    fresh: list[Entry] = []
    problems: list[Problem] = []
    todo: list[str] = []
    for path in sorted(files):
        stat = files[path]
        hit = cache.get(path)
        if hit is not None and hit[0] == stat and hit[2] == fp:
            entries[path] = Entry(path, stat, hit[1], blob=hit[3] or None, meta=hit[4],
                                  read_blob=read_blob)
        else:
            todo.append(path)
    if len(todo) >= PARALLEL_FROM and callable(workers):
        workers = workers()  # asked only when there is much to read (a first start)
    if not callable(workers) and workers > 1 and len(todo) >= PARALLEL_FROM:
        read = _read_in_processes(todo, files, registry, workers, read_blob)
    else:
        read = (_read_one(path, files[path], registry) for path in todo)
    for entry, file_problems in read:
        if entry is None:
            problems.extend(file_problems)
            continue
        entries[entry.path] = entry
        fresh.append(entry)
    return {p: entries[p] for p in sorted(entries)}, fresh, problems


def _read_one(path: str, stat: Stat, registry: Registry) -> tuple[Entry | None, list[Problem]]:
    try:
        return read_file(path, stat, registry), []
    except ValidationFailed as exc:
        return None, exc.problems


#: What a worker reads with (set before forking; the children inherit it).
_WORK: tuple[dict[str, Stat], Registry] | None = None

Sent = tuple[str, str, bytes, str, PipelineSpec] | tuple[str, list[Problem]]


def _read_chunk(paths: list[str]) -> list[Sent]:
    """In a worker: each file read, and what the parent needs of it."""
    assert _WORK is not None
    files, registry = _WORK
    out: list[Sent] = []
    for path in paths:
        entry, problems = _read_one(path, files[path], registry)
        if entry is None:
            out.append((path, problems))
        else:
            out.append((path, entry.key, entry.blob(), json.dumps(entry.meta), entry.spec))
    return out


def _read_in_processes(todo: list[str], files: dict[str, Stat], registry: Registry,
                       workers: int, read_blob: Callable[[str], bytes] | None,
                       ) -> Iterator[tuple[Entry | None, list[Problem]]]:
    """A worker that dies (killed, out of memory) stops none of it: what the workers did
    not send back is read here."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    global _WORK
    size = max(CHUNK_MIN, len(todo) // (workers * 8))  # a slow worker holds up less
    chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
    results: list[list[Sent]] = []
    _WORK = (files, registry)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as ex:
            for chunk in ex.map(_read_chunk, chunks):  # in order
                results.append(chunk)
    except BrokenProcessPool:
        results += [_read_chunk(chunk) for chunk in chunks[len(results):]]
    finally:
        _WORK = None
    for chunk in results:
        for sent in chunk:
            if len(sent) == 2:
                yield None, sent[1]
            else:
                path, key, blob, meta, spec = sent
                yield Entry(path, files[path], key, blob=blob, meta=meta, read_blob=read_blob,
                            spec=spec), []


def reference_problems(entries: dict[str, Entry]) -> list[Problem]:
    """`dpc validate`'s check over the workspace: a parent one typo away from a pipeline
    of the same account. Only the pipelines with a parent no file defines can have such a
    problem, so only those are unpickled (from the parents kept in each entry's meta)."""
    defined: dict[tuple[str | None, str], str] = {}
    for path, e in entries.items():
        account, name = e.key.split("/", 1)
        defined.setdefault((account, name), path)
    keys = {e.key for e in entries.values()}
    suspects = [e.pipeline for e in entries.values()
                if any(k not in keys for k in e.parents())]
    return check_references(suspects, defined=defined)


def duplicates(entries: dict[str, Entry]) -> list[Problem]:
    """A pipeline (account and name) defined by two files: a problem on the later file."""
    seen: dict[str, str] = {}
    problems: list[Problem] = []
    for path in sorted(entries):
        e = entries[path]
        if e.key in seen:
            account, name = e.key.split("/", 1)
            problems.append(Problem(path, 1, 1, "name", f"pipeline {name!r} in account "
                                    f"{account} is also defined in {seen[e.key]}"))
        else:
            seen[e.key] = path
    return problems
