"""Project commands of the real `dpc` CLI: version, plugins, schema, scaffolds, start-up cost.

The scaffolded plugins are really built and pip-installed (no index: everything they
need comes from the development environment) into a fresh virtual environment, and
that environment's own `dpc` must then see them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CASE_STUDY = REPO / "examples" / "seed"
CASE_STUDY_FILES = sorted(CASE_STUDY.glob("*/pipeline.yaml"))
DPC = str(Path(sys.executable).parent / "dpc")

FIRST_PARTY = {
    ("spark", "step", "dpc-step-spark"),
    ("shell", "step", "dpc-step-shell"),
    ("emr", "compute", "dpc-compute-emr"),
    ("SLACK", "channel", "dpc-notify-slack"),
    ("EMAIL", "channel", "dpc-notify-email"),
    ("OPSGENIE", "channel", "dpc-notify-opsgenie"),
}

#: Modules `dpc --help` must not import: slow to import, and not needed to print help.
HEAVY = ("aws_cdk", "boto3", "botocore", "pyspark", "slack_sdk", "opsgenie_sdk", "pydantic",
         "jsii")


def dpc(*args: str, cwd: Path | None = None, exe: str = DPC,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a `dpc` command; the caller checks the exit code."""
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    """stdout of a command that must have succeeded."""
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def table(text: str) -> set[tuple[str, ...]]:
    """Rows of the `dpc plugins list` table (header excluded)."""
    return {tuple(line.split()) for line in text.splitlines()[1:] if line.strip()}


# -- version and plugins -------------------------------------------------------------------


def test_version_prints_the_core_version() -> None:
    assert ok(dpc("--version")).strip() == f"dpc, version {version('dpc-core')}"


def test_plugins_list_shows_the_six_first_party_plugins_with_kind_dist_and_version() -> None:
    rows = table(ok(dpc("plugins", "list")))
    for name, kind, dist in FIRST_PARTY:
        assert (name, kind, dist, version(dist)) in rows


def test_plugins_list_shows_the_built_in_local_compute() -> None:
    assert ("local", "compute", "dpc-core", version("dpc-core")) in table(
        ok(dpc("plugins", "list")))


def test_plugins_list_json_is_machine_readable() -> None:
    data = json.loads(ok(dpc("plugins", "list", "--json")))
    got = {(r["name"], r["kind"], r["distribution"]) for r in data["plugins"]}
    assert got >= FIRST_PARTY
    assert data["failures"] == []


def test_plugins_list_honours_the_allow_list() -> None:
    rows = table(ok(dpc("plugins", "list", env={"DPC_PLUGINS": "step_shell"})))
    assert {r[0] for r in rows} == {"shell", "local"}


# -- schema ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    """The JSON Schema printed by `dpc schema`."""
    data: dict[str, Any] = json.loads(ok(dpc("schema")))
    return data


def test_schema_is_a_valid_json_schema(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_includes_the_fields_of_the_installed_plugins(schema: dict[str, Any]) -> None:
    defs = schema["$defs"]
    assert "script" in defs["SparkStep"]["properties"]
    assert "command" in defs["ShellStep"]["properties"]
    assert "releaseLabel" in defs["EmrCompute"]["properties"]
    # Offered for completion; any case validates, as in `dpc validate`.
    channel = defs["Target"]["properties"]["channel"]["anyOf"]
    assert channel[0] == {"enum": ["EMAIL", "OPSGENIE", "SLACK"]}
    validator = jsonschema.Draft202012Validator(channel[1])
    assert validator.is_valid("slack")
    assert not validator.is_valid("teams")


@pytest.mark.parametrize("path", CASE_STUDY_FILES, ids=lambda p: p.parent.name)
def test_schema_accepts_the_case_study_as_written(schema: dict[str, Any], path: Path) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


def test_the_case_study_has_four_pipelines() -> None:
    assert len(CASE_STUDY_FILES) == 4


def test_schema_rejects_a_field_the_step_plugin_does_not_know(schema: dict[str, Any]) -> None:
    doc = {"name": "p", "steps": [{"name": "s", "type": "spark", "script": "a.py", "scirpt": 1}]}
    assert not jsonschema.Draft202012Validator(schema).is_valid(doc)


def test_schema_rejects_a_step_without_its_required_plugin_field(
    schema: dict[str, Any],
) -> None:
    doc = {"name": "p", "steps": [{"name": "s", "type": "spark"}]}
    assert not jsonschema.Draft202012Validator(schema).is_valid(doc)


# -- create-project --------------------------------------------------------------------------


def test_create_project_makes_a_project_that_validates_immediately(tmp_path: Path) -> None:
    ok(dpc("create-project", "-n", "demo", "--dir", str(tmp_path)))
    project = tmp_path / "demo"
    out = ok(dpc("validate", str(project)))
    assert "1 pipeline(s) valid" in out


def test_create_project_writes_a_commented_pipeline_a_script_a_readme_and_gitignore(
    tmp_path: Path,
) -> None:
    ok(dpc("create-project", "-n", "demo", "--dir", str(tmp_path)))
    project = tmp_path / "demo"
    assert "\n# " in (project / "pipeline.yaml").read_text()
    assert os.access(project / "scripts" / "hello.sh", os.X_OK)
    assert (project / "README.md").read_text().startswith("# demo")
    assert ".dpc/" in (project / ".gitignore").read_text()


def test_a_created_project_matches_the_schema(tmp_path: Path, schema: dict[str, Any]) -> None:
    ok(dpc("create-project", "-n", "demo", "--dir", str(tmp_path)))
    doc = yaml.safe_load((tmp_path / "demo" / "pipeline.yaml").read_text())
    assert [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)] == []


