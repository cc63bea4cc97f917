"""How fast ``dpc ui`` paints a large organisation and shows a status change, in Chromium.

An organisation of N pipelines over M accounts (bench/orggen.py, default 700 over 100) is
written as a workspace and registered by the local runtime; a day of its status events is
injected and processed so pipelines have colours. ``dpc ui`` serves it; headless Chromium
(/usr/bin/chromium, the DevTools harness of tests/test_lineage_html.py) loads the page:

- first paint: navigation start to the frame after the landscape is drawn (the page's
  ``paintedAt``: style, layout and paint of the SVG done), with the layout (dagre, per
  account lane) and the drawing separately. Cold: nothing in the browser's storage, every
  lane laid out (the figure that matters); warm: a reload, lane layouts from localStorage;
- live: ``dpc local start`` of a root pipeline for a date with no runs, from the moment
  the run is committed to the moment the open page has recoloured that pipeline.

Prints figures only::

    .venv/bin/python bench/ui_paint.py            # 700 pipelines over 100 accounts
    .venv/bin/python bench/ui_paint.py --n 2000 --m 200 --repeat 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from local_helpers import dpc  # noqa: E402
from orggen import generate_events, generate_org, write_events, write_org  # noqa: E402
from test_lineage_html import Browser  # noqa: E402
from test_ui import UiServer  # noqa: E402

from dpc_core.cli.local import queue_run  # noqa: E402

DAY = "2026-11-26"


def wait_painted(browser: Browser) -> Any:
    """The page's timings once the frame after the drawing is out."""
    deadline = time.monotonic() + 60
    while True:
        timings = browser.evaluate("window.dpcTimings")
        if timings and "paintedAt" in timings:
            return timings
        if time.monotonic() > deadline:
            raise TimeoutError("the landscape was not painted")
        time.sleep(0.01)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=700)
    ap.add_argument("--m", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ui-paint-"))
    try:
        docs = generate_org(args.n, args.m)
        ws = write_org(docs, tmp / "ws")
        t = time.perf_counter()
        dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, timeout=1200)
        events = write_events(generate_events(docs, 1), tmp / "events.jsonl")
        dpc("local", "inject", "--events", events, "-w", ws, timeout=1200)
        dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, timeout=1200,
            check=False)  # failed runs in the stream make --until-idle exit 1
        print(f"workspace of {args.n} pipelines over {args.m} accounts ready in "
              f"{time.perf_counter() - t:.1f}s")
        server = UiServer(ws)
        profile = tmp / "chromium"
        profile.mkdir()
        browser = Browser(profile)
        try:
            for kind in ("cold", "warm"):
                paints, layouts, draws = [], [], []
                if kind == "warm":  # one load to fill the cache
                    browser.load(f"{server.url}?date={DAY}&fill=1", width=1400, height=900)
                    wait_painted(browser)
                for i in range(args.repeat):
                    load = browser.load(f"{server.url}?date={DAY}&{kind}={i}", width=1400,
                                        height=900)
                    assert load.errors == [], load.errors
                    timings = wait_painted(browser)
                    paints.append(timings["paintedAt"])
                    layouts.append(timings["layoutMs"])
                    draws.append(timings["renderMs"])
                    if kind == "cold":
                        browser.evaluate("localStorage.clear()")
                print(f"first paint {kind} (navigation start → landscape painted), "
                      f"{args.repeat} loads: median {statistics.median(paints):.0f} ms, max "
                      f"{max(paints):.0f} ms (layout median {statistics.median(layouts):.0f} ms, "
                      f"drawing {statistics.median(draws):.0f} ms)")
            lags = []
            roots = [d for d in docs if "schedule" in d["trigger"]]
            for i, root in enumerate(roots[:args.repeat]):
                day = f"2027-01-{i + 1:02d}"
                browser.load(f"{server.url}?date={day}&live={i}", width=1400, height=900)
                while browser.evaluate("document.body.dataset.live") != "1":
                    time.sleep(0.02)
                browser.evaluate("window.dpcLastChange = 0")
                before = time.time() * 1000
                queue_run(ws, root["name"], day, "manual")  # what `dpc local start` does
                while not browser.evaluate("window.dpcLastChange"):
                    time.sleep(0.01)
                # From before the write (an upper bound: includes the write itself).
                lags.append(browser.evaluate("window.dpcLastChange") - before)
            print(f"live: queued run → page recoloured, {len(lags)} changes: median "
                  f"{statistics.median(lags):.0f} ms, max {max(lags):.0f} ms")
        finally:
            browser.close()
            server.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
