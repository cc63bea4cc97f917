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
    ENV_TABLE_REGISTRY,
    ENV_TABLE_RUNS,
    ENV_TABLE_WINDOWS,
    FORWARDED_STATUS_SOURCE,
    PIPELINE_BUS_NAME,
    RUN_STATUS_DETAIL_TYPE,
    RUN_STATUS_SOURCE,
    SFN_DETAIL_TYPE,
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
        from dpc_central.status_report import from_forwarded, to_status_event
        from dpc_core.engine import Engine

        return Engine(store(), adapters=[
            (RUN_STATUS_SOURCE, RUN_STATUS_DETAIL_TYPE, to_status_event),
            (FORWARDED_STATUS_SOURCE, SFN_DETAIL_TYPE, from_forwarded)])

    result: Engine = cached("engine", build)
    return result


def emit(level: int, what: str, **fields: Any) -> None:
    """One JSON log line ``{"dpc": what, ...}``: CloudWatch Logs Insights and metric
    filters select on ``$.dpc``. Never pass secrets here."""
    log.log(level, json.dumps({"dpc": what, **fields}, default=str, sort_keys=True))


def pipeline_bus_arn(account: str, region: str | None = None) -> str:
    """ARN of ``account``'s pipeline bus (``dpc-pipelines``) in the function's region.

    The trigger manager puts each trigger straight on it: PutEvents accepts a bus ARN of
    another account when that bus's resource policy admits the caller (the policy
    ``dpc setup-user-account`` attaches admits the central account, for ``dpc.trigger``
    events). No rule per account is needed in the central account, so a new team account
    receives triggers without a central redeploy.
    """
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") \
        or client("events").meta.region_name
    return f"arn:{partition(region)}:events:{region}:{account}:event-bus/{PIPELINE_BUS_NAME}"


def partition(region: str) -> str:
    """The ARN partition of ``region`` (``aws``, ``aws-cn`` or ``aws-us-gov``)."""
    return "aws-cn" if region.startswith("cn-") else \
        "aws-us-gov" if region.startswith("us-gov-") else "aws"


def trigger_entry(decision: Decision, bus: str) -> dict[str, Any]:
    """The PutEvents entry of one trigger decision, for ``bus`` (the child's pipeline bus).

    ``detail.pipeline`` and ``detail.account`` are what the child's trigger rule matches;
    the child's idempotent starter reads ``executionName`` and ``input``.
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


def put_once(entries: list[dict[str, Any]]) -> list[tuple[str | None, str | None]]:
    """One PutEvents per ten entries; ``(event id, None)`` for each entry the bus accepted,
    ``(None, error)`` for the others.

    Accepted means what the PutEvents reference says: the call's ``FailedEntryCount`` is
    0 for it and its result entry carries an ``EventId``. A call that fails as a whole
    (AccessDenied because the child's bus policy does not admit us, throttling, a bus
    that does not exist) fails each of its entries with the error code.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    events = client("events")
    results: list[tuple[str | None, str | None]] = []
    for i in range(0, len(entries), 10):  # PutEvents takes at most 10 entries per call
        chunk = entries[i:i + 10]
        try:
            answer = events.put_events(Entries=chunk)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code") or "ClientError")
            results += [(None, f"{code}: {exc}")] * len(chunk)
            continue
        except BotoCoreError as exc:  # connection errors, timeouts
            results += [(None, f"{type(exc).__name__}: {exc}")] * len(chunk)
            continue
        got = list(answer.get("Entries") or [])
        for n in range(len(chunk)):
            # Results are in the order of the entries; with FailedEntryCount > 0 only the
            # results with an EventId and no ErrorCode went in.
            result = got[n] if n < len(got) else {}
            event_id = result.get("EventId")
            if event_id and not result.get("ErrorCode"):
                results.append((str(event_id), None))
            else:
                results.append((None, f"{result.get('ErrorCode') or 'NoEventId'}: "
                                      f"{result.get('ErrorMessage') or 'not accepted'}"))
    return results


