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


#: Human output is ``text`` everywhere; ``table`` (what some commands once took) is still
#: accepted and means the same.
ALIASES = {"table": "text"}


class FormatChoice(click.Choice):  # type: ignore[type-arg]
    """A ``--format`` choice that also accepts the aliases (``table`` for ``text``) and
    hands the command the canonical name; ``--help`` lists the canonical names only."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.lower() in ALIASES \
                and ALIASES[value.lower()] in self.choices:
            value = ALIASES[value.lower()]
        return super().convert(value, param, ctx)


def output_format(*choices: str, default: str = "text") -> Callable[[F], F]:
    """``--format``: ``default`` (human output, ``text``; ``table`` is accepted for it),
    ``choices``, and always ``json`` (what scripts read)."""
    default = ALIASES.get(default, default)
    names = list(dict.fromkeys([default, *choices, "json"]))
    return click.option("--format", "fmt", type=FormatChoice(names),
                        default=default, show_default=True,
                        help="Output format; json is for scripts (table: same as text).")
