"""``dpc local …`` and the run commands (run/start, runs, status, rerun) on a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dpc_core.cli.options import WORKSPACE, output_format
from dpc_core.cli.ui import HOST as UI_HOST
from dpc_core.cli.ui import PORT as UI_PORT
from dpc_core.local.manual import logical_date as _date
from dpc_core.local.manual import queue_run

if TYPE_CHECKING:
    from dpc_core.stores.sqlite import SqliteStore


AWS = click.option("--aws", "on_aws", is_flag=True,
                   help="On AWS, in the account of your credentials, instead of a workspace.")
REGION = click.option("--region", default=None, help="With --aws: the region.")


@click.group("local")
def local() -> None:
    """The embedded runtime: run pipelines on this machine, accounts simulated."""


@local.command("up")
@WORKSPACE
@click.option("--until-idle", is_flag=True, help="Exit when no run is queued or running.")
@click.option("--no-schedule", is_flag=True, help="Do not fire schedules.")
@click.option("--parallel", default=8, show_default=True, help="Runs executed at once.")
@click.option("--ui", "with_ui", is_flag=True, help="Also serve the web UI (as `dpc ui`).")
@UI_HOST
@UI_PORT
def up(workspace: Path, until_idle: bool, no_schedule: bool, parallel: int, with_ui: bool,
       host: str, port: int) -> None:
    """Run the runtime in the foreground (Ctrl-C or SIGTERM stops cleanly).

    The runtime follows the workspace: adding, changing or removing a pipeline.yaml takes
    effect at once. With --until-idle it exits 1 when a run it ran did not succeed.
    """
    import faulthandler
    import signal
    from types import FrameType

    from dpc_core.local import secret_handoff
    from dpc_core.local.runtime import Runtime
    from dpc_core.notify import declared_secret_names
    from dpc_core.plugins import get_registry

    # No notifier secret in this process's environment, which steps could read through
    # /proc/$PPID/environ: when one is set, this re-executes the process without it
    # (the values come through a pipe), and it cannot be read or traced by another
    # process of the user (see local/secret_handoff.py).
    env = secret_handoff.runtime_env(declared_secret_names(get_registry()))
    secret_handoff.forbid_inspection()

    # `kill -USR1 PID` prints every thread's stack: how to see what a stuck runtime does.
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    def again(signum: int, frame: FrameType | None) -> None:
        click.echo("already stopping")

    stopped_by = [signal.SIGINT]  # exit status 128 + the signal, as a shell reports it

    def stop(signum: int, frame: FrameType | None) -> None:
        stopped_by[0] = signal.Signals(signum)
        # SIGTERM (systemd, docker stop) stops as cleanly as Ctrl-C; a second signal does
        # not interrupt the clean stop under way. A handler, not SIG_IGN: an ignored signal
        # would be inherited by steps started meanwhile, and they could not be terminated.
        signal.signal(signal.SIGINT, again)
        signal.signal(signal.SIGTERM, again)
        raise KeyboardInterrupt

    # Installed whatever was inherited: a shell starts background jobs with SIGINT ignored,
    # and Python then leaves it ignored.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    listening = None
    if with_ui:  # a port in use or an address not of this machine: said before starting
        from dpc_core.cli.ui import listen

        listening = listen(host, port, "--ui")
    rt = Runtime(workspace, schedules=not no_schedule, max_parallel=parallel,
                 out=lambda s: click.echo(s), env=env)
    rt.open()
    try:
        rt.start()
        click.echo(f"dpc local runtime ready in {rt.ready_at or 0:.2f}s: {len(rt.pipelines)} "
                   f"pipeline(s) in {rt.ws.root}" + ("" if until_idle else "; Ctrl-C stops"))
        if listening is not None:
            from dpc_core.cli.ui import serve_in_background

            serve_in_background(workspace, host, *listening)
        from dpc_core.local.state import guarded

        with guarded(rt.ws.db_path):  # a damaged page met while serving: one line, exit 2
            rt.serve(until_idle=until_idle)  # stops cleanly on a stop signal
    except KeyboardInterrupt:
        # A stop signal before serve() took over (while runs were being started, or right
        # after the ready line): as clean a stop. Without it the process just exited, and
        # what the start-up left to its threads (remembering the files it read) was lost.
        click.echo("stopping: running steps are terminated, their runs end ABORTED")
        rt.shutdown()
        raise click.exceptions.Exit(128 + stopped_by[0]) from None
    if rt.interrupted:  # Ctrl-C: 130, SIGTERM: 143, as for any interrupted command
        raise click.exceptions.Exit(128 + stopped_by[0])
    if until_idle:
        failed = rt.unsuccessful()
        if failed:
            click.echo(f"{len(failed)} run(s) did not succeed:", err=True)
            for r in failed:
                click.echo(f"  {r.name}@{r.account} {r.run_id} {r.status}"
                           + (f": {r.error}" if r.error else ""), err=True)
            raise click.exceptions.Exit(1)


def _queue(workspace: Path, pipeline: str, date: str | None, reason: str,
           downstream: bool = False) -> None:
    click.echo(queue_run(workspace, pipeline, date, reason, downstream))


@local.command("cancel")
@WORKSPACE
@click.argument("run")
@click.option("--date", "date", default=None,
              help="With a pipeline name: its latest run for this logical date.")
@click.option("--reason", default="", help="Why (recorded with who cancelled).")
@output_format(default="text")
def cancel(workspace: Path, run: str, date: str | None, reason: str, fmt: str) -> None:
    """Cancel RUN (run id, ARN, unique prefix, or a pipeline name for its latest run):
    its step's process group is terminated and the run ends ABORTED, recorded with who
    cancelled it and why. Not a failure: no BLOCKED notice goes downstream."""
    from dpc_core.local.cancel import cancel_run

    _echo_outcome(cancel_run(workspace.resolve(), run, _date(date) if date else None,
                             reason), fmt)


@local.command("redrive")
@WORKSPACE
@click.argument("run")
@click.option("--date", "date", default=None,
              help="With a pipeline name: its latest run for this logical date.")
@output_format(default="text")
def redrive_cmd(workspace: Path, run: str, date: str | None, fmt: str) -> None:
    """Redrive RUN (run id, ARN, unique prefix, or a pipeline name for its latest run),
    which ended FAILED, TIMED_OUT or ABORTED: the same run runs again from its first step
    that did not succeed, its redrive count + 1, as Step Functions' redrive does."""
    from dpc_core.local.redrive import redrive_run

    _echo_outcome(redrive_run(workspace.resolve(), run, _date(date) if date else None), fmt)


