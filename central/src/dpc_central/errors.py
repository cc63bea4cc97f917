"""Errors of synth and deploy that a user can act on (printed without a traceback)."""

from __future__ import annotations

from dpc_core.errors import DpcError


class SynthError(DpcError):
    """A pipeline cannot be turned into AWS resources (e.g. a step with no AWS form)."""


class DeployError(DpcError):
    """Deploying cannot start: credentials, the CDK toolkit or the bootstrap is missing."""
