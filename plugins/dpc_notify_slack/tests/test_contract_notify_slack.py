"""dpc-notify-slack against the plugin contract of dpc-core."""

from __future__ import annotations

from typing import ClassVar

from dpc_core.testing.contract import PluginContract


class TestSlackContract(PluginContract):
    plugin_module = "dpc_notify_slack.plugin"
    good_addresses: ClassVar[dict[str, list[str]]] = {
        "SLACK": ["data-pipeline-alerts", "#data-alerts", "C0123ABC"],
    }
    bad_addresses: ClassVar[dict[str, list[str]]] = {"SLACK": ["", "#", "data alerts", "x" * 81]}
