"""Lambda handlers contributed by plugins (the ``dpc_lambda_handlers`` hook)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from dpc_central.central_account.concurrency import RESERVED
from dpc_central.central_account.tables import TriggerTables
from dpc_central.common.function import DpcFunction
from dpc_central.conventions import ENV_CENTRAL_BUS

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def plugin_handlers(registry: object) -> list[tuple[str, str]]:
    """Every ``(name, "module:function")`` the installed plugins contribute; a malformed
    one is a ValueError naming it."""
    hook = getattr(registry, "hook", None)
    found: list[tuple[str, str]] = []
    for batch in (hook.dpc_lambda_handlers() if hook is not None else ()):
        for name, target in batch or ():
            if not _NAME.match(name) or not _TARGET.match(target):
                raise ValueError(f"plugin Lambda handler {name!r} -> {target!r}: the name must "
                                 "match [a-z][a-z0-9-]* and the target be 'module:function'")
            found.append((name, target))
    names = [n for n, _ in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"several plugins contribute the Lambda handler(s) {', '.join(dupes)}")
    return found


class PluginFunctions(Construct):
    """One dpc Lambda per plugin handler, named ``dpc-plugin-<name>``, with the engine's
    table names and the central bus in its environment, read access to the registry and
    the right to put events on the central bus (DLQ and alarms as every dpc Lambda).

    Attribute: ``functions`` (name -> DpcFunction).
    """

    def __init__(self, scope: Construct, id: str, *, handlers: Iterable[tuple[str, str]],
                 tables: TriggerTables, bus: events.IEventBus, code_dir: Path,
                 alarm_topic: sns.ITopic | None,
                 layers: Sequence[lambda_.ILayerVersion] = ()) -> None:
        super().__init__(scope, id)
        self.functions: dict[str, DpcFunction] = {}
        for name, target in handlers:
            module, function = target.split(":")
            fn = DpcFunction(
                self, "".join(p.capitalize() for p in name.split("-")),
                handler=f"{module}.{function}", code_dir=code_dir,
                environment={**tables.environment, ENV_CENTRAL_BUS: bus.event_bus_name},
                description=f"dpc plugin handler {name} ({target})", alarm_topic=alarm_topic,
                layers=layers, function_name=f"dpc-plugin-{name}",
                reserved_concurrency=RESERVED["plugin"])
            tables.registry.grant_read_data(fn.function)
            bus.grant_put_events_to(fn.function)
            self.functions[name] = fn


class PluginConstructs(Construct):
    """Whatever the installed plugins add to the central stack through the
    ``dpc_central_constructs`` hook (a channel's service, say), under this construct.

    The central stack names no channel: dpc-notify-slack's poster arrives here the way a
    third-party channel's would.
    """

    def __init__(self, scope: Construct, id: str, *, registry: object,
                 context: object) -> None:
        super().__init__(scope, id)
        hook = getattr(registry, "hook", None)
        if hook is not None and hasattr(hook, "dpc_central_constructs"):
            hook.dpc_central_constructs(scope=self, central=context)
