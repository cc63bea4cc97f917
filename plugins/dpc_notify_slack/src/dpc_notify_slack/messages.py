"""Slack messages of a run: the root (the run and its current status) and the replies.

Every message carries a plain ``text`` (notifications, screen readers) and Block Kit
``blocks`` (what people see in the channel).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dpc_core.types import Notification

_EMOJI = {
    "SUCCEEDED": ":white_check_mark:",
    "FAILED": ":x:",
    "TIMED_OUT": ":hourglass:",
    "ABORTED": ":no_entry_sign:",
    "RUNNING": ":arrow_forward:",
    "STARTED": ":arrow_forward:",
}

#: Slack refuses section texts over 3000 characters; errors are cut well before that.
_MAX_ERROR = 2500


def emoji(status: str) -> str:
    """The emoji shown in front of a status."""
    return _EMOJI.get(status, ":information_source:")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}m {secs:.0f}s" if minutes else f"{secs:.1f}s"


def _error(text: str) -> str:
    cut = text if len(text) <= _MAX_ERROR else text[:_MAX_ERROR] + " …"
    return "```" + cut.replace("```", "'''") + "```"


def root_of(note: Notification) -> Notification:
    """The run as its root message shows it: a step's note becomes the run, still running."""
    if note.kind in ("PIPELINE_STARTED", "PIPELINE_FINISHED") or note.message:
        return note  # a window notice (LATE, BLOCKED, RECOVERED) is its own root
    return replace(note, kind="PIPELINE_STARTED", status="RUNNING", step=None, error=None,
                   duration_s=None)


def _parents(note: Notification) -> list[dict[str, Any]]:
    if not note.parents:
        return []
    lines = [
        f"{p.get('pipeline')} ({p.get('account')}) {p.get('status', '')} "
        f"`{p.get('executionArn') or p.get('run_id') or ''}`".rstrip(" `")
        for p in note.parents
    ]
    return [{"type": "context",
             "elements": [{"type": "mrkdwn", "text": "triggered by: " + "; ".join(lines)}]}]


def root_message(note: Notification) -> tuple[str, list[dict[str, Any]]]:
    """``(text, blocks)`` of the root message of the run ``note`` belongs to."""
    if note.message:
        line = f"{emoji(note.status)} {note.summary()}"
        return line, [{"type": "section", "text": {"type": "mrkdwn", "text": line}}]
    run = root_of(note)
    text = (f"{emoji(run.status)} {run.pipeline} ({run.account}) for {run.logical_date}: "
            f"{run.status}")
    fields = [
        ("Pipeline", run.pipeline),
        ("Account", run.account),
        ("Logical date", run.logical_date),
        ("Status", f"{emoji(run.status)} {run.status}"),
        ("Run", f"`{run.run_id}`"),
        ("Duration", _duration(run.duration_s)),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section",
         "text": {"type": "mrkdwn", "text": f"*{run.pipeline}* for {run.logical_date}"},
         "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields]},
    ]
    if run.kind == "PIPELINE_FINISHED" and (run.step or run.error):
        failed = f"*Failed step:* `{run.step}`\n" if run.step else ""
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": failed + (_error(run.error) if run.error else "")}})
        text += f" (step {run.step})" if run.step else ""
    blocks.extend(_parents(run))
    return text, blocks


def reply_message(note: Notification) -> tuple[str, list[dict[str, Any]]]:
    """``(text, blocks)`` of a reply in the run's thread."""
    if note.message:
        line = f"{emoji(note.status)} {note.summary()}"
        return line, [{"type": "section", "text": {"type": "mrkdwn", "text": line}}]
    if note.step:
        what = f"step *{note.step}*" if note.kind != "PIPELINE_FINISHED" else (
            f"run, failed step *{note.step}*")
    else:
        what = "run"
    verb = "started" if note.kind.endswith("STARTED") else note.status
    line = f"{emoji(note.status)} {what} {verb}"
    if note.kind.endswith("FINISHED"):
        line += f" in {_duration(note.duration_s)}"
    text = line.replace("*", "")
    body = line + (("\n" + _error(note.error)) if note.error else "")
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": body}}]
    if note.kind == "PIPELINE_STARTED":
        blocks.extend(_parents(note))
    return text, blocks
