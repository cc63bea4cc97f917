"""The plugin manager: built-ins and entry-point plugins loaded through one path.

A bad plugin never locks users out of dpc. A plugin that fails to import, was built
for another plugin API version, implements an unknown hook or whose hook raises is
reported with its distribution and skipped; two plugins claiming the same step type,
compute or channel leave that one name unusable (naming both distributions and the
fix) while everything else keeps working. ``dpc plugins list`` shows every such
problem; other commands fail only when a pipeline uses an affected name
(:meth:`Registry.unavailable` gives the message).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
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
CORE_DIST = "dpc-core"

#: Comma-separated entry-point names; when set, only these entry-point plugins load
#: (built-ins always do). The way to pick one of two plugins that claim one name.
ALLOW_ENV = "DPC_PLUGINS"

#: Registration hook -> (kind, attribute holding the name users write).
_REGISTRATION_HOOKS: tuple[tuple[str, str, str], ...] = (
    ("dpc_step_types", "step", "name"),
    ("dpc_compute_types", "compute", "name"),
    ("dpc_notifiers", "channel", "channel"),
    ("dpc_trigger_sources", "source", "name"),
)

#: How a message names each kind.
KIND_LABELS: dict[str, str] = {
    "step": "step type", "compute": "compute type", "channel": "notification channel",
    "source": "trigger source",
}


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: its name, distribution and what it contributes."""

    name: str
    dist: str
    version: str
    provides: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class LoadFailure:
    """A plugin that could not be loaded, and why.

    ``provides`` lists the ``(kind, name)`` pairs the plugin would have contributed,
    when they could be read, so a pipeline using one gets this failure as its error.
    """

    name: str
    dist: str
    reason: str
    version: str = ""
    provides: tuple[tuple[str, str], ...] = ()

    def message(self) -> str:
        """One line: which plugin, why it was skipped."""
        ver = f" {self.version}" if self.version else ""
        return f"plugin {self.name!r} from {self.dist}{ver} was skipped: {self.reason}"


@dataclass(frozen=True)
class Claimant:
    """A plugin that claims a name: entry-point name, distribution, version."""

    plugin: str
    dist: str
    version: str

    def __str__(self) -> str:
        return f"{self.dist} {self.version}"


@dataclass(frozen=True)
class Conflict:
    """Several plugins claim one name. ``kept`` is the built-in when one of them is
    (a plugin cannot take over a core name); otherwise nobody gets the name."""

    kind: str
    name: str
    claimants: tuple[Claimant, ...]
    kept: Claimant | None
    #: Entry-point names of every plugin considered, to suggest a DPC_PLUGINS value.
    loaded: tuple[str, ...] = ()

    def message(self) -> str:
        """What is wrong and how to fix it, in one line."""
        what = f"{KIND_LABELS[self.kind]} {self.name!r}"
        names = [str(c) for c in self.claimants]
        claimed = ", ".join(names[:-1]) + f" and {names[-1]}"
        if self.kept is not None:
            others = [c for c in self.claimants if c != self.kept]
            return (f"{what} is claimed by {claimed}: {self.kept.dist} keeps it (a plugin "
                    f"cannot take over a core name); uninstall "
                    f"{' and '.join(c.dist for c in others)} or have it renamed")
        # dpc prefers no distribution: the allow-list suggested keeps the first claimant.
        keep = self.claimants[0]
        drop = {c.plugin for c in self.claimants if c != keep}
        allow = ",".join(p for p in self.loaded if p not in drop) or keep.plugin
        uninstall = " / ".join(f"pip uninstall {c.dist}" for c in self.claimants)
        return (f"{what} is claimed by {claimed}: uninstall one ({uninstall}) or set "
                f"{ALLOW_ENV}={allow} to load only the entry points you want "
                f"(that keeps {keep.dist})")


