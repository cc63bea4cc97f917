"""``dpc lineage``: the dependency graph, statuses for a date, and its four renderings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dpc_core.cli.lineage import lineage
from dpc_core.cli.main import main
from dpc_core.errors import UnknownPipeline
from dpc_core.lineage import (
    Edge,
    LineageGraph,
    build_graph,
    latest_run_on,
    render_dot,
    render_mermaid,
    render_text,
)
from dpc_core.simulate import simulate
from dpc_core.store import PipelineSpec, RunRecord
from dpc_core.stores.sqlite import SqliteStore
from dpc_core.ui.page import render_html

CASE_STUDY = Path(__file__).resolve().parents[1] / "examples" / "seed"
A, B, C = "111111111111", "222222222222", "333333333333"


def ref(name: str, *status: str, account: str | None = None) -> dict[str, Any]:
    r: dict[str, Any] = {"name": name, "status": list(status)}
    if account:
        r["account"] = account
    return r


def spec(account: str, name: str, condition: dict[str, Any] | None = None,
         **info: Any) -> PipelineSpec:
    return PipelineSpec(account=account, name=name, condition=condition, info=info)


def case_study() -> list[PipelineSpec]:
    return [
        spec(A, "listings", schedule="cron(0 3 * * ? *)"),
        spec(B, "searches", schedule="cron(0 5 * * ? *)"),
        spec(C, "pipeline-x", {"allOf": [ref("listings", "SUCCEEDED", account=A),
                                         ref("searches", "SUCCEEDED", account=B)]}),
        spec(C, "listings-fallback",
             {"anyOf": [ref("listings", "FAILED", "TIMED_OUT", account=A)]}),
    ]


def run(pipeline: str, status: str, start_ms: int, logical: str | None = None,
        arn: str | None = None) -> RunRecord:
    return RunRecord(arn or f"arn:{pipeline}:{start_ms}", pipeline, status, 0, start_ms, logical)


# -- the graph ------------------------------------------------------------------------


def test_nodes_are_pipelines_keyed_by_account_and_name() -> None:
    g = build_graph(case_study())
    assert sorted(g.nodes) == [f"{A}/listings", f"{B}/searches", f"{C}/listings-fallback",
                               f"{C}/pipeline-x"]
    assert g.accounts() == [A, B, C]


def test_edges_go_from_parent_to_child_labelled_with_awaited_statuses() -> None:
    g = build_graph(case_study())
    assert set(g.edges) == {
        Edge(f"{A}/listings", f"{C}/pipeline-x", ("SUCCEEDED",), "all"),
        Edge(f"{B}/searches", f"{C}/pipeline-x", ("SUCCEEDED",), "all"),
        Edge(f"{A}/listings", f"{C}/listings-fallback", ("FAILED", "TIMED_OUT"), "any"),
    }


def test_reference_without_account_means_the_childs_account() -> None:
    g = build_graph([spec(C, "raw"), spec(C, "clean", {"allOf": [ref("raw", "SUCCEEDED")]})])
    assert [(e.parent, e.child) for e in g.edges] == [(f"{C}/raw", f"{C}/clean")]


def test_nested_blocks_keep_their_own_all_or_any_grouping() -> None:
    cond = {"allOf": [ref("a", "SUCCEEDED"),
                      {"anyOf": [ref("b", "SUCCEEDED"), ref("c", "FAILED")]}]}
    g = build_graph([spec(C, "a"), spec(C, "b"), spec(C, "c"), spec(C, "x", cond)])
    assert {(e.parent.split("/")[1], e.group) for e in g.edges} == {("a", "all"), ("b", "any"),
                                                                    ("c", "any")}
    assert g.nodes[f"{C}/x"].condition == \
        f"all(a@{C} SUCCEEDED, any(b@{C} SUCCEEDED, c@{C} FAILED))"


def test_operator_or_joins_the_two_lists_in_the_condition_text() -> None:
    cond = {"allOf": [ref("a", "SUCCEEDED")], "anyOf": [ref("b", "FAILED")], "operator": "OR"}
    g = build_graph([spec(C, "x", cond)])
    assert g.nodes[f"{C}/x"].condition == f"all(a@{C} SUCCEEDED) OR any(b@{C} FAILED)"


def test_reference_to_an_unregistered_pipeline_is_a_dangling_node() -> None:
    g = build_graph([spec(C, "x", {"allOf": [ref("ghost", "SUCCEEDED", account=A)]})])
    ghost = g.nodes[f"{A}/ghost"]
    assert ghost.registered is False
    assert g.nodes[f"{C}/x"].registered is True


def test_a_cycle_in_a_hand_edited_registry_still_renders() -> None:
    # Registration refuses cycles; a registry edited by hand might still hold one.
    g = build_graph([spec(C, "a", {"allOf": [ref("b", "SUCCEEDED")]}),
                     spec(C, "b", {"allOf": [ref("a", "SUCCEEDED")]})])
    text = render_text(g)
    assert "(cycle!)" in text
    assert set(g.layers()) == {f"{C}/a", f"{C}/b"}
    assert '"key":"333333333333/a"' in render_html(g)


# -- statuses for a date --------------------------------------------------------------


def test_status_is_that_of_the_latest_run_of_the_date() -> None:
    runs = [run("p", "FAILED", 1000, "2026-11-26"), run("p", "SUCCEEDED", 2000, "2026-11-26"),
            run("p", "RUNNING", 3000, "2026-11-27")]
    latest = latest_run_on(runs, "2026-11-26")
    assert latest is not None and latest.status == "SUCCEEDED"


def test_run_without_logical_date_counts_for_the_utc_day_it_started() -> None:
    late = 1795737599000  # 2026-11-26T23:59:59Z
    assert latest_run_on([run("p", "SUCCEEDED", late)], "2026-11-26") is not None
    assert latest_run_on([run("p", "SUCCEEDED", late + 1000)], "2026-11-26") is None


def test_logical_date_wins_over_the_start_day() -> None:
    # A rerun on the 27th for the 26th is the 26th's run.
    rerun = run("p", "SUCCEEDED", 1795737600000 + 3_600_000, "2026-11-26")
    assert latest_run_on([rerun], "2026-11-26") is rerun


def test_graph_nodes_carry_their_status_for_the_date() -> None:
    runs = {f"{A}/listings": [run(f"{A}/listings", "SUCCEEDED", 1, "2026-11-26")]}
    g = build_graph(case_study(), lambda key: runs.get(key, []), "2026-11-26")
    assert g.nodes[f"{A}/listings"].status == "SUCCEEDED"
    assert g.nodes[f"{A}/listings"].run == f"arn:{A}/listings:1"
    assert g.nodes[f"{B}/searches"].status is None


# -- restricting ----------------------------------------------------------------------


def test_upstream_keeps_the_pipeline_and_everything_it_depends_on() -> None:
    g = build_graph(case_study()).restrict(upstream="pipeline-x")
    assert sorted(g.nodes) == [f"{A}/listings", f"{B}/searches", f"{C}/pipeline-x"]
    assert len(g.edges) == 2


def test_downstream_keeps_the_pipeline_and_everything_that_depends_on_it() -> None:
    g = build_graph(case_study()).restrict(downstream="listings")
    assert sorted(g.nodes) == [f"{A}/listings", f"{C}/listings-fallback", f"{C}/pipeline-x"]


def test_restriction_accepts_account_slash_name() -> None:
    g = build_graph(case_study()).restrict(downstream=f"{B}/searches")
    assert sorted(g.nodes) == [f"{B}/searches", f"{C}/pipeline-x"]


def test_a_name_in_two_accounts_must_be_qualified() -> None:
    g = build_graph([spec(A, "load"), spec(B, "load")])
    with pytest.raises(UnknownPipeline, match="ambiguous"):
        g.restrict(upstream="load")


def test_an_unknown_name_is_an_error() -> None:
    with pytest.raises(UnknownPipeline, match="nope"):
        build_graph(case_study()).restrict(upstream="nope")


# -- renderers ------------------------------------------------------------------------


def test_text_tree_of_the_case_study() -> None:
    runs = {f"{A}/listings": [run(f"{A}/listings", "SUCCEEDED", 1, "2026-11-26")]}
    g = build_graph(case_study(), lambda key: runs.get(key, []), "2026-11-26")
    assert render_text(g).splitlines()[5:10] == [
        "listings [111111111111]  SUCCEEDED  schedule cron(0 3 * * ? *)",
        "├── waits any of: FAILED|TIMED_OUT ─ listings-fallback [333333333333]  no run",
        "└── waits all of: SUCCEEDED ─ pipeline-x [333333333333]  no run",
        "searches [222222222222]  no run  schedule cron(0 5 * * ? *)",
        "└── waits all of: SUCCEEDED ─ pipeline-x [333333333333]  no run",
    ]


def test_text_lists_pipelines_by_account() -> None:
    lines = render_text(build_graph(case_study())).splitlines()
    assert lines[1:4] == ["  account 111111111111: listings", "  account 222222222222: searches",
                          "  account 333333333333: listings-fallback, pipeline-x"]


def test_text_marks_dangling_references() -> None:
    g = build_graph([spec(C, "x", {"allOf": [ref("ghost", "SUCCEEDED", account=A)]})])
    assert "ghost [111111111111]  ?? not registered (dangling reference)" in render_text(g)


def test_text_shows_a_shared_child_subtree_once() -> None:
    specs = [*case_study(), spec(C, "report", {"allOf": [ref("pipeline-x", "SUCCEEDED")]})]
    text = render_text(build_graph(specs))
    assert text.count("─ report [333333333333]") == 1  # in the tree, not the conditions
    assert "(children shown above)" in text


def test_mermaid_has_one_subgraph_per_account_and_labelled_edges() -> None:
    out = render_mermaid(build_graph(case_study()))
    assert out.startswith("flowchart LR")
    assert re.findall(r'subgraph \w+\["account (\d+)"\]', out) == [A, B, C]
    assert re.findall(r'-- "([^"]+)" -->', out) == ["FAILED|TIMED_OUT (any)", "SUCCEEDED",
                                                    "SUCCEEDED"]


def test_mermaid_classes_nodes_by_status_and_dangling() -> None:
    runs = {f"{A}/listings": [run(f"{A}/listings", "FAILED", 1, "2026-11-26")]}
    specs = [*case_study(), spec(C, "y", {"allOf": [ref("ghost", "SUCCEEDED")]})]
    out = render_mermaid(build_graph(specs, lambda k: runs.get(k, []), "2026-11-26"))
    ids = dict(re.findall(r'(n\d+)\["([\w-]+)', out))
    classes = dict(re.findall(r"class (n\d+) (\w+)", out))
    assert {ids[n]: c for n, c in classes.items()}["listings"] == "FAILED"
    assert {ids[n]: c for n, c in classes.items()}["ghost"] == "dangling"


def test_dot_has_one_cluster_per_account() -> None:
    out = render_dot(build_graph(case_study()))
    assert re.findall(r'subgraph cluster_\d+ \{\s+label="account (\d+)"', out) == [A, B, C]
    assert out.count("->") == 3
    assert out.rstrip().endswith("}")


def test_dot_draws_dangling_nodes_dashed_and_status_on_a_second_line() -> None:
    runs = {f"{A}/listings": [run(f"{A}/listings", "SUCCEEDED", 1, "2026-11-26")]}
    specs = [*case_study(), spec(C, "y", {"allOf": [ref("ghost", "SUCCEEDED")]})]
    out = render_dot(build_graph(specs, lambda k: runs.get(k, []), "2026-11-26"))
    assert 'label="listings\\nSUCCEEDED", fillcolor="#c8e6c9"' in out
    assert 'label="ghost\\n(not registered)", style="rounded,dashed"' in out


def test_html_page_is_self_contained() -> None:
    page = render_html(build_graph(case_study()))
    assert not re.search(r"<link|<img|@import|url\(http|src=", page)
    # The only URL is SVG's XML namespace, which is a name, not a fetch.
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"]


def test_html_embeds_the_graph_as_data_that_cannot_close_its_script() -> None:
    specs = [spec(A, "listings", description="</script><script>alert(1)</script>")]
    page = render_html(build_graph(specs))
    data = page.split('id="dpc-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(data)["graph"]["nodes"][0]["info"]["description"].startswith("</script>")


def test_html_carries_every_account_for_its_lanes() -> None:
    # The lanes themselves are drawn by the page's script (tests/test_lineage_html.py).
    page = render_html(build_graph(case_study()))
    data = json.loads(page.split('id="dpc-data">', 1)[1].split("</script>", 1)[0])
    assert data["graph"]["accounts"] == [A, B, C]


# -- the command ----------------------------------------------------------------------


def test_command_reads_pipeline_files() -> None:
    res = CliRunner().invoke(lineage, ["--pipelines", str(CASE_STUDY)])
    assert res.exit_code == 0, res.output
    assert "└── waits all of: SUCCEEDED ─ pipeline-x [333333333333]" in res.output


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace whose state holds the case study after its happy path."""
    (tmp_path / ".dpc").mkdir()
    store = SqliteStore(tmp_path / ".dpc" / "state.db")
    simulate([CASE_STUDY], CASE_STUDY / "events" / "s01_happy_path.jsonl", store)
    store.close()
    return tmp_path


