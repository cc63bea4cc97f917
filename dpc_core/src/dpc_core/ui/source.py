"""What the web server needs from a data source: the interface that the local workspace
(:class:`dpc_core.ui.data.LocalSource`) and the central account
(:class:`dpc_core.ui.central_data.CentralSource`) both implement, so one server and one
page serve both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from dpc_core.errors import DpcError

if TYPE_CHECKING:
    from dpc_core.lineage import LineageGraph

#: Events a watch reports: ``change`` (statuses or runs changed: re-read them) and
#: ``graph`` (pipelines were added, removed or edited: re-read the graph).
CHANGE, GRAPH = "change", "graph"


class ActionDenied(DpcError):
    """An action the caller has no right to take (HTTP 403 with this message)."""


class Watch(Protocol):
    """One open page's view of changes."""

    #: Seconds between two polls.
    interval: float

    def poll(self) -> list[str]:
        """The events since the last poll (``CHANGE``/``GRAPH``), none when unchanged."""

    def close(self) -> None:
        """Release what the watch holds."""


class DataSource(Protocol):
    """Plain JSON-able reads of a registry and run log, and the actions on them.

    ``blocking``: the calls do network I/O (the server runs them on a worker thread).
    Actions raise :class:`DpcError` for a wrong request and :class:`ActionDenied` when
    the caller's rights do not allow it.
    """

    blocking: bool

    def graph(self, date: str) -> LineageGraph: ...

    def statuses(self, date: str) -> dict[str, Any]: ...

    def health(self, date: str, now_ms: int) -> dict[str, Any]: ...

    def pipeline(self, key: str, date: str) -> dict[str, Any] | None: ...

    def log_chunk(self, arn: str, idx: int, offset: int) -> dict[str, Any]: ...

    def watch(self) -> Watch: ...

    def grid(self, dates: list[str], filters: dict[str, str | None]) -> dict[str, Any]:
        """The run grid (:class:`dpc_core.grid.Grid` as JSON) for ``dates``, filtered by
        ``account``, ``owner``, ``status``."""

    def action(self, action: str, pipeline: str, date: str) -> str:
        """Run, rerun or rerun-downstream ``pipeline`` for ``date``: the line to show."""

    def backfill(self, pipeline: str, first: str, last: str,
                 downstream: bool) -> dict[str, Any]:
        """Start (or resume) a backfill of ``pipeline`` from ``first`` to ``last``:
        ``{"message": str, "backfill": {...}}``."""