def test_create_project_refuses_to_overwrite_a_directory(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    proc = dpc("create-project", "-n", "demo", "--dir", str(tmp_path))
    assert proc.returncode == 2
    assert "already exists" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", ["my demo", "-demo", "a/b"])
def test_create_project_refuses_a_name_validate_would_refuse(tmp_path: Path, name: str) -> None:
    proc = dpc("create-project", "-n", name, "--dir", str(tmp_path))
    assert proc.returncode == 2
    assert "contain only letters, digits, '-' and '_'" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_created_project_points_editors_at_its_schema_file(tmp_path: Path) -> None:
    ok(dpc("create-project", "-n", "demo", "--dir", str(tmp_path)))
    project = tmp_path / "demo"
    first = (project / "pipeline.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=pipeline.schema.json"
    # The file the modeline names is what `dpc schema` prints (regenerated the same way).
    assert json.loads((project / "pipeline.schema.json").read_text()) == json.loads(
        ok(dpc("schema")))
    check = subprocess.run(
        [str(Path(DPC).parent / "check-jsonschema"), "--schemafile",
         str(project / "pipeline.schema.json"), str(project / "pipeline.yaml")],
        capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


# -- create-plugin, really installed with pip -----------------------------------------------


class Installed:
    """A virtual environment with dpc-core and three scaffolded plugins pip-installed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.venv = root / "venv"
        self.python = str(self.venv / "bin" / "python")
        self.dpc = str(self.venv / "bin" / "dpc")
        self.packages = {kind: root / f"dpc-{kind}-{name}" for kind, name in
                         (("step", "hello"), ("notifier", "pager"), ("compute", "tiny"))}

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """A command of the venv; no package index is reachable from it."""
        env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        env.pop("DPC_PLUGINS", None)
        env.pop("VIRTUAL_ENV", None)
        return subprocess.run(list(args), cwd=cwd or self.root, capture_output=True, text=True,
                              timeout=600, env=env)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Scaffold three plugins and pip-install them, with dpc-core, into a new venv.

    The venv sees the development environment's site-packages (pydantic, click, pluggy,
    hatchling, pytest) through a .pth file, so nothing is downloaded.
    """
    inst = Installed(tmp_path_factory.mktemp("plugins"))
    for kind, path in inst.packages.items():
        name = path.name.rsplit("-", 1)[1]
        ok(dpc("create-plugin", "--kind", kind, "-n", name, "--dir", str(inst.root)))
    ok(inst.run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                str(inst.venv)))
    site = inst.run(inst.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    dev_site = sysconfig.get_paths()["purelib"]
    (Path(ok(site).strip()) / "_dpc_dev_environment.pth").write_text(
        f"import site; site.addsitedir({dev_site!r})\n")
    if inst.run(inst.python, "-m", "pip", "--version").returncode != 0:
        ok(inst.run(inst.python, "-m", "ensurepip"))
    ok(inst.run(inst.python, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                str(REPO / "dpc_core"), *map(str, inst.packages.values())))
    return inst


def test_a_scaffolded_step_plugin_installed_with_pip_appears_in_plugins_list(
    installed: Installed,
) -> None:
    rows = table(ok(installed.run(installed.dpc, "plugins", "list")))
    assert ("hello", "step", "dpc-step-hello", "0.1.0") in rows


def test_scaffolded_notifier_and_compute_plugins_appear_in_plugins_list(
    installed: Installed,
) -> None:
    rows = table(ok(installed.run(installed.dpc, "plugins", "list")))
    assert ("PAGER", "channel", "dpc-notifier-pager", "0.1.0") in rows
    assert ("tiny", "compute", "dpc-compute-tiny", "0.1.0") in rows


def test_the_installed_plugins_are_found_through_their_entry_points(
    installed: Installed,
) -> None:
    data = json.loads(ok(installed.run(installed.dpc, "plugins", "list", "--json")))
    by_name = {r["name"]: r["plugin"] for r in data["plugins"]}
    assert (by_name["hello"], by_name["PAGER"], by_name["tiny"]) == ("hello", "pager", "tiny")


def test_a_pipeline_using_the_installed_plugins_validates(
    installed: Installed, tmp_path: Path
) -> None:
    (tmp_path / "pipeline.yaml").write_text(
        "name: uses-plugins\nsteps:\n  - name: greet\n    type: hello\n    message: hi\n"
        "compute:\n  type: tiny\nnotifications:\n  targets:\n    - channel: PAGER\n"
        "      addresses: [on-call]\n")
    out = ok(installed.run(installed.dpc, "validate", str(tmp_path)))
    assert "greet (hello)" in out


def test_the_installed_step_plugin_validates_its_own_fields(
    installed: Installed, tmp_path: Path
) -> None:
    (tmp_path / "pipeline.yaml").write_text(
        "name: p\nsteps:\n  - name: greet\n    type: hello\n")
    proc = installed.run(installed.dpc, "validate", "pipeline.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "pipeline.yaml:3:5: steps[0].message: required field is missing\n"


def test_the_scaffolded_contract_tests_pass_in_the_installed_environment(
    installed: Installed,
) -> None:
    tests = [str(p / "tests") for p in installed.packages.values()]
    proc = installed.run(installed.python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                         "--rootdir", str(installed.root), *tests)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " passed" in proc.stdout


# -- start-up cost ---------------------------------------------------------------------------


def test_dpc_help_imports_no_heavy_module() -> None:
    script = (
        "import sys\n"
        "from dpc_core.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Commands:" in proc.stdout
    assert proc.stdout.splitlines()[-1] == ""
