"""The plugin manager: built-ins and entry-point plugins loaded through one path.

A plugin that fails to import is reported with its distribution and skipped; two
plugins claiming the same step type, compute or channel is an error naming both
distributions; a plugin built for another plugin API version is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from types import ModuleType
from typing import Any

import pluggy

from dpc_core import ENTRY_POINT_GROUP, PLUGIN_API_VERSION, PROJECT_NAME, __version__
from dpc_core.errors import PluginError
from dpc_core.hookspecs import DpcSpec
from dpc_core.types import ComputeType, NotifierType, StepType, TriggerSource

#: Built-in plugins: (module, distribution).
BUILTINS: tuple[tuple[str, str], ...] = (("dpc_core.builtin", "dpc-core"),)

#: Comma-separated entry-point names; when set, only these entry-point plugins load.
ALLOW_ENV = "DPC_PLUGINS"


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: its name, distribution and what it contributes."""

    name: str
    dist: str
    version: str
    provides: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class LoadFailure:
    """A plugin that could not be loaded, and why."""

    name: str
    dist: str
    reason: str


@dataclass(frozen=True)
class EntryPointLike:
    """The parts of an entry point the manager uses (tests pass their own)."""

    name: str
    value: str
    dist: str
    version: str

    def load(self) -> ModuleType:
        return import_module(self.value.split(":")[0])


@dataclass
class Registry:
    """Everything the installed plugins contribute, keyed by the name users write."""

    steps: dict[str, StepType] = field(default_factory=dict)
    computes: dict[str, ComputeType] = field(default_factory=dict)
    notifiers: dict[str, NotifierType] = field(default_factory=dict)
    trigger_sources: dict[str, TriggerSource] = field(default_factory=dict)
    owners: dict[tuple[str, str], str] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    failures: list[LoadFailure] = field(default_factory=list)
    hook: Any = None

    def owner(self, kind: str, name: str) -> str:
        """Distribution that provides ``name`` of ``kind`` (step, compute, channel, source)."""
        return self.owners[(kind, name)]


#: First-party names and the distribution that provides each, for helpful errors.
KNOWN_PROVIDERS: dict[tuple[str, str], str] = {
    ("step", "spark"): "dpc-step-spark",
    ("step", "shell"): "dpc-step-shell",
    ("compute", "emr"): "dpc-compute-emr",
    ("channel", "SLACK"): "dpc-notify-slack",
    ("channel", "EMAIL"): "dpc-notify-email",
    ("channel", "OPSGENIE"): "dpc-notify-opsgenie",
}


def installed_entry_points() -> list[EntryPointLike]:
    """Entry points of the ``dpc`` group of every installed distribution."""
    from importlib.metadata import entry_points

    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        version = ep.dist.version if ep.dist is not None else "?"
        found.append(EntryPointLike(ep.name, ep.value, dist, version))
    return sorted(found, key=lambda e: (e.dist, e.name))


def _check_api(module: ModuleType) -> str | None:
    api = getattr(module, "DPC_PLUGIN_API", None)
    if api is None:
        return "declares no DPC_PLUGIN_API; add `DPC_PLUGIN_API = 1` to the plugin module"
    if api != PLUGIN_API_VERSION:
        return (
            f"was built for plugin API {api}, this dpc-core {__version__} speaks "
            f"{PLUGIN_API_VERSION}; install a version of the plugin made for it"
        )
    return None


def load_registry(
    entry_points: Iterable[EntryPointLike] | None = None,
    allow: Sequence[str] | None = None,
) -> Registry:
    """Load built-ins, then entry-point plugins, and collect their contributions.

    Raises :class:`PluginError` when two plugins claim the same name.
    """
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(DpcSpec)
    reg = Registry(hook=pm.hook)
    if allow is None and os.environ.get(ALLOW_ENV):
        allow = [n.strip() for n in os.environ[ALLOW_ENV].split(",") if n.strip()]
    eps = installed_entry_points() if entry_points is None else list(entry_points)

    candidates: list[tuple[str, str, str, Any]] = [
        (mod, dist, __version__, lambda m=mod: import_module(m)) for mod, dist in BUILTINS
    ]
    for ep in eps:
        if allow is not None and ep.name not in allow:
            continue
        candidates.append((ep.name, ep.dist, ep.version, ep.load))

    for name, dist, version, loader in candidates:
        try:
            module = loader()
        except Exception as exc:  # a broken third-party plugin must not take dpc down
            reg.failures.append(LoadFailure(name, dist, f"import failed: {exc!r}"))
            continue
        problem = _check_api(module)
        if problem:
            raise PluginError(f"plugin {name!r} from {dist} {version} {problem}")
        if pm.is_registered(module):
            continue
        pm.register(module, name=name)
        try:
            provides = _collect(reg, pm, module, dist)
        except PluginError:
            raise
        except Exception as exc:
            pm.unregister(module)
            reg.failures.append(LoadFailure(name, dist, f"registration failed: {exc!r}"))
            continue
        reg.plugins.append(PluginInfo(name, dist, version, tuple(provides)))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"a plugin implements an unknown hook: {exc}") from None
    return reg


def _collect(reg: Registry, pm: pluggy.PluginManager, module: ModuleType, dist: str) -> list[
    tuple[str, str]
]:
    provides: list[tuple[str, str]] = []

    def call(hook_name: str) -> list[Any]:
        caller = pm.subset_hook_caller(hook_name, remove_plugins=[p for p in pm.get_plugins()
                                                                   if p is not module])
        results: list[Any] = []
        for batch in caller():
            results.extend(batch or ())
        return results

    def claim(kind: str, key: str, table: dict[str, Any], item: Any) -> None:
        if key in table:
            raise PluginError(
                f"{kind} {key!r} is provided by both {reg.owners[(kind, key)]} and {dist}; "
                f"uninstall one of them (pip uninstall ...)"
            )
        table[key] = item
        reg.owners[(kind, key)] = dist
        provides.append((kind, key))

    for st in call("dpc_step_types"):
        claim("step", st.name, reg.steps, st)
    for ct in call("dpc_compute_types"):
        claim("compute", ct.name, reg.computes, ct)
    for nt in call("dpc_notifiers"):
        claim("channel", nt.channel, reg.notifiers, nt)
    for ts in call("dpc_trigger_sources"):
        claim("source", ts.name, reg.trigger_sources, ts)
    return provides


_default: Registry | None = None


def get_registry() -> Registry:
    """The registry of the installed plugins, loaded once per process."""
    global _default
    if _default is None:
        _default = load_registry()
    return _default