def _echo_outcome(outcome: dict[str, Any], fmt: str) -> None:
    """An operator verb's outcome: the whole object with --format json, else its message."""
    if fmt == "json":
        from dpc_core.cli.output import dumps

        click.echo(dumps(outcome))
        return
    click.echo(outcome["message"])


@local.command("pause")
@WORKSPACE
@click.argument("pipeline")
@click.option("--reason", required=True, help="Why (shown with who paused it).")
def pause(workspace: Path, pipeline: str, reason: str) -> None:
    """Pause PIPELINE: its schedule and triggers are held (not lost) until `dpc local
    resume`; a run already going goes on; `dpc local start` still starts it by hand."""
    from dpc_core.local import operator
    from dpc_core.local.runtime import Workspace
    from dpc_core.local.state import guarded

    ws = Workspace(workspace.resolve())
    key = ws.resolve(ws.keys(), pipeline)
    store = ws.connect()
    who = operator.operator_name()
    with guarded(ws.db_path), store.transaction():
        new = operator.pause(store.conn, key, who, reason)
        now = operator.paused_pipelines(store.conn)[key]
    store.close()
    click.echo(f"{key} {'paused' if new else 'was already paused'}: {now.text()}")


@local.command("resume")
@WORKSPACE
@click.argument("pipeline")
def resume(workspace: Path, pipeline: str) -> None:
    """Resume PIPELINE: what it held while paused is released, each held trigger decided
    again under its `rerun` policy, each held schedule firing started once."""
    from dpc_core.local import operator
    from dpc_core.local.runtime import Workspace
    from dpc_core.local.state import guarded

    ws = Workspace(workspace.resolve())
    key = ws.resolve(ws.keys(), pipeline)
    store = ws.connect()
    with guarded(ws.db_path), store.transaction():
        held = operator.paused_pipelines(store.conn).get(key)
        done = operator.resume(store.conn, key)
    store.close()
    if not done or held is None:
        click.echo(f"{key} is not paused")
        return
    running = ws.poke()
    where = "released by the running runtime" if running else \
        "released when `dpc local up` starts"
    click.echo(f"{key} resumed; {held.held} held trigger(s) or firing(s) {where}")


