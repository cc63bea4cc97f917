"""Names every dpc stack agrees on, so stacks in different accounts find each other
without cross-stack exports (which cannot cross accounts anyway).

Pure Python: the handlers import it too, and it must stay free of aws_cdk.
"""

from __future__ import annotations

#: The central account's bus: status events in, trigger events out.
CENTRAL_BUS_NAME = "dpc-central"
#: Each user account's bus: trigger events for its pipelines arrive here.
PIPELINE_BUS_NAME = "dpc-pipelines"

#: Events the trigger manager puts on the central bus for one child pipeline.
TRIGGER_SOURCE = "dpc.trigger"
TRIGGER_DETAIL_TYPE = "dpc Pipeline Trigger"

#: Events a run puts about itself (reliable path of docs/triggers.md) and about its steps.
RUN_STATUS_SOURCE = "dpc.pipeline"
RUN_STATUS_DETAIL_TYPE = "dpc Pipeline Run Status"
STEP_STATUS_DETAIL_TYPE = "dpc Step Status"

#: Step Functions status events as AWS emits them on the default bus.
SFN_SOURCE = "aws.states"
SFN_DETAIL_TYPE = "Step Functions Execution Status Change"
#: The same events as a team account's status forwarder puts them on the central bus:
#: dpc's state machines only, without their data (``aws.*`` sources cannot be put by
#: callers, so the source is dpc's; the detail keeps the AWS shape).
FORWARDED_STATUS_SOURCE = "dpc.states"
#: The tag every pipeline's state machine carries (its value: the pipeline); the status
#: forwarder forwards only the events of state machines with it.
SFN_TAG_PIPELINE = "dpc-pipeline"

#: Names in the central account that user accounts build ARNs from. Channel plugins name
#: their own (e.g. dpc-notify-slack's poster, ``dpc_notify_slack.aws``).
REGISTRATION_API_NAME = "dpc-registration"

#: SSM parameters written by the user-account stack and read by pipeline stacks.
SSM_PREFIX = "/dpc"
SSM_CENTRAL_ACCOUNT = f"{SSM_PREFIX}/central-account"
SSM_ARTIFACTS_BUCKET = f"{SSM_PREFIX}/artifacts-bucket"
SSM_REGISTRATION_PROVIDER = f"{SSM_PREFIX}/registration-provider-arn"
SSM_ALARM_TOPIC = f"{SSM_PREFIX}/alarm-topic-arn"

#: Fixed IAM names in each user account are account-wide, so each name ends with the
#: region (:func:`regional`): a second region's ``setup-user-account`` in the same
#: account makes its own roles. A compute plugin names its own (``dpc_compute_emr.names``).
#: IAM's limit on a role name (and an instance profile name): 64 characters.
IAM_ROLE_NAME_MAX = 64


def regional(name: str, region: str) -> str:
    """``name`` of the role in ``region`` (``<name>-<region>``; ``region`` may be a CDK
    token). The longest region code (14 characters) keeps every dpc role within 64."""
    return f"{name}-{region}"

#: Lambda entry points (modules under dpc_central.handlers, written with the handlers).
HANDLER_TRIGGER_MANAGER = "dpc_central.handlers.trigger_manager.handle"
HANDLER_REGISTRATION = "dpc_central.handlers.registration.handle"
HANDLER_RECONCILER = "dpc_central.handlers.reconciler.handle"
HANDLER_EXECUTION_TRACKER = "dpc_central.handlers.execution_tracker.handle"
HANDLER_REGISTRATION_CLIENT = "dpc_central.handlers.registration_client.handle"
HANDLER_STATUS_FORWARDER = "dpc_central.handlers.status_forwarder.handle"

#: Environment variables of the central Lambdas. The trigger manager builds
#: ``DynamoStore(client, DynamoTables(registry=..., runs=..., windows=...))`` from them.
ENV_TABLE_REGISTRY = "DPC_TABLE_REGISTRY"
ENV_TABLE_RUNS = "DPC_TABLE_RUNS"
ENV_TABLE_WINDOWS = "DPC_TABLE_WINDOWS"
ENV_CENTRAL_BUS = "DPC_CENTRAL_BUS"
ENV_REGISTRATION_URL = "DPC_REGISTRATION_URL"
ENV_READ_ROLE_NAME = "DPC_READ_ROLE_NAME"
ENV_POISON_DLQ_URL = "DPC_POISON_DLQ_URL"
#: Trigger delivery (``handlers/_common.put_triggers``): the queue of triggers whose
#: PutEvents to the child's pipeline bus failed (retried with backoff by the trigger
#: manager) and its dead-letter queue (alarmed) once the attempts are spent.
ENV_DELIVERY_RETRY_URL = "DPC_DELIVERY_RETRY_URL"
ENV_DELIVERY_DLQ_URL = "DPC_DELIVERY_DLQ_URL"
#: The status FIFO queue itself: the trigger manager moves events of accounts not listed
#: at setup from :data:`OTHER_ACCOUNTS_GROUP` to a message group per account.
ENV_STATUS_QUEUE_URL = "DPC_STATUS_QUEUE_URL"
#: The message group EventBridge gives status events of accounts not listed at setup
#: (a rule target's MessageGroupId is static).
OTHER_ACCOUNTS_GROUP = "dpc-other-accounts"

#: Role each user account lets the central reconciler assume (read-only on executions);
#: its name in a region is ``regional(RECONCILER_READ_ROLE, region)``, the central
#: stack's region (a team account's buses and roles are in the central region).
RECONCILER_READ_ROLE = "dpc-central-reconciler-read"
