"""LATE and BLOCKED notices on the local runtime: the real `dpc` CLI over a real state.db,
real shell steps, notices delivered through the notifier plugins (printed when the channel
is not configured, and through the real slack-sdk / opsgenie-sdk / smtplib against the
fakes in tests/fakes when it is)."""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakes.opsgenie_server import FakeOpsGenie
from fakes.slack_server import FakeSlack
from fakes.smtp_server import FakeSmtp
from local_helpers import DPC, SHELL_CASE_STUDY, A, B, C, copy_workspace, dpc, runs_of, wait_for

from dpc_core.local import notices
from dpc_core.store import PipelineSpec
from dpc_core.stores.sqlite import SqliteStore

DAY = "2026-11-26"
TOKEN = "xoxb-test-token-123456"
KEY = "opsgenie-key-abcdef"


def notes(ws: Path, kind: str | None = None) -> list[dict[str, Any]]:
    rows = json.loads(dpc("local", "notifications", "--format", "json", "-w", ws).stdout)
    return [r for r in rows if kind is None or r["kind"] == kind]


def with_owners(ws: Path, deadline: str | None = None) -> Path:
    """The shell case study with owners (and pipeline-x's deadline)."""
    listings = ws / "listings" / "pipeline.yaml"
    listings.write_text(listings.read_text().replace(
        "name: listings\n", "name: listings\nowner: core-data-availability\n"))
    x = ws / "pipeline-x" / "pipeline.yaml"
    extra = "owner: {team: rent-journey, contact: rent@example.com}\n"
    if deadline:
        extra += f'deadline: "{deadline}"\n'
    x.write_text(x.read_text().replace("name: pipeline-x\n", "name: pipeline-x\n" + extra))
    return ws


def test_a_failed_parent_sends_one_blocked_notice_downstream_resolved_by_the_fix(
        tmp_path: Path) -> None:
    ws = with_owners(copy_workspace(SHELL_CASE_STUDY, tmp_path / "ws"))
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    dpc("local", "start", "searches", "--date", DAY, "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, env={"LISTINGS_FAIL": "1"},
        check=False)
    blocked = notes(ws, "PIPELINE_BLOCKED")
    # pipeline-x's two targets (Slack, email) each get it once; the fallback none.
    assert {(n["pipeline"], n["channel"]) for n in blocked} == {
        (f"{C}/pipeline-x", "SLACK"), (f"{C}/pipeline-x", "EMAIL")}
    assert len(blocked) == 2
    (listings,) = runs_of(ws, "listings")
    text = blocked[0]["text"]
    assert f"pipeline-x ({C}, rent-journey) is blocked for {DAY}" in text
    assert f"listings ({A}, core-data-availability) run {listings['run_id']} FAILED at" in text
    assert f"pipeline-x will run automatically when listings succeeds for {DAY}" in text

    status = dpc("local", "status", "--date", DAY, "-w", ws).stdout
    assert "BLOCKED  open" in status and "rent-journey" in status

    dpc("rerun", "listings", "--date", DAY, "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    assert [r["status"] for r in runs_of(ws, "pipeline-x")] == ["SUCCEEDED"]
    resolved = notes(ws, "NOTICE_RESOLVED")
    assert {n["channel"] for n in resolved} == {"SLACK", "EMAIL"}
    assert all(n["status"] == "RECOVERED" and n["run_id"] == f"blocked:{DAY}"
               for n in resolved)
    assert len(notes(ws, "PIPELINE_BLOCKED")) == 2  # still one notice per target
    assert "BLOCKED  resolved" in dpc("local", "status", "--date", DAY, "-w", ws).stdout


def test_a_missed_deadline_sends_one_late_notice_naming_the_parents_and_resolves_on_success(
        tmp_path: Path) -> None:
    # "00:00" of today has always passed: the window is late as soon as the runtime looks.
    ws = with_owners(copy_workspace(SHELL_CASE_STUDY, tmp_path / "ws"), deadline="00:00")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    late = notes(ws, "PIPELINE_LATE")
    assert {n["channel"] for n in late} == {"SLACK", "EMAIL"} and len(late) == 2
    assert late[0]["text"].endswith(
        f"pipeline-x ({C}, rent-journey) has not succeeded for {today} by its deadline 00:00 "
        f"UTC; waiting on listings ({A}, core-data-availability) has not run; "
        f"searches ({B}) has not run")

    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)  # a restart: no second one
    assert len(notes(ws, "PIPELINE_LATE")) == 2

    dpc("local", "start", "listings", "--date", today, "-w", ws)
    dpc("local", "start", "searches", "--date", today, "-w", ws)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    resolved = notes(ws, "NOTICE_RESOLVED")
    assert {(n["run_id"], n["status"]) for n in resolved} == {(f"late:{today}", "RECOVERED")}


