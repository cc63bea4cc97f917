"""Plugins built into the core, registered through the same path as any other plugin."""

from __future__ import annotations

from collections.abc import Iterator

from dpc_core import hookimpl
from dpc_core.types import ComputeConfig, ComputeType

DPC_PLUGIN_API = 1


class LocalCompute(ComputeConfig):
    """Run steps on this machine (the default where no cloud is involved)."""


@hookimpl
def dpc_compute_types() -> Iterator[ComputeType]:
    """The ``local`` compute: steps run as subprocesses of the local runtime."""
    yield ComputeType(name="local", config=LocalCompute, description="steps run on this machine")
