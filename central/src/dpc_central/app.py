"""Building the CDK apps: central account, user account, and a project's pipelines.

Every function imports aws_cdk inside, so importing this module costs nothing until a
command builds an app.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dpc_central.common.cdk_env import prepare_jsii

CENTRAL_STACK = "dpc-central"
USER_STACK = "dpc-user-account"


def _env(account: str | None, region: str | None) -> Any:
    import aws_cdk as cdk

    if account is None and region is None:
        return None
    return cdk.Environment(account=account, region=region)


def plugin_packages() -> list[str]:
    """Top-level packages of the installed dpc plugins (bundled with the handlers)."""
    from dpc_core.plugins import installed_entry_points

    return sorted({ep.value.split(":")[0].split(".")[0] for ep in installed_entry_points()})


def lambda_code_dir(outdir: Path, deps: str = "none") -> Path:
    """The Lambda asset directory for this installation, built under ``outdir``."""
    from dpc_central.common.lambda_asset import build_lambda_code

    packages = ["dpc_core", "dpc_central", *[p for p in plugin_packages()
                                             if p not in ("dpc_core", "dpc_central")]]
    return build_lambda_code(packages, cache_dir=outdir.parent / ".dpc-build", deps=deps)


def new_app(outdir: Path, *, nag: bool = True) -> Any:
    """A CDK app writing to ``outdir``, with the cdk-nag AwsSolutions pack attached."""
    prepare_jsii()
    import aws_cdk as cdk

    from dpc_central.common.nag import apply_stack_checks

    app = cdk.App(outdir=str(outdir))
    apply_stack_checks(app, enabled=nag)
    return app


def central_app(*, outdir: Path, org_id: str | None, member_accounts: Sequence[str],
                account: str | None = None, region: str | None = None,
                lambda_deps: str = "none", layer_arns: Sequence[str] = (),
                alarm_email: str | None = None, nag: bool = True, registry: Any = None) -> Any:
    """The app of ``dpc setup-central-account`` (with the Lambda handlers and constructs
    the installed plugins contribute through ``dpc_lambda_handlers`` and
    ``dpc_central_constructs``)."""
    app = new_app(outdir, nag=nag)
    from dpc_central.central_account.plugin_functions import plugin_handlers
    from dpc_central.central_account.stack import CentralStack
    from dpc_core.plugins import get_registry

    reg = registry or get_registry()
    CentralStack(app, CENTRAL_STACK, org_id=org_id, member_accounts=member_accounts,
                 code_dir=lambda_code_dir(outdir, lambda_deps), layer_arns=layer_arns,
                 alarm_email=alarm_email, env=_env(account, region),
                 plugin_handlers=plugin_handlers(reg), registry=reg)
    return app


def user_app(*, outdir: Path, central_account: str, account: str | None = None,
             region: str | None = None, registration_url: str | None = None,
             lambda_deps: str = "none", alarm_email: str | None = None,
             layer_arns: Sequence[str] = (), nag: bool = True,
             options: Mapping[str, str | None] | None = None, registry: Any = None) -> Any:
    """The app of ``dpc setup-user-account`` (with the resources the installed plugins
    contribute through ``dpc_team_account_constructs``; ``options``: the values of their
    account options, e.g. ``{"vpc-id": ..., "subnet-id": ...}`` for dpc-compute-emr)."""
    app = new_app(outdir, nag=nag)
    from dpc_central.user_account.stack import UserAccountStack

    UserAccountStack(app, USER_STACK, central_account=central_account,
                     code_dir=lambda_code_dir(outdir, lambda_deps), layer_arns=layer_arns,
                     registration_url=registration_url, alarm_email=alarm_email,
                     env=_env(account, region), options=options, registry=registry)
    return app


def pipeline_stack_name(pipeline: Any) -> str:
    """CloudFormation stack name of a pipeline: ``dpc-pipeline-<name>``."""
    return f"dpc-pipeline-{pipeline.name}"


def pipeline_app(pipelines: Sequence[Any], *, outdir: Path, registry: Any = None,
                 account: str | None = None, region: str | None = None,
                 nag: bool = True) -> Any:
    """The app of ``dpc synth``/``deploy``: one stack per pipeline."""
    app = new_app(outdir, nag=nag)
    from dpc_central.pipeline.stack import PipelineStack
    from dpc_core.plugins import get_registry

    reg = registry or get_registry()
    for p in pipelines:
        PipelineStack(app, pipeline_stack_name(p), pipeline=p, registry=reg,
                      env=_env(account or p.account, region))
    return app
