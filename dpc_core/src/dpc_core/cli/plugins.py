"""``dpc plugins list``: what each installed plugin contributes, and what is wrong.

It always runs, whatever the plugins do: a broken or conflicting plugin is shown with
its fix instead of stopping the command (that is how users find out what to do).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from dpc_core.cli.options import FormatChoice

if TYPE_CHECKING:
    from dpc_core.plugins import Registry


def plugin_rows(reg: Registry) -> list[dict[str, str]]:
    """One row per (name, plugin): kind, distribution, version and status.

    Status is ``ok``, ``conflict`` (claimed by several plugins: usable by none),
    ``ignored`` (a core name the plugin also claims) or ``skipped`` (the plugin did
    not load; ``-`` name when what it provides is unknown).
    """
    rows: list[dict[str, str]] = []

    def row(name: str, kind: str, plugin: str, dist: str, version: str, status: str) -> None:
        rows.append({"name": name, "kind": kind, "plugin": plugin, "distribution": dist,
                     "version": version, "status": status})

    for info in reg.plugins:
        for kind, name in info.provides:
            row(name, kind, info.name, info.dist, info.version, "ok")
    for c in reg.conflicts:
        for who in c.claimants:
            if who != c.kept:
                row(c.name, c.kind, who.plugin, who.dist, who.version,
                    "conflict" if c.kept is None else "ignored")
    for f in reg.failures:
        for kind, name in f.provides or (("-", "-"),):
            row(name, kind, f.name, f.dist, f.version or "?", "skipped")
    return rows


def _registry_json(reg: Registry) -> dict[str, Any]:
    return {
        "plugins": plugin_rows(reg),
        "problems": reg.problems(),
        "conflicts": [{"kind": c.kind, "name": c.name, "message": c.message(),
                       "claimants": [vars(w) for w in c.claimants],
                       "kept": c.kept.dist if c.kept else None} for c in reg.conflicts],
        "failures": [{"name": f.name, "distribution": f.dist, "version": f.version,
                      "reason": f.reason, "provides": [list(p) for p in f.provides]}
                     for f in reg.failures],
        "not_allowed": reg.not_allowed,
    }


@click.group("plugins")
def plugins() -> None:
    """Inspect installed plugins."""


@plugins.command("list")
@click.option("--format", "fmt", type=FormatChoice(["text", "json"]), default="text",
              show_default=True)
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Same as --format json.")
def plugins_list(fmt: str, as_json: bool) -> None:
    """Name, kind, distribution, version and status of every plugin contribution.

    Plugins that were skipped or that claim the same name are listed with the fix.
    """
    from dpc_core.plugins import ALLOW_ENV, get_registry

    reg = get_registry()
    if as_json or fmt == "json":
        click.echo(json.dumps(_registry_json(reg), indent=2))
        return
    rows = plugin_rows(reg)
    # The status column appears when something is wrong, so the usual table stays the
    # four columns scripts already read.
    healthy = all(r["status"] == "ok" for r in rows)
    cols = ("name", "kind", "distribution", "version") + (() if healthy else ("status",))
    table = [tuple(c.upper() for c in cols)] + [tuple(r[c] for c in cols) for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(len(cols))]
    for t in table:
        click.echo("  ".join(c.ljust(widths[i]) for i, c in enumerate(t)).rstrip())
    if reg.not_allowed:
        click.echo(f"not loaded ({ALLOW_ENV} allow-list): {', '.join(reg.not_allowed)}",
                   err=True)
    problems = reg.problems()
    if problems:
        click.echo(f"\n{len(problems)} problem(s):")
        for p in problems:
            click.echo(f"  {p}")
