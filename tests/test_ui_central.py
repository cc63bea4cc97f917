"""`dpc ui --central`: the real UI server (uvicorn, real HTTP) over the central tables
under moto, built by the code `dpc ui --central` runs (``central_source``).

The tables are made as the central stack defines them (``table_definitions``, which
the CDK stack mirrors) and filled as the handlers fill them (the engine registers the
seed pipelines and handles Step Functions events). The UI reads them with the
credentials of the environment, like any boto3 caller; one test enforces IAM in moto
with a user who may only read.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from helpers.ui_server import Stream
from moto import mock_aws

from dpc_central.testing import central_engine_with_listings_succeeded
from dpc_core.cli.ui import central_source
from dpc_core.engine import Engine
from dpc_core.loader import load_pipelines
from dpc_core.ui.server import bind, make_server, new_token, url_of

pytestmark = pytest.mark.timeout(300)

SEED = Path(__file__).resolve().parents[1] / "examples" / "seed"
REGION = "eu-west-1"
DAY = "2026-11-26"
TABLES = "dpc-registry,dpc-runs,dpc-windows"


@pytest.fixture(scope="module")
def aws() -> Iterator[pytest.MonkeyPatch]:
    """Fake credentials and region for the module, and moto behind boto3."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION,
                           "AWS_REGION": REGION}.items():
            mp.setenv(key, value)
        for key in ("AWS_PROFILE", "MOTO_ACCOUNT_ID", "AWS_ENDPOINT_URL"):
            mp.delenv(key, raising=False)
        with mock_aws():
            yield mp


@pytest.fixture(scope="module")
def engine(aws: pytest.MonkeyPatch) -> Engine:
    """The central tables with the seed registered and listings' run of DAY succeeded."""
    engine: Engine = central_engine_with_listings_succeeded(
        boto3.client("dynamodb", region_name=REGION), SEED)
    return engine


