"""``dpc simulate``."""

from __future__ import annotations

from pathlib import Path

import click

from dpc_core.cli.options import WORKSPACE, FormatChoice


@click.command("simulate")
@click.option("--pipelines", "pipelines", multiple=True,
              type=click.Path(path_type=Path),
              help="Directory searched for pipeline.yaml files (repeatable; default: the "
                   "workspace).")
@WORKSPACE
@click.option("--events", required=True, type=click.Path(path_type=Path),
              help="JSONL file, one EventBridge event per line, in delivery order.")
@click.option("--format", "fmt", type=FormatChoice(["text", "json"]), default="text",
              show_default=True)
@click.option("--db", type=click.Path(path_type=Path), default=None,
              help="Keep the engine's state in this SQLite file (default: in memory).")
def simulate(pipelines: tuple[Path, ...], workspace: Path, events: Path, fmt: str,
             db: Path | None) -> None:
    """Run the trigger engine offline: which pipelines would be triggered, when, and why.

    A line that is not a JSON object (or not UTF-8) stops it before any decision: exit 2
    naming FILE:LINE. An event with bad fields is rejected and reported with FILE:LINE, the
    other events are decided as usual, and the command then exits 2 (bad input).
    """
    from dpc_core.simulate import decisions_json, format_table
    from dpc_core.simulate import simulate as run
    from dpc_core.stores.sqlite import SqliteStore

    store = SqliteStore(db, exclusive=True) if db else None
    pipelines = pipelines or (workspace,)
    result = run(list(pipelines), events, store)
    if fmt == "json":
        for line in decisions_json(result.decisions):
            click.echo(line)
    else:
        click.echo(format_table(result.decisions))
    for report in result.reports:
        click.echo(report, err=True)
    counts = ", ".join(f"{v} {k}" for k, v in sorted(result.counts.items()))
    click.echo(f"{len(result.decisions)} trigger decision(s); events: {counts or 'none'}", err=True)
    if result.bad_input:
        click.echo(f"error: {result.bad_input} event(s) of {events} rejected as bad input "
                   "(see the lines above); the other events were processed", err=True)
        raise SystemExit(2)