def test_a_deadline_that_passed_while_no_runtime_ran_fires_at_the_next_check(
        tmp_path: Path) -> None:
    """The deadline table is state: recorded before a crash, fired by the next check."""
    db = tmp_path / "state.db"
    store = SqliteStore(sqlite3.connect(db, check_same_thread=False, isolation_level=None))
    from dpc_core.local import state

    state.init(store.conn)
    notices.init(store.conn)
    spec = PipelineSpec(C, "x", {"allOf": [{"name": "p", "account": A, "status": ["SUCCEEDED"]}]},
                        info={"deadline": "06:00", "owner": "bi"}, parents=(f"{A}/p",))
    store.put_pipeline(spec)
    store.put_pipeline(PipelineSpec(A, "p"))
    at = int(datetime(2026, 11, 26, 5, tzinfo=UTC).timestamp() * 1000)
    with store.transaction():
        assert notices.check_deadlines(store, [spec], at) == 0  # recorded, not yet due
    store.conn.close()

    store = SqliteStore(sqlite3.connect(db, check_same_thread=False, isolation_level=None))
    later = int(datetime(2026, 11, 27, 5, tzinfo=UTC).timestamp() * 1000)  # next day, 05:00
    with store.transaction():
        assert notices.check_deadlines(store, [spec], later) == 1
        assert notices.check_deadlines(store, [spec], later + 1000) == 0
    rows = notices.list_notices(store.conn)
    assert [(r.pipeline, r.window, r.kind) for r in rows] == [(f"{C}/x", DAY, "LATE")]
    assert "waiting on p (111111111111) has not run" in rows[0].text


def with_opsgenie(ws: Path) -> None:
    """pipeline-x of the shell case study with an OpsGenie target beside its email one."""
    x = ws / "pipeline-x" / "pipeline.yaml"
    x.write_text(x.read_text().replace(
        "        - channel: EMAIL\n",
        "        - channel: OPSGENIE\n          addresses: [rent-oncall]\n"
        "        - channel: EMAIL\n"))