def put_with_retries(entries: list[dict[str, Any]], *, attempts: int = 3,
                     pause_s: float = 0.2) -> list[tuple[str | None, str | None]]:
    """:func:`put_once`, re-putting refused entries ``attempts`` times in all with an
    exponential pause (throttling and internal errors are usually gone in a second)."""
    results: list[tuple[str | None, str | None]] = [(None, "not sent")] * len(entries)
    pending = list(range(len(entries)))
    for attempt in range(attempts):
        answers = put_once([entries[i] for i in pending])
        for i, answer in zip(pending, answers, strict=True):
            results[i] = answer
        pending = [i for i in pending if results[i][0] is None]
        if not pending:
            break
        if attempt + 1 < attempts:
            time.sleep(pause_s * (2 ** attempt))
    return results


def put_entries(entries: list[dict[str, Any]], *, attempts: int = 3,
                pause_s: float = 0.2) -> None:
    """Put events, retrying the entries refused; raise :class:`PutFailed` naming the
    errors when some never went in."""
    results = put_with_retries(entries, attempts=attempts, pause_s=pause_s)
    errors = sorted({err for _, err in results if err})
    if errors:
        raise PutFailed(f"PutEvents refused {sum(1 for e, _ in results if not e)} "
                        f"entries: {errors}")


#: Delivery retries: attempts made through the retry queue before a trigger goes to the
#: delivery DLQ, and the first pause (doubling, at most SQS's 15 minutes).
ENV_DELIVERY_ATTEMPTS = "DPC_DELIVERY_ATTEMPTS"
DEFAULT_DELIVERY_ATTEMPTS = 5
RETRY_BASE_S = 60
#: Seconds before the retry queue's first attempt (SQS DelaySeconds).
ENV_DELIVERY_FIRST_DELAY_S = "DPC_DELIVERY_FIRST_DELAY_S"
DEFAULT_FIRST_DELAY_S = 30
#: Marks a retry-queue message (the trigger manager reads both queues).
DELIVERY_MESSAGE = "trigger-delivery"


def delivery_attempts() -> int:
    """How many attempts the retry queue makes before dead-lettering a trigger."""
    return max(1, int(os.environ.get(ENV_DELIVERY_ATTEMPTS, DEFAULT_DELIVERY_ATTEMPTS)))


def retry_delay_s(attempt: int) -> int:
    """The pause after failed attempt ``attempt`` (1-based): 60 s doubling, at most 900."""
    return int(min(900, RETRY_BASE_S * 2 ** max(0, attempt - 1)))


def delivery_message(decision: Decision, entry: dict[str, Any], error: str) -> dict[str, Any]:
    """The retry-queue (and DLQ) message of an undelivered trigger: the entry to put and
    the claim to mark delivered once it is accepted."""
    return {"dpc": DELIVERY_MESSAGE, "entry": entry, "error": error,
            "claim": {"child": f"{decision.account}/{decision.pipeline}",
                      "window": decision.window, "generation": decision.generation,
                      "executionName": decision.execution_name}}


def send_message(url: str, body: dict[str, Any], *, delay_s: int = 0,
                 group: str = "undelivered-triggers") -> None:
    """Send ``body`` (JSON) to an SQS queue (FIFO queues get a group and a content hash)."""
    import hashlib

    text = json.dumps(body, sort_keys=True, default=str)
    kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": text}
    if url.endswith(".fifo"):
        kwargs["MessageGroupId"] = group
        kwargs["MessageDeduplicationId"] = hashlib.sha256(text.encode()).hexdigest()
    elif delay_s:
        kwargs["DelaySeconds"] = min(900, delay_s)
    client("sqs").send_message(**kwargs)


