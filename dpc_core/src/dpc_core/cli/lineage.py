"""``dpc lineage``: the cross-account dependency graph as text, Mermaid, DOT or HTML."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from datetime import date as Date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dpc_core.cli.options import FormatChoice

if TYPE_CHECKING:
    from dpc_core.lineage import LineageGraph

#: ``json`` is the graph's data (nodes, edges, statuses), the same the HTML page embeds.
FORMATS = ("text", "mermaid", "dot", "html", "json")


def _check_date(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):  # not 2026-W48-4
            raise ValueError(value)
        return Date.fromisoformat(value).isoformat()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; write YYYY-MM-DD") from None


def state_file(workspace: Path) -> Path:
    """The local runtime's SQLite state of a workspace."""
    return workspace / ".dpc" / "state.db"


#: Outputs of the central stack that name the engine's tables (see dpc-central).
CENTRAL_STACK = "dpc-central"
TABLE_OUTPUTS = ("RegistryTable", "RunsTable", "WindowsTable")


def central_store(tables: str | None, region: str | None) -> Any:
    """The central account's DynamoDB store, with the caller's AWS credentials.

    Table names come from ``tables`` (``registry,runs,windows``) or from the outputs of
    the ``dpc-central`` CloudFormation stack.
    """
    from dpc_core.aws_session import aws_session
    from dpc_core.errors import DpcError

    session = aws_session(region)
    from botocore.exceptions import BotoCoreError, ClientError

    from dpc_core.stores.dynamodb import DynamoStore, DynamoTables

    try:
        if tables:
            names = [n.strip() for n in tables.split(",")]
            if len(names) != 3 or not all(names):
                raise DpcError("--central-tables wants three names: registry,runs,windows")
        else:
            stacks = session.client("cloudformation").describe_stacks(
                StackName=CENTRAL_STACK)["Stacks"]
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
            missing = [k for k in TABLE_OUTPUTS if k not in outputs]
            if missing:
                raise DpcError(f"stack {CENTRAL_STACK} has no output(s) {', '.join(missing)}; "
                               "redeploy it with `dpc setup-central-account` or pass "
                               "--central-tables registry,runs,windows")
            names = [outputs[k] for k in TABLE_OUTPUTS]
        return DynamoStore(session.client("dynamodb"), DynamoTables(*names))
    except (BotoCoreError, ClientError) as exc:
        raise DpcError(f"cannot read the central account: {exc}") from None


def load_graph(pipelines: tuple[Path, ...], workspace: Path | None,
               day: str | None, store: Any = None) -> LineageGraph:
    """Build the graph from pipeline files and/or a registry with runs (a local
    workspace's, or ``store``: the central account's).

    With pipeline files, the registry is the files; a workspace then only supplies runs.
    """
    from dpc_core.errors import DpcError
    from dpc_core.lineage import build_graph
    from dpc_core.store import PipelineSpec

    if store is None and workspace is not None:
        path = state_file(workspace)
        if not path.is_file():
            raise DpcError(f"no local workspace state at {path}; run `dpc local up` in "
                           f"{workspace} first, or pass --pipelines DIR")
        from dpc_core.stores.sqlite import SqliteStore

        store = SqliteStore(path)
    specs: list[PipelineSpec]
    if pipelines:
        from dpc_core.engine import spec_of
        from dpc_core.loader import load_pipelines

        specs = [spec_of(p) for p in load_pipelines(list(pipelines), require_account=True)]
    else:
        assert store is not None
        from dpc_core.address_secrets import public_spec

        # The registry keeps notification addresses as registered; a page or a text
        # shown to people must not carry an OpsGenie apiKey or a webhook token.
        specs = [public_spec(s) for s in store.pipelines()]
    if store is not None and day is None:
        day = datetime.now(UTC).date().isoformat()  # statuses are for today by default
    try:
        return build_graph(specs, store.runs_of if store is not None else None, day)
    finally:
        if store is not None and hasattr(store, "close"):
            store.close()


@click.command("lineage")
@click.option("--pipelines", "pipelines", multiple=True, type=click.Path(path_type=Path),
              help="Read pipeline.yaml files below DIR (repeatable) instead of a registry.")
@click.option("--workspace", "-w", type=click.Path(path_type=Path, file_okay=False, exists=True),
              default=None, envvar="DPC_WORKSPACE",
              help="Local workspace whose registry and runs to read (default: "
                   "$DPC_WORKSPACE, else . when it has .dpc/state.db).")
@click.option("--date", "day", callback=_check_date, metavar="YYYY-MM-DD",
              help="Show each pipeline's latest run for this logical date (default: today, "
                   "UTC, when runs are known).")
@click.option("--format", "fmt", type=FormatChoice(FORMATS), default="text", show_default=True)
@click.option("--upstream", metavar="NAME",
              help="Only NAME and what it depends on (NAME or account/name).")
@click.option("--downstream", metavar="NAME",
              help="Only NAME and what depends on it (NAME or account/name).")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write to FILE instead of standard output.")
@click.option("--central", is_flag=True,
              help="Read the central account's registry and run log (DynamoDB, with your AWS "
                   "credentials; table names from the dpc-central stack's outputs).")
@click.option("--central-tables", metavar="REGISTRY,RUNS,WINDOWS", default=None,
              help="With --central: the table names, instead of the stack's outputs.")
@click.option("--region", default=None, help="With --central: the central account's region.")
def lineage(pipelines: tuple[Path, ...], workspace: Path | None, day: str | None, fmt: str,
            upstream: str | None, downstream: str | None, output: Path | None,
            central: bool, central_tables: str | None, region: str | None) -> None:
    """Render the cross-account dependency graph: who waits on whom, for which statuses.

    Pipelines referenced but not registered are shown as dangling.
    """
    import json

    from dpc_core.lineage import render

    store = central_store(central_tables, region) if central else None
    if store is not None and day is None:
        day = datetime.now(UTC).date().isoformat()
    if store is None and not pipelines and workspace is None:
        if not state_file(Path(".")).is_file():
            raise click.UsageError("give --pipelines DIR or --workspace DIR "
                                   "(no .dpc/state.db in the current directory)")
        workspace = Path(".")
    graph = load_graph(pipelines, workspace, day, store)
    graph = graph.restrict(upstream=upstream, downstream=downstream)
    if fmt == "json":
        text = json.dumps(graph.to_dict(), indent=2)
    elif fmt == "html":
        from dpc_core.ui.page import render_html

        text = render_html(graph)
    else:
        text = render(graph, fmt)
    if fmt == "text" and store is None and workspace is not None:
        text += _backfills_text(workspace)
    if output is None:
        click.echo(text)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as exc:
        from dpc_core.errors import DpcError

        raise DpcError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {output} ({len(graph.nodes)} pipeline(s))", err=True)


def _backfills_text(workspace: Path) -> str:
    """The workspace's backfills and each date's state (``dpc backfill``), for the text
    view; empty when there are none."""
    import sqlite3

    from dpc_core.local.backfill import list_backfills

    path = state_file(workspace)
    if not path.is_file():
        return ""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        found = list_backfills(conn)
    except sqlite3.Error:
        return ""
    finally:
        conn.close()
    lines = [f"backfill {b.id}: {b.line()}\n  "
             + "  ".join(f"{d.date} {d.rollup}" for d in b.dates) for b in found]
    return "".join("\n" + line for line in lines)
