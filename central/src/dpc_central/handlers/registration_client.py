"""The registration client: the ``onEvent`` handler of the ``Custom::DpcRegistration``
provider (CDK's custom-resource provider framework) in each user account.

A pipeline stack's registration resource carries the pipeline's engine spec and alert
channels (:class:`dpc_central.pipeline.registration.PipelineRegistration`). At deploy
time CloudFormation calls the provider framework, which calls :func:`handle` with the
request and answers CloudFormation itself:

* ``Create`` / ``Update``: ``PUT /pipelines/{account}/{name}`` on the central
  registration API with the spec (:mod:`dpc_central.handlers.registration` documents the
  body); the answer's ``PhysicalResourceId`` is ``account/name``, so renaming a pipeline
  makes CloudFormation delete the old registration after the new one succeeded;
* ``Delete``: ``DELETE /pipelines/{account}/{name}`` of the physical id (``dpc destroy``
  unregisters); a pipeline that is not registered (404), or a physical id that is not
  ``account/name`` (a create that failed before registering), is already gone.

The request is signed with SigV4 (service ``execute-api``) with the Lambda's own
credentials: the API authorises with IAM and takes the caller's account from that
signature, so a stack can only register its own account's pipelines. An answer of 4xx
fails the deployment with the API's message (CloudFormation shows it as the reason);
5xx answers and connection errors are retried a few times first.

Environment: ``DPC_REGISTRATION_URL``, the base URL of the API's stage
(``https://<id>.execute-api.<region>.amazonaws.com/v1/``); ``AWS_REGION``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from dpc_central.conventions import ENV_REGISTRATION_URL
from dpc_central.handlers import _common as common

_PHYSICAL = re.compile(r"^(\d{12})/([A-Za-z0-9][A-Za-z0-9_-]{0,79})$")
_API_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
#: Attempts for 5xx/429 answers and connection errors (throttling, a cold API), and the
#: first pause between them (doubling).
ATTEMPTS = 4
BACKOFF_S = 0.5
TIMEOUT_S = 20


class RegistrationFailed(Exception):
    """The API refused the request; the message is what CloudFormation shows."""


#: The user-account stack's resource: the account records that it has run
#: ``dpc setup-user-account`` (its pipeline bus admits the central account's triggers).
ACCOUNT_RESOURCE = "Custom::DpcAccount"


def handle(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Provider-framework ``onEvent``: register, re-register or unregister a pipeline
    (``Custom::DpcRegistration``) or the account itself (``Custom::DpcAccount``)."""
    kind = str(event.get("RequestType", ""))
    props = event.get("ResourceProperties") or {}
    if event.get("ResourceType") == ACCOUNT_RESOURCE:
        return _account(kind, context)
    if kind == "Delete":
        physical = str(event.get("PhysicalResourceId") or "")
        m = _PHYSICAL.match(physical)
        if m is None:
            common.emit(logging.INFO, "unregister-skipped", physicalResourceId=physical)
            return {"PhysicalResourceId": physical}
        account, name = m.group(1), m.group(2)
        status, body = request("DELETE", account, name)
        if status == 404:
            common.emit(logging.INFO, "unregister-absent", account=account, pipeline=name)
        else:
            _check(status, body, "DELETE", account, name)
        return {"PhysicalResourceId": physical}
    if kind not in ("Create", "Update"):
        raise ValueError(f"unknown RequestType {kind!r}")
    account, name, payload = registration_body(props, context)
    status, body = request("PUT", account, name, payload)
    _check(status, body, "PUT", account, name)
    common.emit(logging.INFO, "registered", account=account, pipeline=name, request=kind)
    return {"PhysicalResourceId": f"{account}/{name}",
            "Data": {"Account": account, "Pipeline": name,
                     "Parents": ",".join(body.get("parents", []) if isinstance(body, dict)
                                         else [])}}


def _account(kind: str, context: Any) -> dict[str, Any]:
    """``PUT|DELETE /accounts/{account}`` for the account this function runs in: the
    central API refuses children of accounts that never did it."""
    account = own_account(context)
    url = account_url(account)
    if kind in ("Create", "Update"):
        status, body = request("PUT", account, "", url=url)
        _check(status, body, "PUT", account, "", path=f"/accounts/{account}")
        common.emit(logging.INFO, "account-registered", account=account, request=kind)
    elif kind == "Delete":
        status, body = request("DELETE", account, "", url=url)
        if status != 404:
            _check(status, body, "DELETE", account, "", path=f"/accounts/{account}")
    else:
        raise ValueError(f"unknown RequestType {kind!r}")
    return {"PhysicalResourceId": f"account/{account}", "Data": {"Account": account}}


def resource_properties(pipeline: Any, topic_arn: str) -> dict[str, str]:
    """The properties of a pipeline's ``Custom::DpcRegistration`` resource (what the
    pipeline stack synthesizes and :func:`registration_body` reads back)."""
    from dpc_core.address_secrets import public_address
    from dpc_core.engine import spec_of

    # Addresses as every member account may read them (the registry keeps nothing else):
    # a secret-carrying one stays in this account, in the topic's subscription. Its
    # fingerprint changes with it, so changing it still updates the registration.
    return {
        "Pipeline": pipeline.name,
        "Spec": spec_of(pipeline).to_json(),
        "NotificationType": pipeline.notifications.type.value,
        "AlertChannels": json.dumps([{"channel": t.channel,
                                      "addresses": [public_address(a) for a in t.addresses]}
                                     for t in pipeline.notifications.targets]),
        "TopicArn": topic_arn,
    }


