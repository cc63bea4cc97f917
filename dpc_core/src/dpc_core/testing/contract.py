"""The contract every dpc plugin passes. Subclass it in the plugin's tests::

    class TestContract(PluginContract):
        plugin_module = "dpc_step_shell.plugin"
        examples = {"shell": {"name": "s", "type": "shell", "command": "true"}}
"""

from __future__ import annotations

import inspect
from importlib import import_module
from types import ModuleType
from typing import Any, ClassVar

import pytest

from dpc_core import PLUGIN_API_VERSION
from dpc_core.hookspecs import DpcSpec
from dpc_core.plugins import EntryPointLike, load_registry
from dpc_core.types import ComputeType, NotifierType, StepType, TriggerSource

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
    examples: ClassVar[dict[str, dict[str, Any]]] = {}

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
