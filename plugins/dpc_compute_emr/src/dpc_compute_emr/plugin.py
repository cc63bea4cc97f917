"""``compute: {type: emr}``: a transient EMR cluster per run.

On AWS the state machine creates the cluster before the steps and terminates it
after them (and in the catch path). The local runtime runs steps on this machine.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from dpc_core import hookimpl
from dpc_core.types import ComputeConfig, ComputeType

DPC_PLUGIN_API = 1


class EmrCompute(ComputeConfig):
    """A transient EMR cluster."""

    release_label: str = Field(default="emr-7.3.0", alias="releaseLabel")
    instance_type: str = Field(default="m5.xlarge", alias="instanceType")
    core_instance_count: int = Field(default=2, ge=0, le=100, alias="coreInstanceCount")
    subnet_id: str | None = Field(default=None, alias="subnetId")
    hive_metastore_secret: str | None = Field(
        default=None, alias="hiveMetastoreSecret",
        description="Secrets Manager secret with the Hive metastore password, decrypted for Spark",
    )
    applications: list[str] = Field(default_factory=lambda: ["Spark", "Hadoop"])


def _aws(ctx):  # type: ignore[no-untyped-def]
    from dpc_compute_emr.aws import emr_states

    return emr_states(ctx)


@hookimpl
def dpc_compute_types() -> Iterator[ComputeType]:
    """The ``emr`` compute type."""
    yield ComputeType(name="emr", config=EmrCompute, aws=_aws,
                      description="transient EMR cluster per run")
