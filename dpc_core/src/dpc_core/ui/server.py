"""The ``dpc ui`` web server: the page, JSON reads of the state, live changes, actions.

Starlette on uvicorn, bound to 127.0.0.1 by default. Reads open their own SQLite
connection per request (WAL: readers never block the runtime). Live changes are
server-sent events: each open page has one stream that polls ``PRAGMA data_version``
every 150 ms (one page read) and says "changed" when another connection committed.
Actions queue runs exactly as ``dpc local start`` and ``dpc rerun`` do
(:func:`dpc_core.cli.local.queue_run`).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dpc_core.ui import data
from dpc_core.ui.page import page_data, render_page

#: How often an open page's stream looks for a change (seconds).
POLL_S = 0.15
#: A comment line this often keeps proxies and the browser from closing an idle stream.
KEEPALIVE_S = 15.0
ACTIONS = {"run": ("manual", False), "rerun": ("rerun", False),
           "rerun-downstream": ("rerun-downstream", True)}


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def create_app(workspace: Path) -> Starlette:
    """The ASGI app over ``workspace`` (a directory with ``.dpc/state.db``)."""
    from dpc_core.local.runtime import Workspace

    ws = Workspace(workspace.resolve())

    def store() -> Any:
        return ws.connect()

    def date_of(request: Request) -> str:
        day = request.query_params.get("date") or _today()
        try:
            return datetime.strptime(day[:10], "%Y-%m-%d").date().isoformat()
        except ValueError:
            return _today()

    def index(request: Request) -> Response:
        s = store()
        try:
            graph = data.graph_of(s, date_of(request))
        finally:
            s.close()
        return HTMLResponse(render_page(page_data(graph, live=True), inline=False),
                            headers={"Cache-Control": "no-store"})

    def api_graph(request: Request) -> Response:
        s = store()
        try:
            return JSONResponse(page_data(data.graph_of(s, date_of(request)), live=True))
        finally:
            s.close()

    def api_statuses(request: Request) -> Response:
        s = store()
        try:
            return JSONResponse(data.statuses(s, date_of(request)))
        finally:
            s.close()

    def api_health(request: Request) -> Response:
        s = store()
        try:
            return JSONResponse(data.health(s, date_of(request), int(time.time() * 1000)))
        finally:
            s.close()

    def api_pipeline(request: Request) -> Response:
        s = store()
        try:
            found = data.pipeline(s, request.query_params.get("key", ""), date_of(request))
        finally:
            s.close()
        if found is None:
            return JSONResponse({"error": "no such pipeline"}, status_code=404)
        return JSONResponse(found)

    def api_log(request: Request) -> Response:
        q = request.query_params
        try:
            idx, offset = int(q.get("idx", "0")), int(q.get("offset", "0"))
        except ValueError:
            return JSONResponse({"error": "idx and offset are numbers"}, status_code=400)
        s = store()
        try:
            return JSONResponse(data.log_chunk(s, q.get("arn", ""), idx, offset))
        finally:
            s.close()

    async def api_action(request: Request) -> Response:
        # A page of another site cannot post here: the Origin must be this server, and
        # the body JSON (a cross-site form cannot send application/json without CORS).
        origin = request.headers.get("origin", "")
        host = request.headers.get("host", "")
        if not origin or origin.split("://", 1)[-1] != host:
            return JSONResponse({"error": "cross-origin request refused"}, status_code=403)
        if not request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse({"error": "send JSON"}, status_code=415)
        body = await request.json()
        action = ACTIONS.get(str(body.get("action")))
        if action is None:
            return JSONResponse({"error": f"unknown action {body.get('action')!r}"},
                                status_code=400)
        from dpc_core.cli.local import queue_run
        from dpc_core.errors import DpcError

        try:
            line = await asyncio.to_thread(queue_run, ws.root, str(body.get("pipeline", "")),
                                           str(body.get("date") or _today()), action[0],
                                           action[1])
        except DpcError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except Exception as exc:  # click.BadParameter for a bad date
            if type(exc).__module__.startswith("click"):
                return JSONResponse({"error": str(exc)}, status_code=400)
            raise
        return JSONResponse({"ok": True, "message": line})

    async def api_events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            s = store()
            try:
                last = data.change_marker(s)
                quiet = 0.0
                yield "retry: 500\nevent: hello\ndata: {}\n\n"
                while not await request.is_disconnected():
                    await asyncio.sleep(POLL_S)
                    now = data.change_marker(s)
                    if now != last:
                        last = now
                        quiet = 0.0
                        yield f"event: change\ndata: {int(time.time() * 1000)}\n\n"
                    else:
                        quiet += POLL_S
                        if quiet >= KEEPALIVE_S:
                            quiet = 0.0
                            yield ": keep-alive\n\n"
            finally:
                s.close()

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    static = resources.files("dpc_core.ui") / "static"
    return Starlette(routes=[
        Route("/", index),
        Route("/api/graph", api_graph),
        Route("/api/statuses", api_statuses),
        Route("/api/health", api_health),
        Route("/api/pipeline", api_pipeline),
        Route("/api/log", api_log),
        Route("/api/action", api_action, methods=["POST"]),
        Route("/api/events", api_events),
        # The browser asks for it; an answer keeps a 404 out of the console.
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Mount("/static", StaticFiles(directory=str(static)), name="static"),
    ])


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one), so the URL is known
    before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port/`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def make_server(workspace: Path, *, log_level: str = "warning") -> Any:
    """A uvicorn server for ``workspace`` (not started); ``server.run(sockets=[sock])``."""
    import uvicorn

    config = uvicorn.Config(create_app(workspace), log_level=log_level,
                            timeout_graceful_shutdown=1, lifespan="off")
    return uvicorn.Server(config)
