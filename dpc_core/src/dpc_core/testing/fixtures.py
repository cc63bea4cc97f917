"""pytest fixtures for dpc and plugin authors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dpc_core.plugins import EntryPointLike, Registry, load_registry


@pytest.fixture
def plugin_registry() -> Callable[..., Registry]:
    """Build a fresh registry from given entry points (or the installed ones).

    ``plugin_registry()`` loads what is installed; ``plugin_registry([EntryPointLike(...)])``
    loads only those, plus the core's built-ins.
    """

    def make(entry_points: list[EntryPointLike] | None = None) -> Registry:
        return load_registry(entry_points)

    return make


@pytest.fixture
def tmp_project(tmp_path: Path) -> Iterator[Path]:
    """A fresh project made by ``dpc create-project`` (validates as is)."""
    from dpc_core.scaffold import create_project

    yield create_project(tmp_path, "demo", "123456789012")


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> str:
    """Fake AWS credentials and region (``eu-west-1``, returned), so tests on moto can
    never reach a real account whatever the developer's environment holds."""
    region = "eu-west-1"
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": region,
                       "AWS_REGION": region}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    return region
