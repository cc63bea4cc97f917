"""Templates of ``dpc create-project`` and ``dpc create-plugin``."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dpc_core import PLUGIN_API_VERSION, __version__
from dpc_core.errors import DpcError

_PIPELINE = """\
# yaml-language-server: $schema={schema}
# {name}: a dpc pipeline. Validate with `dpc validate`, run locally with
# `dpc local start {name}` (inside `dpc local up`), deploy with `dpc deploy`.
# Editors complete and check this file against {schema} (the line above);
# after installing or upgrading plugins: `dpc schema > {schema}`.
name: {name}
# The AWS account the pipeline lives in (simulated by the local runtime).
account: "{account}"
description: A new dpc pipeline
owner: my-team
tags:
  team: my-team

# When it runs: a schedule (EventBridge cron fields, `cron:` or `rate:`) ...
trigger:
  schedule:
    hour: 3          # 03:00 every day (minute defaults to 0)
  timezone: UTC
# ... or when other pipelines reach a status (in any account):
#  executions:
#    allOf:
#      - name: listings
#        account: "111111111111"
#        status: [SUCCEEDED]

steps:
  - name: hello
    type: shell      # `dpc plugins list` shows the installed step types
    command: ./scripts/hello.sh

# compute:
#   type: emr        # a transient EMR cluster on AWS; steps run locally otherwise

notifications:
  type: FAILURES_ONLY   # FULL_EXECUTION | PIPELINE | FAILURES_ONLY
  targets: []
#    - channel: SLACK
#      addresses: [data-pipeline-alerts]
"""

_SCRIPT = """\
#!/usr/bin/env bash
# A step of {name}. dpc sets DPC_LOGICAL_DATE, DPC_RUN_ID, DPC_DATA_DIR, DPC_PARENTS.
set -euo pipefail
echo "hello from {name} for ${{DPC_LOGICAL_DATE:-today}}"
"""

_README = """\
# {name}

A dpc pipeline project.

    dpc validate .            # check pipeline.yaml
    dpc local up --workspace ..   # run it with the local runtime
    dpc schema > pipeline.schema.json   # refresh editor completion after plugin changes
"""

#: The JSON Schema beside each project's pipeline.yaml, named by its modeline.
SCHEMA_FILE = "pipeline.schema.json"


def create_project(parent: Path, name: str, account: str) -> Path:
    """Write a project directory that validates as is, with the JSON Schema of the
    installed plugins beside pipeline.yaml for editors (yaml-language-server modeline)."""
    from dpc_core.model import NAME_PATTERN, NAME_RULE
    from dpc_core.schema import pipeline_json_schema

    if not re.fullmatch(NAME_PATTERN, name):
        raise DpcError(f"project name {name!r}: {NAME_RULE}")
    if not re.fullmatch(r"[0-9]{12}", account):
        raise DpcError(f"account {account!r} must be 12 digits")
    root = parent / name
    if root.exists():
        raise DpcError(f"{root} already exists; choose another name or --dir")
    (root / "scripts").mkdir(parents=True)
    (root / "pipeline.yaml").write_text(
        _PIPELINE.format(name=name, account=account, schema=SCHEMA_FILE))
    (root / SCHEMA_FILE).write_text(json.dumps(pipeline_json_schema(), indent=2) + "\n")
    script = root / "scripts" / "hello.sh"
    script.write_text(_SCRIPT.format(name=name))
    script.chmod(0o755)
    (root / "README.md").write_text(_README.format(name=name))
    (root / ".gitignore").write_text("cdk.out/\n.dpc/\n__pycache__/\n")
    return root


_PLUGIN_PYPROJECT = """\
[project]
name = "{dist}"
version = "0.1.0"
description = "A dpc {kind} plugin: {name}"
requires-python = ">=3.11"
# The dpc-core releases that speak plugin API {api} (see DPC_PLUGIN_API in the plugin).
dependencies = ["{core_requirement}"]

[project.optional-dependencies]
# pip install -e '.[test]' && pytest
test = ["pytest>=8"]

[project.entry-points.dpc]
{name_id} = "{pkg}.plugin"

