"""Secrets never reach a step, a log or a message: the local runtime end to end, a step that
prints its environment (and the runtime's, read through /proc) and fails, with Slack, SMTP
and OpsGenie served by local fakes speaking the real protocols."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fakes.opsgenie_server import FakeOpsGenie
from fakes.slack_server import FakeSlack
from fakes.smtp_server import FakeSmtp
from local_helpers import A, dpc, runs_of, write_pipeline

DAY = "2026-11-26"
# Not Slack-shaped on purpose: redaction must come from knowing the value, not its shape.
SLACK_TOKEN = "slack-tok-7f3a9c"
OPSGENIE_KEY = "og-key-51d2e8"
SMTP_PASSWORD = "pw9Qz"  # 5 characters: shorter than the old 8-character floor
SECRETS = (SLACK_TOKEN, OPSGENIE_KEY, SMTP_PASSWORD)

# Prints its own environment, then whatever of the secrets /proc shows of the runtime
# (nothing: it re-executed itself without them, see test_local_secrets_proc.py), then the
# secrets as a step could have learned them elsewhere (assembled, so that pipeline.yaml
# does not hold them), then fails: the last lines become the run's error.
LEAKY_STEP = r"""steps:
  - name: leak
    type: shell
    passEnv: [SLACK_BOT_TOKEN, MY_SETTING]
    command: >-
      env | sort;
      echo ---;
      tr '\0' '\n' < /proc/$PPID/environ |
      grep -E '^(SLACK_BOT_TOKEN|OPSGENIE_API_KEY|DPC_SMTP_PASSWORD)=';
      echo ---;
      echo "SLACK_BOT_TOKEN=slack-tok""-7f3a9c OPSGENIE_API_KEY=og-key""-51d2e8
      DPC_SMTP_PASSWORD=pw9""Qz";
      exit 3
notifications:
  type: FULL_EXECUTION
  targets:
    - {channel: SLACK, addresses: [data-alerts]}
    - {channel: EMAIL, addresses: [team@example.com]}
    - {channel: OPSGENIE, addresses: [data-team]}
"""


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeSlack, FakeSmtp, FakeOpsGenie]]:
    with FakeSlack(token=SLACK_TOKEN) as slack, \
            FakeSmtp(credentials=("dpc", SMTP_PASSWORD)) as smtp, \
            FakeOpsGenie(api_key=OPSGENIE_KEY) as opsgenie:
        yield slack, smtp, opsgenie


def _env(slack: FakeSlack, smtp: FakeSmtp, opsgenie: FakeOpsGenie) -> dict[str, str]:
    return {"SLACK_BOT_TOKEN": SLACK_TOKEN, "DPC_SLACK_API_URL": slack.api_url,
            "DPC_SMTP_HOST": smtp.host, "DPC_SMTP_PORT": str(smtp.port),
            "DPC_SMTP_USER": "dpc", "DPC_SMTP_PASSWORD": SMTP_PASSWORD,
            "OPSGENIE_API_KEY": OPSGENIE_KEY, "DPC_OPSGENIE_API_URL": opsgenie.url,
            "MY_SETTING": "declared-value", "UNRELATED_SETTING": "not-for-steps"}


@pytest.fixture(scope="module")
def lineage() -> Iterator[tuple[str, list[bytes]]]:
    """An OpenLineage endpoint on 127.0.0.1 keeping every body it receives, as sent."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(201)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def leaked(tmp_path_factory: pytest.TempPathFactory,
           servers: tuple[FakeSlack, FakeSmtp, FakeOpsGenie],
           lineage: tuple[str, list[bytes]],
           ) -> tuple[Path, str, tuple[FakeSlack, FakeSmtp, FakeOpsGenie]]:
    """A workspace after the leaky step ran and failed, the runtime's console output and the
    servers (one run shared by the tests below, which only read)."""
    ws = tmp_path_factory.mktemp("leaky") / "ws"
    write_pipeline(ws, "leaky", A, "trigger:\n  schedule: {hour: 3}\n" + LEAKY_STEP)
    dpc("local", "start", "leaky", "--date", DAY, "-w", ws)
    env = {**_env(*servers), "DPC_OPENLINEAGE_URL": lineage[0]}
    up = dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, env=env,
             check=False)  # exits non-zero: a run failed
    return ws, up.stdout + up.stderr, servers


