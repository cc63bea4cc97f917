"""dpc-compute-emr against the plugin contract of dpc-core."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from dpc_compute_emr.plugin import EmrCompute
from dpc_core.testing.contract import PluginContract

ARN = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:hive/{}-AbCdEf"


class TestEmrContract(PluginContract):
    plugin_module = "dpc_compute_emr.plugin"
    examples: ClassVar[dict[str, dict[str, Any]]] = {
        "emr": {"type": "emr", "releaseLabel": "emr-7.3.0", "instanceType": "m5.2xlarge",
                "coreInstanceCount": 3, "idleTimeoutMinutes": 30,
                "hiveMetastore": {"url": ARN.format("url"), "username": ARN.format("user"),
                                  "password": ARN.format("password")}},
    }


def test_an_emr_compute_needs_no_field_but_its_type() -> None:
    compute = EmrCompute.model_validate({"type": "emr"})
    assert (compute.release_label, compute.core_instance_count) == ("emr-7.3.0", 2)


def test_an_emr_cluster_has_at_most_100_core_nodes() -> None:
    with pytest.raises(ValidationError):
        EmrCompute.model_validate({"type": "emr", "coreInstanceCount": 101})


def test_hive_metastore_secrets_are_given_by_arn() -> None:
    with pytest.raises(ValidationError, match="not a Secrets Manager secret ARN"):
        EmrCompute.model_validate({"type": "emr", "hiveMetastore": {
            "url": "hive/url", "username": ARN.format("u"), "password": ARN.format("p")}})


def test_the_old_password_only_field_says_what_replaced_it() -> None:
    with pytest.raises(ValidationError, match="replaced by hiveMetastore"):
        EmrCompute.model_validate({"type": "emr", "hiveMetastoreSecret": "hive/metastore"})


def test_a_step_may_not_outlast_the_run() -> None:
    """Else a stuck step ends the run by timeout, which skips the catch path."""
    with pytest.raises(ValidationError, match="shorter than runTimeoutMinutes"):
        EmrCompute.model_validate({"type": "emr", "runTimeoutMinutes": 60,
                                   "stepTimeoutMinutes": 60})


@pytest.mark.parametrize("label", ["emr-5.29.0", "emr-6.0.0", "emr-4.9.6"])
def test_a_release_without_auto_termination_is_refused(label: str) -> None:
    """Auto-termination ends a cluster its run left behind; EMR has it from 5.30.0 and
    6.1.0 (Management Guide, "Using an auto-termination policy")."""
    with pytest.raises(ValidationError, match="has no auto-termination"):
        EmrCompute.model_validate({"type": "emr", "releaseLabel": label})


@pytest.mark.parametrize("label", ["emr-5.30.0", "emr-6.1.0", "emr-6.15.0", "emr-7.3.0"])
def test_releases_with_auto_termination_are_accepted(label: str) -> None:
    assert EmrCompute.model_validate({"type": "emr", "releaseLabel": label}).release_label \
        == label


def test_a_release_label_that_is_not_one_says_the_form() -> None:
    with pytest.raises(ValidationError, match=r"emr-MAJOR\.MINOR\.PATCH"):
        EmrCompute.model_validate({"type": "emr", "releaseLabel": "7.3"})
