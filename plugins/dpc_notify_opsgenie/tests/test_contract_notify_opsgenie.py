"""dpc-notify-opsgenie against the plugin contract of dpc-core."""

from __future__ import annotations

from typing import ClassVar

from dpc_core.testing.contract import PluginContract


class TestOpsGenieContract(PluginContract):
    plugin_module = "dpc_notify_opsgenie.plugin"
    good_addresses: ClassVar[dict[str, list[str]]] = {"OPSGENIE": [
        "https://api.opsgenie.com/v1/json/amazonsns?apiKey=EXAMPLE", "data-platform-team"]}
    bad_addresses: ClassVar[dict[str, list[str]]] = {"OPSGENIE": ["", "   ", "http://api.opsgenie.com/v1/json/amazonsns"]}