def _step_log(ws: Path) -> str:
    (log,) = (ws / ".dpc" / "runs").rglob("*.log")
    return log.read_text()


def test_a_step_gets_a_minimal_environment_without_notifier_secrets(leaked: tuple) -> None:
    ws, _, _ = leaked
    own_env = _step_log(ws).split("---", 1)[0]
    assert "DPC_RUN_ID=" in own_env and "DPC_LOGICAL_DATE=2026-11-26" in own_env
    assert "PATH=" in own_env
    assert "MY_SETTING=declared-value" in own_env  # declared with passEnv
    assert "UNRELATED_SETTING" not in own_env
    assert "DPC_SMTP" not in own_env and "DPC_SLACK_API_URL" not in own_env
    for name in ("SLACK_BOT_TOKEN", "OPSGENIE_API_KEY", "DPC_SMTP_PASSWORD"):
        assert f"{name}=" not in own_env
    assert "dpc: SLACK_BOT_TOKEN is not passed" in _step_log(ws)


def test_secrets_a_step_prints_are_redacted_from_the_run_and_its_log(leaked: tuple) -> None:
    ws, _, _ = leaked
    (run,) = runs_of(ws, "leaky")
    assert run["status"] == "FAILED"
    # /proc showed the step none of the runtime's secrets...
    assert _step_log(ws).split("---")[1].strip() == ""
    # ...and those it printed anyway were redacted.
    assert "SLACK_BOT_TOKEN=***" in run["error"] and "DPC_SMTP_PASSWORD=***" in run["error"]
    assert "OPSGENIE_API_KEY=***" in _step_log(ws)


def test_no_secret_is_in_the_state_files_or_the_logs(leaked: tuple) -> None:
    ws, _, _ = leaked
    files = [p for p in (ws / ".dpc").rglob("*") if p.is_file()]
    assert any(p.name == "state.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, (path, secret)


def test_no_secret_is_printed(leaked: tuple) -> None:
    _, console, _ = leaked
    assert "leaky" in console and "FAILED" in console
    for secret in SECRETS:
        assert secret not in console


def test_no_secret_is_in_the_slack_opsgenie_or_email_messages(leaked: tuple) -> None:
    _, _, (slack, smtp, opsgenie) = leaked
    posted = json.dumps(slack.calls_of("chat.postMessage") + slack.calls_of("chat.update"))
    alerts = json.dumps([a.__dict__ for a in opsgenie.alerts])
    emails = "".join(str(m.message) + "".join(  # headers, then each part decoded
        str(part.get_content()) for part in m.message.walk() if not part.is_multipart())
        for m in smtp.received)
    # The failure with its (redacted) error reached every channel...
    assert "SLACK_BOT_TOKEN=***" in posted
    assert "SLACK_BOT_TOKEN=***" in alerts
    assert "SLACK_BOT_TOKEN=***" in emails and smtp.received[0].authenticated_as == "dpc"
    # ...and no secret did.
    for secret in SECRETS:
        assert secret not in posted and secret not in alerts and secret not in emails


def test_a_declared_secret_too_short_to_redact_refuses_to_start(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write_pipeline(ws, "leaky", A, "trigger:\n  schedule: {hour: 3}\n" + LEAKY_STEP)

    up = dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws,
             env={"SLACK_BOT_TOKEN": "x9z"}, check=False)

    assert up.returncode == 2
    assert "SLACK_BOT_TOKEN" in up.stderr and "fewer than 4 characters" in up.stderr
    assert "x9z" not in up.stdout + up.stderr


def test_no_secret_is_in_the_openlineage_events(leaked: tuple,
                                                 lineage: tuple[str, list[bytes]]) -> None:
    events = b"".join(lineage[1])
    assert b'"FAIL"' in events and b"SLACK_BOT_TOKEN=***" in events
    for secret in SECRETS:
        assert secret.encode() not in events
