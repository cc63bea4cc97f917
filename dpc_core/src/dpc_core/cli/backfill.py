"""``dpc backfill``: run a pipeline for a range of logical dates, with its downstream."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dpc_core.cli.options import WORKSPACE, output_format

if TYPE_CHECKING:
    from dpc_core.local.runtime import Workspace
    from dpc_core.model import Pipeline


@click.command("backfill")
@WORKSPACE
@click.option("--aws", "on_aws", is_flag=True,
              help="Start the runs on AWS (the account of your credentials).")
@click.option("--region", default=None, help="AWS region (with --aws).")
@click.argument("pipeline")
@click.option("--from", "first", required=True, help="First logical date, YYYY-MM-DD.")
@click.option("--to", "last", required=True, help="Last logical date, YYYY-MM-DD (included).")
@click.option("--downstream", is_flag=True,
              help="Re-run the children of each date's run too (as `dpc rerun --downstream`).")
@click.option("--max-parallel", type=click.IntRange(1, 1000), default=4, show_default=True,
              help="At most this many of the backfill's runs at once.")
@click.option("--dry-run", is_flag=True, help="Print the plan of runs per date and account.")
@output_format()
def backfill(workspace: Path, on_aws: bool, region: str | None, pipeline: str, first: str,
             last: str, downstream: bool, max_parallel: int, dry_run: bool, fmt: str) -> None:
    """Run PIPELINE once per logical date from --from to --to; children follow per date.

    Resumable: the same command again starts only the dates not done (a date whose run
    succeeded is skipped, one under way is left alone, one that failed is tried again).
    """
    from dpc_core.local.backfill import dates

    days = dates(first, last)
    if on_aws:
        if fmt == "json":
            raise click.UsageError("--format json is for a local workspace; with --aws the "
                                   "runs started are printed as text")
        from dpc_core.aws_backfill import run_backfill

        for line in run_backfill(pipeline, days, region=region, downstream=downstream,
                                 max_parallel=max_parallel, dry_run=dry_run):
            click.echo(line)
        return
    _local(workspace, pipeline, days, downstream, max_parallel, dry_run, fmt)


def _downstream_of(pipelines: Mapping[str, Pipeline], key: str) -> list[str]:
    """Pipelines below ``key`` in the workspace, nearest first (a pipeline once)."""
    children: dict[str, list[str]] = {}
    for k, p in pipelines.items():
        for account, name in p.parents():
            children.setdefault(f"{account}/{name}", []).append(k)
    out: list[str] = []
    frontier = [key]
    while frontier:
        nxt = []
        for parent in frontier:
            for child in sorted(children.get(parent, ())):
                if child not in out and child != key:
                    out.append(child)
                    nxt.append(child)
        frontier = nxt
    return out


def _local(workspace: Path, pipeline: str, days: list[str], downstream: bool,
           max_parallel: int, dry_run: bool, fmt: str = "text") -> None:
    from dpc_core.local import backfill as bf
    from dpc_core.local.runtime import Workspace
    from dpc_core.local.state import guarded

    ws = Workspace(workspace.resolve())
    key = ws.resolve(ws.keys(), pipeline)
    if dry_run:
        pipelines = ws.load()
        below = _downstream_of(pipelines, key)
        account, name = key.split("/", 1)
        done = _succeeded(ws, key, days)
        if fmt == "json":
            import json

            click.echo(json.dumps({"dryRun": True, "pipeline": key, "downstream": below,
                                   "maxParallel": max_parallel, "dates": [
                                       {"date": d, "skipped": d in done, "runId": done.get(d)}
                                       for d in days]}, indent=2))
            return
        click.echo(f"plan: {name} ({account}) for {len(days)} date(s) {days[0]}..{days[-1]}, at "
                   f"most {max_parallel} at once" + (", children re-run (--downstream)"
                                                     if downstream else ""))
        for day in days:
            if day in done:
                click.echo(f"  {day}  {name} ({account}): already SUCCEEDED ({done[day]}), "
                           "skipped")
                continue
            click.echo(f"  {day}  run  {name} ({account})")
            for child in below:
                c_account, c_name = child.split("/", 1)
                click.echo(f"  {day}  then {c_name} ({c_account}) when its condition holds for "
                           f"{day}")
        click.echo("nothing was started (--dry-run)")
        return
    store = ws.connect()
    with guarded(ws.db_path), store.transaction():
        found = bf.record(store.conn, key, days, downstream, max_parallel)
        waiting = bf.interrupted(store.conn, key)
    store.close()
    running = ws.poke()
    if fmt == "json":
        import json

        click.echo(json.dumps({"id": found.id, "pipeline": found.pipeline,
                               "from": found.date_from, "to": found.date_to,
                               "downstream": found.downstream,
                               "maxParallel": found.max_parallel, "runtimeUp": running,
                               "dates": [{"date": d.date, "status": d.status,
                                          "runId": d.run_id, "attempt": d.attempt}
                                         for d in found.dates]}, indent=2))
        return
    click.echo(f"backfill {found.id}: {found.line()}")
    for d in found.dates:
        what = {"HELD": "to run" + ("" if running else " when `dpc local up` starts")}.get(
            d.status, d.status)
        click.echo(f"  {d.date}  {what}" + (f"  ({d.run_id})" if d.run_id else "")
                   + (f"  attempt {d.attempt}" if d.attempt > 1 else ""))
    if waiting:
        click.echo(f"{waiting} run(s) of its dates (children included) were interrupted when the "
                   "runtime stopped: they run again when `dpc local up` starts")
    click.echo("the same command again starts only what is not done; `dpc local status` shows "
               "progress")


def _succeeded(ws: Workspace, key: str, days: list[str]) -> dict[str, str]:
    """Dates of ``days`` that already have a succeeded run of ``key`` (date -> run id)."""
    if not ws.db_path.exists():
        return {}
    store = ws.connect()
    try:
        rows = store.conn.execute(
            "SELECT logical_date, run_id FROM lr_runs WHERE pipeline = ? AND status = "
            "'SUCCEEDED'", (key,)).fetchall()
    finally:
        store.close()
    wanted = set(days)
    return {d: r for d, r in rows if d in wanted}
