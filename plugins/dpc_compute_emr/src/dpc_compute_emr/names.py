"""Names the EMR backend's team-account resources and its runs agree on.

Pure Python: the cluster reaper's Lambda imports it too, and it must stay free of
aws_cdk.
"""

from __future__ import annotations

import hashlib

#: SSM parameters the team stack writes (``dpc setup-user-account``) and every
#: pipeline stack reads at deploy.
SSM_SUBNET = "/dpc/emr/subnet-id"
SSM_MASTER_SG = "/dpc/emr/master-security-group"
SSM_WORKER_SG = "/dpc/emr/worker-security-group"
SSM_SERVICE_SG = "/dpc/emr/service-security-group"

#: AmazonEMRServicePolicy_v2 lets EMR use only a subnet, security groups and clusters
#: with this tag (EMR propagates it from the cluster to the instances, launch templates
#: and network interfaces it creates).
EMR_MANAGED_TAG = ("for-use-with-amazon-emr-managed-policies", "true")

#: Fixed IAM names in each team account (EMR's RunJobFlow takes role *names*). IAM names
#: are account-wide, so each name ends with the region (:func:`regional`): a second
#: region's ``setup-user-account`` in the same account makes its own roles.
SERVICE_ROLE = "dpc-emr-service-role"
INSTANCE_ROLE = "dpc-emr-instance-role"
#: The instance profile has the role's name (RunJobFlow's JobFlowRole is read by EMR as
#: an instance profile name).
INSTANCE_PROFILE = INSTANCE_ROLE

#: Tags and name of every cluster a run creates (``dpc-<pipeline>``,
#: ``dpc-pipeline=<pipeline>``, ``dpc-execution=<execution name>``); the state machine's
#: EMR permissions require them and the cluster reaper finds a run's clusters by them.
TAG_PIPELINE = "dpc-pipeline"
TAG_EXECUTION = "dpc-execution"
CLUSTER_PREFIX = "dpc-"

#: Where EMR writes each cluster's logs in the account's artifacts bucket (the cluster's
#: ``LogUri``: ``emr-logs/<pipeline>/``), and how long they are kept: an account's daily
#: clusters would otherwise pile up logs for ever.
LOGS_PREFIX = "emr-logs/"
LOGS_DAYS = 90

#: The cluster reaper's Lambda entry point (bundled with this plugin).
HANDLER_CLUSTER_REAPER = "dpc_compute_emr.handlers.cluster_reaper.handle"
#: The custom resource that revokes EMR's cross-group rules when the team stack goes.
HANDLER_SG_RULES_CLEANUP = "dpc_compute_emr.handlers.sg_rules_cleanup.handle"


def regional(name: str, region: str) -> str:
    """``name`` of the role in ``region`` (``<name>-<region>``; ``region`` may be a CDK
    token). The longest region code (14 characters) keeps every name within IAM's 64."""
    return f"{name}-{region}"


def hive_service_role_name(pipeline: str, region: str) -> str:
    """``dpc-emr-<pipeline>-<region>``, the pipeline shortened with a hash where the name
    would pass IAM's 64 characters (with the longest region code, 14): a fixed name, so
    the owner of a secret in another account can name the role in the secret's policy."""
    base = f"dpc-emr-{pipeline}"
    if len(base) > 64 - 15:
        digest = hashlib.sha256(pipeline.encode()).hexdigest()[:8]
        base = f"{base[:64 - 15 - 9]}-{digest}"
    return f"{base}-{region}"