@local.command("start")
@WORKSPACE
@click.argument("pipeline")
@click.option("--date", "date", default=None, help="Logical date (default: today, UTC).")
def start(workspace: Path, pipeline: str, date: str | None) -> None:
    """Start PIPELINE by hand for a logical date."""
    _queue(workspace, pipeline, date, "manual")


@local.command("runs")
@WORKSPACE
@click.option("--pipeline", default=None)
@click.option("--date", default=None)
@output_format()
def local_runs(workspace: Path, pipeline: str | None, date: str | None, fmt: str) -> None:
    """List runs with status, duration and why they ran."""
    _local_runs(workspace, pipeline, date, fmt)


@click.command("runs")
@WORKSPACE
@AWS
@REGION
@click.option("--pipeline", default=None, help="Only this pipeline (required with --aws).")
@click.option("--date", default=None)
@output_format()
def runs(workspace: Path, on_aws: bool, region: str | None, pipeline: str | None,
         date: str | None, fmt: str) -> None:
    """List runs (local workspace, or --aws: a pipeline's latest executions)."""
    if on_aws:
        from dpc_core.aws_runs import list_runs

        if not pipeline:
            raise click.UsageError("--aws needs --pipeline NAME")
        found = list_runs(pipeline, region=region)
        if fmt == "json":
            from dpc_core.cli.output import aws_run_json, dumps

            click.echo(dumps([aws_run_json(r) for r in found]))
            return
        for r in found:
            started = r.started.isoformat(timespec="seconds") if r.started else "-"
            click.echo(f"{started}  {r.status:<9}  {r.name}")
        return
    _local_runs(workspace, pipeline, date, fmt)


def _local_runs(workspace: Path, pipeline: str | None, date: str | None,
                fmt: str = "text") -> None:
    from dpc_core.local.runtime import Workspace
    from dpc_core.local.state import guarded
    from dpc_core.local.views import any_of_keys, list_runs, runs_table

    ws = Workspace(workspace.resolve())
    key = ws.resolve(ws.keys(), pipeline) if pipeline else None
    store = ws.connect()
    with guarded(ws.db_path):  # a damaged page met only now is as clear an error
        found = list_runs(store, key, date)
        any_of = any_of_keys(store)
    if fmt == "json":
        from dpc_core.cli.output import dumps, run_json
        from dpc_core.local.redrive_state import counts

        with guarded(ws.db_path):
            redrives = counts(store.conn)
        click.echo(dumps([run_json(r, any_of, redrives.get(r.arn, 0)) for r in found]))
        return
    click.echo(runs_table(found, any_of))
    from dpc_core.local.operator import paused_pipelines

    for key_, p in paused_pipelines(store.conn).items():
        if key is None or key_ == key:
            click.echo(f"{key_}: {p.text()}")


