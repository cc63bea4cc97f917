"""The HTML lineage page in a real headless Chromium (Debian's ``chromium`` package).

The page is driven over the DevTools protocol: console errors, uncaught exceptions and
every network request are recorded while it loads, then the graph is inspected in the
DOM and a screenshot of the case study is kept as ``test-artifacts/lineage.png``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.browser import ARTIFACTS, Browser

from dpc_core.cli.lineage import lineage
from dpc_core.simulate import simulate
from dpc_core.store import RunRecord
from dpc_core.stores.sqlite import SqliteStore

REPO = Path(__file__).resolve().parents[1]
CASE_STUDY = REPO / "examples" / "seed"
@pytest.fixture(scope="module")
def case_study_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dpc lineage --format html`` of a workspace where the case study's happy path ran
    (listings and searches SUCCEEDED, so pipeline-x was triggered and is RUNNING)."""
    ws = tmp_path_factory.mktemp("workspace")
    (ws / ".dpc").mkdir()
    store = SqliteStore(ws / ".dpc" / "state.db")
    result = simulate([CASE_STUDY], CASE_STUDY / "events" / "s01_happy_path.jsonl", store)
    (d,) = result.decisions
    store.record_run(RunRecord(f"arn:aws:states:eu-west-1:{d.account}:execution:{d.pipeline}:"
                               f"{d.execution_name}", f"{d.account}/{d.pipeline}", "RUNNING",
                               0, 1795672800000, d.window))
    store.close()
    out = ws / "lineage.html"
    res = CliRunner().invoke(lineage, ["--workspace", str(ws), "--date", d.window,
                                       "--format", "html", "--output", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_page_loads_without_console_errors(browser: Browser, case_study_page: Path) -> None:
    load = browser.load(case_study_page.as_uri())
    assert load.errors == []


def test_page_requests_nothing_but_itself(browser: Browser, case_study_page: Path) -> None:
    load = browser.load(case_study_page.as_uri())
    assert load.requests == [case_study_page.as_uri()]


def test_page_draws_every_pipeline_in_its_account_lane(browser: Browser,
                                                       case_study_page: Path) -> None:
    browser.load(case_study_page.as_uri())
    lanes = browser.evaluate(
        "Array.from(document.querySelectorAll('g.node')).map(function (g) {"
        "  var r = g.getBoundingClientRect(), hit = null;"
        "  document.querySelectorAll('g.account').forEach(function (a) {"
        "    var b = a.getBoundingClientRect();"
        "    if (r.top >= b.top && r.bottom <= b.bottom) { hit = a.dataset.account; } });"
        "  return [g.dataset.key, hit]; })")
    assert sorted(lanes) == [["111111111111/listings", "111111111111"],
                             ["222222222222/searches", "222222222222"],
                             ["333333333333/listings-fallback", "333333333333"],
                             ["333333333333/pipeline-x", "333333333333"]]


def test_page_colours_nodes_by_their_status_on_the_date(browser: Browser,
                                                        case_study_page: Path) -> None:
    browser.load(case_study_page.as_uri())
    statuses = browser.evaluate(
        "Object.fromEntries(Array.from(document.querySelectorAll('g.node')).map(function (g) {"
        "  return [g.dataset.key, [g.dataset.status, g.querySelector('rect')"
        "    .getAttribute('fill')]]; }))")
    assert statuses == {"111111111111/listings": ["SUCCEEDED", "#c8e6c9"],
                        "222222222222/searches": ["SUCCEEDED", "#c8e6c9"],
                        "333333333333/pipeline-x": ["RUNNING", "#bbdefb"],
                        "333333333333/listings-fallback": ["NONE", "#ffffff"]}


def test_page_labels_edges_with_the_statuses_children_wait_for(browser: Browser,
                                                               case_study_page: Path) -> None:
    browser.load(case_study_page.as_uri())
    edges = browser.evaluate(
        "Array.from(document.querySelectorAll('g.edge')).map(function (g) {"
        "  return [g.dataset.from, g.dataset.to, g.textContent,"
        "          g.querySelector('path').getAttribute('class')]; })")
    # pipeline-x's allOf of two parents meets at an "all of" junction; the fallback's
    # single anyOf parent is one dashed edge.
    junction = "j:333333333333/pipeline-x:0"
    assert sorted(edges) == [
        ["111111111111/listings", "333333333333/listings-fallback", "FAILED|TIMED_OUT",
         "dashed"],
        ["111111111111/listings", junction, "SUCCEEDED", ""],
        ["222222222222/searches", junction, "SUCCEEDED", ""],
        [junction, "333333333333/pipeline-x", "", ""],
    ]
    assert browser.evaluate(
        f"document.querySelector('g.junction[data-id=\"{junction}\"]').textContent") == "all of"


def test_clicking_a_pipeline_shows_what_it_waits_for(browser: Browser,
                                                     case_study_page: Path) -> None:
    browser.load(case_study_page.as_uri())
    panel = browser.evaluate(
        "document.querySelector('g.node[data-key=\"333333333333/pipeline-x\"]')"
        ".dispatchEvent(new MouseEvent('click', {bubbles: true}));"
        "document.getElementById('panel').textContent")
    assert "waits for: all(listings@111111111111 SUCCEEDED, searches@222222222222 SUCCEEDED)" \
        in panel
    dimmed = browser.evaluate(
        "Array.from(document.querySelectorAll('g.node.dim')).map(function (g) {"
        "  return g.dataset.key; })")
    assert dimmed == ["333333333333/listings-fallback"]


def test_screenshot_of_the_case_study_is_kept(browser: Browser, case_study_page: Path) -> None:
    browser.load(case_study_page.as_uri(), width=1100, height=600)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(case_study_page, ARTIFACTS / "lineage.html")
    shot = ARTIFACTS / "lineage.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000  # a blank page compresses to far less


@pytest.fixture(scope="module")
def org_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dpc lineage --format html`` of 150 pipelines over 20 accounts (bench/orggen.py)."""
    sys.path.insert(0, str(REPO / "bench"))
    from orggen import generate_org, write_org

    tmp = tmp_path_factory.mktemp("org")
    ws = write_org(generate_org(150, 20), tmp / "ws")
    out = tmp / "org.html"
    res = CliRunner().invoke(lineage, ["--pipelines", str(ws), "--format", "html",
                                       "--output", str(out)])
    assert res.exit_code == 0, res.output
    return out


#: Every pipeline and junction as [id, x, y, width, height], and every edge as [from, to].
BOXES = ("Array.from(document.querySelectorAll('g.node, g.junction')).map(function (g) {"
         "  var r = g.querySelector('rect');"
         "  return [g.dataset.key || g.dataset.id].concat(['x', 'y', 'width', 'height'].map("
         "    function (a) { return Number(r.getAttribute(a)); })); })")
EDGES = ("Array.from(document.querySelectorAll('g.edge')).map(function (g) {"
         "  return [g.dataset.from, g.dataset.to]; })")


def test_org_layout_has_columns_no_overlap_and_parents_left(browser: Browser,
                                                             org_page: Path) -> None:
    load = browser.load(org_page.as_uri(), width=1400, height=900)
    assert load.errors == []
    boxes = {b[0]: b[1:] for b in browser.evaluate(BOXES)}
    assert len(boxes) > 150  # pipelines and their junctions
    items = sorted(boxes.values())
    for i, (x, y, w, h) in enumerate(items):
        for x2, y2, _w2, h2 in items[i + 1:]:
            if x2 >= x + w:
                break
            assert not (y < y2 + h2 and y2 < y + h), "two nodes overlap"
    for parent, child in browser.evaluate(EDGES):
        px, _, pw, _ = boxes[parent]
        assert px + pw < boxes[child][0], f"{parent} is not left of {child}"
    # Fixed columns: every pipeline sits at one of a few x, the same in every lane.
    pipes = {k: v for k, v in boxes.items() if not k.startswith("j:")}
    assert len({x for x, _, _, _ in pipes.values()}) <= 8


def test_org_reload_takes_the_layout_from_the_browser(browser: Browser,
                                                       org_page: Path) -> None:
    browser.load(org_page.as_uri(), width=1400, height=900)
    browser.evaluate("localStorage.clear()")
    browser.load(org_page.as_uri(), width=1400, height=900)
    first = browser.evaluate(BOXES)
    assert browser.evaluate("Object.keys(localStorage).length") == 1
    load = browser.load(org_page.as_uri(), width=1400, height=900)
    assert load.errors == []
    assert browser.evaluate(BOXES) == first


def test_console_check_catches_a_script_error(browser: Browser, tmp_path: Path) -> None:
    # The harness itself: a broken page must not pass as clean.
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>noSuchFunction();</script></body></html>")
    load = browser.load(page.as_uri())
    assert any("noSuchFunction" in e for e in load.errors)


def test_request_check_catches_an_outside_resource(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "remote.html"
    page.write_text('<html><body><img src="http://127.0.0.1:9/x.png"></body></html>')
    load = browser.load(page.as_uri())
    assert "http://127.0.0.1:9/x.png" in load.requests
