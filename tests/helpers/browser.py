"""A headless Chromium driven over the DevTools protocol (Debian's ``chromium`` package):
the browser of every test that loads a page (the lineage file, ``dpc ui``)."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-port=0"]


@dataclass
class PageLoad:
    """What happened while one page loaded."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


class Browser:
    """A headless Chromium with one page, spoken to over the DevTools websocket."""

    def __init__(self, profile: Path) -> None:
        import websocket  # websocket-client

        # The browser's own stderr (dbus noise in containers) is not the page's console.
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
                                      "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as resp:
            targets = json.load(resp)
        page = next(t for t in targets if t["type"] == "page")
        # suppress_origin: Chromium refuses websocket clients that send an Origin header.
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self._id = 0
        self.events: list[dict[str, Any]] = []
        for method in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
            self.call(method)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its result (events seen meanwhile are kept)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result
            self.events.append(msg)

    def load(self, url: str, width: int = 1100, height: int = 600) -> PageLoad:
        """Navigate to ``url`` and wait for its load event; report errors and requests."""
        self.events.clear()
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(json.loads(self.ws.recv()))
        self.evaluate("0")  # flush console events queued behind the load event
        out = PageLoad()
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.errors.append(d.get("exception", {}).get("description") or d["text"])
            elif method == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                out.errors.append(" ".join(str(a.get("value", a.get("description")))
                                           for a in p["args"]))
            elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.errors.append(p["entry"]["text"])
            elif method == "Network.requestWillBeSent":
                out.requests.append(p["request"]["url"])
        return out

    def evaluate(self, expression: str) -> Any:
        """The value of a JS expression in the page."""
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(res["exceptionDetails"]["text"])
        return res["result"].get("value")

    def screenshot(self, path: Path) -> None:
        """A PNG of the whole page."""
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        """Close the websocket and end the browser this object started."""
        self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One Chromium on a fresh profile, closed after (the browser fixture of each module
    that drives a page)."""
    assert Path(CHROMIUM).is_file(), (
        f"{CHROMIUM} not found: install Debian's browser (apt-get install -y chromium)")
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def wait_for(browser: Browser, expression: str, deadline_s: float = 20) -> Any:
    """Poll a JS expression until it is truthy (a deadline against hanging, not a timing
    assertion: how fast it happens is bench/ui_paint.py's figure)."""
    end = time.monotonic() + deadline_s
    while True:
        value = browser.evaluate(expression)
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"never true: {expression}")
        time.sleep(0.05)
