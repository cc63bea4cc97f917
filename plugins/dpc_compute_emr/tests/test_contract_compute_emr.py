"""dpc-compute-emr against the plugin contract of dpc-core."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from dpc_compute_emr.plugin import EmrCompute
from dpc_core.testing.contract import PluginContract


class TestEmrContract(PluginContract):
    plugin_module = "dpc_compute_emr.plugin"
    examples: ClassVar[dict[str, dict[str, Any]]] = {
        "emr": {"type": "emr", "releaseLabel": "emr-7.3.0", "instanceType": "m5.2xlarge",
                "coreInstanceCount": 3, "hiveMetastoreSecret": "hive/metastore"},
    }


def test_an_emr_compute_needs_no_field_but_its_type() -> None:
    compute = EmrCompute.model_validate({"type": "emr"})
    assert (compute.release_label, compute.core_instance_count) == ("emr-7.3.0", 2)


def test_an_emr_cluster_has_at_most_100_core_nodes() -> None:
    with pytest.raises(ValidationError):
        EmrCompute.model_validate({"type": "emr", "coreInstanceCount": 101})
