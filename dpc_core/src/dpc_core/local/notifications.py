"""What the local runtime notified, where and how (``dpc local notifications``).

Every notification the runtime owes is an outbox item (``kind = 'notify'``); once handled,
the item keeps a ``deliveries`` list: one entry per channel address, delivered through the
real channel (``via = channel``), printed because the channel is not configured
(``console``) or ``failed`` with the reason. Texts are redacted before they are stored.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from dpc_core.notify import Dispatcher
from dpc_core.stores.sqlite import SqliteStore
from dpc_core.types import Notification

COLUMNS = ("time", "channel", "address", "via", "pipeline", "run_id", "kind", "status", "text",
           "reason")


def list_notifications(store: SqliteStore, run: str | None = None,
                       pipeline: str | None = None) -> list[dict[str, Any]]:
    """Every delivery, oldest first; ``run`` keeps one run (id or id prefix), ``pipeline``
    one pipeline (name or ``account/name``)."""
    rows = store.conn.execute(
        "SELECT payload FROM lr_outbox WHERE kind = 'notify' AND done_ms IS NOT NULL "
        "ORDER BY seq").fetchall()
    out: list[dict[str, Any]] = []
    for (payload,) in rows:
        item = json.loads(payload)
        note = item.get("note", {})
        if run and not str(note.get("run_id", "")).startswith(run):
            continue
        if pipeline and pipeline not in (item.get("pipeline"), note.get("pipeline")):
            continue
        for d in item.get("deliveries", []):
            out.append({
                "time": datetime.fromtimestamp(d["at"], tz=UTC).isoformat(timespec="milliseconds"),
                "channel": d["channel"], "address": d["address"], "via": d["via"],
                "pipeline": item.get("pipeline", ""), "run_id": note.get("run_id", ""),
                "kind": note.get("kind", ""), "status": note.get("status", ""),
                "text": d["text"], "reason": d.get("reason", ""),
            })
    return out


def notifications_table(rows: list[dict[str, Any]]) -> str:
    """Deliveries as aligned text: time, channel, address, via, run, text (and why a
    delivery failed)."""
    if not rows:
        return "no notifications yet"
    table = [("TIME (UTC)", "CHANNEL", "ADDRESS", "VIA", "RUN", "TEXT")]
    for r in rows:
        text = r["text"] + (f"  [{r['reason']}]" if r["reason"] else "")
        table.append((r["time"][11:23], r["channel"], r["address"], r["via"], r["run_id"], text))
    widths = [max(len(t[i]) for t in table) for i in range(len(table[0]) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(t, widths, strict=False)), t[-1]])
                     for t in table)


def notifications_json(rows: list[dict[str, Any]]) -> str:
    """Deliveries as a JSON array (one object per delivery, keys :data:`COLUMNS`)."""
    return json.dumps(rows, indent=2)


def replay_printed_alerts(store: SqliteStore, dispatcher: Dispatcher) -> None:
    """Seed ``dispatcher.shown_open`` with the alerts whose opening an earlier runtime
    printed (channel not configured) and whose closing it did not: a later success then
    prints the close of what was shown open, and no close of anything else."""
    rows = store.conn.execute(
        "SELECT payload FROM lr_outbox WHERE kind = 'notify' AND done_ms IS NOT NULL "
        "AND payload LIKE '%\"via\": \"console\"%' ORDER BY seq").fetchall()
    for (payload,) in rows:
        item = json.loads(payload)
        try:
            note = Notification(**item["note"])
        except (KeyError, TypeError):
            continue
        for d in item.get("deliveries", []):
            if d.get("via") == "console":
                dispatcher.remember_printed(d["channel"], d["address"], note)
