"""The registration API (API Gateway REST, IAM auth, Lambda proxy integration).

Routes:

* ``PUT /pipelines/{account}/{name}``: register or replace a pipeline's dependencies and
  alert channels. Body (JSON)::

      {"condition": {"allOf": [...]} | null,       # trigger.executions; null: none
       "window": "daily" | "hourly", "timezone": "UTC", "rerun": "never" | ...,
       "notifications": {"type": "FULL_EXECUTION", "targets": [{"channel", "addresses"}]},
       "topicArn": "arn:aws:sns:...:dpc-<name>",   # optional; default by convention
       "info": {"schedule": ..., "description": ..., "owner": ...}}   # optional, no other key

  ``account``/``name`` in the body, when present, must equal the path's; ``topicArn``
  must be an SNS topic of the pipeline's own account. Answers 200 with the stored spec;
  400 naming the field of a validation error (also: a body over
  :data:`MAX_BODY_BYTES`, JSON nested deeper than :data:`MAX_JSON_DEPTH`); 403 when the
  caller is not the pipeline's account; 409 with the cycle path when registering would
  close a dependency cycle (nothing is stored), or when a pipeline with an
  ``executions`` trigger belongs to an account that has not run
  ``dpc setup-user-account`` (its pipeline bus would refuse every trigger).
* ``DELETE /pipelines/{account}/{name}``: unregister (the caller's own pipelines only);
  404 when it was not registered.
* ``GET /pipelines`` and ``GET /pipelines/{account}/{name}``: read the registry (any
  member account: lineage crosses accounts).

Notification addresses: the registry never holds one that could carry a secret. A PUT
stores each address that is not plain (a name, an email address, a bare host URL) as its
display form, ``https://host/...(redacted, sha256:1a2b3c4d)``
(:func:`dpc_core.address_secrets.public_address`), so no answer, registry item or log
line has any of it. Nothing in the central account needs more: the pipeline's SNS
subscriptions (OpsGenie's URL, email) are made by its stack in its own account, and the
Slack poster reads channel names, which are plain. Answers are passed through the same
function, for entries an older version stored whole.
* ``PUT|DELETE|GET /accounts/{account}``: the account's own user-account stack
  (``Custom::DpcAccount``, served by its registration provider) records that it has run
  ``dpc setup-user-account`` — its pipeline bus exists and admits this account's
  triggers — and removes the record when the stack is deleted. Stored as a marker item
  ``pk = A#<account>``, ``sk = account`` in the registry table (never read as a
  pipeline: those live under ``P#`` keys).

The caller's account is the IAM identity API Gateway authenticated
(``requestContext.identity.accountId``, else the account in ``userArn``/``caller``);
nothing in the body or the path can change it. Whatever the input, the answer is an
HTTP response: bad input is a 400 naming the field, never a Lambda error.

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
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:(\d{12}):[A-Za-z0-9_-]{1,256}$")
#: A registration is a few kilobytes; DynamoDB items stop at 400 KB (and the spec is
#: copied into one edge item per parent).
MAX_BODY_BYTES = 64 * 1024
#: JSON nesting accepted in a body: deep enough for any condition pipeline.yaml allows,
#: shallow enough that nothing downstream recurses out of stack.
MAX_JSON_DEPTH = 100
#: The registry's marker of an account that has run ``dpc setup-user-account``.
ACCOUNT_PK_PREFIX = "A#"
ACCOUNT_SK = "account"


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
    except Exception as exc:  # a bug or an AWS outage: an answer, never a Lambda error
        common.emit(logging.ERROR, "registration-error", error=f"{type(exc).__name__}: {exc}")
        return _response(500, {"message": "internal error; the central account's logs have "
                                          "the details"})


def _route(event: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(event, Mapping):
        raise HttpError(400, "not an API Gateway proxy event")
    method = str(event.get("httpMethod") or "").upper()
    params = event.get("pathParameters") or {}
    if not isinstance(params, Mapping):
        params = {}
    account, name = params.get("account"), params.get("name")
    path = str(event.get("path") or "")
    if name is None and (path.startswith("/accounts") or
                         str(event.get("resource") or "").startswith("/accounts")):
        m = re.match(r"^/accounts/([^/]+)/?$", path)
        return _account_route(event, method, str(account or (m.group(1) if m else "")))
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
        return _put(account, name, event.get("body"), bool(event.get("isBase64Encoded")),
                    central=_central_account(event))
    if method == "DELETE":
        if not common.store().delete_pipeline(account, name):
            raise HttpError(404, f"pipeline {account}/{name} is not registered")
        common.emit(logging.INFO, "unregistered", account=account, pipeline=name)
        return _response(200, {"deleted": f"{account}/{name}"})
    raise HttpError(405, f"method {method} not allowed")


def _public(spec: Any) -> dict[str, Any]:
    """A registry entry as any caller may see it: every address public (also of an entry
    stored before the registry kept only public addresses)."""
    from dpc_core.address_secrets import public_spec

    result: dict[str, Any] = json.loads(public_spec(spec).to_json())
    return result


def _central_account(event: Mapping[str, Any]) -> str:
    """This (central) account, as API Gateway reports it; for messages."""
    ctx = event.get("requestContext")
    account = ctx.get("accountId") if isinstance(ctx, Mapping) else None
    return str(account) if isinstance(account, str) and _ACCOUNT.match(account) \
        else "<central account id>"


# -- accounts that ran setup-user-account -------------------------------------------------

def _account_key(account: str) -> dict[str, Any]:
    return {"pk": {"S": ACCOUNT_PK_PREFIX + account}, "sk": {"S": ACCOUNT_SK}}


def account_is_set_up(account: str) -> bool:
    """Whether ``account``'s user-account stack registered itself (its pipeline bus
    exists and admits the central account)."""
    from dpc_central.conventions import ENV_TABLE_REGISTRY

    item = common.client("dynamodb").get_item(
        TableName=common.require_env(ENV_TABLE_REGISTRY), Key=_account_key(account),
        ConsistentRead=True).get("Item")
    return item is not None


def _account_route(event: Mapping[str, Any], method: str, account: str) -> dict[str, Any]:
    import time

    from dpc_central.conventions import ENV_TABLE_REGISTRY

    if not _ACCOUNT.match(account):
        raise HttpError(400, "account: must be a 12-digit AWS account id", field="account")
    table = common.require_env(ENV_TABLE_REGISTRY)
    if method == "GET":
        if not account_is_set_up(account):
            raise HttpError(404, f"account {account} has not run dpc setup-user-account")
        return _response(200, {"account": account, "setUp": True})
    caller = caller_account(event)
    if caller != account:
        raise HttpError(403, f"account {caller or '(unknown)'} cannot {method} the record of "
                             f"account {account}")
    ddb = common.client("dynamodb")
    if method == "PUT":
        ddb.put_item(TableName=table, Item={**_account_key(account),
                                            "registered": {"N": str(int(time.time()))}})
        common.emit(logging.INFO, "account-registered", account=account)
        return _response(200, {"account": account, "setUp": True})
    if method == "DELETE":
        ddb.delete_item(TableName=table, Key=_account_key(account))
        common.emit(logging.INFO, "account-unregistered", account=account)
        return _response(200, {"deleted": account})
    raise HttpError(405, f"method {method} not allowed")


def _put(account: str, name: str, body: Any, b64: bool,
         central: str = "<central account id>") -> dict[str, Any]:
    from dpc_core.errors import DependencyCycle

    spec = parse_spec(account, name, _decode(body, b64))
    if spec.condition is not None and not account_is_set_up(account):
        # Its triggers would be put on a bus that does not exist or refuses them.
        raise HttpError(409, f"account {account} has not run dpc setup-user-account, so it "
                             f"cannot receive triggers: run `dpc setup-user-account "
                             f"--central-account {central}` in account {account} first, "
                             f"then deploy {name} again", field="account")
    try:
        stored = common.engine().register(spec)
    except DependencyCycle as exc:
        raise HttpError(409, str(exc), cycle=exc.path) from None
    except Exception as exc:
        if "size" in str(exc).lower() and "ValidationException" in type(exc).__name__ + \
                str(getattr(exc, "response", "")):
            raise HttpError(400, f"body: the registration is too large to store ({exc})",
                            field="body") from None
        raise
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
    if isinstance(body, str):
        if len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
            raise HttpError(400, f"body: larger than {MAX_BODY_BYTES // 1024} KiB; a "
                                 "registration is a few KiB (is info carrying data?)",
                            field="body")
        depth = json_depth(body)
        if depth > MAX_JSON_DEPTH:
            raise HttpError(400, f"body: JSON nested {depth} levels deep, at most "
                                 f"{MAX_JSON_DEPTH} are accepted", field="body")
    try:
        data = json.loads(body) if isinstance(body, str) else body
    except (ValueError, RecursionError) as exc:
        raise HttpError(400, f"body: not JSON: {exc}", field="body") from None
    if not isinstance(data, dict):
        raise HttpError(400, "body: must be a JSON object", field="body")
    return data


def json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text (strings skipped), without parsing:
    cheap, and safe on input that would make a parser recurse."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


class _Info:
    """The ``info`` a registration may carry: descriptive text only (no ARNs, no
    addresses: those have their own validated fields)."""

    @staticmethod
    def model() -> Any:
        from pydantic import BaseModel, ConfigDict, Field

        from dpc_core.deadlines import DEADLINE_PATTERN

        class RegistrationInfo(BaseModel):
            model_config = ConfigDict(extra="forbid", strict=True)

            schedule: str | None = Field(default=None, max_length=256)
            description: str | None = Field(default=None, max_length=4096)
            owner: str | None = Field(default=None, max_length=256)
            contact: str | None = Field(default=None, max_length=256)
            # Validated as pipeline.yaml validates it: the reconciler reads it for LATE notices.
            deadline: str | None = Field(default=None, max_length=16,
                                         pattern=DEADLINE_PATTERN)

        return RegistrationInfo


def parse_spec(account: str, name: str, data: Mapping[str, Any]) -> Any:
    """Validate a registration body into the engine's :class:`PipelineSpec`.

    The condition is validated with pipeline.yaml's own model (synonyms such as
    ``SUCCESS`` normalised); parents are derived from it, never taken from the body.
    Any malformed input raises :class:`HttpError` 400.
    """
    try:
        return _parse_spec(account, name, data)
    except HttpError:
        raise
    except RecursionError:
        raise HttpError(400, "condition: nested too deeply", field="condition") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise HttpError(400, f"body: not a valid registration ({type(exc).__name__}: {exc})",
                        field="body") from None


def _parse_spec(account: str, name: str, data: Mapping[str, Any]) -> Any:
    from pydantic import ValidationError

    from dpc_core.address_secrets import public_notifications
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
    if topic is not None and not topic_of_account(topic, account):
        raise HttpError(400, "topicArn: must be an SNS topic ARN of the pipeline's account "
                             f"({account}), like arn:aws:sns:<region>:{account}:dpc-{name}",
                        field="topicArn")
    info_in = data.get("info")
    info_in = {} if info_in is None else info_in
    if not isinstance(info_in, dict):
        raise HttpError(400, "info: must be an object", field="info")
    try:
        info_in = _Info.model().model_validate(info_in).model_dump(exclude_none=True)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(["info", *[str(p) for p in first["loc"]]])
        hint = " (info takes schedule, description, owner, contact and deadline only)" \
            if first["type"] == "extra_forbidden" else ""
        raise HttpError(400, f"{where}: {first['msg']}{hint}", field=where) from None
    cond = trigger.executions.model_dump(mode="json", by_alias=True, exclude_none=True) \
        if trigger.executions else None
    parents: dict[str, None] = {}
    if trigger.executions is not None:
        for ref in iter_refs(trigger.executions):
            parents[pkey(ref.account or account, ref.name)] = None
    # Only what every member may read: the full address stays in the member account.
    info = {**info_in,
            "notifications": public_notifications(notifications.model_dump(mode="json"))}
    if topic:
        info["topicArn"] = topic
    return PipelineSpec(account=account, name=name, condition=cond, window=trigger.window,
                        timezone=trigger.timezone, rerun=trigger.rerun,
                        parents=tuple(parents), info=info)


def topic_of_account(topic: Any, account: str) -> bool:
    """Whether ``topic`` is an SNS topic ARN in ``account``."""
    m = _TOPIC_ARN.match(topic) if isinstance(topic, str) else None
    return m is not None and m.group(1) == account


def _validation(exc: Any, rename: Mapping[str, str], prefix: str = "") -> HttpError:
    first = exc.errors(include_url=False)[0]
    loc = [str(p) for p in first["loc"]]
    if loc and loc[0] in rename:
        loc[0] = rename[loc[0]]
    where = ".".join(([prefix] if prefix else []) + loc) or prefix or "body"
    return HttpError(400, f"{where}: {first['msg']}", field=where)
