"""What the central handlers share: boto3 clients and the store, built lazily and cached
per Lambda container; structured log lines; the trigger event put for a decision.

boto3 and the DynamoDB store are imported inside functions: importing a handler module
costs nothing until the first event (and ``dpc --help`` never pays for it).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dpc_central.conventions import (
    ENV_CENTRAL_BUS,
    ENV_TABLE_REGISTRY,
    ENV_TABLE_RUNS,
    ENV_TABLE_WINDOWS,
    RUN_STATUS_DETAIL_TYPE,
    RUN_STATUS_SOURCE,
    TRIGGER_DETAIL_TYPE,
    TRIGGER_SOURCE,
)

if TYPE_CHECKING:
    from dpc_core.engine import Decision, Engine
    from dpc_core.stores.dynamodb import DynamoStore

log = logging.getLogger("dpc.central")

#: Per-container caches: Lambda reuses a container for many invocations, so clients
#: (connection pools, credential lookups) and the store are built once. Tests call
#: :func:`reset` between moto contexts.
_clients: dict[tuple[str, str | None], Any] = {}
_singletons: dict[str, Any] = {}


def reset() -> None:
    """Forget cached clients, store and secrets (a new container, as far as tests care)."""
    _clients.clear()
    _singletons.clear()


def client(service: str, region: str | None = None) -> Any:
    """A boto3 client of the function's own account, cached per container."""
    key = (service, region)
    found = _clients.get(key)
    if found is None:
        import boto3

        found = boto3.client(service, region_name=region) if region else boto3.client(service)
        _clients[key] = found
    return found


def cached(name: str, build: Callable[[], Any]) -> Any:
    """A per-container singleton built by ``build`` on first use."""
    if name not in _singletons:
        _singletons[name] = build()
    return _singletons[name]


def require_env(name: str) -> str:
    """An environment variable the deployment must set; a clear error when it is missing."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise RuntimeError(f"environment variable {name} is not set (see the handler's "
                           "module docstring)")
    return value


def store() -> DynamoStore:
    """The engine's DynamoDB store over the tables named by ``DPC_TABLE_*``."""
    def build() -> DynamoStore:
        from dpc_core.stores.dynamodb import DynamoStore, DynamoTables

        tables = DynamoTables(registry=require_env(ENV_TABLE_REGISTRY),
                              runs=require_env(ENV_TABLE_RUNS),
                              windows=require_env(ENV_TABLE_WINDOWS))
        return DynamoStore(client("dynamodb"), tables)

    result: DynamoStore = cached("store", build)
    return result


def engine() -> Engine:
    """The one trigger engine over the DynamoDB store, reading the runs' own reports
    (``dpc.pipeline`` run-status events) through :func:`to_status_event`."""
    def build() -> Engine:
        from dpc_central.status_report import to_status_event
        from dpc_core.engine import Engine

        return Engine(store(), adapters=[(RUN_STATUS_SOURCE, RUN_STATUS_DETAIL_TYPE,
                                          to_status_event)])

    result: Engine = cached("engine", build)
    return result


def emit(level: int, what: str, **fields: Any) -> None:
    """One JSON log line ``{"dpc": what, ...}``: CloudWatch Logs Insights and metric
    filters select on ``$.dpc``. Never pass secrets here."""
    log.log(level, json.dumps({"dpc": what, **fields}, default=str, sort_keys=True))


def trigger_entry(decision: Decision, bus: str) -> dict[str, Any]:
    """The PutEvents entry of one trigger decision.

    ``detail.account`` is what the central bus's delivery rules match (one rule per member
    account targets that account's pipeline bus only); ``detail.pipeline`` and
    ``detail.account`` are what the child's trigger rule matches; the child's idempotent
    starter reads ``executionName`` and ``input``.
    """
    detail = {
        "account": decision.account,
        "pipeline": decision.pipeline,
        "executionName": decision.execution_name,
        "window": decision.window,
        "generation": decision.generation,
        "parents": [p.to_dict() for p in decision.parents],
        "input": decision.run_input(),
    }
    return {"Source": TRIGGER_SOURCE, "DetailType": TRIGGER_DETAIL_TYPE,
            "Detail": json.dumps(detail, sort_keys=True), "EventBusName": bus}


class PutFailed(Exception):
    """PutEvents did not accept an entry after retries (transient by nature)."""


