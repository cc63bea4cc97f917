"""A notification address that carries a secret never reaches another member account.

Every placement below goes through the real registration handler (PUT as its account,
GET one and GET all as another) on moto; then every item of every central table, every
log line the handler wrote, `dpc lineage --central` and the `dpc ui --central` server are
searched for the secret, raw and transformed (lower case, percent-encoded, base64). There
is no secret store to exempt: nothing in the central account needs the full address (the
SNS subscriptions are made by the pipeline stack in its own account), so the registry
holds only the public form.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

import boto3
import pytest
from central_harness import REGION, A, B, World, api_event

from dpc_central.handlers import registration

# (placement, channel, address, the secret in it). The 17 (the first 17), then
# more of the same families. Each secret is distinct and has letters no hex digest has.
PLACEMENTS: list[tuple[str, str, str, str]] = [
    ("query-apiKey (OpsGenie SNS)", "OPSGENIE",
     "https://api.opsgenie.com/v1/json/amazonsns?apiKey=qz01-secret-Kw", "qz01-secret-Kw"),
    ("query-token", "WEBHOOK", "https://hooks.example.com/notify?token=qz02-secret-Kw",
     "qz02-secret-Kw"),
    ("userinfo-password", "WEBHOOK", "https://dpc:qz03-secret-Kw@hooks.example.com/notify",
     "qz03-secret-Kw"),
    ("userinfo-user-only", "WEBHOOK", "https://qz04-secret-Kw@hooks.example.com/notify",
     "qz04-secret-Kw"),
    ("path (Slack webhook)", "WEBHOOK",
     "https://hooks.slack.com/services/T0001/B0002/qz05secretKw", "qz05secretKw"),
    ("path (Discord webhook)", "WEBHOOK",
     "https://discord.com/api/webhooks/123456789/qz06-secret-Kw", "qz06-secret-Kw"),
    ("query-code (Azure Functions)", "WEBHOOK",
     "https://fn.azurewebsites.net/api/alert?code=qz07-secret-Kw", "qz07-secret-Kw"),
    ("semicolon-separated query", "WEBHOOK",
     "https://hooks.example.com/notify?team=data;key=qz08-secret-Kw", "qz08-secret-Kw"),
    ("second question mark", "WEBHOOK",
     "https://hooks.example.com/notify?team=data?apiKey=qz09-secret-Kw", "qz09-secret-Kw"),
    ("percent-encoded pair apiKey%3D", "WEBHOOK",
     "https://hooks.example.com/notify?q=apiKey%3Dqz10-secret-Kw", "qz10-secret-Kw"),
    ("backslash in the authority", "WEBHOOK",
     "https://dpc:qz11-secret-Kw\\@hooks.example.com/notify", "qz11-secret-Kw"),
    ("GenieKey header as text", "OPSGENIE", "GenieKey qz12-secret-Kw", "qz12-secret-Kw"),
    ("fragment", "WEBHOOK", "https://hooks.example.com/notify#access_token=qz13-secret-Kw",
     "qz13-secret-Kw"),
    ("apiKey= as text", "OPSGENIE", "apiKey=qz14-secret-Kw", "qz14-secret-Kw"),
    ("query key and token (Google Chat)", "WEBHOOK",
     "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=qz15a-Kw&token=qz15-secret-Kw",
     "qz15-secret-Kw"),
    ("path parameter ;token=", "WEBHOOK", "https://hooks.example.com/notify;token=qz16-secret-Kw",
     "qz16-secret-Kw"),
    ("Authorization header as text", "WEBHOOK", "Authorization: Bearer qz17-secret-Kw",
     "qz17-secret-Kw"),
    ("path with @ (Teams webhook)", "WEBHOOK",
     "https://example.webhook.office.com/webhookb2/qz18-secret-Kw@tenant/IncomingWebhook/a/b",
     "qz18-secret-Kw"),
    ("innocuous query name", "WEBHOOK", "https://hooks.example.com/notify?x=qz19-secret-Kw",
     "qz19-secret-Kw"),
    ("presigned URL signature", "WEBHOOK",
     "https://b.s3.amazonaws.com/k?X-Amz-Signature=qz20-secret-Kw", "qz20-secret-Kw"),
    ("upper-case scheme and host, path", "WEBHOOK", "HTTPS://HOOKS.EXAMPLE.COM/QZ21-SECRET-KW",
     "QZ21-SECRET-KW"),
    ("no scheme (host/path)", "WEBHOOK", "hooks.slack.com/services/T1/B2/qz22-secret-Kw",
     "qz22-secret-Kw"),
    ("IPv6 host and port, path", "WEBHOOK", "https://[2001:db8::1]:8443/hook/qz23-secret-Kw",
     "qz23-secret-Kw"),
    ("secret after a newline", "WEBHOOK", "https://hooks.example.com/\nqz24-secret-Kw",
     "qz24-secret-Kw"),
    ("non-ASCII path", "WEBHOOK", "https://hooks.example.com/ün/qz25-secret-Kw",
     "qz25-secret-Kw"),
    ("mailto with userinfo", "EMAIL", "mailto:dpc:qz26-secret-Kw@example.com",
     "qz26-secret-Kw"),
]


def _forms(secret: str) -> set[str]:
    """The secret and the transformations a reader could undo."""
    return {secret, secret.lower(), secret.upper(), urllib.parse.quote(secret, safe=""),
            base64.b64encode(secret.encode()).decode().rstrip("="),
            secret[::-1]}


def _call(method: str, account: str, name: str | None, caller: str,
          body: Any = None) -> tuple[int, Any]:
    answer = registration.handle(api_event(method, account, name, caller, body), None)
    return answer["statusCode"], json.loads(answer["body"])


def _body(targets: list[tuple[str, str]]) -> dict[str, Any]:
    return {"notifications": {"type": "FAILURES_ONLY", "targets": [
        {"channel": channel, "addresses": [address, "data-alerts"]}
        for channel, address in targets]}}


def _everything_in_the_central_account() -> str:
    """Every item of every DynamoDB table and every Secrets Manager secret's value."""
    ddb = boto3.client("dynamodb", region_name=REGION)
    dumped = []
    for table in ddb.list_tables()["TableNames"]:
        for page in ddb.get_paginator("scan").paginate(TableName=table):
            dumped.append(json.dumps(page["Items"], ensure_ascii=False))
    sm = boto3.client("secretsmanager", region_name=REGION)
    for secret in sm.list_secrets()["SecretList"]:
        dumped.append(sm.get_secret_value(SecretId=secret["ARN"]).get("SecretString", ""))
    return "\n".join(dumped)