@local.command("timeline")
@WORKSPACE
@click.option("--date", default=None)
@output_format()
def local_timeline(workspace: Path, date: str | None, fmt: str) -> None:
    """Runs on a time axis with their trigger reasons (json: the runs, oldest first)."""
    from dpc_core.local.runtime import Workspace
    from dpc_core.local.views import any_of_keys, list_runs, timeline

    store = Workspace(workspace.resolve()).connect()
    found = list_runs(store, None, date)
    any_of = any_of_keys(store)
    if fmt == "json":
        from dpc_core.cli.output import dumps, run_json
        from dpc_core.local.redrive_state import counts

        redrives = counts(store.conn)
        click.echo(dumps([run_json(r, any_of, redrives.get(r.arn, 0)) for r in found]))
        return
    click.echo(timeline(found, any_of))


@local.command("notifications")
@WORKSPACE
@click.option("--run", default=None, help="Only this run (id or id prefix).")
@click.option("--pipeline", default=None, help="Only this pipeline (name or account/name).")
@output_format()
def local_notifications(workspace: Path, run: str | None, pipeline: str | None,
                        fmt: str) -> None:
    """What was notified where: channel, address, sent for real or printed (channel not
    configured) or failed, time, run and text."""
    from dpc_core.local.notifications import (
        list_notifications,
        notifications_json,
        notifications_table,
    )
    from dpc_core.local.runtime import Workspace

    ws = Workspace(workspace.resolve())
    if pipeline and "/" not in pipeline:
        pipeline = ws.resolve(ws.load(), pipeline)
    rows = list_notifications(ws.connect(), run, pipeline)
    click.echo(notifications_json(rows) if fmt == "json" else notifications_table(rows))


@local.command("logs")
@WORKSPACE
@click.argument("run")
@click.option("--follow", "-f", is_flag=True,
              help="Keep printing a running run's output until the run ends.")
def logs(workspace: Path, run: str, follow: bool) -> None:
    """Print the logs of every step of RUN (ARN, run id, unique prefix, or a pipeline name
    for its latest run)."""
    from dpc_core.local.runtime import Workspace
    from dpc_core.local.views import find_run, step_logs

    store = Workspace(workspace.resolve()).connect()
    row = find_run(store, run)
    if follow:
        from dpc_core.local.follow import follow_run

        follow_run(store, row, click.echo)
        return
    click.echo(f"# {row.name}@{row.account} {row.run_id} {row.status}")
    for name, status, text in step_logs(store, row):
        click.echo(f"## step {name} [{status}]")
        click.echo(text.rstrip())


