"""The registration client (provider-framework onEvent of ``Custom::DpcRegistration``)
against the real registration API handler.

The API is served by a small HTTP server on 127.0.0.1 standing in for API Gateway: it
checks each request's SigV4 signature (``execute-api``, recomputed with botocore from
the signed headers and the test's credentials, as IAM auth would), converts the request
to an API Gateway proxy event whose IAM identity is the account the test says signed
it, and returns the handler's proxy response. DynamoDB is moto's.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from central_harness import REGION, A, B, C, World, account_event, api_event

from dpc_central.handlers import registration, registration_client

_AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/"
                   r"(?P<region>[a-z0-9-]+)/(?P<service>[a-z-]+)/aws4_request, "
                   r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})$")
_PATH = re.compile(r"^/v1/pipelines/([^/]+)/([^/]+)$")
_ACCOUNT_PATH = re.compile(r"^/v1/accounts/([^/]+)$")


@dataclass
class FakeApiGateway:
    """API Gateway (REST, IAM auth, Lambda proxy) in front of the registration handler."""

    caller: str
    #: The credentials IAM knows for the signer: the Lambda role's session (here, the
    #: fake credentials of the moto context the test runs in).
    credentials: Any
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    url: str = ""

    def verify(self, method: str, path: str, headers: dict[str, str], body: bytes) -> str:
        """``""`` when the SigV4 signature is valid, else why not."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        m = _AUTH.match(headers.get("authorization", ""))
        if m is None:
            return f"malformed Authorization header: {headers.get('authorization')!r}"
        if m["key"] != self.credentials.access_key:
            return f"unknown access key {m['key']}"
        if headers.get("x-amz-security-token") != self.credentials.token:
            return "missing or wrong session token"
        if (m["service"], m["region"]) != ("execute-api", REGION):
            return f"signed for {m['service']} in {m['region']}"
        amz_date = headers.get("x-amz-date", "")
        if not amz_date.startswith(m["date"]):
            return "X-Amz-Date does not match the credential scope"
        signed = m["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return f"host and x-amz-date must be signed: {signed}"
        request = AWSRequest(method=method, url=f"http://{headers['host']}{path}", data=body,
                             headers={h: headers[h] for h in signed if h in headers})
        request.context["timestamp"] = amz_date
        auth = SigV4Auth(self.credentials, "execute-api", REGION)
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)),
                                  request)
        return "" if expected == m["sig"] else "signature does not match"

    def serve(self, method: str, path: str, headers: dict[str, str],
              body: bytes) -> tuple[int, str]:
        self.requests.append({"method": method, "path": path, "headers": headers,
                              "body": body.decode()})
        if self.fail_next:
            return self.fail_next.pop(0), json.dumps({"message": "Internal server error"})
        problem = self.verify(method, path, headers, body)
        if problem:
            return 403, json.dumps({"message": problem})
        m = _PATH.match(path)
        a = _ACCOUNT_PATH.match(path)
        if a is not None:
            event = account_event(method, a.group(1), self.caller)
            answer = registration.handle(event, None)
            return answer["statusCode"], answer["body"]
        if m is None:
            return 404, json.dumps({"message": "Missing Authentication Token"})
        event = api_event(method, m.group(1), m.group(2), self.caller,
                          body.decode() if body else None)
        event["headers"] = {k.title(): v for k, v in headers.items()}
        answer = registration.handle(event, None)
        return answer["statusCode"], answer["body"]


@pytest.fixture
def api(central: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApiGateway]:
    """The fake API Gateway on a free port; callers sign as account C by default."""
    import boto3

    gateway = FakeApiGateway(caller=C, credentials=boto3.Session().get_credentials()
                             .get_frozen_credentials())

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, text = gateway.serve(self.command, self.path, headers, body)
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_PUT = do_DELETE = do_GET = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll interval: shutdown() waits for the serving loop's next poll.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    gateway.url = f"http://127.0.0.1:{server.server_address[1]}/v1/"
    monkeypatch.setenv("DPC_REGISTRATION_URL", gateway.url)
    monkeypatch.setattr(registration_client, "BACKOFF_S", 0.0)
    try:
        yield gateway
    finally:
        server.shutdown()
        server.server_close()


def _pipeline(name: str) -> Any:
    return next(p for p in World.case_study() if p.name == name)


