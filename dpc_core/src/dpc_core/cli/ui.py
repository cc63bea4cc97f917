"""``dpc ui``: the web UI over a local workspace's state (Starlette + uvicorn, lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from dpc_core.cli.options import WORKSPACE

HOST = click.option("--host", default="127.0.0.1", show_default=True,
                    help="Address to listen on (only this machine by default; any other "
                         "address needs the printed token for every request).")
PORT = click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
                    help="Port; 0 picks a free one.")


def no_runs_hint(store: Any, root: Path) -> str | None:
    """The line to show over a workspace where `dpc local up` never ran (nothing
    registered, no run): the page would otherwise be empty with no hint."""
    conn = store.conn
    if conn.execute("SELECT 1 FROM lr_runs LIMIT 1").fetchone() is not None:
        return None
    if conn.execute("SELECT 1 FROM pipelines LIMIT 1").fetchone() is not None:
        return None
    return f"no runs yet: run `dpc local up -w {root}` (the page fills in as it runs)"


def listen(host: str, port: int, what: str = "`dpc ui`") -> tuple[Any, str]:
    """The listening socket and a fresh access token; a warning when the server is
    reachable from other machines."""
    try:
        from dpc_core.ui.server import bind, new_token
    except ModuleNotFoundError as exc:
        raise click.ClickException(f"{what} needs the ui extra: pip install 'dpc-core[ui]' "
                                   f"({exc})") from None
    import ipaddress

    sock = bind(host, port)
    if not ipaddress.ip_address(str(sock.getsockname()[0]).split("%")[0]).is_loopback:
        click.echo(f"warning: the UI listens on {host} (not only this machine): anyone who "
                   "can reach the port and has the token can run pipelines; every request "
                   "needs the token (keep the URL private; plain HTTP, so on a trusted "
                   "network only; from another machine, use this machine's name or address "
                   "in the URL)", err=True)
    return sock, new_token()


def serve(workspace: Path, host: str, port: int) -> None:
    """Bind, print the URL (with its token), serve until Ctrl-C."""
    from dpc_core.local.runtime import Workspace

    ws = Workspace(workspace.resolve())
    store = ws.connect()  # a clear error now (no state, read-only disk), not in the page
    try:
        hint = no_runs_hint(store, ws.root)
    finally:
        store.close()
    if hint:
        click.echo(hint)
    sock, token = listen(host, port)
    from dpc_core.ui.server import make_server, url_of

    click.echo(f"dpc ui for {ws.root}: {url_of(sock, token)}  (Ctrl-C stops)", err=False)
    server = make_server(ws.root, sock, token, host=host)
    server.run(sockets=[sock])


def central_source(tables: str | None, region: str | None, poll: float) -> tuple[Any, int]:
    """The central account's data source, after checking its tables are readable with
    the caller's credentials (a clear :class:`DpcError` now, exit 2, not in the page);
    and how many pipelines it registers."""
    from botocore.exceptions import BotoCoreError, ClientError

    from dpc_core.aws_session import aws_session
    from dpc_core.cli.lineage import central_store
    from dpc_core.errors import DpcError
    from dpc_core.ui.central_data import CentralSource

    store = central_store(tables, region)
    try:
        count = sum(1 for _ in store.pipelines())
        store.runs_of("-")  # the run log and its index answer too
    except (BotoCoreError, ClientError) as exc:
        raise DpcError(f"cannot read the central account's tables ({store.tables.registry}, "
                       f"{store.tables.runs}): {exc}") from None
    session = aws_session(region)  # the caller's: actions run with its rights
    return CentralSource(store, session, poll_s=poll), count


def serve_central(tables: str | None, region: str | None, poll: float, host: str,
                  port: int) -> None:
    """``dpc ui --central``: check the tables, bind, print the URL, serve."""
    source, count = central_source(tables, region, poll)
    sock, token = listen(host, port)
    from dpc_core.ui.server import make_server, url_of

    click.echo(f"dpc ui for the central account ({count} pipeline(s), "
               f"{source.session.region_name}): {url_of(sock, token)}  (Ctrl-C stops)")
    server = make_server(source, sock, token, host=host)
    server.run(sockets=[sock])


@click.command("ui")
@WORKSPACE
@HOST
@PORT
@click.option("--central", is_flag=True,
              help="Serve the central account's registry and run log (DynamoDB, with your AWS "
                   "credentials; table names from the dpc-central stack's outputs).")
@click.option("--central-tables", metavar="REGISTRY,RUNS,WINDOWS", default=None,
              help="With --central: the table names, instead of the stack's outputs.")
@click.option("--region", default=None,
              help="With --central: the central account's region (default: AWS_REGION).")
@click.option("--poll", type=click.FloatRange(0.2, 3600), default=5.0, show_default=True,
              help="With --central: seconds between two reads of the tables for live "
                   "changes.")
def ui(workspace: Path, host: str, port: int, central: bool, central_tables: str | None,
       region: str | None, poll: float) -> None:
    """Serve the web UI of a local workspace (or, with --central, of the whole
    Organization): landscape, health, pipelines, actions, live."""
    if central:
        serve_central(central_tables, region, poll, host, port)
        return
    serve(workspace, host, port)


def serve_in_background(workspace: Path, host: str, sock: Any, token: str) -> object:
    """Start the UI server on a daemon thread (``dpc local up --ui``) on ``sock`` (from
    :func:`listen`), print its URL, and return the uvicorn server (set ``should_exit`` to
    stop it)."""
    import threading

    from dpc_core.ui.server import make_server, url_of

    server = make_server(workspace.resolve(), sock, token, host=host)
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="dpc-ui",
                     daemon=True).start()
    click.echo(f"dpc ui: {url_of(sock, token)}")
    return server
