"""dpc core: the pipeline model, the plugin framework, the trigger engine and the CLI.

Plugins import only what this module and :mod:`dpc_core.types` export::

    from dpc_core import hookimpl
    from dpc_core.types import StepType, StepConfig
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pluggy

    hookimpl: pluggy.HookimplMarker

__version__ = "0.1.0"

#: Version of the plugin API. A plugin module declares ``DPC_PLUGIN_API = 1``;
#: the manager refuses plugins built for another major version.
PLUGIN_API_VERSION = 1

PROJECT_NAME = "dpc"
#: Entry-point group under which plugin distributions register their module.
ENTRY_POINT_GROUP = "dpc"


def __getattr__(name: str) -> Any:
    """``hookimpl``, made on first use: importing pluggy costs start-up time that
    ``dpc --help`` and ``dpc --version`` do not need."""
    if name == "hookimpl":
        import pluggy

        marker = pluggy.HookimplMarker(PROJECT_NAME)
        globals()["hookimpl"] = marker
        return marker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ENTRY_POINT_GROUP", "PLUGIN_API_VERSION", "__version__", "hookimpl"]
