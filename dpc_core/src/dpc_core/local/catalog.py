"""The pipeline.yaml files of a workspace, read incrementally.

Parsing and validating a pipeline.yaml costs ~0.6 ms (libyaml with positions, then pydantic
and the plugins' models): 6 s for 10,000 files. A workspace remembers, in its state
database (``lr_sources``), each file's size and modification time and the pipeline it
defined (pickled), so ``dpc local up`` and the commands that only need pipeline names
re-read only the files that changed. A change of dpc or of a plugin (version or source
file) invalidates every remembered pipeline. Remembered pipelines are unpickled only when
used (a run, a notification, a schedule): unpickling 10,000 takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from dpc_core import __version__
from dpc_core.errors import Problem, ValidationFailed
from dpc_core.loader import PIPELINE_FILE, load_file
from dpc_core.model import Pipeline
from dpc_core.plugins import Registry
from dpc_core.store import pkey

Stat = tuple[int, int]  # (mtime_ns, size)


class Entry:
    """One pipeline.yaml and the pipeline it defines. A remembered pipeline is unpickled
    when first used (10,000 of them take seconds: a start-up needs none of them)."""

    __slots__ = ("_blob", "_meta", "_pipeline", "key", "path", "read_blob", "stat")

    def __init__(self, path: str, stat: Stat, key: str, pipeline: Pipeline | None = None,
                 blob: bytes | None = None, meta: str | None = None,
                 read_blob: Callable[[str], bytes] | None = None) -> None:
        self.path, self.stat, self.key = path, stat, key
        self._pipeline, self._blob, self._meta = pipeline, blob, meta
        self.read_blob = read_blob  # fetches a remembered pipeline's pickle when needed

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
        """The pickle is stored: drop it when the pipeline object is kept anyway (10,000
        pickles are tens of MiB)."""
        if self._pipeline is not None:
            self._blob = None


def meta_of(pipeline: Pipeline) -> dict[str, Any]:
    """What the runtime needs of every pipeline without unpickling it."""
    return {"scheduled": pipeline.trigger.schedule is not None,
            "channels": sorted({t.channel for t in pipeline.notifications.targets})}


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


def load(files: dict[str, Stat], cache: Remembered, fp: str, registry: Registry,
         read_blob: Callable[[str], bytes] | None = None,
         ) -> tuple[dict[str, Entry], list[Entry], list[Problem]]:
    """Entries for ``files``: remembered ones as they were, the others read. Returns
    (entries by path, the entries that were read, problems of the files that are invalid).
    """
    entries: dict[str, Entry] = {}
    fresh: list[Entry] = []
    problems: list[Problem] = []
    for path in sorted(files):
        stat = files[path]
        hit = cache.get(path)
        if hit is not None and hit[0] == stat and hit[2] == fp:
            entries[path] = Entry(path, stat, hit[1], blob=hit[3] or None, meta=hit[4],
                                  read_blob=read_blob)
            continue
        try:
            entry = read_file(path, stat, registry)
        except ValidationFailed as exc:
            problems.extend(exc.problems)
            continue
        entries[path] = entry
        fresh.append(entry)
    return entries, fresh, problems


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