@pytest.mark.case_study
def test_notices_reach_slack_opsgenie_and_email_and_are_resolved_there(tmp_path: Path) -> None:
    ws = with_owners(copy_workspace(SHELL_CASE_STUDY, tmp_path / "ws"))
    with_opsgenie(ws)
    with FakeSlack(token=TOKEN) as slack, FakeSmtp() as smtp, \
            FakeOpsGenie(api_key=KEY) as opsgenie:
        env = {"SLACK_BOT_TOKEN": TOKEN, "DPC_SLACK_API_URL": slack.api_url,
               "DPC_SMTP_HOST": smtp.host, "DPC_SMTP_PORT": str(smtp.port),
               "DPC_SMTP_FROM": "dpc@example.com",
               "OPSGENIE_API_KEY": KEY, "DPC_OPSGENIE_API_URL": opsgenie.url}
        dpc("local", "start", "listings", "--date", DAY, "-w", ws)
        dpc("local", "start", "searches", "--date", DAY, "-w", ws)
        dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws,
            env={**env, "LISTINGS_FAIL": "1"}, check=False)
        blocked_alerts = [a for a in opsgenie.alerts if "pipeline-x" in a.alias]
        assert len(blocked_alerts) == 1 and blocked_alerts[0].status == "open"
        assert any("BLOCKED" in m.message["Subject"] and "rent@" not in m.message["Subject"]
                   for m in smtp.received if "rent-journey@example.com" in m.rcpt_tos)

        dpc("rerun", "listings", "--date", DAY, "-w", ws)
        dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, env=env)
        assert [a.status for a in opsgenie.alerts if "pipeline-x" in a.alias] == ["closed"]
        assert any("RECOVERED" in m.message["Subject"]
                   for m in smtp.received if "rent-journey@example.com" in m.rcpt_tos)
        posted = [b["text"] for b in slack.calls_of("chat.postMessage")
                  if "is blocked for" in b.get("text", "")]
        assert len(posted) == 1  # one BLOCKED notice in the channel
        notice_roots = [r for r in slack.roots("data-pipeline-alerts")
                        if "BLOCKED notice is resolved" in r.text]
        assert len(notice_roots) == 1 and notice_roots[0].updates == 1  # root rewritten
        assert "RECOVERED" in notice_roots[0].text
        assert ["RECOVERED" in m.text for m in slack.replies(notice_roots[0])] == [True]
    # OpsGenie's deliveries are recorded like the others (`dpc local notifications`).
    sent = {(n["kind"], n["via"]) for n in notes(ws) if n["channel"] == "OPSGENIE"}
    assert {("PIPELINE_BLOCKED", "channel"), ("NOTICE_RESOLVED", "channel")} <= sent
    (opened,) = [n for n in notes(ws, "PIPELINE_BLOCKED") if n["channel"] == "OPSGENIE"]
    assert opened["text"].startswith(
        f"OpsGenie rent-oncall: open alert dpc/{C}/pipeline-x/{DAY}: ")


def _opsgenie_lines(console: str) -> list[str]:
    return [line.split("  notify  ", 1)[1] for line in console.splitlines()
            if "  notify  OpsGenie" in line]


def test_without_an_opsgenie_key_the_console_shows_each_alert_opened_before_its_close(
        tmp_path: Path) -> None:
    ws = with_owners(copy_workspace(SHELL_CASE_STUDY, tmp_path / "ws"))
    for name in ("pipeline-x", "searches"):
        f = ws / name / "pipeline.yaml"
        f.write_text(f.read_text().replace(
            "        - channel: EMAIL\n",
            "        - channel: OPSGENIE\n          addresses: [oncall]\n"
            "        - channel: EMAIL\n"))
    no_key = {"OPSGENIE_API_KEY": "", "SLACK_BOT_TOKEN": "", "DPC_SMTP_HOST": ""}
    dpc("local", "start", "listings", "--date", DAY, "-w", ws)
    dpc("local", "start", "searches", "--date", DAY, "-w", ws)
    first = dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws,
                env={**no_key, "LISTINGS_FAIL": "1"}, check=False)
    # searches succeeded with no alert open: no close of nothing; pipeline-x's BLOCKED
    # notice opened its alert, and that is shown.
    (opened,) = _opsgenie_lines(first.stdout + first.stderr)
    assert opened.startswith(f"OpsGenie oncall: open alert dpc/{C}/pipeline-x/{DAY}: "
                             f"[BLOCKED] pipeline-x ({C}, rent-journey) is blocked for {DAY}")

    dpc("rerun", "listings", "--date", DAY, "-w", ws)
    second = dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, env=no_key)
    # Another runtime process: the opening it did not print is known from the state.
    closes = _opsgenie_lines(second.stdout + second.stderr)
    assert closes == [f"OpsGenie oncall: close alert dpc/{C}/pipeline-x/{DAY}"]
    printed = [(n["kind"], n["via"]) for n in notes(ws) if n["channel"] == "OPSGENIE"]
    # The run's success and the notice's resolution both close it: printed once.
    assert printed[0] == ("PIPELINE_BLOCKED", "console") and len(printed) == 2
    assert printed[1] in {("PIPELINE_FINISHED", "console"), ("NOTICE_RESOLVED", "console")}


