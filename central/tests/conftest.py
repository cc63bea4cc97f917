"""Fixtures of the central handlers' tests: moto with accounts A, B, C and the central
account, the handlers' environment, and the fakes of ``<repo>/tests/fakes``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The fake Slack server lives with the repository's other fakes.
_REPO_TESTS = Path(__file__).resolve().parents[2] / "tests"
if str(_REPO_TESTS) not in sys.path:
    sys.path.insert(0, str(_REPO_TESTS))

from central_harness import (  # noqa: E402
    World,
    cross_account_put_events,
    only_taps_delivered_by_moto,
)


@pytest.fixture
def aws_env(aws_credentials: str) -> Iterator[None]:
    """Fake credentials and a region (dpc_core.testing's fixture), and the handlers'
    per-container caches reset around each test."""
    from dpc_central.handlers import _common

    _common.reset()
    yield
    _common.reset()


@pytest.fixture
def world(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The central account and member accounts A, B, C on moto, set up like the stacks."""
    from moto import mock_aws

    only_taps_delivered_by_moto(monkeypatch)
    with mock_aws():
        w = World()
        cross_account_put_events(monkeypatch, w)
        w.setup()
        for key, value in w.handler_env().items():
            monkeypatch.setenv(key, value)
        w.register_accounts()
        yield w


@pytest.fixture
def central(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """Only the central account's tables, bus, queues and secret (unit tests)."""
    from moto import mock_aws

    only_taps_delivered_by_moto(monkeypatch)
    with mock_aws():
        w = World()
        cross_account_put_events(monkeypatch, w)
        w.setup(members=False)
        for key, value in w.handler_env().items():
            monkeypatch.setenv(key, value)
        w.register_accounts()
        yield w
