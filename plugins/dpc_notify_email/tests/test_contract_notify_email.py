"""dpc-notify-email against the plugin contract of dpc-core."""

from __future__ import annotations

from typing import ClassVar

from dpc_core.testing.contract import PluginContract


class TestEmailContract(PluginContract):
    plugin_module = "dpc_notify_email.plugin"
    good_addresses: ClassVar[dict[str, list[str]]] = {
        "EMAIL": ["rent-journey@example.com", "a.b+alerts@mail.example.org"],
    }
    bad_addresses: ClassVar[dict[str, list[str]]] = {
        "EMAIL": ["", "team-at-example.com", "team@example", "a b@example.com"],
    }
