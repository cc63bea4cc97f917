"""How fast the run grid reads at 700 pipelines x 30 dates (issue 24).

A state.db is made with the local runtime's schema: 700 pipelines over 100 accounts
registered, and 30 days of runs for each (one run a date, a second for one date in ten,
some FAILED), i.e. ~23,000 runs; then, timed:

- ``local_grid``: the one SQL query over ``lr_runs`` for the range and the rows laid out
  (what ``dpc local grid`` and ``/api/grid`` call), best of N;
- the JSON of the grid (``Grid.to_dict`` + ``json.dumps``) and the text of it;
- with ``--browser``: ``dpc ui`` over that state and headless Chromium opening its Grid
  view (``#grid?days=N``), from navigation start to the grid's rows in the page.

Prints figures only::

    .venv/bin/python bench/grid.py                 # 700 pipelines x 30 dates
    .venv/bin/python bench/grid.py --n 2000 --days 90 --repeat 5
    .venv/bin/python bench/grid.py --browser       # also the UI's Grid in Chromium
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from dpc_core.grid import date_range
from dpc_core.local import backfill, operator, state
from dpc_core.local.grid import local_grid
from dpc_core.store import PipelineSpec
from dpc_core.stores.sqlite import SqliteStore


def make_state(path: Path, n: int, m: int, days: list[str]) -> int:
    store = SqliteStore(path)
    state.init(store.conn)
    operator.init(store.conn)
    backfill.init(store.conn)
    specs = [PipelineSpec(f"{100000000000 + i % m}", f"p{i:04d}", info={"owner": f"team{i % 20}"})
             for i in range(n)]
    store.put_pipelines(specs)
    rng = random.Random(24)
    rows = []
    base = 1_790_000_000_000
    for s in specs:
        for j, day in enumerate(days):
            for k in range(2 if rng.random() < 0.1 else 1):
                status = "FAILED" if rng.random() < 0.05 else "SUCCEEDED"
                run_id = f"r-{day}-{k}"
                rows.append((state.execution_arn(s.account, s.name, run_id), run_id, s.key,
                             status, day, "schedule", base + j * 86_400_000 + k))
    with store.conn:
        store.conn.executemany(
            "INSERT INTO lr_runs (arn, run_id, pipeline, status, logical_date, reason, "
            "created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    store.close()
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=700, help="pipelines")
    ap.add_argument("--m", type=int, default=100, help="accounts")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--browser", action="store_true", help="also time the UI's Grid")
    args = ap.parse_args()
    last = date(2026, 11, 30)
    days = [(last - timedelta(days=args.days - 1 - i)).isoformat() for i in range(args.days)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ws" / ".dpc" / "state.db"
        path.parent.mkdir(parents=True)
        runs = make_state(path, args.n, args.m, days)
        dates = date_range(days[0], days[-1], args.days)
        read, dump, text = [], [], []
        for _ in range(args.repeat):
            store = SqliteStore(path)
            t0 = time.perf_counter()
            grid = local_grid(store, dates)
            t1 = time.perf_counter()
            body = json.dumps(grid.to_dict())
            t2 = time.perf_counter()
            grid.text()
            t3 = time.perf_counter()
            store.close()
            read.append(t1 - t0)
            dump.append(t2 - t1)
            text.append(t3 - t2)
        print(f"{args.n} pipelines x {args.days} dates ({runs} runs): grid read "
              f"{min(read) * 1000:.0f} ms (best of {args.repeat}), JSON {min(dump) * 1000:.0f} "
              f"ms ({len(body) // 1024} KiB), text {min(text) * 1000:.0f} ms")
        if args.browser:
            browser_figures(path.parent.parent, days[-1], args.days, args.repeat)


def browser_figures(ws: Path, last: str, days: int, repeat: int) -> None:
    """``dpc ui`` over ``ws`` and Chromium opening the Grid view, best of ``repeat``."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from helpers.browser import Browser, wait_for
    from helpers.ui_server import UiServer, page

    server = UiServer(ws)
    browser = Browser(Path(tempfile.mkdtemp()))
    try:
        shown = []
        for _ in range(repeat):
            browser.load(page(server, last, f"#grid?days={days}"), width=1400, height=900)
            wait_for(browser, "document.body.dataset.grid", 60)
            shown.append(browser.evaluate("performance.now()"))
        cells = browser.evaluate("document.querySelectorAll('td.gcell').length")
        print(f"UI Grid in Chromium: {cells} cells shown {min(shown):.0f} ms after navigation "
              f"start (best of {repeat})")
    finally:
        browser.close()
        server.close()


if __name__ == "__main__":
    main()
