"""Slack delivery: one thread per run and channel (slack-sdk ``WebClient``).

The first message of a run in a channel is its root (``chat.postMessage``); every later
message is a reply in its thread (``thread_ts``), and the final status also rewrites the
root (``chat.update``) so the channel shows each run's outcome at a glance.

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
        if root is None:
            # The first message of the run here is its root, whatever kind it is; a step's
            # note then follows as the first reply.
            text, blocks = root_message(note)
            answer = self.client.chat_postMessage(channel=channel, text=text, blocks=blocks)
            root = ThreadRef(channel_id=str(answer["channel"]), ts=str(answer["ts"]))
            self.threads.put(note.run_id, channel, root)
            if note.kind in ("PIPELINE_STARTED", "PIPELINE_FINISHED", "PIPELINE_LATE",
                             "PIPELINE_BLOCKED"):
                return
        elif note.kind == "PIPELINE_STARTED":
            return  # a repeated start adds nothing to the thread
        text, blocks = reply_message(note)
        self.client.chat_postMessage(channel=root.channel_id, thread_ts=root.ts, text=text,
                                     blocks=blocks)
        if note.kind in ("PIPELINE_FINISHED", "NOTICE_RESOLVED"):
            # A resolved LATE or BLOCKED notice rewrites its root too: the channel shows
            # at a glance that it is over.
            text, blocks = root_message(note)
            # chat.update wants the channel id Slack answered, not the name.
            self.client.chat_update(channel=root.channel_id, ts=root.ts, text=text,
                                    blocks=blocks)


def _describe(exc: Exception) -> str:
    """A short reason: Slack's error code when it answered, else the exception."""
    response: Any = getattr(exc, "response", None)
    if response is not None:
        try:
            return f"Slack API error {response.status_code}: {response['error']}"
        except Exception:
            pass
    return f"{type(exc).__name__}: {exc}"
