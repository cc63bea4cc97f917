"""What a local step's process gets (``dpc_core.local.step_env``): a minimal environment,
what its plugin and its ``passEnv`` ask for, never a notifier's secret."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from dpc_core.errors import ValidationFailed
from dpc_core.loader import load_pipelines
from dpc_core.local.step_env import step_environment, withheld_names
from dpc_core.notify import Secrets
from dpc_core.plugins import load_registry
from dpc_core.types import LocalCommand, NotifierBackend, NotifierType, RunContext
from dpc_step_spark.plugin import SparkStep
from dpc_step_spark.plugin import local_command as spark_command

RUNTIME_ENV = {
    "PATH": "/usr/bin:/bin", "HOME": "/home/dpc", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
    "TMPDIR": "/tmp/x", "JAVA_HOME": "/opt/java", "SPARK_LOCAL_IP": "127.0.0.1",
    "SLACK_BOT_TOKEN": "xoxb-secret-1", "OPSGENIE_API_KEY": "og-secret-2",
    "DPC_SMTP_PASSWORD": "smtp-secret-3", "DPC_SMTP_HOST": "mail.local",
    "TEAMS_WEBHOOK_SECRET": "teams-secret-4", "AWS_PROFILE": "prod", "MY_SETTING": "v",
}
DPC_ENV = {"DPC_RUN_ID": "run-1", "DPC_LOGICAL_DATE": "2026-11-26"}


def _ctx(tmp_path: Path) -> RunContext:
    return RunContext(pipeline="p", account="111111111111", run_id="run-1",
                      logical_date="2026-11-26", project_dir=tmp_path, work_dir=tmp_path,
                      data_dir=tmp_path)


def _withheld() -> frozenset[str]:
    """The secrets of the installed notifiers plus a third-party channel's."""
    reg = load_registry()

    def factory(env: Mapping[str, str]) -> NotifierBackend:
        raise NotImplementedError

    reg.notifiers["TEAMS"] = NotifierType(channel="TEAMS", factory=factory,
                                          secret_env=("TEAMS_WEBHOOK_SECRET",))
    return Secrets.from_env(RUNTIME_ENV, reg).names


def test_a_step_gets_dpc_variables_path_home_locale_and_tmpdir_only() -> None:
    env = step_environment(RUNTIME_ENV, DPC_ENV, LocalCommand(argv=["true"]), (), _withheld())
    assert env == {"PATH": "/usr/bin:/bin", "HOME": "/home/dpc", "LANG": "C.UTF-8",
                   "LC_ALL": "C.UTF-8", "TMPDIR": "/tmp/x", **DPC_ENV}


def test_a_step_gets_the_variables_it_declares_and_the_values_its_plugin_sets() -> None:
    cmd = LocalCommand(argv=["true"], env={"EXTRA": "1"})
    env = step_environment(RUNTIME_ENV, DPC_ENV, cmd, ("MY_SETTING", "AWS_PROFILE", "UNSET"),
                           _withheld())
    assert (env["MY_SETTING"], env["AWS_PROFILE"], env["EXTRA"]) == ("v", "prod", "1")
    assert "UNSET" not in env


@pytest.mark.parametrize("secret", ["SLACK_BOT_TOKEN", "OPSGENIE_API_KEY", "DPC_SMTP_PASSWORD",
                                    "TEAMS_WEBHOOK_SECRET"])
def test_a_notifier_secret_is_withheld_even_when_a_step_asks_for_it(secret: str) -> None:
    cmd = LocalCommand(argv=["true"], pass_env=(secret,))
    env = step_environment(RUNTIME_ENV, DPC_ENV, cmd, (secret,), _withheld())
    assert secret not in env
    assert withheld_names((secret, "MY_SETTING"), _withheld()) == [secret]


def test_the_spark_executor_asks_for_java_and_spark_settings(tmp_path: Path) -> None:
    step = SparkStep.model_validate({"name": "s", "type": "spark", "script": "job.py"})
    cmd = spark_command(step, _ctx(tmp_path))
    env = step_environment(RUNTIME_ENV, DPC_ENV, cmd, step.pass_env, _withheld())
    assert env["JAVA_HOME"] == "/opt/java" and env["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert env["PYSPARK_PYTHON"] == cmd.env["PYSPARK_PYTHON"]
    assert not {"SLACK_BOT_TOKEN", "OPSGENIE_API_KEY", "DPC_SMTP_PASSWORD"} & set(env)


def test_pass_env_takes_variable_names(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(
        'name: p\naccount: "111111111111"\ntrigger: {schedule: {hour: 3}}\nsteps:\n'
        "  - {name: s, type: shell, command: 'true', passEnv: [GOOD_NAME, bad-name]}\n")
    with pytest.raises(ValidationFailed, match=r"bad-name.*not an environment variable name"):
        load_pipelines([tmp_path])
