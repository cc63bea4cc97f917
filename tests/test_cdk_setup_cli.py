"""``dpc setup-*`` and the Lambda asset: what they refuse before anything reaches AWS, and
that the bundling works in a uv-made venv (no pip). No AWS account and no network: the
installer reads a wheel built here."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest


def tiny_wheel(directory: Path) -> Path:
    """A pure-Python wheel ``dpc-tiny 0.1`` (py3-none-any), with a valid RECORD."""
    files = {
        "dpc_tiny/__init__.py": "X = 1\n",
        "dpc_tiny-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: dpc-tiny\nVersion: 0.1\n",
        "dpc_tiny-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
                                        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append("dpc_tiny-0.1.dist-info/RECORD,,")
    files["dpc_tiny-0.1.dist-info/RECORD"] = "\n".join(record) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / "dpc_tiny-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return wheel


def test_uv_fallback_installs_lambda_wheels_with_uvs_own_platform_flags(tmp_path: Path) -> None:
    """The workspace venv has no pip; uv refuses pip's ``--platform``/``--implementation``."""
    import shutil

    from dpc_central.common.lambda_asset import install_commands, pip_install

    if shutil.which("uv") is None:
        pytest.skip("uv is not on PATH")
    uv_cmd = next(c for c in install_commands(tmp_path / "t", ["x"]) if "pip" in c[1:3]
                  and "-m" not in c[1:2])
    assert "--python-platform" in uv_cmd and "--platform" not in uv_cmd
    wheels = tiny_wheel(tmp_path / "wheels").parent
    target = tmp_path / "target"
    pip_install(target, ["dpc-tiny"], extra_args=["--no-index", "--find-links", str(wheels)])
    assert (target / "dpc_tiny" / "__init__.py").read_text() == "X = 1\n"


def dpc(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``dpc ARGS`` as the console script does: exit code and everything printed."""
    from dpc_core.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(args)
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out + out.err


def test_lambda_deps_none_without_a_layer_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = dpc(["setup-central-account", "--member-account", "111111111111",
                        "--synth-only", "--lambda-deps", "none",
                        "--out", str(tmp_path / "out")], capsys)
    assert code == 2, output
    assert "--lambda-deps none" in output and "--lambda-layer" in output
    assert not (tmp_path / "out").exists()


def test_deploying_a_team_account_needs_vpc_subnet_and_registration_url(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = dpc(["setup-user-account", "--central-account", "999999999999",
                        "--vpc-id", "vpc-1",
                        "--lambda-layer", "arn:aws:lambda:eu-west-1:111111111111:layer:deps:1",
                        "--out", str(tmp_path / "out")], capsys)
    assert code == 2, output
    assert "--subnet-id, --registration-url" in output


def test_deploys_ask_before_broadening_access_unless_told_yes() -> None:
    from dpc_central.cli import _approval

    assert _approval(None, yes=False) == "broadening"
    assert _approval(None, yes=True) == "never"
    assert _approval("any-change", yes=True) == "any-change"


def test_the_cdk_toolkit_is_pinned_to_one_cli_version() -> None:
    from dpc_central.cli import CDK_CLI_VERSION, CDK_TOOLKIT

    assert CDK_TOOLKIT[-1] == f"aws-cdk@{CDK_CLI_VERSION}"
    assert all(part.isdigit() for part in CDK_CLI_VERSION.split("."))