class Ui:
    """The UI server of `dpc ui --central` on a free port, on a thread of this process
    (moto's mock covers it)."""

    def __init__(self) -> None:
        source, self.count = central_source(TABLES, None, 0.3)
        sock = bind("127.0.0.1", 0)
        self.url = url_of(sock)
        self.token = new_token()
        self.server = make_server(source, sock, self.token)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       daemon=True)
        self.thread.start()
        end = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < end, "the server never started"
            time.sleep(0.02)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=30) as resp:
            return json.loads(resp.read())

    def post(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(
            self.url + "api/action", method="POST", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Origin": self.url.rstrip("/"),
                     "Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture(scope="module")
def ui(engine: Engine) -> Iterator[Ui]:
    server = Ui()
    yield server
    server.close()


def test_the_graph_and_statuses_are_the_organisations(ui: Ui) -> None:
    data = ui.get(f"api/graph?date={DAY}")
    nodes = {n["key"]: n for n in data["graph"]["nodes"]}
    assert sorted(nodes) == ["111111111111/listings", "222222222222/searches",
                             "333333333333/listings-fallback", "333333333333/pipeline-x"]
    assert nodes["111111111111/listings"]["status"] == "SUCCEEDED"
    assert nodes["333333333333/pipeline-x"]["status"] is None
    statuses = ui.get(f"api/statuses?date={DAY}")
    assert statuses == {"111111111111/listings": [
        "SUCCEEDED", "arn:aws:states:eu-west-1:111111111111:execution:listings:sched-d0"]}
    assert ui.get("api/statuses?date=2026-11-20") == {}


def test_health_and_a_pipeline_page_read_the_central_run_log(ui: Ui) -> None:
    health = {it["key"]: it for it in ui.get(f"api/health?date={DAY}")["items"]}
    assert health["111111111111/listings"]["category"] == "succeeded"
    assert health["333333333333/pipeline-x"]["category"] == "waiting"
    page = ui.get(f"api/pipeline?key=333333333333/pipeline-x&date={DAY}")
    assert page["runs"] == [] and page["waits"]["holds"] is False
    parts = {p["pipeline"]: p["holds"] for p in page["waits"]["parts"]}
    assert parts == {"listings": True, "searches": False}
    listings = ui.get(f"api/pipeline?key=111111111111/listings&date={DAY}")
    assert [(r["date"], r["status"]) for r in listings["runs"]] == [(DAY, "SUCCEEDED")]
    with pytest.raises(urllib.error.HTTPError) as err:
        ui.get("api/pipeline?key=999999999999/nope")
    assert err.value.code == 404


def test_a_status_written_to_the_run_log_appears_on_the_live_stream(ui: Ui,
                                                                    engine: Engine) -> None:
    today = datetime.now(UTC).date().isoformat()
    stream = Stream(ui.url)
    try:
        assert "222222222222/searches" not in ui.get(f"api/statuses?date={today}")
        event = json.loads((SEED / "events" / "s01_happy_path.jsonl").read_text()
                           .splitlines()[2])  # searches RUNNING
        now = int(time.time() * 1000)
        arn = "arn:aws:states:eu-west-1:222222222222:execution:searches:live-1"
        event["time"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event["resources"] = [arn]
        event["detail"].update(executionArn=arn, name="live-1", startDate=now)
        engine.handle(event)
        stream.wait_for("change")
        assert ui.get(f"api/statuses?date={today}")["222222222222/searches"] == ["RUNNING",
                                                                                 arn]
    finally:
        stream.close()


def test_a_pipeline_registered_centrally_is_a_graph_event(ui: Ui, engine: Engine,
                                                          tmp_path: Path) -> None:
    stream = Stream(ui.url)
    try:
        d = tmp_path / "late"
        d.mkdir()
        (d / "pipeline.yaml").write_text(
            'name: late-arrival\naccount: "444444444444"\ntrigger:\n  executions:\n'
            '    allOf:\n      - {name: listings, account: "111111111111", status: [SUCCEEDED]}\n'
            "steps:\n  - {name: s, type: shell, command: 'true'}\n")
        engine.register_many(load_pipelines([d], require_account=True))
        seen = stream.wait_for("graph")
        assert "change" not in seen[-1:]
        keys = [n["key"] for n in ui.get(f"api/graph?date={DAY}")["graph"]["nodes"]]
        assert "444444444444/late-arrival" in keys
    finally:
        stream.close()


def test_a_rebound_name_or_a_missing_token_starts_nothing(ui: Ui) -> None:
    """DNS rebinding against `dpc ui --central` (a page of evil.example whose name now
    resolves to 127.0.0.1) would start executions with the operator's own credentials:
    refused before any AWS call, as is an action without the token."""
    port = int(ui.url.rstrip("/").rsplit(":", 1)[1])
    body = json.dumps({"action": "rerun", "pipeline": "111111111111/listings", "date": DAY})

    def post(host: str, headers: dict[str, str]) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.putrequest("POST", "/api/action", skip_host=True)
            for k, v in {"Host": host, "Content-Type": "application/json",
                         "Content-Length": str(len(body)), **headers}.items():
                conn.putheader(k, v)
            conn.endheaders(body.encode())
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    evil = f"evil.example:{port}"
    assert post(evil, {"Origin": f"http://{evil}"})[0] == 421
    own = f"127.0.0.1:{port}"
    status, text = post(own, {"Origin": f"http://{own}"})
    assert status == 401 and b"token" in text


def test_an_action_without_rights_is_a_clear_refusal(engine: Engine,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A user who may read the tables but not start state machines: the action is a 403
    whose message says so (not a 500), and reads still work."""
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="read-central", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Query",
                                           "dynamodb:Scan", "dynamodb:DescribeTable"],
             "Resource": "*"}]}))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    from moto import settings

    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # IAM is enforced
    with pytest.raises(Exception, match="AccessDenied"):  # the policy holds in moto
        boto3.session.Session(region_name=REGION).client("stepfunctions").list_state_machines()
    reader = Ui()
    try:
        assert len(reader.get(f"api/graph?date={DAY}")["graph"]["nodes"]) >= 4
        code, body = reader.post({"action": "rerun", "pipeline": "111111111111/listings",
                                  "date": DAY})
        assert code == 403, body
        assert body["denied"] is True
        assert body["error"].startswith("your AWS credentials may not start listings "
                                        "(account 111111111111): AccessDenied"), body
        code, body = reader.post({"action": "backfill", "pipeline": "listings",
                                  "from": "2026-11-20", "to": "2026-11-22"})
        assert code == 403 and body["denied"] and "listings" in body["error"], body
        code, body = reader.post({"action": "run", "pipeline": "nope", "date": DAY})
        assert code == 400 and "no pipeline 'nope'" in body["error"]
    finally:
        reader.close()


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from dpc_core.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(args)
    return int(exited.value.code or 0), capsys.readouterr().err


def test_missing_tables_are_a_clear_error_with_exit_2(
        engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["ui", "--central", "--central-tables", "no-r,no-u,no-w", "--port",
                         "0"], capsys)
    assert code == 2, err
    assert "cannot read the central account" in err and "no-r" in err
    assert "Traceback" not in err


def test_no_central_stack_is_a_clear_error_with_exit_2(
        engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["ui", "--central", "--port", "0"], capsys)
    assert code == 2, err
    assert "dpc-central" in err and "Traceback" not in err


def test_missing_credentials_are_a_clear_error_with_exit_2(
        engine: Engine, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, err = run_cli(["ui", "--central", "--central-tables", TABLES, "--port", "0"], capsys)
    assert code == 2, err
    assert "credentials" in err.lower() and "Traceback" not in err
