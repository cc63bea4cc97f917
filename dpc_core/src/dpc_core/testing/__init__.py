"""Test helpers for dpc and its plugins.

Load the fixtures with ``pytest -p dpc_core.testing.fixtures`` (or
``pytest_plugins = ["dpc_core.testing.fixtures"]`` in a conftest), and subclass
:class:`dpc_core.testing.contract.PluginContract` to run the core's contract tests
against a plugin.
"""