def test_command_reads_a_workspace_registry_and_its_runs(workspace: Path) -> None:
    res = CliRunner().invoke(lineage, ["--workspace", str(workspace), "--date", "2026-11-26"])
    assert res.exit_code == 0, res.output
    assert "listings [111111111111]  SUCCEEDED" in res.output
    assert "searches [222222222222]  SUCCEEDED" in res.output


def test_command_takes_runs_from_a_workspace_and_pipelines_from_files(workspace: Path) -> None:
    res = CliRunner().invoke(lineage, ["--pipelines", str(CASE_STUDY), "--workspace",
                                       str(workspace), "--date", "2026-11-26"])
    assert "listings [111111111111]  SUCCEEDED" in res.output


def test_command_shows_no_status_on_a_date_without_runs(workspace: Path) -> None:
    res = CliRunner().invoke(lineage, ["--workspace", str(workspace), "--date", "2026-11-20"])
    assert "listings [111111111111]  no run" in res.output


def test_command_writes_the_chosen_format_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "g.dot"
    res = CliRunner().invoke(lineage, ["--pipelines", str(CASE_STUDY), "--format", "dot",
                                       "--downstream", "searches", "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_text().startswith("digraph lineage {")
    assert out.read_text().count("->") == 1


def test_command_refuses_a_malformed_date() -> None:
    res = CliRunner().invoke(lineage, ["--pipelines", str(CASE_STUDY), "--date", "26/11/2026"])
    assert res.exit_code == 2
    assert "write YYYY-MM-DD" in res.output


def test_command_without_a_source_outside_a_workspace_says_what_to_give(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(lineage, [])
    assert res.exit_code == 2
    assert "give --pipelines DIR or --workspace DIR" in res.output


def test_command_on_a_workspace_without_state_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["lineage", "--workspace", str(tmp_path)])
    assert exc.value.code == 2
    assert "no local workspace state at" in capsys.readouterr().err


def test_command_with_an_unknown_pipeline_name_is_a_clear_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["lineage", "--pipelines", str(CASE_STUDY), "--upstream", "nope"])
    assert exc.value.code == 2
    assert "no pipeline named 'nope'" in capsys.readouterr().err


def test_graph_is_plain_data() -> None:
    g: LineageGraph = build_graph(case_study())
    assert json.loads(json.dumps(g.to_dict()))["accounts"] == [A, B, C]


@pytest.mark.case_study
def test_command_reads_the_state_the_local_runtime_left(tmp_path: Path) -> None:
    from local_helpers import SHELL_CASE_STUDY, copy_workspace, dpc

    ws = copy_workspace(SHELL_CASE_STUDY, tmp_path / "ws")
    dpc("local", "start", "listings", "--date", "2026-11-26", "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    out = dpc("lineage", "--workspace", ws, "--date", "2026-11-26").stdout
    assert "listings [111111111111]  SUCCEEDED" in out
    assert "searches [222222222222]  no run" in out
    assert "waits all of: SUCCEEDED ─ pipeline-x [333333333333]  no run" in out
