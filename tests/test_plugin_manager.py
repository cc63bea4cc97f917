"""The plugin manager, exercised with fake plugins written to disk and imported for real.

Each fake plugin is a module in ``tmp_path`` put on ``sys.path``, handed to
:func:`dpc_core.plugins.load_registry` as an :class:`EntryPointLike`, exactly as an
installed distribution's entry point would be.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dpc_core.errors import ValidationFailed
from dpc_core.hookspecs import DpcSpec
from dpc_core.loader import parse_yaml, validate_document
from dpc_core.plugins import ALLOW_ENV, KIND_LABELS, EntryPointLike, Registry, load_registry

PluginFactory = Callable[..., EntryPointLike]

STEP_PLUGIN = """
    from dpc_core import hookimpl
    from dpc_core.types import StepConfig, StepType

    DPC_PLUGIN_API = 1

    class Config(StepConfig):
        message: str

    @hookimpl
    def dpc_step_types():
        yield StepType(name={name!r}, config=Config)
"""

COMPUTE_PLUGIN = """
    from dpc_core import hookimpl
    from dpc_core.types import ComputeConfig, ComputeType

    DPC_PLUGIN_API = 1

    class Config(ComputeConfig):
        pass

    @hookimpl
    def dpc_compute_types():
        yield ComputeType(name={name!r}, config=Config)
"""

NOTIFIER_PLUGIN = """
    from dpc_core import hookimpl
    from dpc_core.types import NotifierType

    DPC_PLUGIN_API = 1

    @hookimpl
    def dpc_notifiers():
        yield NotifierType(channel={name!r}, factory=lambda env: None)
"""


@pytest.fixture
def fake_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginFactory]:
    """Write a plugin module and return the entry point that loads it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def make(source: str, *, dist: str = "dpc-fake", ep_name: str = "fake",
             version: str = "1.0", **fmt: str) -> EntryPointLike:
        module = f"fake_dpc_plugin_{uuid.uuid4().hex[:12]}"
        body = textwrap.dedent(source).format(**fmt) if fmt else textwrap.dedent(source)
        (tmp_path / f"{module}.py").write_text(body)
        made.append(module)
        return EntryPointLike(ep_name, module, dist, version)

    yield make
    for module in made:
        sys.modules.pop(module, None)


@pytest.fixture(autouse=True)
def _no_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_ENV, raising=False)


# -- loading ---------------------------------------------------------------------------


def test_a_step_plugin_contributes_its_step_type(fake_plugin: PluginFactory) -> None:
    reg = load_registry([fake_plugin(STEP_PLUGIN, name="hello", dist="dpc-step-hello")])
    assert "hello" in reg.steps
    assert reg.owner("step", "hello") == "dpc-step-hello"


def test_built_ins_load_through_the_same_path_as_entry_points() -> None:
    reg = load_registry([])
    builtin = [p for p in reg.plugins if p.dist == "dpc-core"]
    assert [p.name for p in builtin] == ["dpc_core.builtin"]
    assert ("compute", "local") in builtin[0].provides
    assert reg.owner("compute", "local") == "dpc-core"


def test_a_plugin_list_entry_names_kind_distribution_and_version(
    fake_plugin: PluginFactory,
) -> None:
    ep = fake_plugin(NOTIFIER_PLUGIN, name="TEAMS", dist="dpc-notify-teams", ep_name="teams",
                     version="2.3.4")
    info = next(p for p in load_registry([ep]).plugins if p.name == "teams")
    assert (info.dist, info.version, info.provides) == (
        "dpc-notify-teams", "2.3.4", (("channel", "TEAMS"),))


# -- broken plugins are reported and skipped --------------------------------------------


def test_a_plugin_that_fails_to_import_is_reported_with_its_distribution_and_skipped(
    fake_plugin: PluginFactory,
) -> None:
    broken = fake_plugin("import no_such_module_xyz\n", dist="dpc-step-broken", ep_name="broken")
    good = fake_plugin(STEP_PLUGIN, name="hello", dist="dpc-step-hello", ep_name="hello")
    reg = load_registry([broken, good])
    assert [(f.name, f.dist) for f in reg.failures] == [("broken", "dpc-step-broken")]
    assert "no_such_module_xyz" in reg.failures[0].reason
    assert "hello" in reg.steps
    assert "broken" not in {p.name for p in reg.plugins}