def _assert_nowhere(secret: str, texts: dict[str, str]) -> None:
    for where, text in texts.items():
        for form in _forms(secret):
            assert form not in text, f"{form!r} (of {secret!r}) is in {where}"


@pytest.mark.parametrize(("placement", "channel", "address", "secret"), PLACEMENTS,
                         ids=[p[0] for p in PLACEMENTS])
def test_no_member_account_and_no_registry_item_holds_the_secret(
        central: World, caplog: pytest.LogCaptureFixture, placement: str, channel: str,
        address: str, secret: str) -> None:
    caplog.set_level(logging.DEBUG)
    assert secret in address  # the table is what it says
    status, put = _call("PUT", A, "listings", A, _body([(channel, address)]))
    assert status == 200, put
    _, one = _call("GET", A, "listings", B)
    _, every = _call("GET", "", None, B)

    (target,) = one["info"]["notifications"]["targets"]
    shown = target["addresses"]
    assert shown[1] == "data-alerts"  # a plain address is shown as it is
    assert shown[0].endswith(")") and "(redacted, sha256:" in shown[0]
    assert every["pipelines"][0]["info"] == one["info"] == put["info"]
    _assert_nowhere(secret, {
        "the PUT answer": json.dumps(put, ensure_ascii=False),
        "GET /pipelines/{account}/{name}": json.dumps(one, ensure_ascii=False),
        "GET /pipelines": json.dumps(every, ensure_ascii=False),
        "the central tables and secrets": _everything_in_the_central_account(),
        "the handler's log": "\n".join(r.getMessage() for r in caplog.records),
    })


def test_the_display_form_keeps_the_host_and_fingerprints_the_address(central: World) -> None:
    """What members read: the channel, the scheme and host, a fingerprint that tells the
    owner which address it is (and that it changed)."""
    from dpc_core.address_secrets import fingerprint

    slack = "https://hooks.slack.com/services/T0001/B0002/qz05secretKw"
    other = "https://hooks.slack.com/services/T0001/B0002/qz05secretKx"
    _call("PUT", A, "listings", A, _body([("WEBHOOK", slack)]))
    shown = _call("GET", A, "listings", B)[1]["info"]["notifications"]["targets"][0]
    assert shown == {"channel": "WEBHOOK", "addresses": [
        f"https://hooks.slack.com/...(redacted, {fingerprint(slack)})", "data-alerts"]}
    _call("PUT", A, "listings", A, _body([("WEBHOOK", other)]))
    again = _call("GET", A, "listings", B)[1]["info"]["notifications"]["targets"][0]
    assert again["addresses"][0] != shown["addresses"][0]
    # A display form sent again (the registration client sends only these) is kept.
    _call("PUT", A, "listings", A, _body([("WEBHOOK", shown["addresses"][0])]))
    kept = _call("GET", A, "listings", B)[1]["info"]["notifications"]["targets"][0]
    assert kept == shown