@local.command("status")
@WORKSPACE
@click.option("--date", default=None, help="Logical date (default: today, UTC).")
@output_format(default="text")
def local_status(workspace: Path, date: str | None, fmt: str) -> None:
    """Latest run of every pipeline, and which children wait on which parents."""
    from dpc_core.local.runtime import Workspace
    from dpc_core.local.views import any_of_keys, reason_text, status_for

    ws = Workspace(workspace.resolve())
    store = ws.connect()
    day = _date(date)
    latest, children = status_for(store, day)
    from dpc_core.health import contact_of, owner_of
    from dpc_core.local.backfill import list_backfills
    from dpc_core.local.notices import list_notices, notices_table
    from dpc_core.local.operator import paused_pipelines

    specs = {key: store.get_pipeline(key) for key, _ in latest}
    paused = paused_pipelines(store.conn)
    any_of = any_of_keys(store)
    found = list_notices(store.conn, day)
    backfills = list_backfills(store.conn)
    if fmt == "json":
        from dpc_core.cli.output import child_json, dumps, run_json
        from dpc_core.local.redrive_state import counts

        redrives = counts(store.conn)
        click.echo(dumps({"date": day, "pipelines": [
            {"pipeline": key.split("/", 1)[1], "account": key.split("/", 1)[0],
             "owner": owner_of(specs[key]), "contact": contact_of(specs[key]),
             "run": run_json(r, any_of, redrives.get(r.arn, 0)) if r is not None else None,
             "paused": paused[key].to_dict() if key in paused else None}
            for key, r in latest],
            "conditions": [child_json(c) for c in children],
            "notices": [n.to_dict() for n in found],
            "backfills": [{"id": b.id, "pipeline": b.pipeline, "from": b.date_from,
                           "to": b.date_to, "downstream": b.downstream,
                           "maxParallel": b.max_parallel,
                           "dates": [{"date": d.date, "status": d.status, "runId": d.run_id,
                                      "attempt": d.attempt, "rollup": d.rollup, "why": d.why}
                                     for d in b.dates]}
                          for b in backfills]}))
        return
    if not latest:
        click.echo("no pipelines registered yet: run `dpc local up` once")
        return
    click.echo(f"pipelines on {day}:")
    for key, run in latest:
        account, name = key.split("/", 1)
        owner = owner_of(specs[key])
        contact = contact_of(specs[key])
        by = f"  owner {owner}" + (f" <{contact}>" if contact else "") if owner else ""
        if key in paused:
            by += f"  [{paused[key].text()}]"
        if run is None:
            click.echo(f"  {name:<20} {account}  no run{by}")
        else:
            click.echo(f"  {name:<20} {account}  {run.status:<9} {run.run_id}  "
                       f"({reason_text(run, any_of)}){by}")
    if children:
        click.echo("conditions:")
        for child in children:
            held = "  (paused: its trigger is held)" \
                if f"{child.account}/{child.pipeline}" in paused else ""
            click.echo("  " + child.line() + held)
    if found:
        click.echo("notices (LATE, BLOCKED):")
        click.echo(notices_table(found))
    for b in backfills:
        click.echo(f"backfill {b.id}: {b.line()}")
        # Each date with its children: one whose child failed is FAILED, not SUCCEEDED.
        click.echo("  " + "  ".join(f"{d.date} {d.rollup}" for d in b.dates))
        for d in b.dates:
            if d.why:
                click.echo(f"  {d.date}: {d.why}")
    _problems_line(store)


def _problems_line(store: SqliteStore) -> None:
    from dpc_core.local.state import list_problems

    found = list_problems(store.conn)
    if found:
        click.echo(f"{len(found)} item(s) set aside after an error: `dpc local problems` "
                   "shows them")


@local.command("problems")
@WORKSPACE
@click.option("--detail", is_flag=True, help="Also print each error's traceback.")
def problems(workspace: Path, detail: bool) -> None:
    """Items the runtime set aside after an unexpected error (an event, a notification,
    a schedule), with the error; the runtime went on with the next item."""
    from dpc_core.local.runtime import Workspace
    from dpc_core.local.state import list_problems
    from dpc_core.local.views import at_utc

    store = Workspace(workspace.resolve()).connect()
    found = list_problems(store.conn)
    if not found:
        click.echo("no problems")
        return
    for pr in found:
        click.echo(f"#{pr.id}  {at_utc(pr.created_ms)}  {pr.source}: {pr.error}")
        click.echo(f"    item: {pr.item[:500]}")
        if detail and pr.detail:
            click.echo("    " + pr.detail.rstrip().replace("\n", "\n    "))


@click.command("run")
@WORKSPACE
@AWS
@REGION
@click.argument("pipeline")
@click.option("--date", "date", default=None, help="Logical date (default: today, UTC).")
def run(workspace: Path, on_aws: bool, region: str | None, pipeline: str,
        date: str | None) -> None:
    """Start PIPELINE by hand for a logical date (local workspace, or --aws)."""
    if on_aws:
        from dpc_core.aws_runs import start_run

        arn = start_run(pipeline, _date(date), region=region)
        click.echo(f"started {arn}")
        return
    _queue(workspace, pipeline, date, "manual")


