"""The contract every dpc plugin passes. Subclass it in the plugin's tests::

    class TestContract(PluginContract):
        plugin_module = "dpc_step_shell.plugin"
        examples = {"shell": {"name": "s", "type": "shell", "command": "true"}}

Notifier plugins also give addresses their channel must accept and refuse::

    class TestContract(PluginContract):
        plugin_module = "dpc_notify_email.plugin"
        good_addresses = {"EMAIL": ["team@example.com"]}
        bad_addresses = {"EMAIL": ["not-an-address"]}
"""

from __future__ import annotations

import inspect
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

from dpc_core import PLUGIN_API_VERSION
from dpc_core.hookspecs import DpcSpec
from dpc_core.plugins import EntryPointLike, load_registry
from dpc_core.types import (
    ComputeType,
    LocalCommand,
    NotifierType,
    RunContext,
    StepType,
    TriggerSource,
)

_KINDS = {
    "dpc_step_types": StepType,
    "dpc_compute_types": ComputeType,
    "dpc_notifiers": NotifierType,
    "dpc_trigger_sources": TriggerSource,
}


class PluginContract:
    """Checks a plugin module against the plugin API of this dpc-core."""

    plugin_module: ClassVar[str] = ""
    #: name -> a config dict that must validate with the registration's model.
    #: Every step and compute type the plugin provides needs one.
    examples: ClassVar[dict[str, dict[str, Any]]] = {}
    #: channel -> addresses its ``validate_address`` must accept.
    good_addresses: ClassVar[dict[str, list[str]]] = {}
    #: channel -> addresses its ``validate_address`` must refuse with ValueError.
    bad_addresses: ClassVar[dict[str, list[str]]] = {}

    def _registrations(self, module: ModuleType, hook: str) -> list[Any]:
        impl = getattr(module, hook, None)
        return list(impl()) if impl is not None else []

    @pytest.fixture
    def module(self) -> ModuleType:
        return import_module(self.plugin_module)

    def test_declares_the_plugin_api(self, module: ModuleType) -> None:
        assert getattr(module, "DPC_PLUGIN_API", None) == PLUGIN_API_VERSION

    def test_implements_only_known_hooks(self, module: ModuleType) -> None:
        known = {n for n in dir(DpcSpec) if n.startswith("dpc_")}
        mine = {n for n, v in vars(module).items() if n.startswith("dpc_") and callable(v)}
        assert mine, "the plugin implements no dpc hook"
        assert mine <= known, f"unknown hooks: {sorted(mine - known)}"

    def test_hooks_return_typed_registrations(self, module: ModuleType) -> None:
        for hook, kind in _KINDS.items():
            impl = getattr(module, hook, None)
            if impl is None:
                continue
            items = list(impl())
            assert items, f"{hook} returned nothing"
            assert all(isinstance(i, kind) for i in items), f"{hook} must yield {kind.__name__}"

    def test_hooks_are_documented(self, module: ModuleType) -> None:
        for hook in _KINDS:
            impl = getattr(module, hook, None)
            if impl is not None:
                assert inspect.getdoc(impl), f"{hook} has no docstring"

    def test_loads_through_the_plugin_manager(self, module: ModuleType) -> None:
        ep = EntryPointLike("under-test", self.plugin_module, "under-test", "0")
        reg = load_registry([ep])
        assert not reg.failures, reg.failures
        assert any(p.name == "under-test" and p.provides for p in reg.plugins)

    def test_config_models_give_a_json_schema(self, module: ModuleType) -> None:
        for hook in ("dpc_step_types", "dpc_compute_types"):
            impl = getattr(module, hook, None)
            for reg in impl() if impl else ():
                schema = reg.config.model_json_schema(by_alias=True)
                assert schema.get("type") == "object"

    def test_examples_validate(self, module: ModuleType) -> None:
        regs: dict[str, Any] = {}
        for hook in ("dpc_step_types", "dpc_compute_types"):
            impl = getattr(module, hook, None)
            for reg in impl() if impl else ():
                regs[reg.name] = reg
        for name, example in self.examples.items():
            assert name in regs, f"example for {name!r}, which the plugin does not provide"
            regs[name].config.model_validate(example)

    def test_every_step_and_compute_type_has_an_example(self, module: ModuleType) -> None:
        names = [r.name for hook in ("dpc_step_types", "dpc_compute_types")
                 for r in self._registrations(module, hook)]
        missing = [n for n in names if n not in self.examples]
        assert not missing, f"add an example config to `examples` for: {missing}"

    def test_local_executors_build_a_command_from_an_example(
        self, module: ModuleType, tmp_path: Path
    ) -> None:
        ctx = RunContext(pipeline="p", account="123456789012", run_id="run-1",
                         logical_date="2026-11-26", project_dir=tmp_path,
                         work_dir=tmp_path / "work", data_dir=tmp_path / "data")
        for reg in self._registrations(module, "dpc_step_types"):
            if reg.local is None or reg.name not in self.examples:
                continue
            command = reg.local(reg.config.model_validate(self.examples[reg.name]), ctx)
            assert isinstance(command, LocalCommand), f"{reg.name}: local must give LocalCommand"
            assert command.argv and all(isinstance(a, str) for a in command.argv)

    def test_notifier_channels_check_their_addresses(self, module: ModuleType) -> None:
        channels = {n.channel: n for n in self._registrations(module, "dpc_notifiers")}
        for channel, addresses in self.good_addresses.items():
            assert channel in channels, f"addresses for {channel!r}, which is not provided"
            check = channels[channel].validate_address
            for address in addresses:
                if check is not None:
                    check(address)
        for channel, addresses in self.bad_addresses.items():
            assert channel in channels, f"addresses for {channel!r}, which is not provided"
            check = channels[channel].validate_address
            assert check is not None, f"{channel} accepts any address; bad_addresses cannot hold"
            for address in addresses:
                with pytest.raises(ValueError):
                    check(address)

    def test_unknown_fields_are_refused(self, module: ModuleType) -> None:
        from pydantic import ValidationError

        for hook in ("dpc_step_types", "dpc_compute_types"):
            impl = getattr(module, hook, None)
            for reg in impl() if impl else ():
                example = self.examples.get(reg.name)
                if example is None:
                    continue
                with pytest.raises(ValidationError):
                    reg.config.model_validate({**example, "no_such_field_xyz": 1})