def _request(kind: str, props: dict[str, str], physical: str | None = None,
             old: dict[str, str] | None = None) -> dict[str, Any]:
    """A provider-framework onEvent request (CloudFormation's request, as the framework
    passes it on)."""
    event: dict[str, Any] = {
        "RequestType": kind, "ServiceToken": "arn:aws:lambda:eu-west-1:333333333333:function:x",
        "ResponseURL": "https://cloudformation-custom-resource-response-euwest1.s3.amazonaws.com/x",
        "StackId": f"arn:aws:cloudformation:{REGION}:{C}:stack/dpc-pipeline-x/{uuid.uuid4()}",
        "RequestId": str(uuid.uuid4()), "LogicalResourceId": "RegistrationResource",
        "ResourceType": "Custom::DpcRegistration",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:x", **props}}
    if physical is not None:
        event["PhysicalResourceId"] = physical
    if old is not None:
        event["OldResourceProperties"] = old
    return event


def _props(name: str = "pipeline-x") -> dict[str, str]:
    pipeline = _pipeline(name)
    topic = f"arn:aws:sns:{REGION}:{pipeline.account}:dpc-{pipeline.name}"
    return registration_client.resource_properties(pipeline, topic)


def _registered(account: str, name: str) -> Any:
    from dpc_central.handlers import _common

    return _common.store().get_pipeline(f"{account}/{name}")


def test_create_registers_the_pipeline_and_names_the_resource_account_slash_name(
        api: FakeApiGateway) -> None:
    answer = registration_client.handle(_request("Create", _props()))
    assert answer["PhysicalResourceId"] == f"{C}/pipeline-x"
    spec = _registered(C, "pipeline-x")
    assert set(spec.parents) == {f"{A}/listings", f"{B}/searches"}
    assert spec.info["topicArn"] == f"arn:aws:sns:{REGION}:{C}:dpc-pipeline-x"
    assert spec.info["notifications"]["type"] == "FULL_EXECUTION"
    assert [(r["method"], r["path"]) for r in api.requests] == [
        ("PUT", f"/v1/pipelines/{C}/pipeline-x")]


def test_requests_carry_a_valid_sigv4_signature_for_execute_api(api: FakeApiGateway) -> None:
    registration_client.handle(_request("Create", _props()))
    (sent,) = api.requests
    m = _AUTH.match(sent["headers"]["authorization"])
    assert m is not None and (m["service"], m["region"]) == ("execute-api", REGION)
    assert "x-amz-security-token" in m["signed"].split(";")  # the role's session token
    assert api.verify(sent["method"], sent["path"], sent["headers"],
                      sent["body"].encode()) == ""


def test_a_tampered_request_fails_the_signature_check(api: FakeApiGateway) -> None:
    registration_client.handle(_request("Create", _props()))
    (sent,) = api.requests
    assert api.verify(sent["method"], sent["path"].replace("pipeline-x", "pipeline-y"),
                      sent["headers"], sent["body"].encode()) == "signature does not match"


def test_update_replaces_the_registered_spec(api: FakeApiGateway) -> None:
    old = _props()
    registration_client.handle(_request("Create", old))
    spec = json.loads(old["Spec"])
    new = {**old, "Spec": json.dumps({**spec, "rerun": "on-new-parent-run"})}
    answer = registration_client.handle(_request("Update", new, f"{C}/pipeline-x", old))
    assert answer["PhysicalResourceId"] == f"{C}/pipeline-x"
    assert _registered(C, "pipeline-x").rerun == "on-new-parent-run"


def test_renaming_answers_a_new_physical_id_so_the_old_one_is_deleted(
        api: FakeApiGateway) -> None:
    old = _props()
    registration_client.handle(_request("Create", old))
    spec = json.loads(old["Spec"])
    renamed = {**old, "Pipeline": "pipeline-y", "Spec": json.dumps({**spec, "name": "pipeline-y"})}
    answer = registration_client.handle(_request("Update", renamed, f"{C}/pipeline-x", old))
    assert answer["PhysicalResourceId"] == f"{C}/pipeline-y"
    # CloudFormation then deletes the old physical id.
    registration_client.handle(_request("Delete", old, f"{C}/pipeline-x"))
    assert _registered(C, "pipeline-x") is None
    assert _registered(C, "pipeline-y") is not None


def test_delete_unregisters(api: FakeApiGateway) -> None:
    registration_client.handle(_request("Create", _props()))
    answer = registration_client.handle(_request("Delete", _props(), f"{C}/pipeline-x"))
    assert answer == {"PhysicalResourceId": f"{C}/pipeline-x"}
    assert _registered(C, "pipeline-x") is None
    assert api.requests[-1]["method"] == "DELETE"


def test_deleting_a_pipeline_that_is_not_registered_succeeds(api: FakeApiGateway) -> None:
    answer = registration_client.handle(_request("Delete", _props(), f"{C}/pipeline-x"))
    assert answer["PhysicalResourceId"] == f"{C}/pipeline-x"


def test_delete_after_a_failed_create_sends_nothing(api: FakeApiGateway) -> None:
    physical = "dpc-pipeline-x-RegistrationResource-1A2B3C"  # not account/name
    assert registration_client.handle(_request("Delete", _props(), physical)) == {
        "PhysicalResourceId": physical}
    assert api.requests == []


def test_registering_another_accounts_pipeline_fails_with_the_apis_reason(
        api: FakeApiGateway) -> None:
    api.caller = B  # the stack deploys in B but names C's pipeline
    with pytest.raises(registration_client.RegistrationFailed, match="HTTP 403.*account "
                       f"{B} cannot PUT pipelines of account {C}"):
        registration_client.handle(_request("Create", _props()))
    assert _registered(C, "pipeline-x") is None


def test_a_dependency_cycle_fails_the_deployment(api: FakeApiGateway) -> None:
    registration_client.handle(_request("Create", _props()))
    api.caller = A
    props = _props("listings")
    spec = json.loads(props["Spec"])
    cycle = {"allOf": [{"name": "pipeline-x", "account": C, "status": ["SUCCEEDED"]}]}
    props["Spec"] = json.dumps({**spec, "condition": cycle})
    with pytest.raises(registration_client.RegistrationFailed, match="HTTP 409"):
        registration_client.handle(_request("Create", props))


def test_spec_without_account_registers_in_the_functions_own_account(
        api: FakeApiGateway) -> None:
    props = _props()
    props["Spec"] = json.dumps({**json.loads(props["Spec"]), "account": ""})

    class Context:
        invoked_function_arn = f"arn:aws:lambda:{REGION}:{C}:function:dpc-registration"

    answer = registration_client.handle(_request("Create", props), Context())
    assert answer["PhysicalResourceId"] == f"{C}/pipeline-x"


def test_server_errors_are_retried(api: FakeApiGateway) -> None:
    api.fail_next = [503, 502]
    registration_client.handle(_request("Create", _props()))
    assert len(api.requests) == 3
    assert _registered(C, "pipeline-x") is not None


def test_persistent_server_errors_fail_after_the_attempts(api: FakeApiGateway) -> None:
    api.fail_next = [500] * registration_client.ATTEMPTS
    with pytest.raises(registration_client.RegistrationFailed, match="after 4 attempts"):
        registration_client.handle(_request("Create", _props()))


def test_unknown_request_type_is_an_error(api: FakeApiGateway) -> None:
    with pytest.raises(ValueError, match="RequestType"):
        registration_client.handle(_request("Replace", _props()))


class _Context:
    """The Lambda context: only the function's ARN (its account) is read."""

    def __init__(self, account: str) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{account}:function:dpc-reg"


def _account_request(kind: str) -> dict[str, Any]:
    event = _request(kind, {}, physical=None if kind == "Create" else f"account/{C}")
    event["ResourceType"] = registration_client.ACCOUNT_RESOURCE
    return event


def test_the_user_account_stack_records_its_account_so_children_can_register(
        api: FakeApiGateway) -> None:
    registration.handle(account_event("DELETE", C, C), None)  # C never ran setup
    with pytest.raises(registration_client.RegistrationFailed,
                       match="dpc setup-user-account --central-account"):
        registration_client.handle(_request("Create", _props()))
    answer = registration_client.handle(_account_request("Create"), _Context(C))
    assert answer["PhysicalResourceId"] == f"account/{C}"
    assert registration_client.handle(_request("Create", _props()))["PhysicalResourceId"] \
        == f"{C}/pipeline-x"
    assert [(r["method"], r["path"]) for r in api.requests] == [
        ("PUT", f"/v1/pipelines/{C}/pipeline-x"), ("PUT", f"/v1/accounts/{C}"),
        ("PUT", f"/v1/pipelines/{C}/pipeline-x")]


def test_deleting_the_user_account_stack_removes_the_account_record(
        api: FakeApiGateway) -> None:
    registration_client.handle(_account_request("Delete"), _Context(C))
    assert api.requests[-1]["method"] == "DELETE"
    assert registration.handle(account_event("GET", C, C), None)["statusCode"] == 404
    registration_client.handle(_account_request("Delete"), _Context(C))  # already gone


def test_a_secret_address_never_leaves_the_member_account(api: FakeApiGateway) -> None:
    """The resource's properties (in the stack's template) and the request to the central
    API carry the address's public form only; the topic's subscription in the member
    account is what holds the whole address."""
    from dpc_core.model import Notifications

    hook = "https://hooks.slack.com/services/T0001/B0002/qz31-secret-Kw"
    pipeline = _pipeline("pipeline-x")
    pipeline = pipeline.model_copy(update={"notifications": Notifications.model_validate(
        {"type": "FAILURES_ONLY", "targets": [
            {"channel": "WEBHOOK", "addresses": [hook]},
            {"channel": "SLACK", "addresses": ["data-alerts"]}]})})
    props = registration_client.resource_properties(
        pipeline, f"arn:aws:sns:{REGION}:{C}:dpc-pipeline-x")
    assert "qz31-secret-Kw" not in json.dumps(props)
    registration_client.handle(_request("Create", props))
    assert "qz31-secret-Kw" not in json.dumps(api.requests)
    targets = _registered(C, "pipeline-x").info["notifications"]["targets"]
    assert targets[0]["addresses"][0].startswith("https://hooks.slack.com/...(redacted")
    assert targets[1]["addresses"] == ["data-alerts"]