def test_a_plugin_with_a_syntax_error_is_skipped_not_a_crash(fake_plugin: PluginFactory) -> None:
    reg = load_registry([fake_plugin("def oops(:\n", dist="dpc-step-typo")])
    assert [f.dist for f in reg.failures] == ["dpc-step-typo"]
    assert "SyntaxError" in reg.failures[0].reason


def test_a_plugin_whose_hook_raises_is_reported_and_skipped(fake_plugin: PluginFactory) -> None:
    ep = fake_plugin("""
        from dpc_core import hookimpl
        DPC_PLUGIN_API = 1

        @hookimpl
        def dpc_step_types():
            raise RuntimeError("config file missing")
    """, dist="dpc-step-raises")
    reg = load_registry([ep])
    assert [f.dist for f in reg.failures] == ["dpc-step-raises"]
    assert "registration failed" in reg.failures[0].reason
    assert "config file missing" in reg.failures[0].reason


# -- conflicts: the name is unusable, nothing else is ------------------------------------


@pytest.mark.parametrize(
    ("source", "name", "kind"),
    [(STEP_PLUGIN, "hello", "step"), (COMPUTE_PLUGIN, "cloud", "compute"),
     (NOTIFIER_PLUGIN, "TEAMS", "channel")],
)
def test_two_plugins_claiming_one_name_is_a_conflict_naming_both_distributions(
    fake_plugin: PluginFactory, source: str, name: str, kind: str
) -> None:
    first = fake_plugin(source, name=name, dist="dpc-first", ep_name="first")
    second = fake_plugin(source, name=name, dist="dpc-second", ep_name="second")
    reg = load_registry([first, second])
    assert [(c.kind, c.name) for c in reg.conflicts] == [(kind, name)]
    msg = reg.unavailable(kind, name)
    assert msg is not None
    assert f"{KIND_LABELS[kind]} {name!r} is claimed by dpc-first 1.0 and dpc-second 1.0" in msg
    assert "pip uninstall dpc-first" in msg and "pip uninstall dpc-second" in msg


def test_a_conflicting_name_is_given_to_neither_plugin(fake_plugin: PluginFactory) -> None:
    first = fake_plugin(STEP_PLUGIN, name="hello", dist="dpc-first", ep_name="first")
    second = fake_plugin(STEP_PLUGIN, name="hello", dist="dpc-second", ep_name="second")
    reg = load_registry([first, second])
    assert "hello" not in reg.steps
    assert {p.name: p.provides for p in reg.plugins if p.dist != "dpc-core"} == {
        "first": (), "second": ()}


def test_a_conflict_leaves_the_other_plugins_usable(fake_plugin: PluginFactory) -> None:
    first = fake_plugin(STEP_PLUGIN, name="hello", dist="dpc-first", ep_name="first")
    second = fake_plugin(STEP_PLUGIN, name="hello", dist="dpc-second", ep_name="second")
    other = fake_plugin(STEP_PLUGIN, name="other", dist="dpc-other", ep_name="other")
    reg = load_registry([first, second, other])
    assert set(reg.steps) == {"other"}
    data, pos = parse_yaml("name: p\nsteps:\n  - {name: s, type: other, message: hi}\n")
    assert validate_document(data, pos, "pipeline.yaml", reg).steps[0].type == "other"


def test_a_pipeline_using_a_conflicting_step_type_gets_the_fix_in_its_error(
    fake_plugin: PluginFactory,
) -> None:
    first = fake_plugin(STEP_PLUGIN, name="shell", dist="dpc-step-shell", ep_name="step_shell",
                        version="0.1.0")
    second = fake_plugin(STEP_PLUGIN, name="shell", dist="acme-shell", ep_name="acme_shell",
                         version="1.2")
    other = fake_plugin(STEP_PLUGIN, name="other", dist="dpc-other", ep_name="other")
    reg = load_registry([first, second, other])
    problems = _validate("name: p\nsteps:\n  - {name: s, type: shell, message: hi}\n", reg)
    assert problems == [
        "pipeline.yaml:3:21: steps[0].type: step type 'shell' is claimed by dpc-step-shell "
        "0.1.0 and acme-shell 1.2: uninstall one (pip uninstall dpc-step-shell / pip "
        "uninstall acme-shell) or set DPC_PLUGINS=step_shell,other to load only the entry "
        "points you want (that keeps dpc-step-shell)"
    ]