@dataclass(frozen=True)
class EntryPointLike:
    """The parts of an entry point the manager uses (tests pass their own)."""

    name: str
    value: str
    dist: str
    version: str

    def load(self) -> ModuleType:
        """Import the plugin module the entry point names."""
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
    conflicts: list[Conflict] = field(default_factory=list)
    #: Entry-point names the DPC_PLUGINS allow-list left out.
    not_allowed: list[str] = field(default_factory=list)
    #: Their entry points (what :meth:`left_out_provider` asks).
    left_out: list[EntryPointLike] = field(default_factory=list)
    hook: Any = None

    def owner(self, kind: str, name: str) -> str:
        """Distribution that provides ``name`` of ``kind`` (step, compute, channel, source)."""
        return self.owners[(kind, name)]

    def problems(self) -> list[str]:
        """Every plugin problem as one line with its fix (what ``dpc plugins list`` shows)."""
        return [c.message() for c in self.conflicts] + [f.message() for f in self.failures]

    def left_out_provider(self, kind: str, name: str) -> EntryPointLike | None:
        """The installed entry point that ``DPC_PLUGINS`` left out and that would provide
        ``name`` of ``kind`` (its hooks asked, the plugin not registered), or None."""
        for ep in self.left_out:
            try:
                provides = _guess_provides(ep.load())
            except Exception:  # a plugin that cannot even be imported provides nothing
                continue
            if (kind, name) in provides:
                return ep
        return None

    def missing_hint(self, kind: str, name: str) -> str:
        """How to get ``name`` of ``kind`` that no loaded plugin provides, as the entry
        points say: the one ``DPC_PLUGINS`` leaves out, else where to look."""
        ep = self.left_out_provider(kind, name)
        if ep is not None:
            return (f"{name!r} is provided by {ep.dist} (entry point {ep.name}), which "
                    f"{ALLOW_ENV} leaves out: add {ep.name} to {ALLOW_ENV}")
        return (f"no installed plugin provides {name!r}: install the plugin that does "
                "(`dpc plugins list` shows what is installed)")

    def unavailable(self, kind: str, name: str) -> str | None:
        """Why ``name`` of ``kind`` cannot be used although a plugin provides it, or None.

        A name claimed by two plugins, or provided by a plugin that was skipped, is
        an error only for the pipelines that use it; this is their message.
        """
        for c in self.conflicts:
            if (c.kind, c.name) == (kind, name) and c.kept is None:
                return c.message()
        for f in self.failures:
            if (kind, name) in f.provides:
                return (f"{KIND_LABELS[kind]} {name!r} is provided by {f.dist}"
                        f"{' ' + f.version if f.version else ''}, which was skipped: "
                        f"{f.reason}")
        return None




def installed_entry_points() -> list[EntryPointLike]:
    """Entry points of the ``dpc`` group of every installed distribution."""
    from importlib.metadata import entry_points

    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        version = ep.dist.version if ep.dist is not None else "?"
        found.append(EntryPointLike(ep.name, ep.value, dist, version))
    return sorted(found, key=lambda e: (e.dist, e.name))


