"""``dpc ui`` in a real headless Chromium over a real server and a real runtime's state.

The shell case study is run by the local runtime, a pipeline whose description and owner
hold markup is added, and ``dpc ui`` serves the workspace on a free port. The page is
driven over the DevTools protocol (the harness of tests/test_lineage_html.py): console
errors, every request, what is drawn, a status change made while the page is open, an
action with its confirmation. Screenshots are kept under test-artifacts/ui-*.png.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.browser import ARTIFACTS, Browser, wait_for
from helpers.ui_server import UiServer, page, serve
from local_helpers import SHELL_CASE_STUDY, copy_workspace, dpc

# A page that never loads must fail its test, not hang the suite.
pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[1]
DAY = "2026-11-26"
HOSTILE_TEXT = '</script><script>window.pwned=1</script> "quoted" <b>bold</b>'
HOSTILE_OWNER = "<img src=x onerror=window.pwned=2>"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shell case study after a run for DAY, plus a pipeline with markup in its texts."""
    ws = copy_workspace(SHELL_CASE_STUDY, tmp_path_factory.mktemp("ui") / "ws")
    hostile = ws / "hostile"
    hostile.mkdir()
    (hostile / "pipeline.yaml").write_text(
        "name: hostile\naccount: \"444444444444\"\n"
        f"description: {json.dumps(HOSTILE_TEXT)}\nowner: {json.dumps(HOSTILE_OWNER)}\n"
        "trigger:\n  executions:\n    allOf:\n"
        "      - {name: listings, account: \"111111111111\", status: [SUCCEEDED]}\n"
        "steps:\n  - {name: say, type: shell, command: 'echo \"<tag> & done\"'}\n")
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    dpc("local", "start", "searches", "--date", DAY, "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    return ws


@pytest.fixture(scope="module")
def server(workspace: Path) -> Iterator[UiServer]:
    yield from serve(workspace)


def shot(browser: Browser, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"ui-{name}.png"
    browser.screenshot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_landscape_loads_without_console_errors(browser: Browser, server: UiServer) -> None:
    load = browser.load(page(server, DAY), width=1300, height=700)
    assert load.errors == []
    wait_for(browser, "document.body.dataset.live === '1'")
    shot(browser, "landscape")


def test_no_request_leaves_the_server(browser: Browser, server: UiServer) -> None:
    load = browser.load(page(server, DAY))
    outside = [u for u in load.requests
               if not (u.startswith(server.url) or u.startswith("data:"))]
    assert outside == []
    assert any(u.endswith("/static/dagre.min.js") for u in load.requests)


def test_every_pipeline_is_coloured_by_its_status_for_the_date(browser: Browser,
                                                               server: UiServer) -> None:
    browser.load(page(server, DAY))
    statuses = browser.evaluate(
        "Object.fromEntries(Array.from(document.querySelectorAll('g.node')).map(function (g) {"
        "  return [g.dataset.key, g.dataset.status]; }))")
    assert statuses == {"111111111111/listings": "SUCCEEDED",
                        "222222222222/searches": "SUCCEEDED",
                        "333333333333/pipeline-x": "SUCCEEDED",
                        "333333333333/listings-fallback": "NONE",
                        "444444444444/hostile": "SUCCEEDED"}


def test_markup_in_descriptions_and_owners_stays_text(browser: Browser,
                                                      server: UiServer) -> None:
    load = browser.load(page(server, DAY))
    assert load.errors == []
    panel = browser.evaluate(
        "document.querySelector('g.node[data-key=\"444444444444/hostile\"]')"
        ".dispatchEvent(new MouseEvent('click', {bubbles: true}));"
        "document.getElementById('panel').textContent")
    assert HOSTILE_TEXT in panel and HOSTILE_OWNER in panel
    assert browser.evaluate("window.pwned === undefined")
    assert browser.evaluate("document.querySelectorAll('#app img, #app b').length") == 0


def test_focus_on_downstream_dims_the_rest(browser: Browser, server: UiServer) -> None:
    browser.load(page(server, DAY))
    browser.evaluate(
        "document.querySelector('g.node[data-key=\"222222222222/searches\"]')"
        ".dispatchEvent(new MouseEvent('click', {bubbles: true}));"
        "document.querySelector('button[data-focus=down]').click()")
    lit = browser.evaluate(
        "Array.from(document.querySelectorAll('g.node:not(.dim)')).map(function (g) {"
        "  return g.dataset.key; }).sort()")
    assert lit == ["222222222222/searches", "333333333333/pipeline-x"]


def test_search_marks_matches(browser: Browser, server: UiServer) -> None:
    browser.load(page(server, DAY))
    hits = browser.evaluate(
        "var s = document.getElementById('search'); s.value = 'listings';"
        "s.dispatchEvent(new Event('input'));"
        "Array.from(document.querySelectorAll('g.node.hit')).map(function (g) {"
        "  return g.dataset.key; }).sort()")
    assert hits == ["111111111111/listings", "333333333333/listings-fallback"]


def test_collapsing_an_account_hides_its_pipelines(browser: Browser, server: UiServer) -> None:
    browser.load(page(server, DAY))
    browser.evaluate("document.querySelector('g.account[data-account=\"333333333333\"] "
                     ".lane-title').dispatchEvent(new MouseEvent('click', {bubbles: true}))")
    hidden = browser.evaluate(
        "Array.from(document.querySelectorAll('g.node.hidden')).map(function (g) {"
        "  return g.dataset.key; }).sort()")
    assert hidden == ["333333333333/listings-fallback", "333333333333/pipeline-x"]


def test_health_counts_link_to_their_pipelines(browser: Browser, server: UiServer) -> None:
    browser.load(page(server, DAY, "#health"), width=1100, height=700)
    wait_for(browser, "document.body.dataset.health === '1'")
    shot(browser, "health")
    cell = browser.evaluate(
        "var t = document.querySelector('table[data-dim=account]');"
        "var row = Array.from(t.querySelectorAll('tr')).filter(function (r) {"
        "  return r.firstChild.textContent === '333333333333'; })[0];"
        "[row.children[4].textContent, row.children[6].textContent]")
    assert cell == ["1", "1"]  # waiting: listings-fallback; succeeded: pipeline-x
    browser.evaluate("location.hash = '#list/account/333333333333/waiting'")
    listed = wait_for(browser, "document.querySelector('ul.list') && "
                               "document.querySelector('ul.list').textContent")
    assert "listings-fallback" in listed and "pipeline-x" not in listed


def test_pipeline_page_says_why_it_ran_and_shows_steps_and_logs(browser: Browser,
                                                                server: UiServer) -> None:
    browser.load(page(server, DAY, "#p/444444444444/hostile"), width=1100, height=900)
    text = wait_for(browser, "document.querySelector('pre.log') && "
                             "document.querySelector('pre.log').textContent.length > 0 && "
                             "document.getElementById('view').textContent")
    shot(browser, "pipeline")
    assert "why it ran: triggered by listings@111111111111 SUCCEEDED" in text
    assert "✓ listings@111111111111 SUCCEEDED" in text
    assert "<tag> & done" in browser.evaluate("document.querySelector('pre.log').textContent")
    assert "say (shell) SUCCEEDED" in text


def test_pipeline_page_lists_notifications_sent(browser: Browser, server: UiServer) -> None:
    browser.load(page(server, DAY, "#p/333333333333/pipeline-x"))
    text = wait_for(browser, "document.querySelector('table.notes') && "
                             "document.querySelector('table.notes').textContent")
    assert "rent-journey@example.com" in text and "data-pipeline-alerts" in text


def _runs(ws: Path, pipeline: str) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(ws / ".dpc" / "state.db")
    try:
        return conn.execute("SELECT reason, status, logical_date FROM lr_runs WHERE pipeline = ?"
                            " ORDER BY created_ms", (pipeline,)).fetchall()
    finally:
        conn.close()


def test_a_queued_run_shows_up_live(browser: Browser, server: UiServer, workspace: Path) -> None:
    day = "2026-11-27"
    browser.load(page(server, day))
    wait_for(browser, "document.body.dataset.live === '1'")
    key = "111111111111/listings"
    sel = f"document.querySelector('g.node[data-key=\"{key}\"]').dataset.status"
    assert browser.evaluate(sel) == "NONE"
    dpc("local", "start", "listings", "--date", day, "-w", workspace)
    wait_for(browser, f"{sel} === 'PENDING'")


def test_rerun_asks_for_confirmation_then_queues_as_dpc_rerun(
        browser: Browser, server: UiServer, workspace: Path) -> None:
    before = _runs(workspace, "222222222222/searches")
    browser.load(page(server, DAY, "#p/222222222222/searches"))
    wait_for(browser, "!!document.querySelector('button[data-action=rerun]')")
    browser.evaluate("document.querySelector('button[data-action=rerun]').click()")
    wait_for(browser, "!!document.getElementById('confirm')")
    browser.evaluate("document.getElementById('confirm-no').click()")
    assert _runs(workspace, "222222222222/searches") == before
    browser.evaluate("document.querySelector('button[data-action=rerun]').click()")
    browser.evaluate("document.getElementById('confirm-yes').click()")
    msg = wait_for(browser, "document.getElementById('action-msg').textContent")
    assert "222222222222/searches rerun-" in msg
    assert _runs(workspace, "222222222222/searches")[len(before):] == [
        ("rerun", "PENDING", DAY)]


def test_an_action_from_another_site_is_refused(server: UiServer, workspace: Path) -> None:
    req = urllib.request.Request(f"{server.url}api/action", method="POST",
                                 data=json.dumps({"action": "run", "pipeline": "listings"})
                                 .encode(),
                                 headers={"Content-Type": "application/json",
                                          "Origin": "http://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 403


def test_the_page_scripts_can_be_inlined() -> None:
    # dpc lineage inlines them into <script> elements, which end at "</script".
    from dpc_core.ui.page import SCRIPTS, asset

    for name in SCRIPTS:
        assert "</script" not in asset(name).lower()


def test_dpc_help_does_not_import_the_server_stack() -> None:
    code = ("import sys; from dpc_core.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('starlette', 'uvicorn')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.fixture(scope="module")
def org_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """700 pipelines over 100 accounts (bench/orggen.py), registered by the runtime."""
    sys.path.insert(0, str(REPO / "bench"))
    from orggen import generate_org, write_org

    ws = write_org(generate_org(700, 100), tmp_path_factory.mktemp("org") / "ws")
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, timeout=600)
    return ws


def test_a_700_pipeline_organisation_loads(browser: Browser, org_workspace: Path) -> None:
    for server in serve(org_workspace):
        load = browser.load(page(server, DAY), width=1400, height=900)
        assert load.errors == []
        assert wait_for(browser, "document.body.dataset.ready") == "700"
        assert browser.evaluate("document.querySelectorAll('g.node').length") == 700
        assert browser.evaluate("document.querySelectorAll('g.account').length") == 100
        shot(browser, "org700")