def _hand_to_retry(decision: Decision, entry: dict[str, Any], error: str) -> None:
    """Queue an undelivered trigger for retries; without a retry queue (a deployment of
    before it existed), the poison DLQ holds it. Raises :class:`PutFailed` when neither
    took it: the caller then fails, and the claim stays for the sweep."""
    from dpc_central.conventions import ENV_DELIVERY_RETRY_URL, ENV_POISON_DLQ_URL

    message = delivery_message(decision, entry, error)
    retry = os.environ.get(ENV_DELIVERY_RETRY_URL, "").strip()
    fallback = os.environ.get(ENV_POISON_DLQ_URL, "").strip()
    try:
        if retry:
            send_message(retry, message, delay_s=int(os.environ.get(
                ENV_DELIVERY_FIRST_DELAY_S, DEFAULT_FIRST_DELAY_S)))
        elif fallback:
            send_message(fallback, {"reason": error, "undeliveredTriggers": [entry]})
        else:
            raise PutFailed(f"trigger not delivered and no retry queue configured: {error}")
    except PutFailed:
        raise
    except Exception as exc:
        raise PutFailed(f"trigger not delivered ({error}) and not queued for retry: "
                        f"{type(exc).__name__}: {exc}") from exc
    emit(logging.ERROR, "undelivered-trigger", error=error, queued="retry" if retry else "dlq",
         pipeline=decision.pipeline, account=decision.account, window=decision.window,
         executionName=decision.execution_name, bus=entry.get("EventBusName"))


def acknowledge(child: str, window: str, generation: int) -> None:
    """Mark a claim delivered (logged, not raised, on failure: the trigger went out, and
    the sweep re-sending it later is harmless)."""
    try:
        store().mark_delivered(child, window, generation)
    except Exception as exc:
        emit(logging.WARNING, "mark-delivered-failed", child=child, window=window,
             generation=generation, error=f"{type(exc).__name__}: {exc}")


def put_triggers(decisions: list[Decision], *, redelivery: bool = False) -> int:
    """Put each decision's trigger event straight on its child's pipeline bus
    (:func:`pipeline_bus_arn`); returns how many the buses accepted.

    A claim is marked delivered (:meth:`DynamoStore.mark_delivered`) only when the
    child's bus accepted its event (an ``EventId``, no error). Refused entries are put
    again a few times in-process, then handed to the retry queue (``DPC_DELIVERY_RETRY_URL``),
    which the trigger manager drains with backoff and, after
    :func:`delivery_attempts`, moves to the alarmed delivery DLQ. :class:`PutFailed` is
    raised only when an undelivered trigger could not even be queued.
    """
    if not decisions:
        return 0
    entries = [trigger_entry(d, pipeline_bus_arn(d.account)) for d in decisions]
    results = put_with_retries(entries)
    accepted = 0
    problems: list[str] = []
    for d, entry, (event_id, error) in zip(decisions, entries, results, strict=True):
        if event_id is None:
            try:
                _hand_to_retry(d, entry, error or "not accepted")
            except PutFailed as exc:
                problems.append(str(exc))
            continue
        accepted += 1
        emit(logging.INFO, "trigger", pipeline=d.pipeline, account=d.account, window=d.window,
             executionName=d.execution_name, redelivery=redelivery, eventId=event_id,
             bus=entry["EventBusName"], parents=[p.execution_arn for p in d.parents])
        acknowledge(f"{d.account}/{d.pipeline}", d.window, d.generation)
    if problems:
        raise PutFailed("; ".join(problems))
    return accepted


#: Claims younger than this are left alone by the sweep: their own handler may still be
#: putting the trigger event (a Lambda runs for at most 15 minutes; PutEvents retries
#: take seconds).
ENV_REDELIVER_AFTER_S = "DPC_REDELIVER_AFTER_S"
DEFAULT_REDELIVER_AFTER_S = 300


def redeliver_claims(*, limit: int | None = None, older_than_ms: int | None = None,
                     now_ms: int | None = None) -> int:
    """Re-send the trigger events of claims never marked delivered (PutEvents failed
    after the claim, or the handler died in between); returns how many the child buses
    accepted (the others go to the retry queue, see :func:`put_triggers`).

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
    if not decisions:
        return 0
    emit(logging.WARNING, "redeliver", count=len(decisions),
         executionNames=[d.execution_name for d in decisions])
    return put_triggers(decisions, redelivery=True)


def is_eventbridge_event(obj: object) -> bool:
    """True for a decoded EventBridge event (has ``source``, ``detail-type``, ``detail``)."""
    return isinstance(obj, Mapping) and "detail-type" in obj and "source" in obj \
        and "detail" in obj
