"""Every hook a dpc plugin can implement, in one place.

A plugin is a module registered under the entry-point group ``dpc``::

    [project.entry-points.dpc]
    my_plugin = "my_package.plugin"

The module declares ``DPC_PLUGIN_API = 1`` and implements hooks with
``dpc_core.hookimpl``. Registration hooks are called once, when the plugin
manager loads (any ``dpc`` command that reads pipelines); stack hooks are
called while ``dpc synth``/``deploy`` builds the CDK app.

A plugin that declares another ``DPC_PLUGIN_API``, implements a hook not defined here or
whose registration hook raises is skipped (``dpc plugins list`` says why); the names it
would provide fail only the pipelines that use them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pluggy

from dpc_core import PROJECT_NAME
from dpc_core.types import (
    AccountOption,
    AccountResource,
    ComputeType,
    NotifierType,
    StepType,
    TriggerSource,
)

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


class DpcSpec:
    """The hook specifications of dpc."""

    # -- registration: called once when the plugin manager loads ---------------

    @hookspec
    def dpc_step_types(self) -> Iterable[StepType]:  # type: ignore[empty-body]
        """Return the step types this plugin provides.

        Called when the plugin manager loads. Each ``StepType`` carries its config
        model (validated against the step's fields in pipeline.yaml), its local
        executor and its Step Functions states builder.

        Example::

            class ShellStep(StepConfig):
                command: str

            @hookimpl
            def dpc_step_types():
                yield StepType(name="shell", config=ShellStep,
                               local=lambda step, ctx: LocalCommand(["bash", "-c", step.command]))
        """

    @hookspec
    def dpc_compute_types(self) -> Iterable[ComputeType]:  # type: ignore[empty-body]
        """Return the compute backends this plugin provides (``compute.type``).

        Called when the plugin manager loads.

        Example::

            @hookimpl
            def dpc_compute_types():
                yield ComputeType(name="emr", config=EmrCompute, aws=build_emr_states)
        """

    @hookspec
    def dpc_notifiers(self) -> Iterable[NotifierType]:  # type: ignore[empty-body]
        """Return the notification channels this plugin provides (``targets[].channel``).

        Called when the plugin manager loads. ``factory`` is called lazily, the first
        time a runtime must deliver to the channel; it raises
        ``dpc_core.notify.ChannelNotConfigured`` when variables are missing (the local
        runtime then prints the channel's notifications). Declare the variables the
        channel needs (``required_env``) and those holding secrets (``secret_env``: never
        passed to a step, redacted from every log and message).

        Example::

            @hookimpl
            def dpc_notifiers():
                yield NotifierType(channel="TEAMS", factory=lambda env: TeamsBackend(env),
                                   required_env=("TEAMS_WEBHOOK_URL",),
                                   secret_env=("TEAMS_WEBHOOK_URL",))
        """

    @hookspec
    def dpc_trigger_sources(self) -> Iterable[TriggerSource]:  # type: ignore[empty-body]
        """Return event sources, besides Step Functions status changes, that feed the engine.

        Called when the plugin manager loads.

        Example::

            @hookimpl
            def dpc_trigger_sources():
                yield TriggerSource(name="glue", source="aws.glue",
                                    detail_type="Glue Job State Change",
                                    to_status_event=glue_to_status_event)
        """

    # -- AWS stacks: called while the CDK app is built ----------------------------

    @hookspec
    def dpc_pipeline_stack(self, stack: Any, pipeline: Any) -> None:
        """Add resources to a pipeline's CDK stack.

        Called by ``dpc synth``/``deploy`` after the state machine, rules and topic
        of ``pipeline`` (a validated ``Pipeline``) were added to ``stack``. Import
        ``aws_cdk`` inside the implementation, never at module level.

        Example::

            @hookimpl
            def dpc_pipeline_stack(stack, pipeline):
                from aws_cdk import aws_s3 as s3
                s3.Bucket(stack, "Scratch")
        """

    @hookspec
    def dpc_lambda_handlers(self) -> Iterable[tuple[str, str]]:  # type: ignore[empty-body]
        """Return ``(name, "module:function")`` Lambda handlers the central stack must deploy.

        Called by ``dpc setup-central-account``. The module must be importable from
        the plugin's own distribution (it is bundled with it).

        Example::

            @hookimpl
            def dpc_lambda_handlers():
                yield ("teams-poster", "dpc_notify_teams.handler:handle")
        """

    @hookspec
    def dpc_central_constructs(self, scope: Any, central: Any) -> None:
        """Add a plugin's own resources to the central account's CDK stack.

        Called by ``dpc setup-central-account`` once the central stack's own resources
        exist, for every installed plugin: a notification channel deploys its service
        here (the Slack poster, its thread table and token secret come from
        dpc-notify-slack this way), exactly as a third-party channel would. ``scope`` is
        a construct to add to (name your constructs distinctly); ``central`` is a
        ``dpc_central.plugin_api.CentralContext``: ``stack``, ``bus``, ``alarm_topic``,
        ``member_accounts``, ``org_id``, ``tables`` (the engine's tables), and factories
        ``function(scope, id, handler=..., ...)`` (a dpc Lambda: DLQ, alarms, X-Ray,
        the Lambda asset with every installed plugin) and ``table(scope, id, key=...)``.
        Import ``aws_cdk`` inside the implementation, never at module level.

        Example::

            @hookimpl
            def dpc_central_constructs(scope, central):
                fn = central.function(scope, "TeamsPoster",
                                      handler="dpc_notify_teams.poster.handle")
                central.tables.registry.grant_read_data(fn.function)
        """

    # -- a team account (``dpc setup-user-account``) ------------------------------

    @hookspec
    def dpc_team_account_options(self) -> Iterable[AccountOption]:  # type: ignore[empty-body]
        """Return the options this plugin adds to ``dpc setup-user-account``.

        Called when ``setup-user-account`` parses its command line (``--help`` lists
        them). A value given reaches ``dpc_team_account_constructs`` as
        ``team.option(name)``; one not given becomes a CloudFormation parameter of the
        team stack (``--synth-only``). Deploying needs every ``required_to_deploy`` one.
        Two plugins may not declare the same option.

        Example::

            @hookimpl
            def dpc_team_account_options():
                yield AccountOption(name="vpc-id", help="VPC of the EMR clusters",
                                    cfn_type="AWS::EC2::VPC::Id")
        """

    @hookspec
    def dpc_team_account_preflight(self, options: Mapping[str, str | None],
                                   region: str | None) -> None:
        """Check, before ``dpc setup-user-account`` deploys, what the stack cannot.

        Called with the values of every account option (by name) and the target region,
        after credentials were checked; raise a ``dpc_core.errors.DpcError`` saying what
        to fix (one line, exit code 2). Not called with ``--synth-only``.

        Example::

            @hookimpl
            def dpc_team_account_preflight(options, region):
                check_subnet_is_tagged(options["subnet-id"], region=region)
        """

    @hookspec
    def dpc_team_account_constructs(self, scope: Any, team: Any) -> None:
        """Add a plugin's own resources to a team account's CDK stack.

        Called by ``dpc setup-user-account`` once the team stack's own resources exist
        (pipeline bus, status forwarding, artifacts bucket, registration provider): a
        compute backend deploys here what its runs share in the account (roles,
        security groups, a cluster reaper, an application), exactly as a third-party
        backend would. ``scope`` is the stack itself (logical ids follow your construct
        ids: keep them stable); ``team`` is a ``dpc_central.plugin_api.TeamContext``:
        ``stack``, ``artifacts`` (the account's bucket), ``alarm_topic``, ``code_dir``
        and ``layers`` (the Lambda asset with every installed plugin, for handlers of
        your own package), ``option(name)`` (an account option's value, or its
        CloudFormation parameter) and ``publish(name, value)`` (an SSM parameter that
        pipeline stacks read at deploy). Import ``aws_cdk`` inside the implementation.

        Example::

            @hookimpl
            def dpc_team_account_constructs(scope, team):
                from aws_cdk import aws_iam as iam
                role = iam.Role(scope, "FargateExecutionRole", ...)
                team.publish("/dpc/fargate/execution-role", role.role_arn)
        """

    @hookspec
    def dpc_team_account_resources(  # type: ignore[empty-body]
            self, region: str, account: str) -> Iterable[AccountResource]:
        """Return the resources this plugin keeps in team account ``account``, ``region``,
        by the keys its entries of ``aws-calls.yaml`` use.

        Called by ``dpc doctor --aws``, which simulates every listed runtime call against
        the resource's ARN (and, ``--as-deployed``, as the deployed role of a ``caller``).

        Example::

            @hookimpl
            def dpc_team_account_resources(region, account):
                yield AccountResource(
                    key="fargate-cluster",
                    arn=f"arn:aws:ecs:{region}:{account}:cluster/dpc")
        """
