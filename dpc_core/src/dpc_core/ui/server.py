"""The ``dpc ui`` web server: the page, JSON reads of the state, live changes, actions.

Starlette on uvicorn (h11), bound to 127.0.0.1 by default. What it serves comes from a
data source (:class:`dpc_core.ui.source.DataSource`): a local workspace
(:class:`dpc_core.ui.data.LocalSource`: reads open their own SQLite connection, WAL:
readers never block the runtime) or the central account
(:class:`dpc_core.ui.central_data.CentralSource`, ``dpc ui --central``).

Every request first passes :class:`Guard`, before any routing or reading: bounded request
line, headers and body; a ``Host`` that is an address the server listens on (a page of
another site that rebinds its own name to 127.0.0.1 is refused); an ``Origin``, when
sent, that is exactly ``http://`` and such an address; and the access token of
:class:`Access` (printed with the URL, kept in an HttpOnly SameSite=Strict cookie):
required for every request off loopback, and for every action everywhere.

Live changes are server-sent events: one watch for all open pages (:class:`Hub`, locally
``PRAGMA data_version`` every 150 ms on one connection) sends ``change`` when runs or
statuses changed, and ``graph`` first when pipelines were added, removed or edited (the
page then re-reads the graph); at most :data:`MAX_STREAMS` streams at once. Actions (run,
rerun, rerun-downstream, backfill) go to the source: locally they queue runs exactly as
``dpc local start``, ``dpc rerun`` and ``dpc backfill`` do; a refusal for lack of rights
is a 403 with a message the page shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import ipaddress
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import date as Date
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dpc_core import jsonlimits
from dpc_core.errors import DpcError
from dpc_core.model import NAME_PATTERN, NAME_RULE
from dpc_core.ui import data
from dpc_core.ui.page import page_data, render_page
from dpc_core.ui.source import ActionDenied, DataSource, Watch

#: A comment line this often keeps proxies and the browser from closing an idle stream.
KEEPALIVE_S = 15.0
ACTIONS = data.ACTIONS
T = TypeVar("T")

# -- limits: every request is held to these before any work --------------------------
#: Bytes of a request body (an action is a few hundred).
MAX_BODY = 64 * 1024
#: Bytes of the request target (path and query).
MAX_TARGET = 4096
#: Header lines, and bytes of all of them (h11 also stops reading a head at 16 KiB).
MAX_HEADERS = 64
MAX_HEADER_BYTES = 16 * 1024
#: Nesting of an action's JSON body (it is one flat object).
MAX_JSON_DEPTH = 4
#: Live streams open at once (one per open page); more get 503.
MAX_STREAMS = 16
#: Connections served at once (uvicorn answers 503 beyond).
MAX_CONNECTIONS = 64

_NAME = NAME_PATTERN.strip("^$")
_PIPELINE = re.compile(rf"(?:[0-9]{{12}}/)?{_NAME}")
_KEY = re.compile(rf"[0-9]{{12}}/{_NAME}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T[0-9]{2})?")
_ARN = re.compile(r"[A-Za-z0-9:/_.+=@-]{1,512}")
_OWNER = re.compile(r"[A-Za-z0-9 ._@/-]{1,100}")
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _bracketed(host: str) -> str:
    host = host.split("%", 1)[0]  # an IPv6 scope id is not part of a Host header
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


# -- who may talk to the server -------------------------------------------------------

@dataclass(frozen=True)
class Access:
    """What a request must carry: a ``Host`` in ``hosts`` (``name:port``, lower case;
    with ``any_ip``, a server listening on every interface, any IP address with the
    port too) and, unless ``loopback`` and the request only reads, the ``token``."""

    port: int
    hosts: frozenset[str]
    token: str
    loopback: bool
    any_ip: bool = False
    cookie: str = field(init=False)

    def __post_init__(self) -> None:
        # Cookies are shared by every port of a host: one name per port.
        object.__setattr__(self, "cookie", f"dpc-ui-{self.port}")

    def host_ok(self, value: str) -> bool:
        """Is ``value`` (a Host header, or an Origin without its scheme) this server?"""
        value = value.lower()
        if value in self.hosts:
            return True
        if not self.any_ip:
            return False
        name, colon, port = value.rpartition(":")
        if not colon or name.endswith(":") or not port.isdigit() or len(port) > 5 \
                or int(port) != self.port:
            name, port = value, ""
            if self.port != 80:
                return False
        if name.startswith("[") != name.endswith("]"):
            return False
        try:
            ipaddress.ip_address(name[1:-1] if name.startswith("[") else name)
        except ValueError:
            return False
        return ":" not in name or name.startswith("[")

    def origin_ok(self, value: str) -> bool:
        """An ``Origin`` header: exactly ``http://`` and an address of this server."""
        return value.startswith("http://") and self.host_ok(value[len("http://"):])

    def token_ok(self, given: str) -> bool:
        """``given`` is the access token (compared in constant time)."""
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode())


