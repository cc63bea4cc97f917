"""A local stand-in for SNS's subscription-confirmation link: answers the GET of
``?Action=ConfirmSubscription&TopicArn=...&Token=...`` as SNS does (200, a small XML
body) and records each confirmation."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from fakes.localserver import JsonHandler, LocalServer


class _Handler(JsonHandler):
    def do_GET(self) -> None:  # http.server calls it by this name
        query = parse_qs(urlsplit(self.path).query)
        state: list[dict[str, Any]] = self.server.state  # type: ignore[attr-defined]
        state.append({k: v[0] for k, v in query.items()})
        body = (b"<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>"
                + query.get("TopicArn", [""])[0].encode() + b":1</SubscriptionArn>"
                b"</ConfirmSubscriptionResult></ConfirmSubscriptionResponse>")
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FakeSnsConfirm(LocalServer):
    """``with FakeSnsConfirm() as sns:``; ``sns.url`` is the endpoint
    (``AWS_ENDPOINT_URL_SNS``), ``sns.confirmed`` the queries received."""

    def __init__(self) -> None:
        self.confirmed: list[dict[str, Any]] = []
        super().__init__(_Handler, self.confirmed)
