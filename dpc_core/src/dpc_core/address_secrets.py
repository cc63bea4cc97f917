"""Notification addresses as anyone may read them: plain ones as they are, any other one
as a display form that holds no part of what could be secret.

Some channels take an address that *is* a credential holder: a Slack or Discord webhook
URL carries its secret in the path, OpsGenie's SNS integration URL in ``?apiKey=``, an
Azure function in ``?code=``, a webhook in userinfo, a fragment, a ``;`` parameter or a
header pasted as text (``GenieKey ...``). Guessing which part of such an address is the
secret misses placements, so nothing here guesses: an address is shown as it is only
when it is *plain* (:func:`is_plain`):

- a name (a Slack channel ``data-alerts`` / ``#data-alerts`` / ``C0123ABCD``, an
  OpsGenie team ``data-team``): letters and digits of any script, ``.``, ``_``, ``-``,
  at most 80 (a space makes it secret: ``GenieKey 0a1b...``);
- an email address (``team@example.com``);
- an ``http(s)`` URL of a host alone (``https://alerts.example.com``, ``:port`` and a
  trailing ``/`` allowed).

Every other address — userinfo, a path, a query, a fragment, a backslash, a space, a
percent sign — is secret *as a whole* and shown as :func:`display_form`: the scheme and
host when the authority is a plain host name, and a fingerprint (``https://hooks.slack.
com/...(redacted, sha256:1a2b3c4d)``), so its owner can tell which of their addresses it
is and that it changed, and nobody else learns any character of it.

Who uses it: the registration API stores only these forms in the central registry (the
full address stays in the member account: its pipeline.yaml and its SNS subscription,
made by the pipeline stack there), the registration client sends only these forms, and
every reader of a registry for people (``GET /pipelines``, ``dpc ui``, ``dpc lineage``,
also of a registry written by an older version) shows them through :func:`public_spec`.

Pure Python (no boto3): the CLI and the central handlers both use it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from dpc_core.store import PipelineSpec

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]{{2,45}}\])(?::[0-9]{{1,5}})?"
#: Word characters are Unicode ones: a Slack channel may be named in any script.
_NAME = re.compile(r"#?\w[\w.-]{0,79}")
_EMAIL = re.compile(rf"\w[\w.+-]{{0,63}}@{_LABEL}(?:\.{_LABEL})+")
_HOST_URL = re.compile(rf"https?://{_HOST}/?", re.IGNORECASE)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,19})://")
_HOST_ONLY = re.compile(_HOST)
#: What :func:`display_form` writes (recognised, so that a form is kept as it is).
_DISPLAY = re.compile(rf"(?:[a-z][a-z0-9+.-]{{0,19}}://(?:{_HOST}/)?)?\.\.\.\(redacted, "
                      r"sha256:[0-9a-f]{8}\)")
#: Hex digits of the fingerprint: enough to tell one's addresses apart, too few to
#: confirm a guess of a strong secret (it is a digest of the whole address).
FINGERPRINT_HEX = 8


def is_plain(address: str) -> bool:
    """Whether ``address`` may be shown as it is: a name, an email address, or the URL of
    a host alone (see the module docstring); anything else is treated as secret."""
    return any(p.fullmatch(address) for p in (_NAME, _EMAIL, _HOST_URL))


def fingerprint(address: str) -> str:
    """``sha256:`` and the first :data:`FINGERPRINT_HEX` hex digits of the address's
    digest."""
    digest = hashlib.sha256(address.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest[:FINGERPRINT_HEX]}"


def display_form(address: str) -> str:
    """``scheme://host/...(redacted, sha256:xxxxxxxx)``: no character of ``address`` but
    its scheme and (plain) host; ``...(redacted, sha256:xxxxxxxx)`` when it is not a URL
    or its authority is not a plain host name (userinfo is dropped, never shown)."""
    tail = f"...(redacted, {fingerprint(address)})"
    m = _SCHEME.match(address)
    if m is None:
        return tail
    rest = address[m.end():]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host = authority.rsplit("@", 1)[-1]
    scheme = m.group(1).lower()
    # Parsers disagree on where the host of `a\\@b` or `a@b@c` is: show none.
    if "\\" in authority or authority.count("@") > 1 or not _HOST_ONLY.fullmatch(host):
        return f"{scheme}://{tail}"
    return f"{scheme}://{host.lower()}/{tail}"


def public_address(address: Any) -> Any:
    """``address`` when it is plain (or already a display form), else its
    :func:`display_form`. Not a string: returned as is (validation refuses it)."""
    if not isinstance(address, str):
        return address
    if is_plain(address) or _DISPLAY.fullmatch(address):
        return address
    return display_form(address)


def public_notifications(notifications: Any) -> Any:
    """A ``notifications`` block (``{"type", "targets": [{"channel", "addresses"}]}``)
    with every address public."""
    if not isinstance(notifications, Mapping):
        return notifications
    targets = notifications.get("targets")
    return {**notifications, "targets": [
        {**t, "addresses": [public_address(a) for a in t.get("addresses") or []]}
        if isinstance(t, Mapping) else t
        for t in (targets if isinstance(targets, list) else [])]}


def public_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """A registry entry's ``info`` with every notification address public."""
    out = dict(info)
    if "notifications" in info:
        out["notifications"] = public_notifications(info["notifications"])
    return out


def public_spec(spec: PipelineSpec) -> PipelineSpec:
    """``spec`` as anyone may see it (:func:`public_info`)."""
    return dataclasses.replace(spec, info=public_info(spec.info))