def put_entries(entries: list[dict[str, Any]], *, attempts: int = 3,
                pause_s: float = 0.2) -> None:
    """Put events on EventBridge, retrying the entries it refused (throttling, internal
    errors); raise :class:`PutFailed` naming the error codes when some never went in."""
    events = client("events")
    pending = list(entries)
    codes: list[str] = []
    for attempt in range(attempts):
        # PutEvents takes at most 10 entries per call.
        failed: list[dict[str, Any]] = []
        codes = []
        for i in range(0, len(pending), 10):
            chunk = pending[i:i + 10]
            answer = events.put_events(Entries=chunk)
            if answer.get("FailedEntryCount"):
                for entry, result in zip(chunk, answer["Entries"], strict=False):
                    if result.get("ErrorCode"):
                        failed.append(entry)
                        codes.append(str(result["ErrorCode"]))
        if not failed:
            return
        pending = failed
        if attempt + 1 < attempts:
            time.sleep(pause_s * (2 ** attempt))
    raise PutFailed(f"PutEvents refused {len(pending)} entries: {sorted(set(codes))}")


def put_triggers(decisions: list[Decision], *, redelivery: bool = False) -> None:
    """Put one trigger event per decision on the central bus (``DPC_CENTRAL_BUS``), then
    mark each claim delivered in the store (see :func:`redeliver_claims`).

    A failed acknowledgement is logged, not raised: the trigger went out, and the sweep
    re-sending it later is harmless (the execution name is deterministic).
    """
    if not decisions:
        return
    bus = require_env(ENV_CENTRAL_BUS)
    put_entries([trigger_entry(d, bus) for d in decisions])
    for d in decisions:
        emit(logging.INFO, "trigger", pipeline=d.pipeline, account=d.account, window=d.window,
             executionName=d.execution_name, redelivery=redelivery,
             parents=[p.execution_arn for p in d.parents])
        try:
            store().mark_delivered(f"{d.account}/{d.pipeline}", d.window, d.generation)
        except Exception as exc:
            emit(logging.WARNING, "mark-delivered-failed", pipeline=d.pipeline,
                 account=d.account, window=d.window, generation=d.generation,
                 error=f"{type(exc).__name__}: {exc}")


#: Claims younger than this are left alone by the sweep: their own handler may still be
#: putting the trigger event (a Lambda runs for at most 15 minutes; PutEvents retries
#: take seconds).
ENV_REDELIVER_AFTER_S = "DPC_REDELIVER_AFTER_S"
DEFAULT_REDELIVER_AFTER_S = 300


def redeliver_claims(*, limit: int | None = None, older_than_ms: int | None = None,
                     now_ms: int | None = None) -> int:
    """Re-send the trigger events of claims never marked delivered (PutEvents failed
    after the claim, or the handler died in between); returns how many were put.

    A claim is decided once (a redelivered status event finds it claimed), so without
    this its trigger would be lost. Re-sending one that did go out is harmless: the
    child's starter uses the deterministic execution name, and a second start of the
    same name is a no-op. The claim keeps the ``downstream`` flag of a
    ``dpc rerun --downstream`` decision, so a re-sent trigger carries it on.
    """
    from dpc_core.engine import Decision, ParentRun
    from dpc_core.store import split_pkey

    if older_than_ms is None:
        older_than_ms = 1000 * int(os.environ.get(ENV_REDELIVER_AFTER_S,
                                                  DEFAULT_REDELIVER_AFTER_S))
    claims = store().undelivered_claims(older_than_ms, now_ms=now_ms, limit=limit)
    decisions = []
    for c in claims:
        account, name = split_pkey(c.child)
        parents = tuple(ParentRun(p.get("pipeline", ""), p.get("account", ""),
                                  p.get("executionArn", ""), p.get("status", ""))
                        for p in c.parents)
        decisions.append(Decision(name, account, c.window, c.execution_name, parents,
                                  c.generation, c.downstream))
    if decisions:
        emit(logging.WARNING, "redeliver", count=len(decisions),
             executionNames=[d.execution_name for d in decisions])
        put_triggers(decisions, redelivery=True)
    return len(decisions)


def is_eventbridge_event(obj: object) -> bool:
    """True for a decoded EventBridge event (has ``source``, ``detail-type``, ``detail``)."""
    return isinstance(obj, Mapping) and "detail-type" in obj and "source" in obj \
        and "detail" in obj