def test_the_suggested_allow_list_resolves_the_conflict(
    fake_plugin: PluginFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = fake_plugin(STEP_PLUGIN, name="hello", dist="dpc-first", ep_name="first")
    second = fake_plugin(STEP_PLUGIN, name="hello", dist="dpc-second", ep_name="second")
    msg = load_registry([first, second]).unavailable("step", "hello") or ""
    suggested = msg.split(f"{ALLOW_ENV}=")[1].split()[0]
    monkeypatch.setenv(ALLOW_ENV, suggested)
    reg = load_registry([first, second])
    assert reg.conflicts == []
    assert reg.owner("step", "hello") == "dpc-first"


def test_a_plugin_cannot_take_over_a_built_in_name(fake_plugin: PluginFactory) -> None:
    ep = fake_plugin(COMPUTE_PLUGIN, name="local", dist="dpc-compute-mine")
    reg = load_registry([ep])
    assert reg.owner("compute", "local") == "dpc-core"
    assert len(reg.conflicts) == 1
    assert "dpc-core keeps it" in reg.conflicts[0].message()
    assert "uninstall dpc-compute-mine" in reg.conflicts[0].message()
    assert reg.unavailable("compute", "local") is None


# -- plugin API version and unknown hooks: the plugin is skipped, the rest loads ----------


def test_a_plugin_built_for_another_plugin_api_is_skipped_with_a_clear_message(
    fake_plugin: PluginFactory,
) -> None:
    source = STEP_PLUGIN.replace("DPC_PLUGIN_API = 1", "DPC_PLUGIN_API = 2")
    ep = fake_plugin(source, name="hello", dist="dpc-step-future", version="9.0")
    reg = load_registry([ep])
    assert "hello" not in reg.steps
    [failure] = reg.failures
    msg = failure.message()
    assert "dpc-step-future 9.0" in msg
    assert "plugin API 2" in msg
    assert "speaks 1" in msg


def test_a_pipeline_using_a_type_of_a_skipped_plugin_is_told_why(
    fake_plugin: PluginFactory,
) -> None:
    source = STEP_PLUGIN.replace("DPC_PLUGIN_API = 1", "DPC_PLUGIN_API = 2")
    future = fake_plugin(source, name="hello", dist="dpc-step-future", version="9.0")
    fine = fake_plugin(STEP_PLUGIN, name="other", dist="dpc-other", ep_name="other")
    reg = load_registry([future, fine])
    assert "other" in reg.steps
    problems = _validate("name: p\nsteps:\n  - {name: s, type: hello, message: hi}\n", reg)
    assert len(problems) == 1
    assert problems[0].startswith(
        "pipeline.yaml:3:21: steps[0].type: step type 'hello' is provided by "
        "dpc-step-future 9.0, which was skipped: was built for plugin API 2")


def test_a_plugin_without_dpc_plugin_api_is_skipped(fake_plugin: PluginFactory) -> None:
    source = STEP_PLUGIN.replace("DPC_PLUGIN_API = 1", "")
    ep = fake_plugin(source, name="hello", dist="dpc-step-old")
    [failure] = load_registry([ep]).failures
    assert failure.dist == "dpc-step-old"
    assert "declares no DPC_PLUGIN_API" in failure.reason


def test_a_misspelled_hook_skips_that_plugin_and_names_the_hook(
    fake_plugin: PluginFactory,
) -> None:
    source = STEP_PLUGIN.replace("def dpc_step_types", "def dpc_step_type")
    bad = fake_plugin(source, name="hello", dist="dpc-step-typo")
    good = fake_plugin(STEP_PLUGIN, name="other", dist="dpc-other", ep_name="other")
    reg = load_registry([bad, good])
    assert [f.dist for f in reg.failures] == ["dpc-step-typo"]
    assert "unknown hook(s) dpc_step_type" in reg.failures[0].reason
    assert set(reg.steps) == {"other"}


# -- allow-list ----------------------------------------------------------------------------


def test_the_allow_list_env_var_loads_only_the_named_entry_points(
    fake_plugin: PluginFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = fake_plugin(STEP_PLUGIN, name="alpha", ep_name="alpha")
    b = fake_plugin(STEP_PLUGIN, name="beta", ep_name="beta")
    monkeypatch.setenv(ALLOW_ENV, " beta ,")
    reg = load_registry([a, b])
    assert set(reg.steps) == {"beta"}


def test_the_allow_list_keeps_the_built_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_ENV, "nothing_installed_by_that_name")
    reg = load_registry()
    assert set(reg.computes) == {"local"}
    assert reg.steps == {}


def test_an_explicit_allow_list_wins_over_the_env_var(
    fake_plugin: PluginFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = fake_plugin(STEP_PLUGIN, name="alpha", ep_name="alpha")
    monkeypatch.setenv(ALLOW_ENV, "other")
    assert set(load_registry([a], allow=["alpha"]).steps) == {"alpha"}


# -- what users see when a plugin is missing ----------------------------------------------


def _validate(text: str, reg: Registry) -> list[str]:
    data, pos = parse_yaml(text)
    with pytest.raises(ValidationFailed) as err:
        validate_document(data, pos, "pipeline.yaml", reg)
    return [str(p) for p in err.value.problems]


def test_a_step_type_no_installed_plugin_provides_names_no_package_to_install(
    fake_plugin: PluginFactory,
) -> None:
    """Core knows no plugin by name (a guessed package name is a typosquatter's gift)."""
    reg = load_registry([fake_plugin(STEP_PLUGIN, name="hello", dist="dpc-step-hello")])
    problems = _validate("name: p\nsteps:\n  - name: s\n    type: spark\n    script: a.py\n", reg)
    assert problems == [
        "pipeline.yaml:4:11: steps[0].type: unknown step type 'spark'; installed: hello"
    ]


def test_a_step_type_whose_plugin_the_allow_list_leaves_out_names_its_entry_point(
    fake_plugin: PluginFactory,
) -> None:
    hello = fake_plugin(STEP_PLUGIN, name="hello", dist="dpc-step-hello", ep_name="hello")
    spark = fake_plugin(STEP_PLUGIN, name="spark", dist="acme-spark", ep_name="acme_spark")
    reg = load_registry([hello, spark], allow=["hello"])
    problems = _validate("name: p\nsteps:\n  - name: s\n    type: spark\n    message: a\n", reg)
    assert problems == [
        "pipeline.yaml:4:11: steps[0].type: unknown step type 'spark'; installed: hello; "
        "'spark' is provided by acme-spark (entry point acme_spark), which DPC_PLUGINS "
        "leaves out: add acme_spark to DPC_PLUGINS"
    ]


def test_a_step_validates_with_the_config_model_of_the_plugin_that_owns_its_type(
    fake_plugin: PluginFactory,
) -> None:
    reg = load_registry([fake_plugin(STEP_PLUGIN, name="hello", dist="dpc-step-hello")])
    problems = _validate("name: p\nsteps:\n  - name: s\n    type: hello\n    mesage: hi\n", reg)
    assert problems == [
        "pipeline.yaml:3:5: steps[0].message: required field is missing",
        "pipeline.yaml:5:5: steps[0].mesage: unknown field (did you mean 'message'?); "
        "allowed: name, type, passEnv, retries, timeout, message",
    ]


# -- hook specifications ---------------------------------------------------------------------


HOOKSPECS = sorted(n for n, v in vars(DpcSpec).items() if n.startswith("dpc_") and callable(v))


def test_there_are_hook_specs() -> None:
    assert {"dpc_step_types", "dpc_compute_types", "dpc_notifiers",
            "dpc_trigger_sources"} <= set(HOOKSPECS)


@pytest.mark.parametrize("name", HOOKSPECS)
def test_every_hook_spec_says_when_it_is_called_and_gives_an_example(name: str) -> None:
    doc = inspect.getdoc(getattr(DpcSpec, name)) or ""
    assert "Called" in doc, f"{name}: say when the hook is called"
    assert "Example" in doc, f"{name}: give an example"


def test_an_unknown_step_type_names_the_plugins_that_failed_to_load(
    fake_plugin: PluginFactory,
) -> None:
    broken = fake_plugin("raise ImportError('needs libfoo')\n", dist="dpc-step-hello")
    problems = _validate("name: p\nsteps:\n  - name: s\n    type: hello\n",
                         load_registry([broken]))
    assert problems == [
        "pipeline.yaml:4:11: steps[0].type: unknown step type 'hello'; installed: none; "
        "plugins that failed to load (see `dpc plugins list`): dpc-step-hello"
    ]
