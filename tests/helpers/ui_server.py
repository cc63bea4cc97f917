"""``dpc ui`` as a subprocess on a free port, the URLs of its page, and its live stream."""

from __future__ import annotations

import http.client
import os
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from local_helpers import DPC, stop_process


class UiServer:
    """``dpc ui -w WS --port 0`` in a subprocess; its URL is the line it prints."""

    def __init__(self, workspace: Path) -> None:
        self.proc = subprocess.Popen([DPC, "ui", "-w", str(workspace), "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line + (self.proc.stderr.read()
                                                    if self.proc.stderr else "")
        printed = line.split(": ", 1)[1].split()[0]
        # http://127.0.0.1:PORT/?token=TOKEN: the page's address, and the access token.
        self.url, _, self.token = printed.partition("?token=")
        self.port = int(self.url.rstrip("/").rsplit(":", 1)[1])

    def auth(self) -> dict[str, str]:
        """The headers of the page's own actions: its Origin and the token's cookie."""
        return {"Origin": self.url.rstrip("/"), "Cookie": f"dpc-ui-{self.port}={self.token}"}

    def close(self) -> None:
        """Stop the server this object started."""
        stop_process(self.proc)


def serve(workspace: Path) -> Iterator[UiServer]:
    server = UiServer(workspace)
    try:
        yield server
    finally:
        server.close()


_loads = iter(range(1_000_000))


def page(server: UiServer, date: str, hash_: str = "") -> str:
    """A URL of the page that differs from the last one loaded: Browser.load waits for a
    load event, which a navigation that changes only the fragment never fires."""
    return f"{server.url}?date={date}&n={next(_loads)}&token={server.token}{hash_}"


class Stream:
    """The page's live stream (/api/events): event names as they arrive."""

    def __init__(self, url: str) -> None:
        host, port = url.split("//", 1)[1].rstrip("/").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.conn.request("GET", "/api/events")
        self.resp = self.conn.getresponse()
        self.events: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.next(30) == "hello"

    def _read(self) -> None:
        try:
            for raw in self.resp:
                line = raw.decode().strip()
                if line.startswith("event: "):
                    self.events.put(line[7:])
        except (OSError, ValueError, AttributeError):  # closed by the test
            pass

    def next(self, timeout: float) -> str:
        return self.events.get(timeout=timeout)

    def wait_for(self, name: str, timeout: float = 30) -> list[str]:
        seen, end = [], time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                seen.append(self.next(max(end - time.monotonic(), 0.01)))
            except queue.Empty:
                break
            if seen[-1] == name:
                return seen
        raise AssertionError(f"no {name!r} event within {timeout}s (saw {seen})")

    def close(self) -> None:
        self.conn.close()
