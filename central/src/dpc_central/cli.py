"""``dpc synth | deploy | destroy | setup-central-account | setup-user-account``.

Synth builds the CDK app in-process (no ``cdk`` CLI). Deploy and destroy use the
official CDK toolkit (``npx aws-cdk``), for the reasons in ``docs/aws.md``; before it is
started, credentials, the toolkit and the bootstrap are checked so a missing one is a
one-line error (exit 2), not a Node stack trace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from dpc_central.errors import DeployError

CDK_TOOLKIT = ["npx", "--yes", "aws-cdk@2"]


def _out(outdir: str | None, base: Path) -> Path:
    return Path(outdir) if outdir else base / "cdk.out"


def _synth(app: Any) -> Any:
    from dpc_central.errors import SynthError

    try:
        return app.synth()
    except RuntimeError as exc:  # jsii wraps CDK's errors (cdk-nag findings among them)
        raise SynthError(str(exc).splitlines()[0]) from None


def _identity() -> dict[str, str]:
    """The caller's account; DeployError when no credentials are configured."""
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
    except ImportError:
        raise DeployError("boto3 is needed to deploy: pip install 'dpc-core[aws]'") from None
    try:
        ident = boto3.client("sts").get_caller_identity()
    except NoCredentialsError:
        raise DeployError("no AWS credentials: configure a profile (aws configure / "
                          "AWS_PROFILE) or export AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY") from None
    except (BotoCoreError, ClientError) as exc:
        raise DeployError(f"AWS credentials are not usable: {exc}") from None
    return {"account": ident["Account"], "arn": ident["Arn"]}


def _check_bootstrap(region: str | None) -> None:
    import boto3
    from botocore.exceptions import ClientError

    try:
        boto3.client("ssm", region_name=region).get_parameter(
            Name="/cdk-bootstrap/hnb659fds/version")
    except ClientError:
        raise DeployError("this account/region is not bootstrapped for CDK: run "
                          "`npx aws-cdk bootstrap aws://ACCOUNT/REGION` once") from None


def _check_toolkit() -> None:
    if shutil.which("npx") is None:
        raise DeployError("the CDK toolkit needs Node.js and npx: install Node 20+ "
                          "(https://nodejs.org) and retry")


def _toolkit(args: Sequence[str], assembly: Path) -> None:
    cmd = [*CDK_TOOLKIT, *args, "--app", str(assembly), "--progress", "events"]
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        raise DeployError(f"`{' '.join(cmd[:4])} {args[0]}` failed (exit {done.returncode})")


def preflight(region: str | None) -> dict[str, str]:
    """Credentials, toolkit and bootstrap, in that order (each a clear DeployError)."""
    ident = _identity()
    _check_toolkit()
    _check_bootstrap(region)
    return ident


def _region(region: str | None) -> str | None:
    return region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def _load(project: str) -> list[Any]:
    from dpc_core.loader import load_pipelines

    return load_pipelines([Path(project)])


_common = [
    click.option("--project", "-p", default=".", show_default=True,
                 type=click.Path(exists=True, file_okay=False), help="project directory"),
    click.option("--out", "outdir", default=None, help="cloud assembly directory"),
    click.option("--region", default=None, help="AWS region (default: from the environment)"),
]


def _with(options: list[Any]) -> Any:
    def wrap(f: Any) -> Any:
        for opt in reversed(options):
            f = opt(f)
        return f
    return wrap


@click.command("synth")
@_with(_common)
def synth(project: str, outdir: str | None, region: str | None) -> None:
    """Synthesize the project's pipeline stacks into a cloud assembly (cdk.out)."""
    from dpc_central.app import pipeline_app

    out = _out(outdir, Path(project))
    asm = _synth(pipeline_app(_load(project), outdir=out, region=_region(region)))
    for stack in asm.stacks:
        click.echo(f"synthesized {stack.stack_name} -> {out}")


@click.command("deploy")
@_with(_common)
@click.option("--require-approval", default="never", show_default=True,
              type=click.Choice(["never", "any-change", "broadening"]))
