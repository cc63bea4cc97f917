"""``dpc local grid``: logical dates x pipelines, the latest run's status in each cell."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from dpc_core.cli.options import WORKSPACE, output_format
from dpc_core.grid import MAX_DAYS, STATUSES


def use_colour() -> bool:
    """Colour when standard output is a terminal and NO_COLOR is unset (no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


@click.command("grid")
@WORKSPACE
@click.option("--from", "first", default=None, metavar="YYYY-MM-DD", help="First logical date.")
@click.option("--to", "last", default=None, metavar="YYYY-MM-DD",
              help="Last logical date (default: today, UTC).")
@click.option("--days", type=click.IntRange(1, MAX_DAYS), default=14, show_default=True,
              help="How many dates, when --from and --to are not both given.")
@click.option("--account", default=None, help="Only the pipelines of this account.")
@click.option("--owner", default=None, help="Only the pipelines of this owner (team).")
@click.option("--status", type=click.Choice(STATUSES, case_sensitive=False), default=None,
              help="Only pipelines with a run of this status in the range.")
@click.option("--aws", "on_aws", is_flag=True,
              help="Read the central account's registry and run log (DynamoDB) instead.")
@click.option("--central-tables", metavar="REGISTRY,RUNS,WINDOWS", default=None,
              help="With --aws: the table names, instead of the dpc-central stack's outputs.")
@click.option("--region", default=None, help="With --aws: the central account's region.")
@output_format()
def grid(workspace: Path, first: str | None, last: str | None, days: int,
         account: str | None, owner: str | None, status: str | None, on_aws: bool,
         central_tables: str | None, region: str | None, fmt: str) -> None:
    """Runs by logical date: a row per pipeline (grouped by account), a column per date,
    the latest run's status in each cell (json: with its run id and ARN)."""
    from dpc_core.grid import date_range

    dates = date_range(first, last, days)
    filters: dict[str, Any] = {"account": account, "owner": owner,
                               "status": status.upper() if status else None}
    if on_aws:
        from dpc_core.address_secrets import public_spec
        from dpc_core.cli.lineage import central_store
        from dpc_core.grid import build, central_cells

        store = central_store(central_tables, region)
        try:
            specs = [public_spec(s) for s in store.pipelines()]
            found = build(dates, specs, central_cells(store, dates, specs), **filters)
        finally:
            store.close()
    else:
        from dpc_core.local.grid import local_grid
        from dpc_core.local.runtime import Workspace
        from dpc_core.local.state import guarded

        ws = Workspace(workspace.resolve())
        if not ws.db_path.exists():
            from dpc_core.errors import DpcError

            raise DpcError(f"no state yet in {ws.root}: run `dpc local up` once")
        store = ws.connect()
        try:
            with guarded(ws.db_path):
                found = local_grid(store, dates, **filters)
        finally:
            store.close()
    if fmt == "json":
        from dpc_core.cli.output import dumps

        click.echo(dumps(found.to_dict()))
        return
    click.echo(found.text(colour=use_colour()))
