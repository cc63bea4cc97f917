"""The run grid: logical dates x pipelines (Airflow's Grid, Dagster's run timeline).

Rows are pipelines grouped by account; columns are logical dates; a cell is the latest
run of that pipeline for that date (its status, run id and ARN, and how many runs the
date had). One reader per source builds the cells: the local runtime's ``lr_runs`` in
one SQL query over the range (:func:`dpc_core.local.grid.local_cells`), the central run
log through one Query per pipeline (:func:`central_cells`). :func:`build` then lays the
rows out and applies the filters (account, owner, status), the same for both; the CLI
(``dpc local grid``) and the UI (``/api/grid``) render what it returns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dpc_core.errors import DpcError
from dpc_core.health import owner_of
from dpc_core.lineage import day_of
from dpc_core.store import PipelineSpec, RunRecord

#: At most this many dates in one grid (a quarter).
MAX_DAYS = 92
#: Parallel Queries of the central run log (one per pipeline).
READERS = 8

#: A cell's symbol by run status; a date without a run is "·".
SYMBOLS: dict[str, str] = {
    "SUCCEEDED": "✓", "FAILED": "✗", "TIMED_OUT": "⊗", "ABORTED": "⊘",
    "RUNNING": "…", "PENDING": "○",
}
NO_RUN = "·"
PAUSED = "⏸"
#: ANSI colours of the symbols (when stdout is a terminal and NO_COLOR is unset).
COLOURS: dict[str, str] = {
    "SUCCEEDED": "32", "FAILED": "31", "TIMED_OUT": "31", "ABORTED": "35",
    "RUNNING": "36", "PENDING": "33",
}
STATUSES = tuple(SYMBOLS)


class BadGridRange(DpcError):
    """``--from``/``--to``/``--days`` that do not make a range of dates."""


def _day(value: str, what: str) -> date:
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise BadGridRange(f"{what} {value!r} is not a date; write YYYY-MM-DD") from None


def date_range(first: str | None, last: str | None, days: int,
               today: date | None = None) -> list[str]:
    """The grid's dates: ``first``..``last`` when both are given; else ``days`` dates ending
    at ``last`` (default today, UTC) or starting at ``first``. At most :data:`MAX_DAYS`."""
    if not 1 <= days <= MAX_DAYS:
        raise BadGridRange(f"--days {days}: between 1 and {MAX_DAYS}")
    today = today or datetime.now(UTC).date()
    if first is not None and last is not None:
        d0, d1 = _day(first, "--from"), _day(last, "--to")
    elif first is not None:
        d0 = _day(first, "--from")
        d1 = d0 + timedelta(days=days - 1)
    else:
        d1 = _day(last, "--to") if last is not None else today
        d0 = d1 - timedelta(days=days - 1)
    if d1 < d0:
        raise BadGridRange(f"--to {d1} is before --from {d0}")
    count = (d1 - d0).days + 1
    if count > MAX_DAYS:
        raise BadGridRange(f"{count} dates from {d0} to {d1}: at most {MAX_DAYS} in one grid")
    return [(d0 + timedelta(days=i)).isoformat() for i in range(count)]


@dataclass(frozen=True)
class Cell:
    """The latest run of a pipeline for one logical date."""

    status: str
    run_id: str
    arn: str
    runs: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {"status": self.status, "symbol": SYMBOLS.get(self.status, "?"),
                "runId": self.run_id, "arn": self.arn, "runs": self.runs}


@dataclass(frozen=True)
class Row:
    """One pipeline's cells, by date."""

    account: str
    pipeline: str
    owner: str | None
    paused: bool
    cells: dict[str, Cell] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``account/name``."""
        return f"{self.account}/{self.pipeline}"


@dataclass(frozen=True)
class Grid:
    """Dates x pipelines; rows sorted by account, then pipeline."""

    dates: list[str]
    rows: list[Row]
    total: int  # pipelines before the filters

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (``--format json`` and ``/api/grid``): a cell per date with a run."""
        return {"from": self.dates[0], "to": self.dates[-1], "dates": self.dates,
                "legend": legend(), "pipelines": self.total, "shown": len(self.rows),
                "rows": [{"account": r.account, "pipeline": r.pipeline, "key": r.key,
                          "owner": r.owner, "paused": r.paused,
                          "cells": {d: c.to_dict() for d, c in sorted(r.cells.items())}}
                         for r in self.rows]}

    def text(self, colour: bool = False) -> str:
        """The grid for a terminal: a header of days, one line per pipeline under its
        account, then the legend."""
        if not self.rows:
            return (f"no pipelines to show for {self.dates[0]}..{self.dates[-1]} "
                    f"({self.total} registered; check the filters)")
        width = max(len(r.pipeline) for r in self.rows) + 2
        lines = [f"runs by logical date {self.dates[0]}..{self.dates[-1]} "
                 f"({len(self.rows)} of {self.total} pipeline(s))"]
        months = "".join(d[5:7] + " " if i == 0 or d[8:] == "01" else "   "
                         for i, d in enumerate(self.dates))
        lines.append(" " * (width + 2) + months.rstrip() + "  (month)")
        lines.append(" " * (width + 2) + "".join(d[8:] + " " for d in self.dates) + " (day)")
        account = None
        for r in self.rows:
            if r.account != account:
                account = r.account
                lines.append(f"{account}")
            cells = "".join(" " + _symbol(r.cells.get(d), colour) + " " for d in self.dates)
            name = (PAUSED + " " if r.paused else "") + r.pipeline
            lines.append(f"  {name:<{width}}{cells}".rstrip() + (f"  {r.owner}" if r.owner else ""))
        lines.append("legend: " + "  ".join(f"{_symbol_of(s, colour)} {s}" for s in STATUSES)
                     + f"  {NO_RUN} no run  {PAUSED} paused")
        return "\n".join(lines)


