"""Slack delivery: one thread per run and channel (slack-sdk ``WebClient``).

The first message of a run in a channel is its root (``chat.postMessage``); every later
message is a reply in its thread (``thread_ts``), and the final status also rewrites the
root (``chat.update``) so the channel shows each run's outcome at a glance.

Retries are harmless: each message carries Slack message metadata (``event_type``
``dpc_notification``, ``event_payload`` with the notification's ``dpc_key``, its run and
whether it is a root or a reply). A notification whose earlier delivery may have gone out
(``Notification.retry``: the runtime stopped while it was under way) first looks for its
own message: the run's root in ``conversations.history`` (the channel's latest
:data:`LOOK_BACK` top-level messages, ``include_all_metadata``) and its reply in
``conversations.replies`` of that thread. What is found is not posted again. This needs
the ``channels:history`` (``groups:history`` for private channels) and, for a channel given
by name, ``channels:read`` scopes; without them the lookup fails and the message is posted
(at-least-once, as before).

Environment: ``SLACK_BOT_TOKEN`` (required), ``DPC_SLACK_API_URL`` (default
``https://slack.com/api/``; tests point it at a local server), ``DPC_SLACK_THREADS_DB``
(SQLite file keeping threads across restarts; in memory when unset),
``DPC_NOTIFY_TIMEOUT`` (seconds per HTTP call, default 10).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dpc_core.notify import ChannelNotConfigured, DeliveryError
from dpc_core.types import Notification
from dpc_notify_slack.messages import reply_message, root_message
from dpc_notify_slack.threads import InMemoryThreadStore, SqliteThreadStore, ThreadRef, ThreadStore

if TYPE_CHECKING:
    from slack_sdk import WebClient

DEFAULT_API_URL = "https://slack.com/api/"
#: ``metadata.event_type`` of every message dpc posts.
EVENT_TYPE = "dpc_notification"
#: How many of a channel's latest top-level messages (or of a thread's) a retry looks at.
LOOK_BACK = 1000
_PAGE = 200
_RUN_LEVEL = ("PIPELINE_STARTED", "PIPELINE_FINISHED", "PIPELINE_LATE", "PIPELINE_BLOCKED")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


def channel_ref(address: str) -> str:
    """What ``chat.postMessage`` gets for an address: a channel id as is, a name with ``#``."""
    name = address.strip()
    if _CHANNEL_ID.match(name) or name.startswith("#"):
        return name
    return "#" + name


