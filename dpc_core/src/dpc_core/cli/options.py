"""Options every command spells the same way (``-w/--workspace``, ``--format``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

#: The workspace: a directory of projects (pipeline.yaml files), state in WORKSPACE/.dpc.
#: It must exist: no command creates one, and `-w /typo` must not start an empty workspace
#: (with its own .dpc/state.db) beside the real one.
WORKSPACE = click.option(
    "--workspace", "-w", type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path("."),
    show_default=True, envvar="DPC_WORKSPACE",
    help="Directory of projects (pipeline.yaml files); state in WORKSPACE/.dpc.")


F = TypeVar("F", bound=Callable[..., Any])


def output_format(*choices: str, default: str = "table") -> Callable[[F], F]:
    """``--format``: ``default`` (human output), ``choices``, and always ``json`` (what
    scripts read)."""
    names = list(dict.fromkeys([default, *choices, "json"]))
    return click.option("--format", "fmt", type=click.Choice(names),
                        default=default, show_default=True,
                        help="Output format; json is for scripts.")
