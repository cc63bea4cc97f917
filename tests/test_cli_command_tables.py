"""``dpc``'s command table: core lists only its own commands; an installed package adds
its commands through the ``dpc.commands`` entry point (dpc-central's ``synth``,
``deploy``, ``setup-*``, ``doctor`` come that way), loaded lazily."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from dpc_core.cli import main as cli_main


def test_core_lists_only_core_commands() -> None:
    targets = [target for target, _ in cli_main.COMMANDS.values()]
    assert all(t.startswith("dpc_core.") for t in targets), targets


def test_central_commands_come_from_its_entry_point() -> None:
    tables = cli_main._entry_points(cli_main.COMMANDS_GROUP)
    assert "dpc_central.commands:COMMANDS" in tables
    commands = cli_main.all_commands()
    for name in ("synth", "deploy", "destroy", "setup-central-account",
                 "setup-user-account", "doctor"):
        assert commands[name][0].startswith("dpc_central."), name
        assert name not in cli_main.COMMANDS


def _fake_distribution(root: Path) -> None:
    """An installed distribution ``dpc-hello`` (a dist-info with entry_points.txt, as
    pip or uv writes it) declaring the command ``hello``."""
    pkg = root / "dpc_hello"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "commands.py").write_text(
        'COMMANDS = {"hello": ("dpc_hello.cli:hello", "Say hello."),\n'
        '            "validate": ("dpc_hello.cli:hello", "Not core\'s validate.")}\n')
    (pkg / "cli.py").write_text(textwrap.dedent("""
        import click

        @click.command("hello")
        def hello():
            click.echo("hello from a plugin command")
    """))
    info = root / "dpc_hello-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dpc-hello\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[console_scripts]\nx = y:z\n\n[dpc.commands]\nhello = dpc_hello.commands:COMMANDS\n")


def test_an_installed_package_adds_a_command_without_overriding_core(tmp_path: Path) -> None:
    _fake_distribution(tmp_path)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from dpc_core.cli.main import main; main(sys.argv[2:])")
    listed = subprocess.run([sys.executable, "-c", code, str(tmp_path), "--help"],
                            capture_output=True, text=True, timeout=120)
    assert "Say hello." in listed.stdout
    assert "Not core's validate." not in listed.stdout
    ran = subprocess.run([sys.executable, "-c", code, str(tmp_path), "hello"],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "hello from a plugin command\n"


def test_dpc_help_imports_no_command_module(tmp_path: Path) -> None:
    """The tables are read, the commands' modules are not (they import CDK, boto3...)."""
    code = ("import sys; from dpc_core.cli.main import main; main(['--help']); "
            "print(sorted(m for m in sys.modules if m.startswith(('dpc_central.',"
            " 'aws_cdk', 'boto3'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "['dpc_central.commands']"
