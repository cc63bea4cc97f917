"""The commands dpc-central adds to ``dpc``, declared to core as a plugin declares its own.

``pyproject.toml`` names this table under the entry-point group ``dpc.commands``; core
reads it for ``dpc --help`` and imports a command's module only when it runs. Keep this
module free of imports: ``dpc --help`` loads it.
"""

#: name -> ("module:attribute", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("dpc_central.cli:synth", "Synthesize the CDK app of a project (cdk.out)."),
    "deploy": ("dpc_central.cli:deploy", "Deploy a project's pipeline stack."),
    "destroy": ("dpc_central.cli:destroy", "Destroy a project's pipeline stack."),
    "setup-central-account": ("dpc_central.cli:setup_central_account",
                              "Synthesize/deploy the central-account stack."),
    "setup-user-account": ("dpc_central.cli:setup_user_account",
                           "Synthesize/deploy a team account's stack."),
    "doctor": ("dpc_central.doctor:doctor",
               "Preflight an AWS account (read-only): organisation, subnets, quotas, IAM."),
}