def _symbol_of(status: str, colour: bool) -> str:
    sym = SYMBOLS.get(status, "?")
    if colour and status in COLOURS:
        return f"\x1b[{COLOURS[status]}m{sym}\x1b[0m"
    return sym


def _symbol(cell: Cell | None, colour: bool) -> str:
    return NO_RUN if cell is None else _symbol_of(cell.status, colour)


def legend() -> dict[str, str]:
    """Symbol by status (and for no run, paused)."""
    return {**SYMBOLS, "NONE": NO_RUN, "PAUSED": PAUSED}


def build(dates: list[str], specs: Iterable[PipelineSpec],
          cells: Mapping[str, dict[str, Cell]], *, paused: Iterable[str] = (),
          account: str | None = None, owner: str | None = None,
          status: str | None = None) -> Grid:
    """Lay out the rows (every registered pipeline, and any with runs in the range that
    is no longer registered) and keep those that pass the filters: ``account`` and
    ``owner`` exactly, ``status``: a row with at least one cell of that status."""
    paused_keys = set(paused)
    owners: dict[str, str | None] = {s.key: owner_of(s) for s in specs}
    for key in cells:
        owners.setdefault(key, None)
    rows: list[Row] = []
    for key in sorted(owners, key=lambda k: tuple(k.split("/", 1))):
        acc, name = key.split("/", 1)
        row = Row(acc, name, owners[key], key in paused_keys, dict(cells.get(key, {})))
        if account is not None and acc != account:
            continue
        if owner is not None and (row.owner or "").lower() != owner.lower():
            continue
        if status is not None and not any(c.status == status for c in row.cells.values()):
            continue
        rows.append(row)
    return Grid(dates, rows, len(owners))


def day_bounds_ms(dates: list[str], slack_days: int = 1) -> int:
    """Epoch ms of the first date's midnight (UTC) less ``slack_days``: a run of a date
    starts no earlier than that (a run with a logical date ahead of its start is the
    exception this slack covers)."""
    d0 = date.fromisoformat(dates[0]) - timedelta(days=slack_days)
    return int(datetime(d0.year, d0.month, d0.day, tzinfo=UTC).timestamp() * 1000)


def cells_of_runs(dates: list[str], runs: Iterable[RunRecord]) -> dict[str, Cell]:
    """The cells of one pipeline from its run records (the latest started wins)."""
    wanted = set(dates)
    out: dict[str, Cell] = {}
    counts: dict[str, int] = {}
    for r in sorted(runs, key=lambda r: (r.start_ms, r.arn)):
        day = day_of(r)  # its logical date, else the UTC day it started (as lineage)
        if day not in wanted:
            continue
        counts[day] = counts.get(day, 0) + 1
        out[day] = Cell(r.status, r.arn.rsplit(":", 1)[-1], r.arn, counts[day])
    return out


def central_cells(store: Any, dates: list[str],
                  specs: list[PipelineSpec]) -> dict[str, dict[str, Cell]]:
    """The cells of every pipeline from the central run log (DynamoDB): one Query per
    pipeline on its ``by_pipeline`` index, from the range's first day on, :data:`READERS`
    at once."""
    since = day_bounds_ms(dates)
    keys = [s.key for s in specs]

    def read(key: str) -> list[RunRecord]:
        runs: list[RunRecord] = store.runs_of(key, since)
        return runs

    with ThreadPoolExecutor(READERS) as pool:
        found = dict(zip(keys, pool.map(read, keys), strict=True))
    return {k: c for k, runs in found.items() if (c := cells_of_runs(dates, runs))}
