"""A fake OpsGenie Alert API (v2) for the real opsgenie-sdk.

Like OpsGenie: ``Authorization: GenieKey <key>`` or 401; create and close answer
``202 Request will be processed`` with a ``requestId`` whose outcome
``GET /v2/alerts/requests/{id}`` reports; a create whose alias matches an open alert does not
make a second alert but increments the open one's ``count``; close by ``id`` or by
``alias`` (``identifierType``); closing what is not open fails only in the request status;
``GET /v2/alerts/{identifier}?identifierType=id|alias`` returns an alert (by alias: the
open one, 404 when none). ``delay(seconds)`` makes a create act at once but answer late.

    with FakeOpsGenie(api_key="k") as og:
        ... opsgenie-sdk with host = og.url ...
        og.alerts  # every alert, open and closed
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from fakes.localserver import JsonHandler, LocalServer


@dataclass
class Alert:
    """An alert as the fake holds it."""

    id: str
    alias: str
    message: str
    description: str
    responders: list[dict[str, Any]]
    tags: list[str]
    details: dict[str, str]
    source: str
    status: str = "open"
    count: int = 1
    close_note: str | None = None


@dataclass
class OpsGenieState:
    """Alerts, request outcomes and every call received."""

    api_key: str
    alerts: list[Alert] = field(default_factory=list)
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    create_delay: float = 0.0

    def open_alert(self, identifier: str, kind: str) -> Alert | None:
        for alert in self.alerts:
            if alert.status == "open" and (
                    (kind == "alias" and alert.alias == identifier)
                    or (kind == "id" and alert.id == identifier)):
                return alert
        return None


class _Handler(JsonHandler):
    def _authorized(self, state: OpsGenieState) -> bool:
        if self.headers.get("Authorization") == f"GenieKey {state.api_key}":
            return True
        self.answer(401, {"message": "Could not authenticate", "took": 0.0,
                          "requestId": str(uuid.uuid4())})
        return False

    def _accepted(self, state: OpsGenieState, outcome: dict[str, Any]) -> None:
        request_id = str(uuid.uuid4())
        state.requests[request_id] = outcome
        self._later = (202, {"result": "Request will be processed", "took": 0.01,
                             "requestId": request_id})

    def do_POST(self) -> None:
        state: OpsGenieState = self.server.state  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        body = self.read_body()
        delay = 0.0
        with state.lock:
            state.calls.append(("POST", url.path, {**body, **{"?" + k: v
                                                               for k, v in query.items()}}))
            if not self._authorized(state):
                return
            parts = url.path.strip("/").split("/")
            if parts == ["v2", "alerts"]:
                self._create(state, body)
                delay = state.create_delay
            elif len(parts) == 4 and parts[:2] == ["v2", "alerts"] and parts[3] == "close":
                self._close(state, unquote(parts[2]), query.get("identifierType", "id"), body)
            else:
                self.answer(404, {"message": "Resource not found", "took": 0.0,
                                  "requestId": str(uuid.uuid4())})
        later = getattr(self, "_later", None)
        if later is not None:
            self._later = None
            if delay:
                time.sleep(delay)  # acted on already; the client hears of it late (or never)
            with contextlib.suppress(OSError):
                self.answer(*later)

    def do_GET(self) -> None:
        state: OpsGenieState = self.server.state  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with state.lock:
            state.calls.append(("GET", url.path, {"?" + k: v for k, v in query.items()}))
            if not self._authorized(state):
                return
            if len(parts) == 4 and parts[:3] == ["v2", "alerts", "requests"]:
                outcome = state.requests.get(parts[3])
                if outcome is not None:
                    self.answer(200, {"data": outcome, "took": 0.0, "requestId": parts[3]})
                    return
            elif len(parts) == 3 and parts[:2] == ["v2", "alerts"]:
                kind = query.get("identifierType", "id")
                identifier = unquote(parts[2])
                found = state.open_alert(identifier, "alias") if kind == "alias" else next(
                    (a for a in state.alerts if a.id == identifier), None)
                if found is not None:
                    self.answer(200, {"data": {
                        "id": found.id, "alias": found.alias, "message": found.message,
                        "status": found.status, "count": found.count, "tags": found.tags,
                        "details": found.details, "source": found.source,
                        "description": found.description}, "took": 0.0,
                        "requestId": str(uuid.uuid4())})
                    return
                self.answer(404, {"message": "Alert does not exist", "took": 0.0,
                                  "requestId": str(uuid.uuid4())})
                return
            self.answer(404, {"message": "Request not found", "took": 0.0,
                              "requestId": str(uuid.uuid4())})

    def _create(self, state: OpsGenieState, body: dict[str, Any]) -> None:
        message = str(body.get("message") or "")
        if not message:
            self.answer(422, {"message": "Request body is not processed correctly",
                              "errors": {"message": "Message can not be empty."},
                              "took": 0.0, "requestId": str(uuid.uuid4())})
            return
        alias = str(body.get("alias") or "")
        existing = state.open_alert(alias, "alias") if alias else None
        if existing is not None:
            existing.count += 1  # OpsGenie's de-duplication by alias
            alert = existing
        else:
            alert = Alert(id=str(uuid.uuid4()), alias=alias or str(uuid.uuid4()),
                          message=message, description=str(body.get("description") or ""),
                          responders=list(body.get("responders") or []),
                          tags=list(body.get("tags") or []),
                          details=dict(body.get("details") or {}),
                          source=str(body.get("source") or ""))
            state.alerts.append(alert)
        self._accepted(state, {"success": True, "action": "Create", "status": "Created alert",
                               "alertId": alert.id, "alias": alert.alias,
                               "isSuccess": True})

    def _close(self, state: OpsGenieState, identifier: str, kind: str,
               body: dict[str, Any]) -> None:
        if kind not in ("id", "alias", "tiny"):
            self.answer(422, {"message": f"Invalid identifierType [{kind}]", "took": 0.0,
                              "requestId": str(uuid.uuid4())})
            return
        alert = state.open_alert(identifier, kind)
        if alert is None:
            self._accepted(state, {"success": False, "action": "Close",
                                   "status": "Alert does not exist", "isSuccess": False})
            return
        alert.status = "closed"
        alert.close_note = body.get("note")
        self._accepted(state, {"success": True, "action": "Close", "status": "Closed alert",
                               "alertId": alert.id, "alias": alert.alias, "isSuccess": True})


class FakeOpsGenie:
    """The fake OpsGenie API on 127.0.0.1; ``url`` is the SDK's ``host``."""

    def __init__(self, api_key: str) -> None:
        self.state = OpsGenieState(api_key=api_key)
        self._server = LocalServer(_Handler, self.state)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self._server.url

    @property
    def alerts(self) -> list[Alert]:
        """Every alert, open and closed, in creation order."""
        with self.state.lock:
            return list(self.state.alerts)

    def delay(self, seconds: float) -> None:
        """Act on each alert create at once but answer ``seconds`` later."""
        with self.state.lock:
            self.state.create_delay = seconds

    def calls(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(method, path, body + ?query)`` of every call, in order."""
        with self.state.lock:
            return list(self.state.calls)

    def __enter__(self) -> Self:
        self._server.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.__exit__(exc_type, exc, tb)
