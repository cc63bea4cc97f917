"""The Lambda code asset: pure-Python sources of dpc and its plugins, copied at synth.

No Docker bundling is available where dpc synthesizes, so the asset is a directory
built by copying the installed packages (``dpc_core``, ``dpc_central`` and the plugin
packages that provide handlers or runtime code). Third-party dependencies (pydantic,
pydantic-core, pyyaml, pluggy, click) are not copied from this machine because
pydantic-core is a compiled wheel for *this* platform; either

* ``deps="pip"``: ``pip install --target`` the Linux (manylinux, x86_64) wheels for
  the Lambda runtime, at the versions pinned from ``uv.lock``
  (:data:`RUNTIME_REQUIREMENTS`), into the asset at synth time (cached by requirement
  set), or
* ``deps="none"``: the caller provides them as a Lambda layer (``--lambda-layer ARN``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from dpc_central.errors import SynthError

#: Third-party packages the handlers import (with pydantic's compiled core).
RUNTIME_ROOTS: tuple[str, ...] = ("pydantic", "pyyaml", "pluggy", "click", "slack-sdk")
#: The handlers' dependencies and theirs, pinned to the versions of the workspace's
#: ``uv.lock`` (tests/test_lambda_asset_pins.py requires the two to agree), installed
#: with ``--no-deps``: the bundle of a release is the same wherever and whenever it is
#: built, and is the set the tests ran with, not whatever PyPI holds that day.
RUNTIME_REQUIREMENTS: tuple[str, ...] = (
    "annotated-types==0.8.0", "click==8.5.1", "pluggy==1.7.0", "pydantic==2.14.4",
    "pydantic-core==2.50.5", "pyyaml==6.0.4", "slack-sdk==3.48.0",
    "typing-extensions==4.16.0", "typing-inspection==0.4.5")
LAMBDA_PYTHON = "3.14"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache")


def package_dir(name: str) -> Path:
    """Directory of an importable package (works for installed wheels and editable installs)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SynthError(f"package {name!r} is not installed; pip install the distribution "
                         "that provides it")
    return Path(next(iter(spec.submodule_search_locations)))


def _tree_digest(dirs: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for d in sorted(dirs):
        for f in sorted(d.rglob("*.py")):
            if "__pycache__" in f.parts:
                continue
            h.update(str(f.relative_to(d.parent)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _uv() -> list[str] | None:
    """The uv executable (on PATH, or as a module of this interpreter), or None."""
    found = shutil.which("uv")
    if found:
        return [found]
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    return None


def install_commands(target: Path, requirements: Sequence[str],
                     extra_args: Sequence[str] = ()) -> list[list[str]]:
    """The installers to try, in order: this interpreter's pip, then ``uv pip``.

    pip and uv spell the target platform differently (pip: ``--platform
    manylinux2014_x86_64 --implementation cp``; uv: ``--python-platform
    x86_64-manylinux2014``), so each gets its own argument list; uv refuses pip's.
    """
    common = ["--target", str(target), "--python-version", LAMBDA_PYTHON]
    pip = [sys.executable, "-m", "pip", "install", "--quiet", *common,
           "--platform", "manylinux2014_x86_64", "--implementation", "cp",
           "--only-binary=:all:", *extra_args, *requirements]
    commands = [pip]
    uv = _uv()
    if uv is not None:
        commands.append([*uv, "pip", "install", "--quiet", *common,
                         "--python-platform", "x86_64-manylinux2014",
                         "--only-binary", ":all:", *extra_args, *requirements])
    return commands


def pip_install(target: Path, requirements: Sequence[str],
                extra_args: Sequence[str] = ()) -> None:
    """Install the Lambda runtime's (manylinux x86_64, CPython ``LAMBDA_PYTHON``) wheels of
    ``requirements`` into ``target`` with pip, or with uv where this interpreter has no
    pip (a uv-made venv). ``extra_args`` go to the installer (e.g. ``--find-links``)."""
    for cmd in install_commands(target, requirements, extra_args):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            continue
        if done.returncode == 0:
            return
        if "No module named pip" in done.stderr:
            continue
        tool = "uv pip install" if "uv" in Path(cmd[0]).name or cmd[1:3] == ["-m", "uv"] \
            else "pip install"
        raise SynthError(f"cannot bundle the Lambda dependencies with {tool} --target: "
                         f"{done.stderr.strip()[-400:]}; pass --lambda-deps none and give a "
                         "layer with --lambda-layer instead")
    raise SynthError("neither pip nor uv is available to bundle the Lambda dependencies; "
                     "install uv (https://docs.astral.sh/uv/) or pass --lambda-deps none and "
                     "give a layer with --lambda-layer")


def check_dependency_source(deps: str, layer_arns: Sequence[str]) -> None:
    """Refuse Lambdas that could not import their third-party dependencies: with
    ``deps="none"`` a layer must provide pydantic & co. (SynthError otherwise)."""
    if deps not in ("pip", "none"):
        raise SynthError(f"unknown --lambda-deps {deps!r}; use pip or none")
    if deps == "none" and not layer_arns:
        raise SynthError("--lambda-deps none leaves the Lambda functions without pydantic, "
                         "pyyaml, pluggy, click and slack-sdk (every handler would fail to "
                         "import); give the layer that provides them with --lambda-layer ARN, "
                         "or bundle them with --lambda-deps pip (the default)")


def build_lambda_code(packages: Sequence[str], *, cache_dir: Path, deps: str = "none") -> Path:
    """A directory holding ``packages`` (and, with ``deps="pip"``, their dependencies).

    The directory name is a digest of the sources, so an unchanged tree is reused and
    CDK's asset hash stays stable between synths.
    """
    dirs = [package_dir(p) for p in packages]
    digest = _tree_digest(dirs) + ("-deps" if deps == "pip" else "")
    out = cache_dir / f"lambda-{digest}"
    if out.exists():
        return out
    staging = cache_dir / f".staging-{digest}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for d, name in zip(dirs, packages, strict=True):
        shutil.copytree(d, staging / name, ignore=_IGNORE)
    if deps == "pip":
        dep_key = hashlib.sha256("\n".join(RUNTIME_REQUIREMENTS).encode()).hexdigest()[:12]
        deps_dir = cache_dir / f"deps-{dep_key}"
        if not deps_dir.exists():
            tmp = cache_dir / f".deps-{dep_key}"
            shutil.rmtree(tmp, ignore_errors=True)
            pip_install(tmp, RUNTIME_REQUIREMENTS, extra_args=["--no-deps"])
            tmp.rename(deps_dir)
        shutil.copytree(deps_dir, staging, dirs_exist_ok=True, ignore=_IGNORE)
    elif deps != "none":
        raise SynthError(f"unknown --lambda-deps {deps!r}; use pip or none")
    staging.rename(out)
    return out
