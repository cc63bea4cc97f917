"""A fake Slack Web API (``chat.postMessage``, ``chat.update``, ``conversations.history``,
``conversations.replies``, ``conversations.list``) for the real slack-sdk.

Behaves like Slack where the client can tell: bearer-token auth (``invalid_auth``), channel
names resolved to ids (``chat.update`` and the ``conversations.*`` reads want the id), a
``ts`` per message, ``thread_ts`` that must name a message of the channel, message
``metadata`` (``event_type`` + ``event_payload``) returned by the reads only with
``include_all_metadata``, history newest first and top-level messages only (replies are
read with ``conversations.replies``), cursor pagination with ``limit``, and HTTP 429 with
``Retry-After`` on demand. ``delay(method, seconds)`` makes a method act at once but answer
late (a crash of the client meanwhile leaves the message posted).

    with FakeSlack(token="xoxb-test") as slack:
        WebClient(token="xoxb-test", base_url=slack.api_url).chat_postMessage(...)
        slack.posts  # what was posted
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

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
    metadata: dict[str, Any] | None = None

    def shown(self, with_metadata: bool) -> dict[str, Any]:
        """The message as ``conversations.history`` / ``.replies`` return it."""
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text}
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
        if with_metadata and self.metadata is not None:
            out["metadata"] = self.metadata
        return out


@dataclass
class SlackState:
    """What the fake has received and holds."""

    token: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    messages: dict[tuple[str, str], Message] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)
    failures: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    delays: dict[str, tuple[float, str]] = field(default_factory=dict)
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


_READS_PAGE_MAX = 999  # Slack's own maximum ``limit`` for conversations.history


class _Handler(JsonHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self._call(url.path.rsplit("/", 1)[-1], dict(parse_qsl(url.query)))

    def do_POST(self) -> None:
        self._call(self.path.rsplit("/", 1)[-1], self.read_body())

    def _call(self, method: str, body: dict[str, Any]) -> None:
        state: SlackState = self.server.state  # type: ignore[attr-defined]
        answer = self._handle(state, method, body)
        if answer is None:
            return
        delay, only = state.delays.get(method, (0.0, ""))
        if delay and only in str(body.get("text", "")):
            time.sleep(delay)  # done already; the client hears of it late (or never)
        with contextlib.suppress(OSError):
            self.answer(200, answer)

    def _handle(self, state: SlackState, method: str,
                body: dict[str, Any]) -> dict[str, Any] | None:
        with state.lock:
            state.calls.append((method, body))
            queued = state.failures.get(method)
            if queued:
                status, retry_after = queued.pop(0)
                self.answer(status, {"ok": False, "error": "ratelimited" if status == 429
                                     else "fatal_error"},
                            {"Retry-After": str(retry_after)} if status == 429 else None)
                return None
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                return {"ok": False, "error": "invalid_auth"}
            handler = {"chat.postMessage": self._post, "chat.update": self._update,
                       "conversations.history": self._history,
                       "conversations.replies": self._replies,
                       "conversations.list": self._list}.get(method)
            if handler is None:
                return {"ok": False, "error": "unknown_method"}
            return handler(state, body)

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
        metadata = body.get("metadata")
        if isinstance(metadata, str):  # form-encoded calls send it as a JSON string
            metadata = json.loads(metadata)
        if metadata is not None and not (isinstance(metadata, dict)
                                         and isinstance(metadata.get("event_type"), str)
                                         and isinstance(metadata.get("event_payload"), dict)):
            return {"ok": False, "error": "invalid_metadata_format"}
        msg = Message(channel, state.next_ts(), str(body.get("text", "")),
                      list(body.get("blocks") or []), thread_ts, metadata=metadata)
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


    @staticmethod
    def _page(messages: list[Message], body: dict[str, Any]) -> dict[str, Any]:
        try:
            limit = max(1, min(int(body.get("limit") or 100), _READS_PAGE_MAX))
            start = int(body.get("cursor") or 0)
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        with_metadata = str(body.get("include_all_metadata", "")).lower() in ("1", "true")
        page = messages[start:start + limit]
        more = start + limit < len(messages)
        return {"ok": True, "messages": [m.shown(with_metadata) for m in page],
                "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    @classmethod
    def _history(cls, state: SlackState, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel", ""))
        if channel not in state.channels.values():
            return {"ok": False, "error": "channel_not_found"}
        top = sorted((m for m in state.messages.values()
                      if m.channel == channel and m.thread_ts is None),
                     key=lambda m: m.ts, reverse=True)
        return cls._page(top, body)

    @classmethod
    def _replies(cls, state: SlackState, body: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(body.get("channel", "")), str(body.get("ts", ""))
        if channel not in state.channels.values():
            return {"ok": False, "error": "channel_not_found"}
        root = state.messages.get((channel, ts))
        if root is None:
            return {"ok": False, "error": "thread_not_found"}
        thread = [root, *sorted((m for m in state.messages.values()
                                 if m.channel == channel and m.thread_ts == ts),
                                key=lambda m: m.ts)]
        return cls._page(thread, body)

    @staticmethod
    def _list(state: SlackState, body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "channels": [{"id": cid, "name": name, "is_channel": True}
                                         for name, cid in sorted(state.channels.items())],
                "response_metadata": {"next_cursor": ""}}


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

    def delay(self, method: str, seconds: float, when: str = "") -> None:
        """Act on each call of ``method`` (whose text contains ``when``) at once but answer
        ``seconds`` later."""
        with self.state.lock:
            self.state.delays[method] = (seconds, when)

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
