"""The ``dpc ui`` web server: the page, JSON reads of the state, live changes, actions.

Starlette on uvicorn, bound to 127.0.0.1 by default. What it serves comes from a data
source (:class:`dpc_core.ui.source.DataSource`): a local workspace
(:class:`dpc_core.ui.data.LocalSource`: reads open their own SQLite connection, WAL:
readers never block the runtime) or the central account
(:class:`dpc_core.ui.central_data.CentralSource`, ``dpc ui --central``).

Live changes are server-sent events: each open page has one stream that polls the
source's watch (locally ``PRAGMA data_version`` every 150 ms, one page read) and sends
``change`` when runs or statuses changed, and ``graph`` first when pipelines were added,
removed or edited (the page then re-reads the graph). Actions (run, rerun,
rerun-downstream, backfill) go to the source: locally they queue runs exactly as ``dpc
local start``, ``dpc rerun`` and ``dpc backfill`` do; a refusal for lack of rights is a
403 with a message the page shows.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dpc_core.ui import data
from dpc_core.ui.page import page_data, render_page
from dpc_core.ui.source import ActionDenied, DataSource

#: A comment line this often keeps proxies and the browser from closing an idle stream.
KEEPALIVE_S = 15.0
ACTIONS = data.ACTIONS
T = TypeVar("T")


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def create_app(source: DataSource | Path) -> Starlette:
    """The ASGI app over ``source``: a data source (:mod:`dpc_core.ui.data`,
    :mod:`dpc_core.ui.central_data`) or a workspace directory (``.dpc/state.db``)."""
    src: DataSource = data.LocalSource(source) if isinstance(source, Path) else source

    async def call(fn: Callable[..., T], *args: Any) -> T:
        # Reads run on a worker thread: the loop keeps serving the streams meanwhile.
        return await asyncio.to_thread(fn, *args)

    async def poll(fn: Callable[..., T]) -> T:
        # A local watch is one page read on its own connection (made on the loop's
        # thread); a central one reads the tables, on a worker thread.
        return await asyncio.to_thread(fn) if src.blocking else fn()

    def date_of(request: Request) -> str:
        day = request.query_params.get("date") or _today()
        try:
            return datetime.strptime(day[:10], "%Y-%m-%d").date().isoformat()
        except ValueError:
            return _today()

    async def index(request: Request) -> Response:
        graph = await call(src.graph, date_of(request))
        return HTMLResponse(render_page(page_data(graph, live=True), inline=False),
                            headers={"Cache-Control": "no-store"})

    async def api_graph(request: Request) -> Response:
        graph = await call(src.graph, date_of(request))
        return JSONResponse(page_data(graph, live=True))

    async def api_statuses(request: Request) -> Response:
        return JSONResponse(await call(src.statuses, date_of(request)))

    async def api_health(request: Request) -> Response:
        return JSONResponse(await call(src.health, date_of(request),
                                       int(time.time() * 1000)))

    async def api_pipeline(request: Request) -> Response:
        found = await call(src.pipeline, request.query_params.get("key", ""),
                           date_of(request))
        if found is None:
            return JSONResponse({"error": "no such pipeline"}, status_code=404)
        return JSONResponse(found)

    async def api_log(request: Request) -> Response:
        q = request.query_params
        try:
            idx, offset = int(q.get("idx", "0")), int(q.get("offset", "0"))
        except ValueError:
            return JSONResponse({"error": "idx and offset are numbers"}, status_code=400)
        return JSONResponse(await call(src.log_chunk, q.get("arn", ""), idx, offset))

    async def api_action(request: Request) -> Response:
        # A page of another site cannot post here: the Origin must be this server, and
        # the body JSON (a cross-site form cannot send application/json without CORS).
        origin = request.headers.get("origin", "")
        host = request.headers.get("host", "")
        if not origin or origin.split("://", 1)[-1] != host:
            return JSONResponse({"error": "cross-origin request refused"}, status_code=403)
        if not request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse({"error": "send JSON"}, status_code=415)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "send a JSON object"}, status_code=400)
        name = str(body.get("action"))
        pipeline = str(body.get("pipeline", ""))
        from dpc_core.errors import DpcError

        try:
            if name == "backfill":
                result = await asyncio.to_thread(
                    src.backfill, pipeline, str(body.get("from", "")),
                    str(body.get("to", "")), bool(body.get("downstream", False)))
                return JSONResponse({"ok": True, **result})
            if name not in ACTIONS:
                return JSONResponse({"error": f"unknown action {body.get('action')!r}"},
                                    status_code=400)
            line = await asyncio.to_thread(src.action, name, pipeline,
                                           str(body.get("date") or _today()))
        except ActionDenied as exc:
            return JSONResponse({"error": str(exc), "denied": True}, status_code=403)
        except DpcError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except Exception as exc:  # click.BadParameter for a bad date
            if type(exc).__module__.startswith("click"):
                return JSONResponse({"error": str(exc)}, status_code=400)
            raise
        return JSONResponse({"ok": True, "message": line})

    async def api_events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            watch = await poll(src.watch)
            try:
                quiet = 0.0
                yield "retry: 500\nevent: hello\ndata: {}\n\n"
                while not await request.is_disconnected():
                    await asyncio.sleep(watch.interval)
                    try:
                        events = await poll(watch.poll)
                    except Exception as exc:  # a failed poll is said on the stream, not fatal
                        yield f"event: problem\ndata: {json.dumps(str(exc))}\n\n"
                        continue
                    if events:
                        quiet = 0.0
                        for event in events:
                            yield f"event: {event}\ndata: {int(time.time() * 1000)}\n\n"
                    else:
                        quiet += watch.interval
                        if quiet >= KEEPALIVE_S:
                            quiet = 0.0
                            yield ": keep-alive\n\n"
            finally:
                watch.close()

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


def make_server(source: DataSource | Path, *, log_level: str = "warning") -> Any:
    """A uvicorn server for ``source`` (a data source or a workspace directory), not
    started; ``server.run(sockets=[sock])``."""
    import uvicorn

    config = uvicorn.Config(create_app(source), log_level=log_level,
                            timeout_graceful_shutdown=1, lifespan="off")
    return uvicorn.Server(config)
