"""Entry point of ``dpc``: a click group whose commands load lazily.

``dpc --help`` must not import pydantic-heavy modules, aws_cdk, boto3, pyspark or
slack_sdk, so each command lives in its own module, imported on use, and its one-line
help is written in a table: core's here (:data:`COMMANDS`), an installed package's in
the table its ``dpc.commands`` entry point names (dpc-central's ``synth``, ``deploy``,
``setup-*``, ``doctor``)::

    [project.entry-points."dpc.commands"]
    central = "dpc_central.commands:COMMANDS"

A table is a module-level ``dict`` of name -> ("module:attribute", one-line help) in a
module that imports nothing heavy. Core's own names win over a package's.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from dpc_core import __version__

#: Core's commands: name -> ("module:attribute", one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("dpc_core.cli.project:validate", "Validate every pipeline.yaml below PATHs."),
    "schema": ("dpc_core.cli.project:schema", "Print the JSON Schema of pipeline.yaml."),
    "create-project": ("dpc_core.cli.project:create_project", "Scaffold a new pipeline project."),
    "create-plugin": ("dpc_core.cli.project:create_plugin", "Scaffold a plugin package."),
    "plugins": ("dpc_core.cli.plugins:plugins", "Inspect installed plugins (and what is wrong)."),
    "simulate": ("dpc_core.cli.simulate:simulate", "Run the trigger engine over an event file."),
    "local": ("dpc_core.cli.local:local", "The embedded local runtime (no AWS needed)."),
    "run": ("dpc_core.cli.local:run", "Start a pipeline by hand (local workspace)."),
    "start": ("dpc_core.cli.local:run", "Alias of run."),
    "runs": ("dpc_core.cli.local:runs", "List runs (local workspace)."),
    "status": ("dpc_core.cli.local:status", "Latest status and what children wait on."),
    "rerun": ("dpc_core.cli.local:rerun", "Rerun a pipeline for a date, optionally downstream."),
    "redrive": ("dpc_core.cli.local:redrive",
                "Run a failed run again from its failed step (same run; --aws: redrive)."),
    "lineage": ("dpc_core.cli.lineage:lineage", "Render the cross-account dependency graph."),
    "ui": ("dpc_core.cli.ui:ui", "Serve the web UI over a local workspace (live)."),
    "backfill": ("dpc_core.cli.backfill:backfill",
                 "Run a pipeline for a range of dates, with its downstream; resumable."),
}


#: The entry-point group through which installed packages add commands.
COMMANDS_GROUP = "dpc.commands"


def _entry_points(group: str) -> list[str]:
    """The values (``module:attribute``) of ``group``'s entry points, one per
    distribution, read from the ``*.dist-info/entry_points.txt`` files on ``sys.path``:
    importing ``importlib.metadata`` alone costs more than ``dpc --help`` may."""
    import os

    header = f"[{group}]"
    seen: set[str] = set()
    values: list[str] = []
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for name in names:
            if not name.endswith(".dist-info"):
                continue
            dist = name.split("-")[0].lower().replace("_", "-")
            try:
                with open(os.path.join(entry or ".", name, "entry_points.txt"),
                          encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                continue
            if header not in text or dist in seen:
                continue
            seen.add(dist)
            section = text.split(header, 1)[1].split("\n[", 1)[0]
            for line in section.splitlines():
                _, eq, value = line.partition("=")
                if eq and value.strip():
                    values.append(value.strip())
    return values


_all: dict[str, tuple[str, str]] | None = None


def all_commands() -> dict[str, tuple[str, str]]:
    """Core's commands and those of every installed ``dpc.commands`` table (read once);
    a table that cannot be imported or is malformed adds nothing."""
    global _all
    if _all is None:
        found: dict[str, tuple[str, str]] = {}
        for value in _entry_points(COMMANDS_GROUP):
            module, _, attr = value.partition(":")
            try:
                table = getattr(importlib.import_module(module), attr or "COMMANDS")
                found.update({str(k): (str(v[0]), str(v[1])) for k, v in table.items()})
            except Exception:  # a broken package must not take `dpc` down
                continue
        _all = {**found, **COMMANDS}
    return _all


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(all_commands())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name) or all_commands().get(cmd_name)
        if target is None:
            return None
        module, _, attr = target[0].partition(":")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            why = str(exc)

            @click.command(cmd_name, help=target[1])
            def missing() -> None:
                raise click.ClickException(f"`dpc {cmd_name}` is not available: {why}")

            return missing
        cmd: click.Command = getattr(mod, attr)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in sorted(all_commands().items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dpc")
def cli() -> None:
    """dpc: cross-account, event-driven data pipelines.

    Describe a pipeline in pipeline.yaml, validate it, simulate triggers, run it
    locally with no AWS account, or deploy it to AWS.
    """


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; user errors print one clear message and exit 2, no traceback."""
    from dpc_core.errors import DpcError, ValidationFailed

    try:
        if argv is None:  # this process's own command line: `dpc local up` may re-execute it
            from dpc_core.local import secret_handoff

            secret_handoff.allow_reexec()
            secret_handoff.receive()  # first thing: secrets handed over by a re-execution
        return cli.main(args=argv, prog_name="dpc", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code in (1, 2) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except DpcError as exc:
        # Problems stay bare `FILE:LINE:COL: field: message` lines so editors can jump to them.
        plain = isinstance(exc, ValidationFailed) or "\n" in str(exc)
        click.echo(str(exc) if plain else f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