def allow_list() -> list[str] | None:
    """The entry-point names of ``DPC_PLUGINS``, or None when it is unset or empty."""
    raw = os.environ.get(ALLOW_ENV, "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    return names or None


def _check_api(module: ModuleType) -> str | None:
    api = getattr(module, "DPC_PLUGIN_API", None)
    if api is None:
        return "declares no DPC_PLUGIN_API; add `DPC_PLUGIN_API = 1` to the plugin module"
    if api != PLUGIN_API_VERSION:
        return (
            f"was built for plugin API {api}, this dpc-core {__version__} speaks "
            f"{PLUGIN_API_VERSION}; install a version of the plugin made for plugin API "
            f"{PLUGIN_API_VERSION}, or uninstall it"
        )
    return None


def _unknown_hooks(module: ModuleType) -> list[str]:
    # pluggy marks implementations with `<project>_impl`; a marked function whose
    # name is no hook spec would make check_pending() fail for every plugin at once.
    known = {n for n in vars(DpcSpec) if n.startswith("dpc_")}
    marker = f"{PROJECT_NAME}_impl"
    return sorted(n for n, v in vars(module).items()
                  if callable(v) and hasattr(v, marker) and n not in known)


def _guess_provides(module: ModuleType) -> tuple[tuple[str, str], ...]:
    """What a skipped plugin would have provided, read from its hooks when they run.

    Best effort: a plugin for another API may not even be callable, then it is ().
    """
    out: list[tuple[str, str]] = []
    for hook, kind, attr in _REGISTRATION_HOOKS:
        impl = getattr(module, hook, None)
        if not callable(impl):
            continue
        try:
            for item in impl() or ():
                name = getattr(item, attr, None)
                if isinstance(name, str):
                    out.append((kind, name))
        except Exception:  # any failure just means "unknown"
            continue
    return tuple(out)


def load_registry(
    entry_points: Iterable[EntryPointLike] | None = None,
    allow: Sequence[str] | None = None,
) -> Registry:
    """Load built-ins, then entry-point plugins, and collect their contributions.

    Never raises for a bad plugin: problems land in ``failures`` and ``conflicts``.
    ``allow`` (default: ``DPC_PLUGINS``) restricts which entry points load.
    """
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(DpcSpec)
    reg = Registry(hook=pm.hook)
    if allow is None:
        allow = allow_list()
    eps = installed_entry_points() if entry_points is None else list(entry_points)

    candidates: list[tuple[str, str, str, Callable[[], ModuleType]]] = [
        (mod, dist, __version__, partial(import_module, mod)) for mod, dist in BUILTINS
    ]
    for ep in eps:
        if allow is not None and ep.name not in allow:
            reg.not_allowed.append(ep.name)
            reg.left_out.append(ep)
            continue
        candidates.append((ep.name, ep.dist, ep.version, ep.load))

    # Every claim first, then the conflicts: which of two plugins loads first must not
    # decide who gets a name.
    claims: dict[tuple[str, str], list[tuple[Claimant, Any]]] = {}
    granted: dict[str, list[tuple[str, str]]] = {}
    order: list[tuple[str, str, str]] = []
    for name, dist, version, loader in candidates:
        try:
            module = loader()
        except Exception as exc:  # a broken third-party plugin must not take dpc down
            reg.failures.append(LoadFailure(name, dist, f"import failed: {exc!r}", version))
            continue
        problem = _check_api(module)
        unknown = _unknown_hooks(module)
        if problem is None and unknown:
            problem = (f"implements unknown hook(s) {', '.join(unknown)}; the hooks are "
                       f"{', '.join(sorted(n for n in vars(DpcSpec) if n.startswith('dpc_')))}")
        if problem:
            reg.failures.append(LoadFailure(name, dist, problem, version,
                                            _guess_provides(module)))
            continue
        if pm.is_registered(module):
            continue
        pm.register(module, name=name)
        try:
            items = _collect(pm, module)
        except Exception as exc:
            pm.unregister(module)
            reg.failures.append(LoadFailure(name, dist, f"registration failed: {exc!r}",
                                            version))
            continue
        who = Claimant(name, dist, version)
        for kind, key, item in items:
            claims.setdefault((kind, key), []).append((who, item))
        granted[name] = []
        order.append((name, dist, version))

    loaded = tuple(name for name, dist, _, _ in candidates if dist != CORE_DIST
                   and name in granted)
    tables: dict[str, dict[str, Any]] = {
        "step": reg.steps, "compute": reg.computes, "channel": reg.notifiers,
        "source": reg.trigger_sources}
    for (kind, key), claimed in claims.items():
        winner: tuple[Claimant, Any] | None = claimed[0] if len(claimed) == 1 else None
        if len(claimed) > 1:
            core = [c for c in claimed if c[0].dist == CORE_DIST]
            winner = core[0] if core else None
            reg.conflicts.append(Conflict(kind, key, tuple(c for c, _ in claimed),
                                          winner[0] if winner else None, loaded))
        if winner is not None:
            tables[kind][key] = winner[1]
            reg.owners[(kind, key)] = winner[0].dist
            granted[winner[0].plugin].append((kind, key))
    for name, dist, version in order:
        reg.plugins.append(PluginInfo(name, dist, version, tuple(granted[name])))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:  # unknown hooks were refused above
        raise PluginError(f"a plugin implements an unknown hook: {exc}") from None
    return reg


def _collect(pm: pluggy.PluginManager, module: ModuleType) -> list[tuple[str, str, Any]]:
    """``(kind, name, registration)`` of everything ``module``'s hooks return."""
    others = [p for p in pm.get_plugins() if p is not module]
    out: list[tuple[str, str, Any]] = []
    for hook, kind, attr in _REGISTRATION_HOOKS:
        caller = pm.subset_hook_caller(hook, remove_plugins=others)
        for batch in caller():
            for item in batch or ():
                out.append((kind, getattr(item, attr), item))
    return out


_default: Registry | None = None


def get_registry() -> Registry:
    """The registry of the installed plugins, loaded once per process."""
    global _default
    if _default is None:
        _default = load_registry()
    return _default
