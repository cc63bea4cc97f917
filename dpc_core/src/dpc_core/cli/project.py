"""Project commands: validate, schema, create-project, create-plugin, plugins."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dpc_core.cli.options import WORKSPACE


@click.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@WORKSPACE
def validate(paths: tuple[Path, ...], workspace: Path) -> None:
    """Validate every pipeline.yaml at or below PATHS (default: the workspace, -w)."""
    from dpc_core.deployability import aws_notes, aws_problems
    from dpc_core.errors import Problem
    from dpc_core.loader import load_pipelines
    from dpc_core.plugins import get_registry

    def warn(problem: Problem) -> None:
        # A parent defined in another repository is normal: say so, still exit 0.
        click.echo(f"warning: {problem}", err=True)

    pipelines = load_pipelines(list(paths) or [workspace], warn=warn)
    registry = get_registry()
    for p in pipelines:
        steps = ", ".join(f"{s.name} ({s.type})" for s in p.steps)
        click.echo(f"ok  {p.source}: {p.name} [{p.account or 'account from credentials'}] {steps}")
        # Valid but not deployable (e.g. a local-only step type): say so before a slow
        # `dpc synth` does; still exit 0, the pipeline runs on the local runtime.
        for problem in aws_problems(p, registry):
            click.echo(f"warning: {p.source}: not deployable to AWS: {problem}", err=True)
        for note in aws_notes(p, registry):
            click.echo(f"note: {p.source}: {note}", err=True)
    click.echo(f"{len(pipelines)} pipeline(s) valid")


@click.command("schema")
@click.option("--indent", default=2, show_default=True)
def schema(indent: int) -> None:
    """Print the JSON Schema of pipeline.yaml (with the installed plugins' fields)."""
    from dpc_core.schema import pipeline_json_schema

    click.echo(json.dumps(pipeline_json_schema(), indent=indent))


@click.command("create-project")
@click.option("-n", "--name", required=True, help="Pipeline name (letters, digits, - and _).")
@click.option("--account", default="123456789012", show_default=True,
              help="AWS account the pipeline lives in (simulated locally).")
@click.option("--dir", "parent", type=click.Path(path_type=Path), default=Path("."),
              help="Where to create the project directory.")
def create_project(name: str, account: str, parent: Path) -> None:
    """Scaffold a project that validates immediately."""
    from dpc_core.scaffold import create_project as make

    path = make(parent, name, account)
    click.echo(f"created {path}\nnext: dpc validate {path}")


@click.command("create-plugin")
@click.option("--kind", type=click.Choice(["step", "notifier", "compute"]), required=True)
@click.option("-n", "--name", required=True, help="The step type, channel or compute name.")
@click.option("--dir", "parent", type=click.Path(path_type=Path), default=Path("."))
def create_plugin(kind: str, name: str, parent: Path) -> None:
    """Scaffold a separately installable plugin package (entry point, config model, tests)."""
    from dpc_core.scaffold import create_plugin as make

    path = make(parent, kind, name)
    click.echo(f"created {path}\nnext: pip install -e {path} && dpc plugins list")
