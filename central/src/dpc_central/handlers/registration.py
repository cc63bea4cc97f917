"""The registration API (API Gateway REST, IAM auth, Lambda proxy integration).

Routes:

* ``PUT /pipelines/{account}/{name}``: register or replace a pipeline's dependencies and
  alert channels. Body (JSON)::

      {"condition": {"allOf": [...]} | null,       # trigger.executions; null: none
       "window": "daily" | "hourly", "timezone": "UTC", "rerun": "never" | ...,
       "notifications": {"type": "FULL_EXECUTION", "targets": [{"channel", "addresses"}]},
       "topicArn": "arn:aws:sns:...:dpc-<name>",   # optional; default by convention
       "info": {"schedule": ..., "description": ..., "owner": ...}}   # optional

  ``account``/``name`` in the body, when present, must equal the path's. Answers 200
  with the stored spec; 400 naming the field of a validation error; 403 when the caller
  is not the pipeline's account; 409 with the cycle path when registering would close a
  dependency cycle (nothing is stored).
* ``DELETE /pipelines/{account}/{name}``: unregister (the caller's own pipelines only);
  404 when it was not registered.
* ``GET /pipelines`` and ``GET /pipelines/{account}/{name}``: read the registry (any
  member account: lineage crosses accounts).

The caller's account is the IAM identity API Gateway authenticated
(``requestContext.identity.accountId``, else the account in ``userArn``/``caller``);
nothing in the body or the path can change it.

Environment: ``DPC_TABLE_REGISTRY``, ``DPC_TABLE_RUNS``, ``DPC_TABLE_WINDOWS``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from dpc_central.handlers import _common as common

_ACCOUNT = re.compile(r"^\d{12}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")
_ALLOWED = {"account", "name", "condition", "window", "timezone", "rerun", "notifications",
            "topicArn", "info", "parents"}


class HttpError(Exception):
    """An answer other than 200, with its JSON body."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"message": message, **extra}


def _response(status: int, body: Any) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body, sort_keys=True)}


def caller_account(event: Mapping[str, Any]) -> str | None:
    """The AWS account of the IAM identity that signed the request, or None."""
    ctx = event.get("requestContext")
    identity = ctx.get("identity") if isinstance(ctx, Mapping) else None
    if not isinstance(identity, Mapping):
        return None
    account = identity.get("accountId")
    if isinstance(account, str) and _ACCOUNT.match(account):
        return account
    for key in ("userArn", "caller"):
        value = identity.get(key)
        if isinstance(value, str) and value.startswith("arn:"):
            parts = value.split(":")
            if len(parts) > 4 and _ACCOUNT.match(parts[4]):
                return parts[4]
    return None


