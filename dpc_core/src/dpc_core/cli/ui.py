"""``dpc ui``: the web UI over a local workspace's state (Starlette + uvicorn, lazily)."""

from __future__ import annotations

from pathlib import Path

import click

from dpc_core.cli.options import WORKSPACE

HOST = click.option("--host", default="127.0.0.1", show_default=True,
                    help="Address to listen on (only this machine by default).")
PORT = click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
                    help="Port; 0 picks a free one.")


def serve(workspace: Path, host: str, port: int) -> None:
    """Bind, print the URL, serve until Ctrl-C."""
    try:
        from dpc_core.ui.server import bind, make_server, url_of
    except ModuleNotFoundError as exc:
        raise click.ClickException(f"`dpc ui` needs the ui extra: pip install 'dpc-core[ui]' "
                                   f"({exc})") from None
    from dpc_core.local.runtime import Workspace

    ws = Workspace(workspace.resolve())
    ws.connect().close()  # a clear error now (no state, read-only disk), not in the page
    sock = bind(host, port)
    click.echo(f"dpc ui for {ws.root}: {url_of(sock)}  (Ctrl-C stops)", err=False)
    server = make_server(ws.root)
    server.run(sockets=[sock])


@click.command("ui")
@WORKSPACE
@HOST
@PORT
def ui(workspace: Path, host: str, port: int) -> None:
    """Serve the web UI of a local workspace: landscape, health, pipelines, live."""
    serve(workspace, host, port)


def serve_in_background(workspace: Path, host: str, port: int) -> object:
    """Start the UI server on a daemon thread (``dpc local up --ui``), print its URL, and
    return the uvicorn server (set ``should_exit`` to stop it)."""
    import threading

    try:
        from dpc_core.ui.server import bind, make_server, url_of
    except ModuleNotFoundError as exc:
        raise click.ClickException(f"--ui needs the ui extra: pip install 'dpc-core[ui]' "
                                   f"({exc})") from None
    sock = bind(host, port)
    server = make_server(workspace.resolve())
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="dpc-ui",
                     daemon=True).start()
    click.echo(f"dpc ui: {url_of(sock)}")
    return server