[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/{pkg}"]
"""

_STEP = '''\
"""The ``{name}`` step type."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from dpc_core import hookimpl
from dpc_core.types import LocalCommand, RunContext, StepConfig, StepType

DPC_PLUGIN_API = 1


class {cls}(StepConfig):
    """Fields of a ``type: {name}`` step."""

    message: str = Field(description="what the step prints")


def local_command(step: {cls}, ctx: RunContext) -> LocalCommand:
    """The subprocess the local runtime runs."""
    return LocalCommand(argv=["echo", step.message])


@hookimpl
def dpc_step_types() -> Iterator[StepType]:
    """Register the ``{name}`` step type."""
    yield StepType(name="{name}", config={cls}, local=local_command)
'''

_COMPUTE = '''\
"""The ``{name}`` compute type."""

from __future__ import annotations

from collections.abc import Iterator

from dpc_core import hookimpl
from dpc_core.types import ComputeConfig, ComputeType

DPC_PLUGIN_API = 1


class {cls}(ComputeConfig):
    """Fields of ``compute: {{type: {name}}}``."""

    size: str = "small"


@hookimpl
def dpc_compute_types() -> Iterator[ComputeType]:
    """Register the ``{name}`` compute type."""
    yield ComputeType(name="{name}", config={cls})
'''

_NOTIFIER = '''\
"""The ``{channel}`` notification channel."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence

from dpc_core import hookimpl
from dpc_core.types import Notification, NotifierBackend, NotifierType

DPC_PLUGIN_API = 1
log = logging.getLogger(__name__)


class {cls}:
    """Delivers notifications; replace the body of send with the real delivery."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def send(self, note: Notification, addresses: Sequence[str]) -> None:
        for address in addresses:
            log.info("%s -> %s: %s", "{channel}", address, note.summary())


def _factory(env: Mapping[str, str]) -> NotifierBackend:
    return {cls}(env)


@hookimpl
def dpc_notifiers() -> Iterator[NotifierType]:
    """Register the ``{channel}`` channel."""
    yield NotifierType(channel="{channel}", factory=_factory)
'''

_TEST = '''\
"""Contract tests of dpc-core, run against this plugin."""

from typing import Any, ClassVar

from dpc_core.testing.contract import PluginContract


class TestContract(PluginContract):
    plugin_module = "{pkg}.plugin"
    #: A valid config of each step or compute type the plugin provides.
    examples: ClassVar[dict[str, dict[str, Any]]] = {examples}
'''


def core_requirement(version: str = __version__) -> str:
    """The dpc-core range a plugin built against ``version`` may declare.

    dpc-core raises its major version exactly when ``PLUGIN_API_VERSION`` changes, so
    every release from this one to the next major speaks this plugin API.
    """
    major, minor = (int(part) for part in version.split(".")[:2])
    return f"dpc-core>={major}.{minor},<{major + 1}"


#: create-plugin's kind -> the registry kind of what it registers.
_REGISTRY_KIND = {"step": "step", "compute": "compute", "notifier": "channel"}


def _check_collisions(kind: str, name: str, dist: str, pkg: str) -> None:
    """Refuse a plugin whose distribution, package or registered name is taken.

    Installing it would shadow the installed package, or claim a name another plugin
    already provides (a conflict that makes the name unusable for every pipeline).
    """
    import importlib.util
    from importlib.metadata import PackageNotFoundError, distribution

    from dpc_core.plugins import KIND_LABELS, get_registry

    hint = f"choose another name, e.g. -n my-{name}"
    try:
        installed = distribution(dist)
        raise DpcError(f"a distribution named {dist} is already installed (version "
                       f"{installed.version}); {hint}")
    except PackageNotFoundError:
        pass
    if importlib.util.find_spec(pkg) is not None:
        raise DpcError(f"a Python package named {pkg} is already importable; {hint}")
    reg_kind = _REGISTRY_KIND[kind]
    registered = name.replace("-", "_").upper() if kind == "notifier" else name
    reg = get_registry()
    owner = reg.owners.get((reg_kind, registered))
    if owner is None:
        owner = next((", ".join(c.dist for c in conflict.claimants)
                      for conflict in reg.conflicts
                      if (conflict.kind, conflict.name) == (reg_kind, registered)), None)
    if owner is not None:
        raise DpcError(f"{KIND_LABELS[reg_kind]} {registered!r} is already provided by "
                       f"{owner}; two plugins cannot share it, {hint}")


def create_plugin(parent: Path, kind: str, name: str) -> Path:
    """Write a plugin package: pyproject with the entry point, plugin module, contract tests.

    Refuses a name whose distribution, package or step/compute/channel name is taken.
    """
    if not re.match(r"^[a-z][a-z0-9_-]{0,40}$", name):
        raise DpcError(f"plugin name {name!r}: lowercase letters, digits, - and _")
    name_id = name.replace("-", "_")
    dist = f"dpc-{kind}-{name}"
    pkg = f"dpc_{kind}_{name_id}"
    root = parent / dist
    if root.exists():
        raise DpcError(f"{root} already exists")
    _check_collisions(kind, name, dist, pkg)
    cls = "".join(part.capitalize() for part in re.split(r"[-_]", name))
    (root / "src" / pkg).mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(_PLUGIN_PYPROJECT.format(
        dist=dist, kind=kind, name=name, name_id=name_id, pkg=pkg,
        core_requirement=core_requirement(), api=PLUGIN_API_VERSION))
    (root / "src" / pkg / "__init__.py").write_text(f'"""dpc {kind} plugin {name}."""\n')
    if kind == "step":
        body = _STEP.format(name=name, cls=cls + "Step")
        examples = json.dumps({name: {"name": "example", "type": name, "message": "hi"}})
    elif kind == "compute":
        body = _COMPUTE.format(name=name, cls=cls + "Compute")
        examples = json.dumps({name: {"type": name}})
    else:
        channel = name_id.upper()
        body = _NOTIFIER.format(channel=channel, cls=cls + "Notifier")
        examples = "{}"
    (root / "src" / pkg / "plugin.py").write_text(body)
    # A basename unique to the package: pytest refuses two test modules of one name
    # when several plugins are tested together (a monorepo of plugins).
    (root / "tests" / f"test_contract_{name_id}.py").write_text(
        _TEST.format(pkg=pkg, examples=examples))
    (root / "README.md").write_text(f"# {dist}\n\nA dpc {kind} plugin. Install: "
                                    f"`pip install -e '.[test]'`; check: `dpc plugins list`; "
                                    f"test: `pytest -p dpc_core.testing.fixtures tests`.\n")
    return root
