"""dpc-step-spark against the plugin contract of dpc-core."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from dpc_core.testing.contract import PluginContract
from dpc_core.types import RunContext
from dpc_step_spark.plugin import SparkStep, local_command


class TestSparkContract(PluginContract):
    plugin_module = "dpc_step_spark.plugin"
    examples: ClassVar[dict[str, dict[str, Any]]] = {
        "spark": {"name": "aggregate", "type": "spark", "script": "jobs/agg.py",
                  "args": ["--day", "2026-11-26"], "conf": {"spark.executor.cores": "2"},
                  "localMaster": "local[1]"},
    }


def test_a_spark_step_submits_its_script_from_the_project_with_a_local_master(
    tmp_path: Path,
) -> None:
    step = SparkStep.model_validate({"name": "s", "type": "spark", "script": "jobs/a.py",
                                     "args": ["x"], "localMaster": "local[1]"})
    ctx = RunContext(pipeline="p", account="123456789012", run_id="r", logical_date="2026-11-26",
                     project_dir=tmp_path, work_dir=tmp_path, data_dir=tmp_path)
    argv = list(local_command(step, ctx).argv)
    assert argv[argv.index("--master") + 1] == "local[1]"
    assert argv[-2:] == [str(tmp_path / "jobs" / "a.py"), "x"]
