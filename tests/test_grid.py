"""The run grid (issue 24): `dpc local grid` over a real runtime's state.db, `--aws` over
the central run log (DynamoDB under moto), and the UI's Grid (`/api/grid` over HTTP from
the real `dpc ui` server, and the view drawn in a real headless Chromium)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from helpers.browser import Browser, wait_for
from helpers.ui_server import UiServer, page, serve
from local_helpers import SHELL_CASE_STUDY, copy_workspace, dpc
from moto import mock_aws

from dpc_central.testing import central_engine_with_listings_succeeded
from dpc_core.cli.main import cli
from dpc_core.grid import Cell, build
from dpc_core.store import PipelineSpec

pytestmark = pytest.mark.timeout(300)

D1, D2 = "2026-11-25", "2026-11-26"
A, B, C = "111111111111", "222222222222", "333333333333"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shell case study: listings fails on D1, then succeeds on D2 (its fallback runs
    after the failure), searches succeeds on D2; listings is run twice on D2."""
    ws = copy_workspace(SHELL_CASE_STUDY, tmp_path_factory.mktemp("grid") / "ws")
    spec = ws / "searches" / "pipeline.yaml"
    spec.write_text("owner: search-team\n" + spec.read_text())
    dpc("local", "start", "listings", "--date", D1, "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, env={"LISTINGS_FAIL": "1"},
        check=False)
    for name in ("listings", "searches", "listings"):
        dpc("local", "start", name, "--date", D2, "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    dpc("local", "pause", "pipeline-x", "--reason", "migration", "-w", ws)
    return ws


def _grid(ws: Path, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(dpc("local", "grid", "-w", ws, "--from", D1, "--to", D2,
                                         "--format", "json", *args).stdout)
    return out


def _rows(grid: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {r["pipeline"]: {d: c["status"] for d, c in r["cells"].items()}
            for r in grid["rows"]}


def test_the_grid_has_the_latest_run_of_each_pipeline_and_date(workspace: Path) -> None:
    grid = _grid(workspace)
    assert grid["dates"] == [D1, D2]
    assert [(r["account"], r["pipeline"]) for r in grid["rows"]] == [
        (A, "listings"), (B, "searches"), (C, "listings-fallback"), (C, "pipeline-x")]
    rows = _rows(grid)
    assert rows["listings"] == {D1: "FAILED", D2: "SUCCEEDED"}
    assert rows["listings-fallback"] == {D1: "SUCCEEDED"}
    assert rows["searches"] == {D2: "SUCCEEDED"}
    assert rows["pipeline-x"] == {D2: "SUCCEEDED"}
    listings = grid["rows"][0]
    assert listings["cells"][D2]["runs"] == 2  # run twice; the cell is the latest
    latest = [r for r in json.loads(dpc("local", "runs", "--pipeline", "listings", "--date",
                                        D2, "--format", "json", "-w", workspace).stdout)]
    assert listings["cells"][D2]["runId"] in {r["run_id"] for r in latest}
    assert listings["cells"][D2]["arn"].endswith(":" + listings["cells"][D2]["runId"])
    assert [r["paused"] for r in grid["rows"]] == [False, False, False, True]


def test_filters_by_account_owner_and_status(workspace: Path) -> None:
    assert list(_rows(_grid(workspace, "--account", C))) == ["listings-fallback", "pipeline-x"]
    assert list(_rows(_grid(workspace, "--status", "failed"))) == ["listings"]
    assert [(r["pipeline"], r["owner"]) for r in _grid(workspace, "--owner", "search-team")[
        "rows"]] == [("searches", "search-team")]
    nobody = _grid(workspace, "--owner", "no-such-team")
    assert nobody["rows"] == [] and nobody["pipelines"] == 4


def test_text_grid_groups_by_account_with_a_legend_and_no_colour_off_a_terminal(
        workspace: Path) -> None:
    out = dpc("local", "grid", "-w", workspace, "--to", D2, "--days", "2").stdout
    lines = out.splitlines()
    assert lines[lines.index(A) + 1].split()[:3] == ["listings", "✗", "✓"]
    assert any(line.split()[:2] == ["⏸", "pipeline-x"] for line in lines)
    assert lines[-1].startswith("legend: ✓ SUCCEEDED  ✗ FAILED")
    assert "\x1b[" not in out  # stdout is a pipe here


def test_colour_only_for_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from dpc_core.cli.grid import use_colour

    grid = build([D1], [PipelineSpec(A, "p")], {f"{A}/p": {D1: Cell("FAILED", "r", "arn")}})
    assert "\x1b[31m✗\x1b[0m" in grid.text(colour=True)
    assert "\x1b[" not in grid.text(colour=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour()
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour()


@pytest.mark.parametrize(("args", "says"), [
    (["--from", "2026-11-31"], "--from '2026-11-31' is not a date"),
    (["--from", D2, "--to", D1], f"--to {D1} is before --from {D2}"),
    (["--from", "2026-01-01", "--to", "2026-12-31"], "365 dates"),
])
def test_a_bad_range_is_one_clear_error(workspace: Path, args: list[str], says: str) -> None:
    proc = dpc("local", "grid", "-w", workspace, *args, check=False)
    assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr


def test_a_workspace_never_run_says_what_to_do(tmp_path: Path) -> None:
    proc = dpc("local", "grid", "-w", tmp_path, check=False)
    assert proc.returncode == 2 and "run `dpc local up` once" in proc.stderr
    assert not (tmp_path / ".dpc").exists()  # nothing created


# -- --aws: the central run log -----------------------------------------------------------

REGION = "eu-west-1"


def test_aws_grid_reads_the_central_run_log(aws_credentials: str) -> None:
    with mock_aws():
        central_engine_with_listings_succeeded(boto3.client("dynamodb", region_name=REGION),
                                               Path(__file__).resolve().parents[1]
                                               / "examples" / "seed")
        result = CliRunner().invoke(cli, [
            "local", "grid", "--aws", "--central-tables", "dpc-registry,dpc-runs,dpc-windows",
            "--region", REGION, "--from", D1, "--to", D2, "--format", "json"])
        assert result.exit_code == 0, result.output
        grid = json.loads(result.output)
        assert grid["pipelines"] == 4
        cells = {r["key"]: r["cells"] for r in grid["rows"]}
        assert cells[f"{A}/listings"][D2]["status"] == "SUCCEEDED"
        assert cells[f"{A}/listings"][D2]["arn"].startswith("arn:aws:states:")
        assert D1 not in cells[f"{A}/listings"]
        failed = CliRunner().invoke(cli, [
            "local", "grid", "--aws", "--central-tables", "dpc-registry,dpc-runs,dpc-windows",
            "--region", REGION, "--from", D1, "--to", D2, "--status", "FAILED"])
        assert failed.exit_code == 0 and "0 of 4" not in failed.output
        assert "no pipelines to show" in failed.output


# -- the UI ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(workspace: Path) -> Iterator[UiServer]:
    yield from serve(workspace)


def _get(server: UiServer, path: str) -> tuple[int, Any]:
    req = urllib.request.Request(server.url + path, headers=server.auth())
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_api_grid_over_http(server: UiServer, workspace: Path) -> None:
    code, grid = _get(server, f"api/grid?to={D2}&days=2")
    assert code == 200 and grid["dates"] == [D1, D2]
    assert _rows(grid) == _rows(_grid(workspace))
    code, grid = _get(server, f"api/grid?to={D2}&days=2&status=FAILED&account={A}")
    assert code == 200 and [r["pipeline"] for r in grid["rows"]] == ["listings"]


@pytest.mark.parametrize(("query", "says"), [
    ("days=1000", "days must be"), ("days=0", "between 1 and 92"),
    ("from=2026-1-1", "from must be YYYY-MM-DD"), ("status=BROKEN", "status must be one of"),
    ("account=abc", "account must be"), ("owner=%3Cscript%3E", "owner must be"),
    (f"from={D2}&to={D1}", "before"),
])
def test_api_grid_refuses_bad_parameters(server: UiServer, query: str, says: str) -> None:
    code, body = _get(server, f"api/grid?{query}")
    assert code == 400 and says in body["error"], body


def test_the_grid_view_draws_cells_that_link_to_runs(browser: Browser, server: UiServer) -> None:
    browser.load(page(server, D2, "#grid?days=2"), width=1100, height=700)
    shown = wait_for(browser, "document.body.dataset.grid")
    assert shown == "4"
    cells = browser.evaluate(
        "Array.from(document.querySelectorAll('tr[data-key=\"111111111111/listings\"] "
        "td.gcell a')).map(a => [a.dataset.status, a.textContent, a.getAttribute('href')])")
    assert [c[:2] for c in cells] == [["FAILED", "✗"], ["SUCCEEDED", "✓"]]
    assert cells[1][2].startswith("#r/111111111111%2Flistings/arn%3Aaws%3Astates")
    # The status filter narrows the rows; a cell opens the run's page.
    browser.evaluate("var s = document.querySelector('select[name=status]'); "
                     "s.value = 'FAILED'; s.dispatchEvent(new Event('change'))")
    wait_for(browser, "document.body.dataset.grid === '1'")
    browser.evaluate("document.querySelector('td.gcell a').click()")
    chosen = wait_for(browser, "document.body.dataset.pipeline === '111111111111/listings' && "
                               "document.querySelector('tr.chosen td.s-FAILED') && "
                               "document.querySelector('tr.chosen td').textContent")
    assert chosen.startswith(D1)


def test_the_grid_view_shows_a_new_run_live(browser: Browser, server: UiServer,
                                            workspace: Path) -> None:
    browser.load(page(server, D2, "#grid?days=2"), width=1100, height=700)
    wait_for(browser, "document.body.dataset.grid === '4' && document.body.dataset.live === '1'")
    cell = "document.querySelector('tr[data-key=\"222222222222/searches\"] td.gcell a')"
    assert browser.evaluate(f"{cell} && {cell}.dataset.status") == "SUCCEEDED"  # D2 only
    dpc("local", "start", "searches", "--date", D1, "-w", workspace)
    wait_for(browser, f"{cell} && {cell}.dataset.status === 'PENDING'")  # D1's, first
    assert browser.evaluate(f"{cell}.getAttribute('href')").startswith("#r/222222222222")
