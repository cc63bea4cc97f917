"""The interface between the trigger engine and where its state lives.

Adapters: :mod:`dpc_core.stores.sqlite` (local runtime, simulate) and
:mod:`dpc_core.stores.dynamodb` (central account). Both pass the same contract
tests (``tests/test_store_contract.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any, Protocol

#: Order of statuses inside one redrive of a run: RUNNING is passed by any terminal one.
STATUS_RANK = {"RUNNING": 0, "SUCCEEDED": 1, "FAILED": 1, "TIMED_OUT": 1, "ABORTED": 1}


def pkey(account: str, name: str) -> str:
    """The string key of a pipeline, ``account/name``."""
    return f"{account}/{name}"


def split_pkey(key: str) -> tuple[str, str]:
    """``account/name`` back into its parts."""
    account, _, name = key.partition("/")
    return account, name


@dataclass(frozen=True)
class PipelineSpec:
    """What the engine needs to know of a registered pipeline."""

    account: str
    name: str
    condition: dict[str, Any] | None = None
    window: str = "daily"
    timezone: str = "UTC"
    rerun: str = "never"
    parents: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``account/name``."""
        return pkey(self.account, self.name)

    def to_json(self) -> str:
        """Canonical JSON (stable across processes)."""
        return json.dumps(
            {"account": self.account, "name": self.name, "condition": self.condition,
             "window": self.window, "timezone": self.timezone, "rerun": self.rerun,
             "parents": list(self.parents), "info": self.info},
            sort_keys=True, separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> PipelineSpec:
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        return cls(account=d["account"], name=d["name"], condition=d.get("condition"),
                   window=d.get("window", "daily"), timezone=d.get("timezone", "UTC"),
                   rerun=d.get("rerun", "never"), parents=tuple(d.get("parents", ())),
                   info=d.get("info") or {})


@lru_cache(maxsize=100_000)
def spec_from_json(text: str) -> PipelineSpec:
    """:meth:`PipelineSpec.from_json`, memoized: stores hand the engine the same object for
    the same stored text, which lets it reuse the condition it compiled for it."""
    return PipelineSpec.from_json(text)


@dataclass(frozen=True)
class RunRecord:
    """The current state of one run (one execution ARN)."""

    arn: str
    pipeline: str  # account/name
    status: str
    redrive_count: int
    start_ms: int
    logical: str | None = None
    stop_ms: int | None = None
    error: str | None = None

    def newer_than(self, status: str, redrive_count: int) -> bool:
        """True when this record is past ``(status, redrive_count)`` of the same run."""
        return (self.redrive_count, STATUS_RANK[self.status]) > (
            redrive_count, STATUS_RANK[status])


class Recorded(StrEnum):
    """What recording a status did."""

    NEW = "new"
    DUPLICATE = "duplicate"
    STALE = "stale"


@dataclass(frozen=True)
class Slot:
    """The latest run of one parent in one child's window."""

    arn: str
    start_ms: int
    status: str
    redrive_count: int

    def superseded_by(self, other: Slot) -> bool:
        """True when ``other`` should replace this slot (a later run, or this run moved on)."""
        if other.arn == self.arn:
            return (other.redrive_count, STATUS_RANK[other.status]) > (
                self.redrive_count, STATUS_RANK[self.status])
        return (other.start_ms, other.arn) > (self.start_ms, self.arn)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for storage."""
        return {"arn": self.arn, "start": self.start_ms, "status": self.status,
                "rc": self.redrive_count}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Slot:
        """Inverse of :meth:`to_dict`."""
        return cls(d["arn"], int(d["start"]), d["status"], int(d["rc"]))


@dataclass(frozen=True)
class WindowState:
    """One child's view of one window: latest parent runs, and its trigger generation."""

    slots: dict[str, Slot] = field(default_factory=dict)
    version: int = 0
    generation: int = 0
    last_runs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Claim:
    """A trigger decision that was claimed in the store."""

    child: str
    window: str
    generation: int
    execution_name: str
    parents: tuple[dict[str, str], ...]
    #: Decided for a run started by ``dpc rerun --downstream``: the trigger carries the flag
    #: on (kept so that a re-sent trigger carries it too).
    downstream: bool = False


class TriggerStore(Protocol):
    """Where the engine keeps the registry, the run log and the per-window claims.

    Every write method is atomic on its own; ``claim`` is a compare-and-set on the
    window's (version, generation), so two workers never claim the same trigger.
    """

    def transaction(self) -> AbstractContextManager[None]:
        """Group the calls of one event (SQLite: one transaction; DynamoDB: no-op)."""

    def put_pipeline(self, spec: PipelineSpec) -> None:
        """Register or replace a pipeline and its parent → child edges."""

    def delete_pipeline(self, account: str, name: str) -> bool:
        """Unregister a pipeline; False when it was not registered."""

    def get_pipeline(self, key: str) -> PipelineSpec | None:
        """The registered spec of ``account/name``."""

    def pipelines(self) -> Iterator[PipelineSpec]:
        """Every registered pipeline (lineage, status; not on the event path)."""

    def lookup(self, key: str) -> tuple[PipelineSpec, list[PipelineSpec]] | None:
        """A registered pipeline and the children that reference it, in one read."""

    def record_run(self, run: RunRecord) -> Recorded:
        """Record a status of a run: new, duplicate, or stale (the run moved past it)."""

    def record(self, run: RunRecord) -> tuple[Recorded, RunRecord | None]:
        """:meth:`record_run`, and the run as the log held it before (None: first seen),
        which places the run in its one window (docs/triggers.md "Terms": one logical date).

        The first start and the first logical date recorded for a run stick: later
        statuses never change them.
        """

    def get_run(self, arn: str) -> RunRecord | None:
        """The recorded state of one run."""

    def runs_of(self, key: str, since_ms: int = 0) -> list[RunRecord]:
        """Runs of one pipeline started at or after ``since_ms``, oldest first."""

    def update_slot(self, child: str, window: str, parent: str, slot: Slot) -> WindowState:
        """Put ``slot`` for ``parent`` if it supersedes the stored one; return the state."""

    def window_state(self, child: str, window: str) -> WindowState:
        """The stored state of one child window (empty when none)."""

    def replace_slot(self, child: str, window: str, parent: str, arn: str,
                     slot: Slot | None) -> WindowState:
        """Replace ``parent``'s slot by ``slot`` (None: remove it) iff it holds run ``arn``,
        bumping the version (a run that moved to another window leaves this one)."""

    def claim(self, child: str, window: str, seen: WindowState, claim: Claim) -> bool:
        """Store ``claim`` iff the window is still exactly ``seen``; False if it moved."""

    def claims(self, child: str | None = None) -> list[Claim]:
        """Claims made, oldest first (all, or of one child)."""
