"""The options plugins add to ``dpc setup-user-account`` (``dpc_team_account_options``).

Pure Python (no aws_cdk): the command line reads them before any stack is built.
"""

from __future__ import annotations

from typing import Any

from dpc_core.errors import PluginError
from dpc_core.types import AccountOption


def account_options(registry: Any) -> dict[str, AccountOption]:
    """Every declared account option by name; a PluginError when two plugins declare
    the same one, or a plugin returns something that is not an ``AccountOption``."""
    hook = getattr(registry, "hook", None)
    found: dict[str, AccountOption] = {}
    if hook is None:
        return found
    for batch in hook.dpc_team_account_options():
        for option in batch or ():
            if not isinstance(option, AccountOption):
                raise PluginError(f"a plugin's dpc_team_account_options returned {option!r}, "
                                 "not a dpc_core.types.AccountOption")
            if option.name in found:
                raise PluginError(f"several plugins declare the setup-user-account option "
                                 f"{option.flag}")
            found[option.name] = option
    return found