def test_a_notice_that_fails_never_costs_the_event_its_trigger(tmp_path: Path) -> None:
    """An error while deciding notices undoes only the notices (a savepoint) and is set
    aside: the engine's decisions and records of the same event stay."""
    from dpc_core.engine import Engine
    from dpc_core.events import make_status_event
    from dpc_core.local import state

    store = SqliteStore(sqlite3.connect(tmp_path / "s.db", check_same_thread=False,
                                        isolation_level=None))
    state.init(store.conn)  # and no notice tables: writing a notice fails
    eng = Engine(store)
    eng.register(PipelineSpec(A, "p"))
    eng.register(PipelineSpec(C, "x", {"allOf": [{"name": "p", "account": A,
                                                  "status": ["SUCCEEDED"]}]},
                              parents=(f"{A}/p",)))
    eng.register(PipelineSpec(C, "f", {"anyOf": [{"name": "p", "account": A,
                                                  "status": ["FAILED"]}]},
                              parents=(f"{A}/p",)))
    event = make_status_event(account=A, region="local", pipeline="p", execution="r1",
                              status="FAILED", start_ms=1_795_662_000_000)
    with store.transaction():
        outcome = eng.handle(event)
        queued = notices.after_event(store, outcome)
    assert queued == 0
    assert [d.pipeline for d in outcome.decisions] == ["f"]
    assert store.get_run(f"arn:aws:states:local:{A}:execution:p:r1") is not None
    assert [c.child for c in store.claims()] == [f"{C}/f"]  # the fallback's claim was kept
    (problem,) = state.list_problems(store.conn)
    assert problem.source == "notices" and "lr_notices" in problem.error


def _deadline_store(tmp_path: Path, deadline: str) -> tuple[SqliteStore, PipelineSpec]:
    """A state.db with pipeline x (deadline ``deadline``) waiting on p."""
    from dpc_core.local import state

    store = SqliteStore(sqlite3.connect(tmp_path / "state.db", check_same_thread=False,
                                        isolation_level=None))
    state.init(store.conn)
    notices.init(store.conn)
    store.put_pipeline(PipelineSpec(A, "p"))
    return store, _x(store, deadline)


def _x(store: SqliteStore, deadline: str | None) -> PipelineSpec:
    """Pipeline x as (re)registered with ``deadline`` (the file was edited)."""
    info = {"deadline": deadline} if deadline else {}
    spec = PipelineSpec(C, "x", {"allOf": [{"name": "p", "account": A, "status": ["SUCCEEDED"]}]},
                        info=info, parents=(f"{A}/p",))
    store.put_pipeline(spec)
    return spec


def _at(hour: int, minute: int = 0) -> int:
    return int(datetime(2026, 11, 26, hour, minute, tzinfo=UTC).timestamp() * 1000)


def _due(store: SqliteStore) -> list[tuple[str, int, int | None]]:
    return store.conn.execute("SELECT window, due_ms, fired_ms FROM lr_deadlines").fetchall()


def test_a_deadline_moved_later_fires_at_its_new_time_quoting_it(tmp_path: Path) -> None:
    """Moved from 06:00 to 23:59 while the runtime ran: it fired at 06:00 anyway, saying
    "by its deadline 23:59"."""
    store, spec = _deadline_store(tmp_path, "06:00")
    with store.transaction():
        assert notices.check_deadlines(store, [spec], _at(5)) == 0  # recorded: due 06:00
    spec = _x(store, "23:59")
    with store.transaction():
        assert notices.check_deadlines(store, [spec], _at(7)) == 0
    assert _due(store) == [(DAY, _at(23, 59), None)]
    with store.transaction():
        assert notices.check_deadlines(store, [spec], _at(23, 59)) == 1
    (row,) = notices.list_notices(store.conn)
    assert f"has not succeeded for {DAY} by its deadline 23:59 UTC" in row.text


