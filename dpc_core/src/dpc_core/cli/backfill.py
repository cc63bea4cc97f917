"""``dpc backfill``: run a pipeline for a range of logical dates, with its downstream;
``dpc backfill list`` and ``dpc backfill cancel ID`` manage the backfills recorded."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dpc_core.cli.options import WORKSPACE, output_format

if TYPE_CHECKING:
    from dpc_core.local.runtime import Workspace
    from dpc_core.model import Pipeline


class _BackfillGroup(click.Group):
    """``dpc backfill PIPELINE ...`` (``start``, the default), ``list``, ``cancel``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


@click.group("backfill", cls=_BackfillGroup)
def backfill() -> None:
    """Run a pipeline for a range of logical dates (`dpc backfill PIPELINE --from D1 --to
    D2`, the same as `dpc backfill start ...`); list and cancel backfills."""


@backfill.command("start")
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
def backfill_start(workspace: Path, on_aws: bool, region: str | None, pipeline: str, first: str,
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


@backfill.command("list")
@WORKSPACE
@output_format()
def backfill_list(workspace: Path, fmt: str) -> None:
    """Every backfill of the workspace: range, downstream, created, each date rolled up
    with its children (a date whose child failed is FAILED), and the counts."""
    from dpc_core.local import backfill as bf
    from dpc_core.local.runtime import Workspace
    from dpc_core.local.state import guarded

    ws = Workspace(workspace.resolve())
    found: list[bf.Backfill] = []
    if ws.db_path.exists():
        store = ws.connect()
        try:
            with guarded(ws.db_path):
                found = bf.list_backfills(store.conn)
        finally:
            store.close()
    if fmt == "json":
        from dpc_core.cli.output import dumps

        click.echo(dumps({"backfills": [b.to_dict() for b in found]}))
        return
    if not found:
        click.echo("no backfills; `dpc backfill PIPELINE --from D1 --to D2` starts one")
        return
    for b in found:
        counts = ", ".join(f"{n} {s}" for s, n in b.rollup_counts().items())
        click.echo(f"backfill {b.id}: {b.pipeline} {b.date_from}..{b.date_to}"
                   + (" --downstream" if b.downstream else "")
                   + f", created {bf.iso_ms(b.created_ms)}: {counts}")
        if b.cancelled is not None:
            by, reason, at = b.cancelled
            click.echo(f"  CANCELLED by {by} at {bf.iso_ms(at)}"
                       + (f": {reason}" if reason else ""))
        below = b.downstream_pipelines()
        if below:
            click.echo("  downstream: " + ", ".join(
                f"{k.split('/', 1)[1]} ({k.split('/', 1)[0]})" for k in below))
        for d in b.dates:
            own = "" if d.status in (d.rollup, "HELD") else f"  (its run {d.status})"
            click.echo(f"  {d.date}  {d.rollup:<9}" + (f"  {d.run_id}" if d.run_id else "")
                       + own + (f"  {d.why}" if d.why else ""))


@backfill.command("cancel")
@WORKSPACE
@click.argument("ident", metavar="ID")
@click.option("--reason", default="", help="Why (recorded with who cancelled).")
@output_format()
def backfill_cancel(workspace: Path, ident: str, reason: str, fmt: str) -> None:
    """Cancel backfill ID: its dates not yet started are dropped, its runs still pending
    or running (children included) are cancelled as `dpc local cancel` does; recorded
    with who cancelled it and why. The same `dpc backfill` command again resumes it."""
    import time

    from dpc_core.local import backfill as bf
    from dpc_core.local import operator
    from dpc_core.local.cancel import WAIT_S, cancel_run
    from dpc_core.local.runtime import Workspace
    from dpc_core.local.state import TERMINAL, guarded

    ws = Workspace(workspace.resolve())
    if not ws.db_path.exists():
        from dpc_core.errors import DpcError

        raise DpcError(f"no backfill {ident!r}: no state yet in {ws.root}")
    who = operator.operator_name()
    store = ws.connect()
    try:
        with guarded(ws.db_path), store.transaction():
            found = bf.find(store.conn, ident)
            dropped, arns = bf.cancel(store.conn, found.id, who, reason)
        why = f"backfill {found.id} cancelled" + (f": {reason}" if reason else "")
        if arns and operator.runtime_running(ws.state_dir):
            ws.poke()
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline and any(
                    store.conn.execute("SELECT status FROM lr_runs WHERE arn = ?",
                                       (a,)).fetchone()[0] not in TERMINAL for a in arns):
                time.sleep(0.1)
        else:
            for arn in arns:
                cancel_run(ws.root, arn, None, why, by=who)
        after = bf.get(store.conn, found.id)
        assert after is not None
    finally:
        store.close()
    if fmt == "json":
        from dpc_core.cli.output import dumps

        click.echo(dumps({**after.to_dict(), "dropped": dropped, "aborted": len(arns)}))
        return
    click.echo(f"backfill {after.id} ({after.pipeline} {after.date_from}..{after.date_to}) "
               f"cancelled by {who}" + (f" ({reason})" if reason else "")
               + f": {dropped} date(s) not started dropped, {len(arns)} run(s) cancelled")
    click.echo("the same `dpc backfill` command again resumes it")
