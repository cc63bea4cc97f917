"""``dpc synth|deploy|destroy --app COMMAND``: a CDK app written in code (pipelines in code).

dpc runs the command the way the CDK toolkit runs ``cdk --app`` (a shell command, run
from the current directory, with ``CDK_OUTDIR`` naming where the app writes its cloud
assembly, and ``CDK_DEFAULT_REGION``/``CDK_DEFAULT_ACCOUNT`` when known), then reads
the assembly's manifest. Deploy and destroy then hand that assembly to the pinned
toolkit, like a project's. Running the command, rather than importing the file, keeps
the toolkit's semantics (any command; ``cdk.json``'s ``app`` works unchanged) and keeps
the user's module state out of the dpc process; synth needs no Node CLI.

The directory of the running interpreter goes first on the command's ``PATH``, so
``python app.py`` is the Python dpc runs in, which has dpc and aws_cdk installed. A
directory given as ``--app`` is taken as an already synthesized cloud assembly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dpc_central.errors import SynthError


def assembly_stacks(out: Path) -> list[str]:
    """Stack names of the cloud assembly in ``out`` (its ``manifest.json``)."""
    manifest = out / "manifest.json"
    if not manifest.is_file():
        raise SynthError(f"no cloud assembly in {out} (no manifest.json): the app must call "
                         "app.synth() on a PipelineApp (or a cdk.App) that writes to "
                         "$CDK_OUTDIR")
    artifacts = json.loads(manifest.read_text()).get("artifacts", {})
    return [a.get("displayName", key) for key, a in artifacts.items()
            if a.get("type") == "aws:cloudformation:stack"]


def run_app(command: str, out: Path, *, region: str | None = None,
            account: str | None = None) -> list[str]:
    """Run the CDK app ``command`` into ``out``; the names of the stacks it wrote.

    SynthError when the command fails (its own output, cdk-nag's findings or a
    validation error, went to the terminal) or writes no assembly.
    """
    if Path(command).is_dir():
        return assembly_stacks(Path(command))
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.json"
    if manifest.exists():
        # A stale manifest must not pass for this run's output.
        manifest.unlink()
    from dpc_central.common.cdk_env import prepare_jsii

    prepare_jsii()  # the app's jsii inherits it: no Node version banner in dpc's output
    env = dict(os.environ)
    env["CDK_OUTDIR"] = str(out.resolve())
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if region:
        env["CDK_DEFAULT_REGION"] = region
    if account:
        env["CDK_DEFAULT_ACCOUNT"] = account
    # A shell command, as the CDK toolkit runs `--app` (quoting, `cd x && ...` work alike).
    done = subprocess.run(command, shell=True, env=env, check=False)
    if done.returncode != 0:
        raise SynthError(f"the app `{command}` failed (exit {done.returncode}); its output "
                         "is above")
    return assembly_stacks(out)