def test_a_deadline_moved_earlier_before_a_restart_fires_at_the_next_check(
        tmp_path: Path) -> None:
    """Moved from 23:59 to 06:00 while no runtime ran: state.db kept 23:59, no LATE."""
    store, spec = _deadline_store(tmp_path, "23:59")
    with store.transaction():
        assert notices.check_deadlines(store, [spec], _at(5)) == 0
    spec = _x(store, "06:00")
    with store.transaction():
        assert notices.check_deadlines(store, [spec], _at(7)) == 1
    assert _due(store) == [(DAY, _at(6), _at(7))]
    (row,) = notices.list_notices(store.conn)
    assert "by its deadline 06:00 UTC" in row.text


def test_a_removed_deadline_never_fires(tmp_path: Path) -> None:
    store, spec = _deadline_store(tmp_path, "06:00")
    with store.transaction():
        assert notices.check_deadlines(store, [spec], _at(5)) == 0
    _x(store, None)  # the runtime checks the pipelines that have a deadline: none now
    with store.transaction():
        assert notices.check_deadlines(store, [], _at(7)) == 0
    assert _due(store) == [] and notices.list_notices(store.conn) == []


@pytest.mark.case_study
def test_an_edited_deadline_applies_after_a_restart_and_while_up_runs(tmp_path: Path) -> None:
    """The real runtime: the due time in state.db follows pipeline.yaml, and the LATE
    notice quotes the deadline that fired."""
    import subprocess
    import time

    from local_helpers import DPC, wait_for

    # 23:59 of today has not passed (the test does not run in the last minute of a day);
    # 00:00 of today always has.
    ws = with_owners(copy_workspace(SHELL_CASE_STUDY, tmp_path / "ws"), deadline="23:59")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    x = ws / "pipeline-x" / "pipeline.yaml"
    db = ws / ".dpc" / "state.db"

    def due() -> list[tuple[str, int]]:
        conn = sqlite3.connect(db)
        try:
            return conn.execute("SELECT window, due_ms FROM lr_deadlines").fetchall()
        finally:
            conn.close()

    midnight = int(datetime.fromisoformat(f"{today}T00:00:00+00:00").timestamp() * 1000)
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)
    assert due() == [(today, midnight + (23 * 60 + 59) * 60_000)] and not notes(ws)
    x.write_text(x.read_text().replace('deadline: "23:59"', 'deadline: "00:00"'))
    dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws)  # a restart
    assert due() == [(today, midnight)]
    late = notes(ws, "PIPELINE_LATE")
    assert len(late) == 2 and all("by its deadline 00:00 UTC" in n["text"] for n in late)

    # While up runs: tomorrow's window would be the next; edit the window of today instead
    # by starting from a fresh state with 23:59, then moving it to 00:00 live.
    shutil.rmtree(ws / ".dpc")
    x.write_text(x.read_text().replace('deadline: "00:00"', 'deadline: "23:59"'))
    log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen([DPC, "local", "up", "--no-schedule", "-w", str(ws)], stdout=log,
                          stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: (tmp_path / "up.log").read_text().count("ready in") == 1
                 and db.exists() and due() != [], "the runtime recorded the deadline")
        time.sleep(1.5)  # a deadline check or two with 23:59: nothing fires
        assert not notes(ws, "PIPELINE_LATE")
        x.write_text(x.read_text().replace('deadline: "23:59"', 'deadline: "00:00"'))
        wait_for(lambda: len(notes(ws, "PIPELINE_LATE")) == 2, "the edited deadline fired")
    finally:
        up.send_signal(2)
        assert up.wait(timeout=60) == 130  # stopped by Ctrl-C
        log.close()
    assert all("by its deadline 00:00 UTC" in n["text"] for n in notes(ws, "PIPELINE_LATE"))
    assert due() == [(today, midnight)]


