"""``type: spark`` steps: a PySpark (or jar) application submitted with spark-submit.

Locally: ``spark-submit --master local[N]`` (pyspark from PyPI provides it); on AWS:
an EMR step on the cluster the compute plugin provisioned.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from dpc_core import hookimpl
from dpc_core.deployability import needs_compute
from dpc_core.types import LocalCommand, RunContext, StepConfig, StepType

DPC_PLUGIN_API = 1


class SparkStep(StepConfig):
    """A Spark application. ``script`` is relative to the project directory."""

    script: str = Field(min_length=1, description="path of the .py or .jar application")
    args: list[str] = Field(default_factory=list, description="application arguments")
    conf: dict[str, str] = Field(default_factory=dict, description="--conf key=value pairs")
    main_class: str | None = Field(default=None, alias="mainClass")
    local_master: str = Field(default="local[2]", alias="localMaster")


#: Variables of the runtime's environment spark-submit needs when they are set (a local step
#: otherwise gets a minimal environment): where Java, Spark and Hadoop live, how they are
#: configured, which address the driver binds, where it spills.
SPARK_ENV = ("JAVA_HOME", "SPARK_HOME", "SPARK_CONF_DIR", "SPARK_LOCAL_IP", "SPARK_LOCAL_DIRS",
             "HADOOP_HOME", "HADOOP_CONF_DIR", "HADOOP_USER_NAME", "PYSPARK_PYTHON",
             "PYSPARK_DRIVER_PYTHON", "PYSPARK_SUBMIT_ARGS", "PYTHONPATH")


def spark_submit() -> str:
    """The spark-submit to use: $SPARK_SUBMIT, beside this interpreter, or on PATH."""
    if os.environ.get("SPARK_SUBMIT"):
        return os.environ["SPARK_SUBMIT"]
    beside = Path(sys.executable).parent / "spark-submit"
    if beside.exists():
        return str(beside)
    found = shutil.which("spark-submit")
    if found:
        return found
    return "spark-submit"


def local_command(step: SparkStep, ctx: RunContext) -> LocalCommand:
    """spark-submit with a local master; logs of Spark itself go to the step log."""
    argv = [spark_submit(), "--master", step.local_master,
            "--conf", "spark.ui.enabled=false",
            "--conf", "spark.sql.shuffle.partitions=4",
            "--driver-java-options", "-Dlog4j.rootLogger=WARN"]
    for k, v in step.conf.items():
        argv += ["--conf", f"{k}={v}"]
    if step.main_class:
        argv += ["--class", step.main_class]
    argv.append(str(ctx.project_dir / step.script))
    argv += step.args
    env = {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    return LocalCommand(argv=argv, env=env, cwd=ctx.project_dir, pass_env=SPARK_ENV)


@needs_compute("emr")  # an EMR step: the pipeline gets a cluster by default
def _aws_states(ctx):  # type: ignore[no-untyped-def]
    from dpc_step_spark.aws import spark_states

    return spark_states(ctx)


@hookimpl
def dpc_step_types() -> Iterator[StepType]:
    """The ``spark`` step type."""
    yield StepType(name="spark", config=SparkStep, local=local_command, aws_states=_aws_states,
                   description="a Spark application (spark-submit / EMR step)",
                   files=lambda step: [step.script])