class SlackBackend:
    """Posts each run as a Slack thread in every channel of ``addresses``."""

    def __init__(self, client: WebClient, threads: ThreadStore | None = None) -> None:
        self.client = client
        self.threads: ThreadStore = threads if threads is not None else InMemoryThreadStore()
        # One root per run and channel even when steps finish concurrently.
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SlackBackend:
        """Build the client from the environment (see the module docstring)."""
        from slack_sdk import WebClient
        from slack_sdk.http_retry.builtin_handlers import (
            ConnectionErrorRetryHandler,
            RateLimitErrorRetryHandler,
            ServerErrorRetryHandler,
        )

        token = env.get("SLACK_BOT_TOKEN", "").strip()
        if not token:
            raise ChannelNotConfigured("set SLACK_BOT_TOKEN to the bot token of the Slack app")
        client = WebClient(
            token=token,
            base_url=env.get("DPC_SLACK_API_URL") or DEFAULT_API_URL,
            timeout=int(env.get("DPC_NOTIFY_TIMEOUT", "10")),
            retry_handlers=[
                # 429: waits for Retry-After, then tries again.
                RateLimitErrorRetryHandler(max_retry_count=2),
                ConnectionErrorRetryHandler(max_retry_count=2),
                ServerErrorRetryHandler(max_retry_count=2),
            ],
        )
        db = env.get("DPC_SLACK_THREADS_DB")
        return cls(client, SqliteThreadStore(db) if db else InMemoryThreadStore())

    def send(self, note: Notification, addresses: Sequence[str]) -> None:
        """Post ``note`` in the run's thread of every channel; raise
        :class:`~dpc_core.notify.DeliveryError` at the end for the channels that failed."""
        problems: dict[str, str] = {}
        for address in addresses:
            try:
                with self._lock:
                    self._send_one(note, address)
            except Exception as exc:
                problems[address] = _describe(exc)
        if problems:
            raise DeliveryError("SLACK", problems)

    def _send_one(self, note: Notification, address: str) -> None:
        channel = channel_ref(address)
        root = self.threads.get(note.run_id, channel)
        own_root = False  # the root is this very notification's message
        if root is None and note.retry and note.key:
            found = self._find_root(note.run_id, channel)
            if found is not None:
                root, key = found
                self.threads.put(note.run_id, channel, root)
                own_root = key == note.key
        if root is None:
            # The first message of the run here is its root, whatever kind it is; a step's
            # note then follows as the first reply.
            text, blocks = root_message(note)
            answer = self.client.chat_postMessage(channel=channel, text=text, blocks=blocks,
                                                  **_metadata(note, "root"))
            root = ThreadRef(channel_id=str(answer["channel"]), ts=str(answer["ts"]))
            self.threads.put(note.run_id, channel, root)
            own_root = True
        elif not own_root and note.kind == "PIPELINE_STARTED":
            return  # a repeated start adds nothing to the thread
        if own_root and note.kind in _RUN_LEVEL:
            return
        text, blocks = reply_message(note)
        if not (note.retry and note.key and self._in_thread(root, note.key)):
            self.client.chat_postMessage(channel=root.channel_id, thread_ts=root.ts, text=text,
                                         blocks=blocks, **_metadata(note, "reply"))
        if note.kind in ("PIPELINE_FINISHED", "NOTICE_RESOLVED"):
            # A resolved LATE or BLOCKED notice rewrites its root too: the channel shows
            # at a glance that it is over (rewriting it again changes nothing).
            text, blocks = root_message(note)
            # chat.update wants the channel id Slack answered, not the name.
            self.client.chat_update(channel=root.channel_id, ts=root.ts, text=text,
                                    blocks=blocks)

    # -- a retry looks for what its first attempt may have posted ---------------------

    def _channel_id(self, channel: str) -> str | None:
        """The id of ``channel`` (``#name`` or an id): the reads want an id."""
        if _CHANNEL_ID.match(channel):
            return channel
        name, cursor = channel.lstrip("#"), ""
        for _ in range(LOOK_BACK // _PAGE):
            answer = self.client.conversations_list(
                types="public_channel,private_channel", exclude_archived=True, limit=_PAGE,
                cursor=cursor or None)
            for c in answer.get("channels") or []:
                if c.get("name") == name:
                    return str(c["id"])
            cursor = (answer.get("response_metadata") or {}).get("next_cursor") or ""
            if not cursor:
                break
        return None

    def _messages(self, read: Any, **args: Any) -> Any:
        """The messages of a paginated read, at most :data:`LOOK_BACK` of them."""
        cursor = ""
        for _ in range(LOOK_BACK // _PAGE):
            answer = read(include_all_metadata=True, limit=_PAGE, cursor=cursor or None,
                          **args)
            yield from answer.get("messages") or []
            cursor = (answer.get("response_metadata") or {}).get("next_cursor") or ""
            if not cursor:
                return

    def _find_root(self, run_id: str, channel: str) -> tuple[ThreadRef, str] | None:
        """The run's root message in ``channel`` and the key it was posted with."""
        try:
            cid = self._channel_id(channel)
            if cid is None:
                return None
            for m in self._messages(self.client.conversations_history, channel=cid):
                payload = _payload(m)
                if payload.get("dpc_run") == run_id and payload.get("part") == "root":
                    return ThreadRef(channel_id=cid, ts=str(m["ts"])), str(
                        payload.get("dpc_key"))
        except Exception:  # cannot look (scopes, API): post, at least once
            return None
        return None

    def _in_thread(self, root: ThreadRef, key: str) -> bool:
        """Whether the thread of ``root`` holds the reply posted with ``key``."""
        try:
            return any(_payload(m).get("dpc_key") == key and _payload(m).get("part") == "reply"
                       for m in self._messages(self.client.conversations_replies,
                                               channel=root.channel_id, ts=root.ts))
        except Exception:
            return False


def _metadata(note: Notification, part: str) -> dict[str, Any]:
    """``chat.postMessage``'s ``metadata`` argument for ``note`` (none without a key)."""
    if not note.key:
        return {}
    return {"metadata": {"event_type": EVENT_TYPE,
                         "event_payload": {"dpc_key": note.key, "dpc_run": note.run_id,
                                           "part": part}}}


def _payload(message: Any) -> dict[str, Any]:
    meta = message.get("metadata") if isinstance(message, dict) else None
    if not isinstance(meta, dict) or meta.get("event_type") != EVENT_TYPE:
        return {}
    payload = meta.get("event_payload")
    return payload if isinstance(payload, dict) else {}


def _describe(exc: Exception) -> str:
    """A short reason: Slack's error code when it answered, else the exception."""
    response: Any = getattr(exc, "response", None)
    if response is not None:
        try:
            return f"Slack API error {response.status_code}: {response['error']}"
        except Exception:
            pass
    return f"{type(exc).__name__}: {exc}"