@click.command("rerun")
@WORKSPACE
@AWS
@REGION
@click.argument("pipeline")
@click.option("--date", "date", required=True, help="Logical date to rerun.")
@click.option("--downstream", is_flag=True,
              help="Also rerun the children this run satisfies again, and theirs.")
def rerun(workspace: Path, on_aws: bool, region: str | None, pipeline: str, date: str,
          downstream: bool) -> None:
    """Rerun PIPELINE for a logical date; with --downstream its children follow."""
    if on_aws:
        from dpc_core.aws_runs import start_run

        arn = start_run(pipeline, _date(date), region=region, reason="rerun",
                        downstream=downstream)
        click.echo(f"started {arn}" + (" (children follow as the trigger rules say)"
                                       if downstream else ""))
        return
    _queue(workspace, pipeline, date, "rerun-downstream" if downstream else "rerun", downstream)


@click.command("redrive")
@WORKSPACE
@AWS
@REGION
@click.argument("run")
@click.option("--date", "date", default=None,
              help="With a pipeline name: its latest run for this logical date.")
@output_format(default="text")
def redrive(workspace: Path, on_aws: bool, region: str | None, run: str, date: str | None,
            fmt: str) -> None:
    """Run RUN (a run id or ARN, or a pipeline name for its latest run), which ended
    FAILED, TIMED_OUT or ABORTED, again from its first step that did not succeed: the
    same run, its redrive count + 1 (--aws: Step Functions' RedriveExecution)."""
    if on_aws:
        from dpc_core.aws_runs import redrive_run as aws_redrive

        outcome = aws_redrive(run, _date(date) if date else None, region=region)
    else:
        from dpc_core.local.redrive import redrive_run

        outcome = redrive_run(workspace.resolve(), run, _date(date) if date else None)
    _echo_outcome(outcome, fmt)


status = local_status


#: Bad lines of an event file printed by ``inject`` (the count says how many there were).
MAX_SHOWN_PROBLEMS = 100


@local.command("inject")
@WORKSPACE
@click.option("--events", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="JSONL file of EventBridge events (Step Functions status changes).")
def inject(workspace: Path, events: Path) -> None:
    """Put AWS-shaped status events into the runtime, as if they came from the bus.

    They go through the same outbox and engine as the runtime's own events; child runs
    they trigger really run. A line that is not an event (bad JSON, not an object, too
    deep) is reported as FILE:LINE:COL and skipped; the other lines are queued, and the
    command then exits 2. A file that is no event file (a line over 1 MiB, over a million
    lines or 1 GiB) queues nothing and exits 2.
    """
    from dpc_core.errors import Problem
    from dpc_core.local.runtime import Workspace, queue_events
    from dpc_core.local.state import guarded
    from dpc_core.simulate import scan_events

    ws = Workspace(workspace.resolve())
    stream: list[object] = []
    problems: list[Problem] = []
    bad = 0
    # One bounded pass: a bad line is reported and skipped, the others are queued; a file
    # that is not an event file at all (a line with no end, too large) queues nothing.
    for _, event, problem in scan_events(events):
        if problem is None:
            stream.append(event)
            continue
        bad += 1
        if len(problems) < MAX_SHOWN_PROBLEMS:
            problems.append(problem)
    store = ws.connect()
    with guarded(ws.db_path):
        queue_events(store, stream)
    store.close()
    running = ws.poke()
    click.echo(f"queued {len(stream)} event(s)" + ("" if running else
                                                   "; they are processed by `dpc local up`"))
    if bad:
        for problem in problems:
            click.echo(str(problem), err=True)
        if bad > len(problems):
            click.echo(f"... and {bad - len(problems)} more", err=True)
        click.echo(f"{bad} bad line(s) skipped; the other lines were queued", err=True)
        raise click.exceptions.Exit(2)


def _add_grid() -> None:
    from dpc_core.cli.grid import grid

    local.add_command(grid)


_add_grid()
