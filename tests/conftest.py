"""Fixtures shared by the test modules of tests/ (helpers that are not fixtures live in
tests/helpers/: the Chromium driver, the ``dpc ui`` server, the engine builders)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers.browser import Browser, chromium


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One Chromium for the module, on a fresh profile."""
    yield from chromium(tmp_path_factory)
