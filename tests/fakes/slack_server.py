"""A fake Slack Web API (``chat.postMessage``, ``chat.update``) for the real slack-sdk.

Behaves like Slack where the client can tell: bearer-token auth (``invalid_auth``), channel
names resolved to ids (``chat.update`` wants the id), a ``ts`` per message, ``thread_ts``
that must name a message of the channel, and HTTP 429 with ``Retry-After`` on demand.

    with FakeSlack(token="xoxb-test") as slack:
        WebClient(token="xoxb-test", base_url=slack.api_url).chat_postMessage(...)
        slack.posts  # what was posted
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from fakes.localserver import JsonHandler, LocalServer


@dataclass
class Message:
    """A message as the fake Slack holds it (its text and blocks after any update)."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    updates: int = 0


@dataclass
class SlackState:
    """What the fake has received and holds."""

    token: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    messages: dict[tuple[str, str], Message] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)
    failures: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    clock: int = 0

    def next_ts(self) -> str:
        self.clock += 1
        return f"1700000000.{self.clock:06d}"

    def channel_id(self, name_or_id: str) -> str | None:
        """The id of a channel given by id or by name (``#name`` or ``name``); names are
        created on first use, as if the channel existed and the bot were in it."""
        if name_or_id in self.channels.values():
            return name_or_id
        name = name_or_id.lstrip("#")
        if not name or (name_or_id[0].isupper() and not name_or_id.startswith("#")):
            return None  # looks like an id nobody knows
        if name not in self.channels:
            self.channels[name] = "C" + hashlib.sha1(name.encode()).hexdigest()[:8].upper()
        return self.channels[name]


class _Handler(JsonHandler):
    def do_POST(self) -> None:
        state: SlackState = self.server.state  # type: ignore[attr-defined]
        method = self.path.rsplit("/", 1)[-1]
        body = self.read_body()
        with state.lock:
            state.calls.append((method, body))
            queued = state.failures.get(method)
            if queued:
                status, retry_after = queued.pop(0)
                self.answer(status, {"ok": False, "error": "ratelimited" if status == 429
                                     else "fatal_error"},
                            {"Retry-After": str(retry_after)} if status == 429 else None)
                return
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                self.answer(200, {"ok": False, "error": "invalid_auth"})
                return
            handler = {"chat.postMessage": self._post, "chat.update": self._update}.get(method)
            if handler is None:
                self.answer(200, {"ok": False, "error": "unknown_method"})
                return
            self.answer(200, handler(state, body))

    @staticmethod
    def _post(state: SlackState, body: dict[str, Any]) -> dict[str, Any]:
        channel = state.channel_id(str(body.get("channel", "")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not body.get("text") and not body.get("blocks"):
            return {"ok": False, "error": "no_text"}
        thread_ts = body.get("thread_ts")
        if thread_ts is not None and (channel, thread_ts) not in state.messages:
            return {"ok": False, "error": "thread_not_found"}
        msg = Message(channel, state.next_ts(), str(body.get("text", "")),
                      list(body.get("blocks") or []), thread_ts)
        state.messages[(channel, msg.ts)] = msg
        return {"ok": True, "channel": channel, "ts": msg.ts,
                "message": {"text": msg.text, "ts": msg.ts, "thread_ts": thread_ts}}

    @staticmethod
    def _update(state: SlackState, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel", ""))
        if channel not in state.channels.values():
            return {"ok": False, "error": "channel_not_found"}
        msg = state.messages.get((channel, str(body.get("ts"))))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        msg.text = str(body.get("text", msg.text))
        msg.blocks = list(body.get("blocks") or msg.blocks)
        msg.updates += 1
        return {"ok": True, "channel": channel, "ts": msg.ts, "text": msg.text}


class FakeSlack:
    """The fake Slack Web API on 127.0.0.1; ``api_url`` is the WebClient ``base_url``."""

    def __init__(self, token: str) -> None:
        self.state = SlackState(token=token)
        self._server = LocalServer(_Handler, self.state)

    @property
    def api_url(self) -> str:
        """The ``base_url`` for ``WebClient`` (``http://127.0.0.1:PORT/api/``)."""
        return self._server.url + "/api/"

    def fail_next(self, method: str, status: int = 429, retry_after: int = 1) -> None:
        """Answer the next call of ``method`` with ``status`` (429 carries Retry-After)."""
        with self.state.lock:
            self.state.failures.setdefault(method, []).append((status, retry_after))

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        """Bodies of the calls of ``method``, in order, including refused ones."""
        with self.state.lock:
            return [body for m, body in self.state.calls if m == method]

    def roots(self, channel_name: str) -> list[Message]:
        """Top-level messages of a channel, oldest first."""
        with self.state.lock:
            cid = self.state.channels.get(channel_name.lstrip("#"))
            return sorted((m for m in self.state.messages.values()
                           if m.channel == cid and m.thread_ts is None), key=lambda m: m.ts)

    def replies(self, root: Message) -> list[Message]:
        """Replies in the thread of ``root``, oldest first."""
        with self.state.lock:
            return sorted((m for m in self.state.messages.values()
                           if m.channel == root.channel and m.thread_ts == root.ts),
                          key=lambda m: m.ts)

    def __enter__(self) -> Self:
        self._server.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.__exit__(exc_type, exc, tb)
