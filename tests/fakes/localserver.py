"""A bounded HTTP server on 127.0.0.1 for the fakes: ephemeral port, daemon thread,
stopped (and its port released) when the ``with`` block ends."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl


class JsonHandler(BaseHTTPRequestHandler):
    """Request handler with helpers to read a JSON/form body and answer JSON."""

    #: Seconds a connection may stay idle; keeps a stuck client from holding a thread.
    timeout = 10
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the fake's records, not its access log."""

    def read_body(self) -> dict[str, Any]:
        """The request body as a dict, from JSON or ``application/x-www-form-urlencoded``."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        if "json" in (self.headers.get("Content-Type") or ""):
            data = json.loads(raw)
            return data if isinstance(data, dict) else {"_": data}
        return dict(parse_qsl(raw.decode()))

    def answer(self, status: int, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> None:
        """Send ``body`` as JSON with ``status`` and extra ``headers``."""
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class LocalServer:
    """Serves ``handler`` on 127.0.0.1 (ephemeral port) for the duration of a ``with``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], state: Any) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.state = state  # type: ignore[attr-defined]  # handlers reach it via server
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
