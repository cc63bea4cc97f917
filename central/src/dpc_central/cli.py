"""``dpc synth | deploy | destroy | setup-central-account | setup-user-account``.

Synth builds the CDK app in-process (no ``cdk`` CLI). Deploy and destroy use the
official CDK toolkit (``npx aws-cdk``), for the reasons in ``docs/aws.md``; before it is
started, credentials, the toolkit and the bootstrap are checked so a missing one is a
one-line error (exit 2), not a Node stack trace.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from dpc_central.errors import DeployError
from dpc_core.progress import progress

#: The CDK CLI that deploys, pinned: since 2025 the CLI (2.1xxx) is released apart from
#: aws-cdk-lib, and a CLI older than the library cannot read the cloud assembly it writes
#: ("Cloud assembly schema version mismatch"). 2.1148.1 reads schema 55, which
#: aws-cdk-lib 2.275 writes; bump both together (tests/test_cdk_pipeline.py checks).
CDK_CLI_VERSION = "2.1148.1"
#: The highest cloud assembly schema major version ``CDK_CLI_VERSION`` reads.
CDK_CLI_MAX_SCHEMA_MAJOR = 55
CDK_TOOLKIT = ["npx", "--yes", f"aws-cdk@{CDK_CLI_VERSION}"]

#: IAM or security-group changes that widen access wait for a yes at the terminal unless
#: ``--yes`` is given (the CDK toolkit's ``--require-approval broadening``).
DEFAULT_APPROVAL = "broadening"


def _approval(require_approval: str | None, yes: bool) -> str:
    """``--require-approval`` for the toolkit: given, ``never`` with ``--yes``, or broadening."""
    if require_approval:
        return require_approval
    return "never" if yes else DEFAULT_APPROVAL


def _out(outdir: str | None, base: Path) -> Path:
    return Path(outdir) if outdir else base / "cdk.out"


def _synth(app: Any) -> Any:
    from dpc_central.errors import SynthError

    try:
        return app.synth()
    except RuntimeError as exc:  # jsii wraps CDK's errors (cdk-nag findings among them)
        raise SynthError(str(exc).splitlines()[0]) from None


def check_quotas(outs: Sequence[Path], *, account: str | None = None,
                 region: str | None = None) -> None:
    """Refuse (QuotaError, exit 2) the synthesized stacks in ``outs`` (one account's) when
    one breaks an AWS quota or name rule CloudFormation or the service would refuse."""
    from dpc_central.quotas import check_assembly, refuse_violations, schemas_available

    with progress("checking the stacks against AWS quotas"):
        report = check_assembly(outs, account=account or "123456789012", region=region)
    refuse_violations(report)
    if not schemas_available():
        click.echo("note: names and ARNs were not checked against the CloudFormation "
                   "resource schemas (they ship with cfn-lint: pip install cfn-lint)", err=True)


def _identity() -> dict[str, str]:
    """The caller's account; DeployError when no credentials are configured."""
    try:
        import boto3
    except ImportError:
        raise DeployError("boto3 is needed to deploy: pip install 'dpc-core[aws]'") from None
    from dpc_central.doctor import caller_identity

    return caller_identity(lambda service, _region: boto3.client(service))


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
    # Plain lines, no spinner: the toolkit prints its own events to the same terminal.
    with progress(f"cdk {args[0]}", spinner=False):
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
    # The same order as `dpc run --aws`: flag, AWS_REGION, then boto3 (which adds the
    # profile's region to AWS_DEFAULT_REGION). None leaves the stacks region-agnostic.
    from dpc_core.aws_session import resolve_region

    return resolve_region(region)


def _load(project: str) -> list[Any]:
    from dpc_core.loader import load_pipelines

    return load_pipelines([Path(project)])


_common = [
    click.option("--project", "-p", default=".", show_default=True,
                 type=click.Path(exists=True, file_okay=False), help="project directory"),
    click.option("--out", "outdir", default=None, help="cloud assembly directory"),
    click.option("--region", default=None, help="AWS region (default: from the environment)"),
    click.option("--app", "app_command", default=None,
                 help='a pipelines-in-code CDK app, run as `cdk --app` runs it, e.g. '
                      '"python app.py" (instead of the project\'s pipeline.yaml files)'),
]


def _synth_stacks(project: str, app_command: str | None, out: Path, region: str | None,
                  nag: bool = True, check: bool = True) -> list[str]:
    """Synthesize the project's pipelines, or run ``--app``; the stack names written.
    With ``check``, refuse stacks that break an AWS quota (:func:`check_quotas`)."""
    if app_command:
        from dpc_central.app_command import run_app

        with progress(f"synthesizing `{app_command}`"):
            names = run_app(app_command, out, region=region)
        if check:
            check_quotas([Path(app_command) if Path(app_command).is_dir() else out],
                         region=region)
        return names
    from dpc_central.app import pipeline_app
    from dpc_core.deployability import aws_notes
    from dpc_core.plugins import get_registry

    pipelines = _load(project)
    with progress(f"synthesizing the pipeline stacks of {project}"):
        asm = _synth(pipeline_app(pipelines, outdir=out, region=region, nag=nag))
    if check:
        check_quotas([out], region=region)
    registry = get_registry()
    for p in pipelines:
        for note in aws_notes(p, registry):
            click.echo(f"note: {p.source}: {note}", err=True)
    return [stack.stack_name for stack in asm.stacks]


_F = TypeVar("_F", bound=Callable[..., Any])


def _with(options: list[Any]) -> Callable[[_F], _F]:
    def wrap(f: _F) -> _F:
        for opt in reversed(options):
            f = opt(f)
        return f
    return wrap


@click.command("synth")
@_with(_common)
def synth(project: str, outdir: str | None, region: str | None,
          app_command: str | None) -> None:
    """Synthesize the project's pipeline stacks (or the --app's) into a cloud assembly."""
    out = _out(outdir, Path(project))
    for name in _synth_stacks(project, app_command, out, _region(region)):
        click.echo(f"synthesized {name} -> {out}")


@click.command("deploy")
@_with(_common)
@click.option("--require-approval", default=None,
              type=click.Choice(["never", "any-change", "broadening"]),
              help="when to ask before deploying [default: broadening; never with --yes]")
@click.option("--yes", "-y", is_flag=True, help="deploy without asking (CI)")
def deploy(project: str, outdir: str | None, region: str | None, app_command: str | None,
           require_approval: str | None, yes: bool) -> None:
    """Deploy the project's pipeline stacks, or the --app's (CDK toolkit, progress shown)."""
    reg = _region(region)
    preflight(reg)
    out = _out(outdir, Path(project))
    _synth_stacks(project, app_command, out, reg)
    _toolkit(["deploy", "--all", "--require-approval", _approval(require_approval, yes)], out)


@click.command("destroy")
@_with(_common)
@click.option("--force", is_flag=True, help="do not ask for confirmation")
def destroy(project: str, outdir: str | None, region: str | None, app_command: str | None,
            force: bool) -> None:
    """Destroy the project's pipeline stacks, or the --app's (unregisters the pipelines)."""
    reg = _region(region)
    preflight(reg)
    out = _out(outdir, Path(project))
    _synth_stacks(project, app_command, out, reg, nag=False, check=False)
    _toolkit(["destroy", "--all", *(["--force"] if force else [])], out)


def _lambda_options(f: Any) -> Any:
    f = click.option("--lambda-deps", default="pip", show_default=True,
                     type=click.Choice(["pip", "none"]),
                     help="bundle pydantic & co. with pip install --target, or none "
                          "(then give --lambda-layer)")(f)
    f = click.option("--lambda-layer", "layers", multiple=True,
                     help="Lambda layer ARN with the handlers' third-party dependencies")(f)
    f = click.option("--synth-only", is_flag=True, help="write cdk.out, do not deploy")(f)
    f = click.option("--yes", "-y", is_flag=True,
                     help="deploy without asking about IAM/security-group changes")(f)
    return f


@click.command("setup-central-account")
@click.option("--org-id", default=None, help="AWS Organizations id (o-...) admitted to the bus")
@click.option("--member-account", "members", multiple=True,
              help="12-digit member account (repeat) admitted besides --org-id; every "
                   "account that ran setup-user-account receives triggers either way")
@click.option("--alarm-email", default=None, help="email subscribed to the alarms topic")
@click.option("--out", "outdir", default="cdk.out.central", show_default=True)
@click.option("--region", default=None)
@_lambda_options
def setup_central_account(org_id: str | None, members: tuple[str, ...], alarm_email: str | None,
                          outdir: str, region: str | None, lambda_deps: str,
                          layers: tuple[str, ...], synth_only: bool, yes: bool) -> None:
    """Synthesize and deploy the central account's stack."""
    from dpc_central.app import central_app
    from dpc_central.common.lambda_asset import check_dependency_source

    if not org_id and not members:
        raise click.UsageError("give --org-id o-... or at least one --member-account")
    bad = [m for m in members if not (m.isdigit() and len(m) == 12)]
    if bad:
        raise click.UsageError(f"--member-account must be 12 digits: {', '.join(bad)}")
    check_dependency_source(lambda_deps, layers)
    reg = _region(region)
    if not synth_only:
        preflight(reg)
    out = Path(outdir)
    with progress("synthesizing dpc-central"):
        _synth(central_app(outdir=out, org_id=org_id, member_accounts=list(members),
                           region=reg, lambda_deps=lambda_deps, layer_arns=layers,
                           alarm_email=alarm_email))
    check_quotas([out], region=reg)
    click.echo(f"synthesized dpc-central -> {out}")
    if not synth_only:
        _toolkit(["deploy", "--all", "--require-approval", _approval(None, yes)], out)


def _dest(option: str) -> str:
    """The keyword a plugin's account option reaches the command with."""
    return "plugin_" + option.replace("-", "_")


class _TeamAccountCommand(click.Command):
    """``setup-user-account`` with the options the installed plugins declare
    (``dpc_team_account_options``: dpc-compute-emr's ``--vpc-id``/``--subnet-id``), read
    when the command parses or prints its help, not when ``dpc`` starts."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        taken = {o for p in params for o in p.opts}
        from dpc_central.user_account.options import account_options
        from dpc_core.plugins import get_registry

        for option in account_options(get_registry()).values():
            if option.flag in taken:
                raise click.UsageError(f"a plugin declares {option.flag}, which "
                                       "setup-user-account already has")
            params.append(click.Option([option.flag, _dest(option.name)],
                                       default=None, help=option.help))
        return params


@click.command("setup-user-account", cls=_TeamAccountCommand)
@click.option("--central-account", required=True, help="12-digit id of the central account")
@click.option("--registration-url", default=None,
              help="URL of the central registration API (output of the central stack)")
@click.option("--alarm-email", default=None, help="email subscribed to the account's alarms")
@click.option("--out", "outdir", default="cdk.out.account", show_default=True)
@click.option("--region", default=None)
@_lambda_options
def setup_user_account(central_account: str, registration_url: str | None,
                       alarm_email: str | None, outdir: str, region: str | None,
                       lambda_deps: str, layers: tuple[str, ...], synth_only: bool,
                       yes: bool, **plugin_options: str | None) -> None:
    """Synthesize and deploy a team account's stack.

    Deploying needs the registration URL and the options of the installed plugins
    (dpc-compute-emr: the VPC and the subnet of its clusters); they are CloudFormation
    parameters only in ``--synth-only`` output. Before deploying, each plugin checks
    what the stack cannot (dpc-compute-emr: the subnet's tag).
    """
    from dpc_central.app import user_app
    from dpc_central.common.lambda_asset import check_dependency_source
    from dpc_central.user_account.options import account_options
    from dpc_core.plugins import get_registry

    if not (central_account.isdigit() and len(central_account) == 12):
        raise click.UsageError("--central-account must be 12 digits")
    check_dependency_source(lambda_deps, layers)
    reg = _region(region)
    registry = get_registry()
    declared = account_options(registry)
    options = {name: plugin_options.get(_dest(name)) for name in declared}
    if not synth_only:
        missing = [flag for flag, value in (
            *((o.flag, options[o.name]) for o in declared.values() if o.required_to_deploy),
            ("--registration-url", registration_url)) if not value]
        if missing:
            raise click.UsageError(f"deploying needs {', '.join(missing)} (CloudFormation "
                                   "would refuse the stack without them); use --synth-only "
                                   "to write a template that takes them as parameters")
        preflight(reg)
        registry.hook.dpc_team_account_preflight(options=options, region=reg)
    out = Path(outdir)
    with progress("synthesizing dpc-user-account"):
        _synth(user_app(outdir=out, central_account=central_account, region=reg,
                        registration_url=registration_url, options=options,
                        registry=registry, lambda_deps=lambda_deps, layer_arns=layers,
                        alarm_email=alarm_email))
    check_quotas([out], region=reg)
    click.echo(f"synthesized dpc-user-account -> {out}")
    if not synth_only:
        _toolkit(["deploy", "--all", "--require-approval", _approval(None, yes)], out)