def registration_body(props: Mapping[str, Any], context: Any = None) -> tuple[
        str, str, dict[str, Any]]:
    """``(account, name, body)`` of the PUT, from the resource's properties.

    ``Spec`` is the pipeline's :class:`~dpc_core.store.PipelineSpec` JSON; a spec
    without an account (pipeline.yaml may leave it out) registers in the account the
    function runs in. ``parents`` are not sent: the API derives them from the condition.
    """
    try:
        spec = json.loads(str(props["Spec"]))
    except (KeyError, ValueError) as exc:
        raise RegistrationFailed(f"Spec: missing or not JSON ({exc})") from None
    name = str(props.get("Pipeline") or spec.get("name") or "")
    account = str(spec.get("account") or "") or own_account(context)
    body: dict[str, Any] = {k: spec[k] for k in ("condition", "window", "timezone", "rerun",
                                                 "info") if k in spec}
    channels = props.get("AlertChannels")
    targets = json.loads(channels) if isinstance(channels, str) and channels else []
    notifications: dict[str, Any] = {"targets": targets}
    if props.get("NotificationType"):
        notifications["type"] = str(props["NotificationType"])
    body["notifications"] = notifications
    if props.get("TopicArn"):
        body["topicArn"] = str(props["TopicArn"])
    return account, name, body


def own_account(context: Any = None) -> str:
    """The account this function runs in (from its ARN, else from STS)."""
    arn = str(getattr(context, "invoked_function_arn", "") or "")
    parts = arn.split(":")
    if len(parts) > 4 and parts[4]:
        return parts[4]
    return str(common.client("sts").get_caller_identity()["Account"])


def _check(status: int, body: Any, method: str, account: str, name: str,
           path: str | None = None) -> None:
    if 200 <= status < 300:
        return
    message = body.get("message") if isinstance(body, dict) else None
    raise RegistrationFailed(f"{method} {path or f'/pipelines/{account}/{name}'}: HTTP "
                             f"{status}: {message or body}")


def pipeline_url(account: str, name: str) -> str:
    """The API URL of one pipeline (``DPC_REGISTRATION_URL`` + ``pipelines/...``)."""
    base = common.require_env(ENV_REGISTRATION_URL).rstrip("/")
    return f"{base}/pipelines/{urllib.parse.quote(account)}/{urllib.parse.quote(name)}"


def account_url(account: str) -> str:
    """The API URL of an account's setup record (``DPC_REGISTRATION_URL`` + ``accounts/...``)."""
    base = common.require_env(ENV_REGISTRATION_URL).rstrip("/")
    return f"{base}/accounts/{urllib.parse.quote(account)}"


def signing_region(url: str) -> str:
    """The API's region: from an ``execute-api`` host name, else the function's."""
    host = urllib.parse.urlsplit(url).hostname or ""
    m = _API_HOST.search(host)
    if m:
        return m.group(1)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise RuntimeError(f"cannot tell the region of {url} (set AWS_REGION)")
    return region


def signed_request(method: str, url: str, payload: bytes | None) -> urllib.request.Request:
    """A ``urllib`` request signed with SigV4 for ``execute-api`` with the function's
    credentials (the Lambda role's, including the session token)."""
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    credentials = boto3.Session().get_credentials()
    if credentials is None:
        raise RuntimeError("no AWS credentials to sign the registration request")
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    aws_request = AWSRequest(method=method, url=url, data=payload or b"", headers=headers)
    SigV4Auth(credentials.get_frozen_credentials(), "execute-api",
              signing_region(url)).add_auth(aws_request)
    prepared = aws_request.prepare()
    return urllib.request.Request(url, data=payload, method=method,
                                  headers=dict(prepared.headers.items()))


def request(method: str, account: str, name: str,
            body: Mapping[str, Any] | None = None, *, url: str | None = None
            ) -> tuple[int, Any]:
    """Send one signed request (to ``url``, default the pipeline's); ``(status, decoded
    JSON body)``. Each attempt is signed anew (a signature is valid for five minutes)."""
    url = url or pipeline_url(account, name)
    payload = json.dumps(body, sort_keys=True).encode() if body is not None else None
    last: str = ""
    for attempt in range(ATTEMPTS):
        try:
            with urllib.request.urlopen(signed_request(method, url, payload),
                                        timeout=TIMEOUT_S) as answer:
                return answer.status, _decode(answer.read())
        except urllib.error.HTTPError as exc:
            status, decoded = exc.code, _decode(exc.read())
            if status < 500 and status != 429:
                return status, decoded
            last = f"HTTP {status}: {decoded}"
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        common.emit(logging.WARNING, "registration-retry", method=method, account=account,
                    pipeline=name, attempt=attempt + 1, error=last)
        if attempt + 1 < ATTEMPTS:
            time.sleep(min(8.0, BACKOFF_S * 2 ** attempt))
    raise RegistrationFailed(f"{method} {url} failed after {ATTEMPTS} attempts: {last}")


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode() or "null")
    except (ValueError, UnicodeDecodeError):
        return raw.decode(errors="replace")