@pytest.mark.parametrize(("kind", "channel", "seed"), [
    ("LATE", "slack", 1), ("LATE", "slack", 2), ("LATE", "opsgenie", 3),
    ("LATE", "opsgenie", 4), ("BLOCKED", "slack", 5), ("BLOCKED", "opsgenie", 6)])
def test_a_notice_in_flight_when_the_runtime_is_killed_is_not_sent_twice(
        tmp_path: Path, kind: str, channel: str, seed: int) -> None:
    """kill -9 while a LATE or BLOCKED notice is being delivered (the endpoint has acted but
    answers 3 s later), then start again: one message in Slack, one alert in OpsGenie
    (count 1), and every email copy has the same Message-ID."""
    late = kind == "LATE"
    said = "has not succeeded" if late else "is blocked for"
    ws = with_owners(copy_workspace(SHELL_CASE_STUDY, tmp_path / "ws"),
                     deadline="00:00" if late else None)
    with_opsgenie(ws)
    with FakeSlack(token=TOKEN) as slack, FakeSmtp() as smtp, \
            FakeOpsGenie(api_key=KEY) as opsgenie:
        env = {**os.environ, "SLACK_BOT_TOKEN": TOKEN, "DPC_SLACK_API_URL": slack.api_url,
               "DPC_SMTP_HOST": smtp.host, "DPC_SMTP_PORT": str(smtp.port),
               "DPC_SMTP_FROM": "dpc@example.com",
               "OPSGENIE_API_KEY": KEY, "DPC_OPSGENIE_API_URL": opsgenie.url,
               "LISTINGS_FAIL": "" if late else "1"}
        if not late:
            dpc("local", "start", "listings", "--date", DAY, "-w", ws)

        def notice_posted() -> bool:
            return any(said in b.get("text", "") for b in slack.calls_of("chat.postMessage"))

        def alert_created() -> bool:
            return any(m == "POST" and p == "/v2/alerts" and "pipeline-x" in b.get("alias", "")
                       for m, p, b in opsgenie.calls())

        if channel == "slack":
            slack.delay("chat.postMessage", 3.0, when=said)
        else:
            opsgenie.delay(3.0)
        proc = subprocess.Popen([DPC, "local", "up", "--no-schedule", "-w", str(ws)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(notice_posted if channel == "slack" else alert_created,
                     f"the {kind} notice reaching {channel}")
            time.sleep(random.Random(seed).uniform(0.0, 1.5))  # within the 3 s in flight
            proc.kill()
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        slack.delay("chat.postMessage", 0)
        opsgenie.delay(0)
        dpc("local", "up", "--until-idle", "--no-schedule", "-w", ws, env=env, check=late)

        conn = sqlite3.connect(ws / ".dpc" / "state.db")
        (tries,) = [json.loads(p).get("tries") for (p,) in conn.execute(
            "SELECT payload FROM lr_outbox WHERE payload LIKE ?", (f"%PIPELINE_{kind}%",))]
        conn.close()
        roots = [r for r in slack.roots("data-pipeline-alerts")
                 if said in r.text and "pipeline-x" in r.text]
        assert len(roots) == 1 and slack.replies(roots[0]) == []
        alerts = [a for a in opsgenie.alerts if "pipeline-x" in a.alias]
        assert [(a.status, a.count) for a in alerts] == [("open", 1)]
        mails = [m for m in smtp.received if said in m.message["Subject"]]
        assert mails and len({m.message["Message-ID"] for m in mails}) == 1
        assert tries == 2  # the interrupted delivery was retried