def deploy(project: str, outdir: str | None, region: str | None, require_approval: str) -> None:
    """Deploy the project's pipeline stacks (CDK toolkit, progress shown)."""
    from dpc_central.app import pipeline_app

    reg = _region(region)
    preflight(reg)
    out = _out(outdir, Path(project))
    _synth(pipeline_app(_load(project), outdir=out, region=reg))
    _toolkit(["deploy", "--all", "--require-approval", require_approval], out)


@click.command("destroy")
@_with(_common)
@click.option("--force", is_flag=True, help="do not ask for confirmation")
def destroy(project: str, outdir: str | None, region: str | None, force: bool) -> None:
    """Destroy the project's pipeline stacks (unregisters the pipelines)."""
    from dpc_central.app import pipeline_app

    reg = _region(region)
    preflight(reg)
    out = _out(outdir, Path(project))
    _synth(pipeline_app(_load(project), outdir=out, region=reg, nag=False))
    _toolkit(["destroy", "--all", *(["--force"] if force else [])], out)


def _lambda_options(f: Any) -> Any:
    f = click.option("--lambda-deps", default="pip", show_default=True,
                     type=click.Choice(["pip", "none"]),
                     help="bundle pydantic & co. with pip install --target, or none "
                          "(then give --lambda-layer)")(f)
    f = click.option("--lambda-layer", "layers", multiple=True,
                     help="Lambda layer ARN with the handlers' third-party dependencies")(f)
    f = click.option("--synth-only", is_flag=True, help="write cdk.out, do not deploy")(f)
    return f


@click.command("setup-central-account")
@click.option("--org-id", default=None, help="AWS Organizations id (o-...) admitted to the bus")
@click.option("--member-account", "members", multiple=True,
              help="12-digit member account (repeat); gets targeted trigger delivery")
@click.option("--alarm-email", default=None, help="email subscribed to the alarms topic")
@click.option("--out", "outdir", default="cdk.out.central", show_default=True)
@click.option("--region", default=None)
@_lambda_options
def setup_central_account(org_id: str | None, members: tuple[str, ...], alarm_email: str | None,
                          outdir: str, region: str | None, lambda_deps: str,
                          layers: tuple[str, ...], synth_only: bool) -> None:
    """Synthesize and deploy the central account's stack."""
    from dpc_central.app import central_app

    if not org_id and not members:
        raise click.UsageError("give --org-id o-... or at least one --member-account")
    bad = [m for m in members if not (m.isdigit() and len(m) == 12)]
    if bad:
        raise click.UsageError(f"--member-account must be 12 digits: {', '.join(bad)}")
    reg = _region(region)
    if not synth_only:
        preflight(reg)
    out = Path(outdir)
    _synth(central_app(outdir=out, org_id=org_id, member_accounts=list(members), region=reg,
                       lambda_deps=lambda_deps, layer_arns=layers, alarm_email=alarm_email))
    click.echo(f"synthesized dpc-central -> {out}")
    if not synth_only:
        _toolkit(["deploy", "--all", "--require-approval", "never"], out)


@click.command("setup-user-account")
@click.option("--central-account", required=True, help="12-digit id of the central account")
@click.option("--registration-url", default=None,
              help="URL of the central registration API (output of the central stack)")
@click.option("--vpc-id", default=None, help="VPC of the EMR clusters")
@click.option("--subnet-id", default=None, help="private subnet of the EMR clusters")
@click.option("--out", "outdir", default="cdk.out.account", show_default=True)
@click.option("--region", default=None)
@_lambda_options
def setup_user_account(central_account: str, registration_url: str | None, vpc_id: str | None,
                       subnet_id: str | None, outdir: str, region: str | None,
                       lambda_deps: str, layers: tuple[str, ...], synth_only: bool) -> None:
    """Synthesize and deploy a team account's stack."""
    from dpc_central.app import user_app

    if not (central_account.isdigit() and len(central_account) == 12):
        raise click.UsageError("--central-account must be 12 digits")
    reg = _region(region)
    if not synth_only:
        preflight(reg)
    out = Path(outdir)
    _synth(user_app(outdir=out, central_account=central_account, region=reg, vpc_id=vpc_id,
                    subnet_id=subnet_id, registration_url=registration_url,
                    lambda_deps=lambda_deps, layer_arns=layers))
    click.echo(f"synthesized dpc-user-account -> {out}")
    if not synth_only:
        _toolkit(["deploy", "--all", "--require-approval", "never"], out)
