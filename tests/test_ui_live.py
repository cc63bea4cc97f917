"""`dpc ui` over a workspace whose runtime (`dpc local up`) runs: the backfill action and
pipelines added while the page is open. Real processes (runtime, server), real HTTP, and
real Chromium for the page (harness of tests/test_lineage_html.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.browser import Browser, wait_for
from helpers.ui_server import Stream, UiServer, page
from local_helpers import DPC, SHELL_CASE_STUDY, copy_workspace

pytestmark = pytest.mark.timeout(300)

LISTINGS = "111111111111/listings"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The shell case study with `dpc local up` running (no schedules)."""
    ws = copy_workspace(SHELL_CASE_STUDY, tmp_path_factory.mktemp("live") / "ws")
    proc = subprocess.Popen([DPC, "local", "up", "--no-schedule", "-w", str(ws)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    end = time.monotonic() + 60
    while not (ws / ".dpc" / "state.db").exists():
        assert time.monotonic() < end and proc.poll() is None, "the runtime never started"
        time.sleep(0.1)
    yield ws
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def server(workspace: Path) -> Iterator[UiServer]:
    s = UiServer(workspace)
    yield s
    s.close()


def get(server: UiServer, path: str) -> Any:
    with urllib.request.urlopen(server.url + path, timeout=30) as resp:
        return json.loads(resp.read())


def post(server: UiServer, body: dict[str, Any],
         origin: str | None = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        server.url + "api/action", method="POST", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json",
                 **server.auth(), **({"Origin": origin} if origin else {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def until(fn: Any, deadline_s: float = 60) -> Any:
    end = time.monotonic() + deadline_s
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < end, "never true"
        time.sleep(0.2)


def test_backfill_through_the_api_runs_each_date_and_reports_progress(
        server: UiServer) -> None:
    code, body = post(server, {"action": "backfill", "pipeline": "listings",
                               "from": "2026-11-10", "to": "2026-11-12"})
    assert code == 200, body
    assert body["message"].startswith("backfill ") and "2026-11-10..2026-11-12" in body["message"]
    assert [d["date"] for d in body["backfill"]["dates"]] == ["2026-11-10", "2026-11-11",
                                                             "2026-11-12"]

    def done() -> Any:
        found = get(server, f"api/pipeline?key={LISTINGS}&date=2026-11-12")["backfills"]
        return found if found and found[0]["counts"] == {"SUCCEEDED": 3} else None

    progress = until(done)
    assert progress[0]["id"] == body["backfill"]["id"]
    assert all(d["run_id"].startswith("backfill-") for d in progress[0]["dates"])
    assert get(server, "api/statuses?date=2026-11-11")[LISTINGS][0] == "SUCCEEDED"


def test_a_wrong_backfill_is_a_clear_400_and_another_site_is_refused(server: UiServer) -> None:
    code, body = post(server, {"action": "backfill", "pipeline": "listings",
                               "from": "2026-11-12", "to": "2026-11-10"})
    assert code == 400 and "before" in body["error"]
    code, body = post(server, {"action": "backfill", "pipeline": "nope",
                               "from": "2026-11-10", "to": "2026-11-10"})
    assert code == 400 and "nope" in body["error"]
    code, body = post(server, {"action": "backfill", "pipeline": "listings",
                               "from": "2026-11-10", "to": "2026-11-10"},
                      origin="http://evil.example")
    assert code == 403


def test_a_pipeline_added_while_the_runtime_runs_is_a_graph_event(server: UiServer,
                                                                  workspace: Path) -> None:
    stream = Stream(server.url)
    try:
        d = workspace / "added"
        d.mkdir()
        (d / "pipeline.yaml").write_text(
            'name: added\naccount: "555555555555"\ntrigger:\n  executions:\n    allOf:\n'
            '      - {name: listings, account: "111111111111", status: [SUCCEEDED]}\n'
            "steps:\n  - {name: s, type: shell, command: 'true'}\n")
        stream.wait_for("graph", 60)
        keys = [n["key"] for n in get(server, "api/graph?date=2026-11-12")["graph"]["nodes"]]
        assert "555555555555/added" in keys
    finally:
        stream.close()





def test_the_page_draws_a_pipeline_added_while_it_is_open(browser: Browser, server: UiServer,
                                                          workspace: Path) -> None:
    load = browser.load(page(server, "2026-11-12"))
    assert load.errors == []
    wait_for(browser, "document.body.dataset.live === '1'")
    sel = "document.querySelector('g.node[data-key=\"666666666666/drawn-live\"]')"
    assert browser.evaluate(f"{sel} === null")
    d = workspace / "drawn-live"
    d.mkdir()
    (d / "pipeline.yaml").write_text(
        'name: drawn-live\naccount: "666666666666"\ntrigger:\n  schedule: {hour: 3}\n'
        "steps:\n  - {name: s, type: shell, command: 'true'}\n")
    wait_for(browser, f"{sel} !== null", 60)
    assert "account(s)" in browser.evaluate("document.getElementById('counts').textContent")


def test_backfill_from_the_pipeline_page_asks_then_shows_progress(
        browser: Browser, server: UiServer) -> None:
    browser.load(page(server, "2026-11-12", "#p/111111111111/listings"))
    wait_for(browser, "!!document.querySelector('button[data-action=backfill]')")
    browser.evaluate("document.querySelector('button[data-action=backfill]').click()")
    wait_for(browser, "!!document.getElementById('backfill-from')")
    browser.evaluate("document.getElementById('confirm-no').click()")
    assert browser.evaluate("document.getElementById('confirm') === null")
    browser.evaluate("document.querySelector('button[data-action=backfill]').click()")
    browser.evaluate("document.getElementById('backfill-from').value = '2026-11-01';"
                     "document.getElementById('backfill-to').value = '2026-11-02';"
                     "document.getElementById('confirm-yes').click()")
    msg = wait_for(browser, "document.getElementById('action-msg') && "
                            "document.getElementById('action-msg').textContent.indexOf("
                            "'backfill ') === 0 && "
                            "document.getElementById('action-msg').textContent")
    assert "2026-11-01..2026-11-02" in msg
    # Progress per date, redrawn live until both dates succeeded.
    wait_for(browser, "document.querySelectorAll('table.backfill td.s-SUCCEEDED').length >= 2 "
                      "&& Array.from(document.querySelectorAll('table.backfill tr')).some("
                      "function (r) { return r.dataset.date === '2026-11-01'; })", 60)