def access_for(sock: socket.socket, host: str, token: str) -> Access:
    """The :class:`Access` of a server listening on ``sock``, started with ``--host
    host``: the loopback names, the address listened on and ``host`` as written (each
    with the port); a server listening on every interface (0.0.0.0, ::) also answers to
    this machine's names and to any IP address."""
    addr, port = sock.getsockname()[:2]
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    names = {*_LOOPBACK_NAMES, _bracketed(addr).lower(), _bracketed(host).lower()}
    if ip.is_unspecified:
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    hosts = {f"{n}:{port}" for n in names} | (names if port == 80 else set())
    return Access(port, frozenset(hosts), token, loopback=ip.is_loopback,
                  any_ip=ip.is_unspecified)


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _refuse(send: Send, status: int, message: str,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A short JSON refusal; the connection closes (a body left unread is not read)."""
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"), (b"connection", b"close"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware in front of every route (see the module's docstring)."""

    def __init__(self, app: App, access: Access) -> None:
        self.app = app
        self.access = access

    def _token(self, scope: Scope, headers: list[tuple[bytes, bytes]]
               ) -> tuple[str | None, str]:
        """``(token given, where)``: ``query`` (``?token=``), ``header`` (``Authorization:
        Bearer``) or ``cookie``; a cookie that is not the token (a previous server's) is
        as good as none."""
        for key, value in parse_qsl(scope["query_string"].decode("latin-1"),
                                    keep_blank_values=True):
            if key == "token":
                return value, "query"
        for name, raw in headers:
            if name == b"authorization":
                scheme, _, value = raw.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    return value.strip(), "header"
        for name, raw in headers:
            if name != b"cookie":
                continue
            for part in raw.decode("latin-1").split(";"):
                key, _, value = part.strip().partition("=")
                if key == self.access.cookie and self.access.token_ok(value):
                    return value, "cookie"
        return None, ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off and websockets are not served
            await self.app(scope, receive, send)
            return
        access = self.access
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if len(scope.get("raw_path") or b"") + len(scope["query_string"]) > MAX_TARGET:
            return await _refuse(send, 414, f"request target longer than {MAX_TARGET} bytes")
        if len(headers) > MAX_HEADERS or \
                sum(len(k) + len(v) for k, v in headers) > MAX_HEADER_BYTES:
            return await _refuse(send, 431, "too many or too large headers")
        hosts = [v for k, v in headers if k == b"host"]
        if len(hosts) != 1 or not access.host_ok(hosts[0].decode("latin-1")):
            return await _refuse(send, 421, "refused: the Host header is not an address "
                                            "this server listens on")
        origins = [v for k, v in headers if k == b"origin"]
        if len(origins) > 1 or (origins and not access.origin_ok(origins[0].decode("latin-1"))):
            return await _refuse(send, 403, "cross-origin request refused")
        if any(k == b"transfer-encoding" for k, _ in headers):
            return await _refuse(send, 411, "send the body with a Content-Length")
        lengths = [v for k, v in headers if k == b"content-length"]
        if len(lengths) > 1 or (lengths and not (lengths[0].isdigit() and len(lengths[0]) < 16)):
            return await _refuse(send, 400, "one Content-Length, a number")
        if lengths and int(lengths[0]) > MAX_BODY:
            return await _refuse(send, 413, f"body larger than {MAX_BODY} bytes")
        reads = scope["method"] in ("GET", "HEAD")
        if not reads and not lengths:
            return await _refuse(send, 411, "send the body with a Content-Length")
        given, where = self._token(scope, headers)
        if given is not None and not access.token_ok(given):
            return await _refuse(send, 403, "wrong access token: open the URL `dpc ui` "
                                            "printed (.../?token=...)")
        if given is None and not (reads and access.loopback):
            what = "an action" if reads is False else "this server"
            return await _refuse(send, 401, f"{what} needs the access token: open the URL "
                                            "`dpc ui` printed (.../?token=...)")
        if not reads and where == "cookie" and not origins:
            # The cookie goes with any request of this site: the page's own requests say
            # where they come from.
            return await _refuse(send, 403, "an action from the page must carry an Origin")
        if where != "query":
            await self.app(scope, receive, send)
            return
        cookie = (f"{access.cookie}={access.token}; Path=/; HttpOnly; SameSite=Strict"
                  ).encode()
        if reads and scope["path"] == "/":
            # The page's own address without the token (history, bookmarks, screens).
            rest = [(k, v) for k, v in parse_qsl(scope["query_string"].decode("latin-1"),
                                                 keep_blank_values=True) if k != "token"]
            location = "/" + ("?" + urlencode(rest) if rest else "")
            await send({"type": "http.response.start", "status": 303, "headers": [
                (b"location", location.encode("latin-1")), (b"set-cookie", cookie),
                (b"content-length", b"0"), (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def with_cookie(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie)]
            await send(message)

        await self.app(scope, receive, with_cookie)


# -- live: one watch for every open page ----------------------------------------------

class _Stream:
    """An open page's stream: the events not sent yet (at most one of each kind)."""

    def __init__(self) -> None:
        self.pending: dict[str, str] = {}
        self.ready = asyncio.Event()

    def push(self, event: str, data: str) -> None:
        self.pending.pop(event, None)
        self.pending[event] = data
        self.ready.set()


class Hub:
    """The source's one watch (one SQLite connection locally), polled while a stream is
    open and told to each of at most ``limit`` streams."""

    def __init__(self, src: DataSource, limit: int = MAX_STREAMS) -> None:
        self.src = src
        self.limit = limit
        self.streams: set[_Stream] = set()
        self.task: asyncio.Task[None] | None = None
        self.watching = asyncio.Event()

    async def _call(self, fn: Callable[[], T]) -> T:
        # A local watch is one page read (on the loop's thread); a central one reads the
        # tables, on a worker thread.
        return await asyncio.to_thread(fn) if self.src.blocking else fn()

    def open(self) -> _Stream | None:
        """A new stream, or None when ``limit`` are open."""
        if len(self.streams) >= self.limit:
            return None
        stream = _Stream()
        self.streams.add(stream)
        if self.task is None:
            self.watching = asyncio.Event()
            self.task = asyncio.get_running_loop().create_task(self._run())
        return stream

    async def started(self) -> None:
        """Wait until the watch has taken its first look (so what changes after the
        stream's ``hello`` is told), at most a few seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.watching.wait(), 10)

    def close(self, stream: _Stream) -> None:
        """The page went away (the poller stops with the last one)."""
        self.streams.discard(stream)

    def _tell(self, event: str, data: str) -> None:
        for stream in self.streams:
            stream.push(event, data)

    async def _run(self) -> None:
        watch: Watch | None = None
        try:
            while self.streams:
                if watch is None:
                    try:
                        watch = await self._call(self.src.watch)
                    except Exception as exc:  # said on the streams; tried again
                        self._tell("problem", json.dumps(str(exc)))
                        await asyncio.sleep(1.0)
                        continue
                    self.watching.set()
                await asyncio.sleep(watch.interval)
                try:
                    events = await self._call(watch.poll)
                except Exception as exc:  # a failed poll is said on the stream, not fatal
                    self._tell("problem", json.dumps(str(exc)))
                    continue
                for event in events:
                    self._tell(event, str(int(time.time() * 1000)))
        finally:
            self.task = None
            if watch is not None:
                watch.close()


# -- requests -------------------------------------------------------------------------

class BadRequest(Exception):
    """A request the server cannot answer as asked: 400 with this message."""


def _query(request: Request, name: str, pattern: re.Pattern[str], what: str,
           default: str | None = None) -> str:
    value = request.query_params.get(name)
    if value is None or value == "":
        if default is None:
            raise BadRequest(f"{name} is required: {what}")
        return default
    if not pattern.fullmatch(value):
        raise BadRequest(f"{name} must be {what}")
    return value


def date_of(request: Request) -> str:
    """The ``date`` query parameter (default: today, UTC)."""
    day = _query(request, "date", _DAY, "YYYY-MM-DD", default=_today())
    try:
        return Date.fromisoformat(day).isoformat()
    except ValueError:
        raise BadRequest(f"date {day} is not a day of the calendar") from None


def pipeline_of(value: object, field_name: str = "pipeline") -> str:
    """A pipeline named in an action: NAME or ACCOUNT/NAME, by the model's name rule
    (checked before any lookup, so a long name costs nothing)."""
    if not isinstance(value, str) or not _PIPELINE.fullmatch(value):
        raise BadRequest(f"{field_name} must be NAME or ACCOUNT/NAME, where NAME {NAME_RULE}")
    return value


def _text(body: dict[str, Any], name: str, pattern: re.Pattern[str], what: str,
          required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadRequest(f"{name} must be {what}")
    return value


#: The fields each action takes (and no other).
_FIELDS = {"run": {"action", "pipeline", "date"}, "rerun": {"action", "pipeline", "date"},
           "rerun-downstream": {"action", "pipeline", "date"},
           "backfill": {"action", "pipeline", "from", "to", "downstream"}}


def create_app(source: DataSource | Path, access: Access) -> Any:
    """The ASGI app over ``source`` (a data source of :mod:`dpc_core.ui.data` or
    :mod:`dpc_core.ui.central_data`, or a workspace directory), behind :class:`Guard`."""
    src: DataSource = data.LocalSource(source) if isinstance(source, Path) else source
    hub = Hub(src)

    async def call(fn: Callable[..., T], *args: Any) -> T:
        # Reads run on a worker thread: the loop keeps serving the streams meanwhile.
        return await asyncio.to_thread(fn, *args)

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
        key = _query(request, "key", _KEY, f"ACCOUNT/NAME, where NAME {NAME_RULE}")
        found = await call(src.pipeline, key, date_of(request))
        if found is None:
            return JSONResponse({"error": "no such pipeline"}, status_code=404)
        return JSONResponse(found)

    async def api_grid(request: Request) -> Response:
        # The run grid: dates x pipelines; a range of at most grid.MAX_DAYS dates.
        from dpc_core.grid import MAX_DAYS, STATUSES, BadGridRange, date_range

        days = int(_query(request, "days", re.compile(r"[0-9]{1,3}"),
                          f"a number of days, 1 to {MAX_DAYS}", default="14"))
        first = _query(request, "from", _DAY, "YYYY-MM-DD", default="-")
        last = _query(request, "to", _DAY, "YYYY-MM-DD", default="-")
        try:
            dates = date_range(None if first == "-" else first, None if last == "-" else last,
                               days)
        except BadGridRange as exc:
            raise BadRequest(str(exc).replace("--", "")) from None
        filters = {
            "account": _query(request, "account", re.compile(r"[0-9]{12}"),
                              "an account (12 digits)", default="-"),
            "owner": _query(request, "owner", _OWNER, "a team name (1 to 100 letters, digits, "
                            "spaces or . _ - @ /)", default="-"),
            "status": _query(request, "status", re.compile("|".join(STATUSES)),
                             "one of " + ", ".join(STATUSES), default="-")}
        return JSONResponse(await call(src.grid, dates, {
            k: (None if v == "-" else v) for k, v in filters.items()}))

    async def api_log(request: Request) -> Response:
        arn = _query(request, "arn", _ARN, "a run's ARN")
        idx = int(_query(request, "idx", re.compile(r"[0-9]{1,5}"),
                         "a step's number (0 to 99999)", default="0"))
        offset = int(_query(request, "offset", re.compile(r"[0-9]{1,15}"),
                            "a byte offset (0 to 10^15)", default="0"))
        return JSONResponse(await call(src.log_chunk, arn, idx, offset))

    async def api_action(request: Request) -> Response:
        # Guard has checked the Origin and the token; a cross-site form cannot send
        # application/json without CORS either.
        if not request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse({"error": "send JSON"}, status_code=415)
        raw = await request.body()  # at most MAX_BODY bytes (Guard)
        try:
            body = jsonlimits.loads(raw.decode("utf-8"), max_depth=MAX_JSON_DEPTH)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return JSONResponse({"error": f"the body is not a flat JSON object ({exc})"[:300]},
                                status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "send a JSON object"}, status_code=400)
        name = body.get("action")
        if not isinstance(name, str) or name not in _FIELDS:
            shown = json.dumps(name)[:60]
            return JSONResponse({"error": f"unknown action {shown}; one of "
                                          f"{', '.join(_FIELDS)}"}, status_code=400)
        extra = sorted(set(body) - _FIELDS[name])
        if extra:
            return JSONResponse({"error": f"{name} takes no field(s) "
                                          f"{', '.join(repr(k[:40]) for k in extra[:5])}"},
                                status_code=400)
        pipeline = pipeline_of(body.get("pipeline"))
        try:
            if name == "backfill":
                first = _text(body, "from", _DAY, "a date YYYY-MM-DD")
                last = _text(body, "to", _DAY, "a date YYYY-MM-DD")
                downstream = body.get("downstream", False)
                if not isinstance(downstream, bool):
                    raise BadRequest("downstream must be true or false (a JSON boolean)")
                result = await asyncio.to_thread(src.backfill, pipeline, str(first),
                                                 str(last), downstream)
                return JSONResponse({"ok": True, **result})
            day = _text(body, "date", _DATE, "a date YYYY-MM-DD (or YYYY-MM-DDTHH)",
                        required=False) or _today()
            line = await asyncio.to_thread(src.action, name, pipeline, day)
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
        stream = hub.open()
        if stream is None:
            return JSONResponse({"error": f"{MAX_STREAMS} live pages are open already; "
                                          "close one"}, status_code=503,
                                headers={"Retry-After": "5", "Connection": "close"})

        async def events() -> AsyncIterator[str]:
            try:
                await hub.started()
                yield "retry: 500\nevent: hello\ndata: {}\n\n"
                while True:
                    try:
                        await asyncio.wait_for(stream.ready.wait(), KEEPALIVE_S)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    stream.ready.clear()
                    pending = list(stream.pending.items())
                    stream.pending.clear()
                    for event, text in pending:
                        yield f"event: {event}\ndata: {text}\n\n"
            finally:
                hub.close(stream)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    async def bad_request(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=400)

    static = resources.files("dpc_core.ui") / "static"
    app = Starlette(routes=[
        Route("/", index),
        Route("/api/graph", api_graph),
        Route("/api/statuses", api_statuses),
        Route("/api/health", api_health),
        Route("/api/pipeline", api_pipeline),
        Route("/api/log", api_log),
        Route("/api/grid", api_grid),
        Route("/api/action", api_action, methods=["POST"]),
        Route("/api/events", api_events),
        # The browser asks for it; an answer keeps a 404 out of the console.
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Mount("/static", StaticFiles(directory=str(static)), name="static"),
    ], exception_handlers={BadRequest: bad_request})
    return Guard(app, access)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one), so the URL is known
    before the server starts. A name that does not resolve or an address that cannot be
    listened on is a :class:`DpcError` (one line, exit 2)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise DpcError(f"--host {host}: cannot resolve this name ({exc})") from None
    family, kind, proto, _, address = found[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        what = exc.strerror or str(exc)
        hint = "; another server uses this port: pick another with --port (0: any free one)" \
            if exc.errno == errno.EADDRINUSE else \
            "; give an address of this machine (127.0.0.1, 0.0.0.0 for every interface)" \
            if exc.errno == errno.EADDRNOTAVAIL else ""
        raise DpcError(f"cannot listen on {_bracketed(str(address[0]))}:{port}: "
                       f"{what}{hint}") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket, token: str | None = None) -> str:
    """``http://host:port/`` of a bound socket (with ``?token=`` when given); for every
    interface (0.0.0.0, ::), the address of this machine (browsers refuse 0.0.0.0)."""
    host, port = sock.getsockname()[:2]
    if ipaddress.ip_address(str(host).split("%", 1)[0]).is_unspecified:
        host = "127.0.0.1" if sock.family == socket.AF_INET else "::1"
    return f"http://{_bracketed(host)}:{port}/" + (f"?token={token}" if token else "")


def new_token() -> str:
    """A fresh access token (``secrets.token_urlsafe``: 256 bits, URL- and cookie-safe)."""
    import secrets

    return secrets.token_urlsafe(32)


def make_server(source: DataSource | Path, sock: socket.socket, token: str, *,
                host: str | None = None, log_level: str = "warning") -> Any:
    """A uvicorn server for ``source`` (a data source or a workspace directory) that will
    listen on ``sock`` (``--host host``) and want ``token``; not started:
    ``server.run(sockets=[sock])``."""
    import uvicorn

    access = access_for(sock, host or str(sock.getsockname()[0]), token)
    config = uvicorn.Config(create_app(source, access), log_level=log_level,
                            timeout_graceful_shutdown=1, lifespan="off", http="h11",
                            ws="none", h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                            limit_concurrency=MAX_CONNECTIONS)
    return uvicorn.Server(config)