def handle(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point: an API Gateway proxy event in, a proxy response out."""
    try:
        return _route(event)
    except HttpError as exc:
        if exc.status >= 500:
            common.emit(logging.ERROR, "registration-error", message=str(exc))
        return _response(exc.status, exc.body)


def _route(event: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(event, Mapping):
        raise HttpError(400, "not an API Gateway proxy event")
    method = str(event.get("httpMethod") or "").upper()
    params = event.get("pathParameters") or {}
    if not isinstance(params, Mapping):
        params = {}
    account, name = params.get("account"), params.get("name")
    if account is None and name is None:
        # Proxy resources ({proxy+}) or tests: read them from the path itself.
        m = re.match(r"^/pipelines/([^/]+)/([^/]+)/?$", str(event.get("path") or ""))
        if m:
            account, name = m.group(1), m.group(2)
    if method == "GET" and account is None:
        return _response(200, {"pipelines": [_public(s) for s in common.store().pipelines()]})
    if account is None or name is None:
        raise HttpError(404, f"no route for {method} {event.get('path')}")
    account, name = str(account), str(name)
    if not _ACCOUNT.match(account):
        raise HttpError(400, "account: must be a 12-digit AWS account id", field="account")
    if not _NAME.match(name):
        raise HttpError(400, "name: not a pipeline name", field="name")
    if method == "GET":
        spec = common.store().get_pipeline(f"{account}/{name}")
        if spec is None:
            raise HttpError(404, f"pipeline {account}/{name} is not registered")
        return _response(200, _public(spec))
    caller = caller_account(event)
    if caller is None:
        raise HttpError(403, "the caller's AWS account is unknown (IAM authorization required)")
    if caller != account:
        common.emit(logging.WARNING, "registration-forbidden", caller=caller, account=account,
                    pipeline=name, method=method)
        raise HttpError(403, f"account {caller} cannot {method} pipelines of account {account}")
    if method == "PUT":
        return _put(account, name, event.get("body"), bool(event.get("isBase64Encoded")))
    if method == "DELETE":
        if not common.store().delete_pipeline(account, name):
            raise HttpError(404, f"pipeline {account}/{name} is not registered")
        common.emit(logging.INFO, "unregistered", account=account, pipeline=name)
        return _response(200, {"deleted": f"{account}/{name}"})
    raise HttpError(405, f"method {method} not allowed")


def _public(spec: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(spec.to_json())
    return result


def _put(account: str, name: str, body: Any, b64: bool) -> dict[str, Any]:
    from dpc_core.errors import DependencyCycle

    spec = parse_spec(account, name, _decode(body, b64))
    try:
        stored = common.engine().register(spec)
    except DependencyCycle as exc:
        raise HttpError(409, str(exc), cycle=exc.path) from None
    common.emit(logging.INFO, "registered", account=account, pipeline=name,
                parents=list(stored.parents))
    return _response(200, _public(stored))


def _decode(body: Any, b64: bool) -> dict[str, Any]:
    if body is None or body == "":
        raise HttpError(400, "body: a JSON object is required", field="body")
    if b64:
        import base64

        try:
            body = base64.b64decode(body).decode()
        except ValueError:
            raise HttpError(400, "body: not valid base64", field="body") from None
    try:
        data = json.loads(body) if isinstance(body, str) else body
    except ValueError as exc:
        raise HttpError(400, f"body: not JSON: {exc}", field="body") from None
    if not isinstance(data, dict):
        raise HttpError(400, "body: must be a JSON object", field="body")
    return data


def parse_spec(account: str, name: str, data: Mapping[str, Any]) -> Any:
    """Validate a registration body into the engine's :class:`PipelineSpec`.

    The condition is validated with pipeline.yaml's own model (synonyms such as
    ``SUCCESS`` normalised); parents are derived from it, never taken from the body.
    """
    from pydantic import ValidationError

    from dpc_core.model import Notifications, Trigger, iter_refs
    from dpc_core.store import PipelineSpec, pkey

    unknown = sorted(set(data) - _ALLOWED)
    if unknown:
        raise HttpError(400, f"{unknown[0]}: unknown field", field=unknown[0])
    for key, value in (("account", account), ("name", name)):
        if key in data and data[key] != value:
            raise HttpError(400, f"{key}: {data[key]!r} differs from the path's {value!r}",
                            field=key)
    fields = {"condition": "executions", "window": "window", "timezone": "timezone",
              "rerun": "rerun"}
    trigger_in = {fields[k]: data[k] for k in fields if data.get(k) is not None}
    try:
        trigger = Trigger.model_validate(trigger_in)
    except ValidationError as exc:
        raise _validation(exc, {v: k for k, v in fields.items()}) from None
    try:
        notifications = Notifications.model_validate(data.get("notifications") or {})
    except ValidationError as exc:
        raise _validation(exc, {}, prefix="notifications") from None
    topic = data.get("topicArn")
    if topic is not None and not (isinstance(topic, str) and topic.startswith("arn:")
                                  and ":sns:" in topic and topic.split(":")[4] == account):
        raise HttpError(400, "topicArn: must be an SNS topic ARN of the pipeline's account",
                        field="topicArn")
    info_in = data.get("info") or {}
    if not isinstance(info_in, dict):
        raise HttpError(400, "info: must be an object", field="info")
    cond = trigger.executions.model_dump(mode="json", by_alias=True, exclude_none=True) \
        if trigger.executions else None
    parents: dict[str, None] = {}
    if trigger.executions is not None:
        for ref in iter_refs(trigger.executions):
            parents[pkey(ref.account or account, ref.name)] = None
    info = {**info_in, "notifications": notifications.model_dump(mode="json")}
    if topic:
        info["topicArn"] = topic
    return PipelineSpec(account=account, name=name, condition=cond, window=trigger.window,
                        timezone=trigger.timezone, rerun=trigger.rerun,
                        parents=tuple(parents), info=info)


def _validation(exc: Any, rename: Mapping[str, str], prefix: str = "") -> HttpError:
    first = exc.errors(include_url=False)[0]
    loc = [str(p) for p in first["loc"]]
    if loc and loc[0] in rename:
        loc[0] = rename[loc[0]]
    where = ".".join(([prefix] if prefix else []) + loc) or prefix or "body"
    return HttpError(400, f"{where}: {first['msg']}", field=where)