def test_plain_addresses_stay_readable_for_the_central_slack_poster(central: World) -> None:
    from dpc_central.handlers import _common

    plain = ["data-alerts", "#données", "C0123ABCD", "team@example.com",
             "https://alerts.example.com", "data-team"]
    body = {"notifications": {"targets": [{"channel": "SLACK", "addresses": plain}]}}
    assert _call("PUT", A, "listings", A, body)[0] == 200
    stored = _common.store().get_pipeline(f"{A}/listings")
    assert stored.info["notifications"]["targets"][0]["addresses"] == plain


def _register_all(central: World) -> None:
    for i, (_, channel, address, _) in enumerate(PLACEMENTS):
        status, answer = _call("PUT", A, f"p{i}", A, _body([(channel, address)]))
        assert status == 200, answer


def _register_all_the_old_way() -> None:
    """Entries as the registration API stored them before: addresses whole."""
    import dataclasses

    from dpc_central.handlers import _common
    from dpc_central.handlers.registration import parse_spec

    store = _common.store()
    for i, (_, channel, address, _) in enumerate(PLACEMENTS):
        spec = parse_spec(B, f"old{i}", {})
        info = {**spec.info, "notifications": {"type": "FAILURES_ONLY", "targets": [
            {"channel": channel, "addresses": [address]}]}}
        store.put_pipeline(dataclasses.replace(spec, info=info))


def test_an_entry_stored_whole_by_an_older_version_is_read_public(central: World) -> None:
    _register_all_the_old_way()
    _, every = _call("GET", "", None, A)
    one = [_call("GET", B, f"old{i}", A)[1] for i in range(len(PLACEMENTS))]
    assert len(every["pipelines"]) == len(PLACEMENTS)
    for _, _, _, secret in PLACEMENTS:
        _assert_nowhere(secret, {"GET /pipelines": json.dumps(every, ensure_ascii=False),
                                 "GET one": json.dumps(one, ensure_ascii=False)})


def test_dpc_lineage_central_shows_no_secret(central: World) -> None:
    from click.testing import CliRunner

    from dpc_core.cli.main import cli

    _register_all(central)
    _register_all_the_old_way()
    result = CliRunner().invoke(cli, [
        "lineage", "--central", "--central-tables", "dpc-registry,dpc-runs,dpc-windows",
        "--region", REGION, "--format", "html"])
    assert result.exit_code == 0, result.output
    assert "p0" in result.output and "old0" in result.output
    for _, _, _, secret in PLACEMENTS:
        _assert_nowhere(secret, {"dpc lineage --central": result.output})


def test_dpc_ui_central_shows_no_secret(central: World) -> None:
    """The real `dpc ui --central` server over the registry: graph, health and each
    pipeline's page."""
    from dpc_core.cli.ui import central_source
    from dpc_core.ui.server import bind, make_server, new_token, url_of

    _register_all(central)
    _register_all_the_old_way()
    source, count = central_source("dpc-registry,dpc-runs,dpc-windows", REGION, 0.3)
    assert count == 2 * len(PLACEMENTS)
    sock = bind("127.0.0.1", 0)
    url = url_of(sock)
    server = make_server(source, sock, new_token())  # reads on loopback need no token
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        end = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < end, "the server never started"
            time.sleep(0.02)

        def get(path: str) -> str:
            with urllib.request.urlopen(url + path, timeout=30) as resp:
                return str(resp.read().decode())

        pages = {"/": get(""), "api/graph": get("api/graph?date=2026-11-26"),
                 "api/health": get("api/health?date=2026-11-26")}
        for i in range(len(PLACEMENTS)):
            for key in (f"{A}/p{i}", f"{B}/old{i}"):
                pages[key] = get(f"api/pipeline?key={key}&date=2026-11-26")
        assert '"notifications"' in pages[f"{A}/p0"]
        for _, _, _, secret in PLACEMENTS:
            _assert_nowhere(secret, pages)
    finally:
        server.should_exit = True
        thread.join(15)
