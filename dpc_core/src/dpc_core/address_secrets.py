"""Notification addresses that carry credentials, shown without them.

Some channels take an address that *is* a credential holder: OpsGenie's SNS integration
URL ends in ``?apiKey=...``, a webhook may carry ``?token=...`` or ``user:password@``.
The registry keeps the address as registered (the central account's subscriptions need
it), but whatever reads the registry for people — the registration API's GET, the
lineage graph of ``dpc lineage --central`` and its HTML page — shows it through
:func:`redact_address` / :func:`public_spec`: credential-looking query values and URL
passwords become ``***``.

Pure Python (no boto3): the CLI and the central handlers both use it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dpc_core.store import PipelineSpec

REDACTED = "***"

#: A query parameter whose name contains one of these holds a credential.
_SECRET_PARAM = re.compile(r"(key|token|secret|passw|pwd|signature|^sig$|auth|credential)",
                           re.IGNORECASE)
#: ``name=value`` pairs in text that is not a URL (``apiKey=...`` pasted as an address).
_SECRET_PAIR = re.compile(r"((?:api[_-]?key|key|token|secret|password|passwd)\s*[=:]\s*)"
                          r"[^&\s;,]+", re.IGNORECASE)


def redact_address(address: str) -> str:
    """``address`` with credential-looking query values and URL passwords as ``***``;
    plain addresses (channels, email addresses, team names) unchanged."""
    if not isinstance(address, str):
        return address
    parts = urlsplit(address) if "://" in address else None
    if parts is None or not parts.netloc:
        return _SECRET_PAIR.sub(lambda m: m.group(1) + REDACTED, address)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, REDACTED if _SECRET_PARAM.search(k) else v) for k, v in pairs],
                          safe="*")
    fragment = _SECRET_PAIR.sub(lambda m: m.group(1) + REDACTED, parts.fragment)
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def public_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """A registry entry's ``info`` with every notification address redacted."""
    out = dict(info)
    notifications = info.get("notifications")
    if isinstance(notifications, Mapping):
        targets = notifications.get("targets")
        out["notifications"] = {**notifications, "targets": [
            {**t, "addresses": [redact_address(a) for a in t.get("addresses") or []]}
            if isinstance(t, Mapping) else t
            for t in (targets if isinstance(targets, list) else [])]}
    return out


def public_spec(spec: PipelineSpec) -> PipelineSpec:
    """``spec`` as anyone may see it (:func:`public_info`)."""
    return dataclasses.replace(spec, info=public_info(spec.info))
