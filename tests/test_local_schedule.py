"""The local runtime fires schedules at the instants AWS would: its interpretation is
pinned to the EventBridge expression synthesized for the same pipeline."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from local_helpers import SEED, write_pipeline

from dpc_core.loader import load_pipelines
from dpc_core.local.runtime import Runtime, logical_date_of_firing, next_fire
from dpc_core.model import Pipeline
from dpc_core.schedule import Cron, Rate

INSTANTS = [datetime(2026, m, d, h, mi, tzinfo=UTC) for m, d, h, mi in (
    (1, 1, 0, 0), (3, 28, 23, 59), (3, 29, 1, 30), (6, 30, 2, 59), (6, 30, 3, 0),
    (10, 25, 0, 30), (11, 26, 23, 59), (12, 31, 23, 59))]


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Pipeline, dict[
        str, Any]]]:
    """The case study plus a time-zone and a rate pipeline, synthesized as `dpc synth` does."""
    from dpc_central.app import pipeline_app, pipeline_stack_name
    from dpc_central.testing import case_study_project

    root = tmp_path_factory.mktemp("sched")
    project = case_study_project(SEED, root / "project")
    emr = "compute: {type: emr}\n"
    step = "steps:\n  - {name: s, type: shell, command: echo hi}\n"
    write_pipeline(project, "madrid", "444444444444", "trigger:\n  schedule: {hour: 3, minute: 15}"
                   "\n  timezone: Europe/Madrid\n" + step + emr)
    write_pipeline(project, "every-2h", "444444444444",
                   "trigger:\n  schedule: {rate: rate(2 hours)}\n" + step + emr)
    pipelines = [p for p in load_pipelines([project]) if p.trigger.schedule is not None]
    out = root / "cdk.out"
    pipeline_app(pipelines, outdir=out, region="eu-west-1", nag=False).synth()
    return {p.name: (p, json.loads((out / f"{pipeline_stack_name(p)}.template.json")
                                   .read_text())) for p in pipelines}


def _schedule_of(template: dict[str, Any]) -> tuple[str, str]:
    """(expression, time zone) of the one schedule in a pipeline template."""
    found = []
    for res in template["Resources"].values():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in props:
            found.append((props["ScheduleExpression"], "UTC"))
        if res["Type"] == "AWS::Scheduler::Schedule":
            found.append((props["ScheduleExpression"],
                          props.get("ScheduleExpressionTimezone", "UTC")))
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("name,expected", [
    ("listings", ("cron(0 3 * * ? *)", "UTC")),
    ("searches", ("cron(0 5 * * ? *)", "UTC")),
    ("madrid", ("cron(15 3 * * ? *)", "Europe/Madrid")),
    ("every-2h", ("rate(2 hours)", "UTC")),
])
def test_the_synthesized_schedule_is_the_expression_the_runtime_reads(
        synthesized: dict[str, tuple[Pipeline, dict[str, Any]]], name: str,
        expected: tuple[str, str]) -> None:
    pipeline, template = synthesized[name]
    assert _schedule_of(template) == expected
    assert pipeline.trigger.schedule is not None
    assert pipeline.trigger.schedule.expression() == expected[0]


@pytest.mark.parametrize("name", ["listings", "searches", "madrid"])
def test_local_firings_equal_those_of_the_synthesized_cron(
        synthesized: dict[str, tuple[Pipeline, dict[str, Any]]], name: str) -> None:
    pipeline, template = synthesized[name]
    expression, tz = _schedule_of(template)
    aws = Cron.parse(expression)
    for t in INSTANTS:
        assert next_fire(pipeline, t, t) == aws.next_after(t, ZoneInfo(tz)), t


def test_local_firings_of_a_rate_count_from_the_last_firing(
        synthesized: dict[str, tuple[Pipeline, dict[str, Any]]]) -> None:
    pipeline, template = synthesized["every-2h"]
    rate = Rate.parse(_schedule_of(template)[0])
    anchor = datetime(2026, 11, 26, 0, 7, tzinfo=UTC)
    assert next_fire(pipeline, anchor, anchor) == anchor + timedelta(seconds=rate.seconds)
    assert next_fire(pipeline, anchor + timedelta(hours=3), anchor) == anchor + timedelta(hours=4)


def test_a_firing_in_a_time_zone_takes_that_zones_date(
        synthesized: dict[str, tuple[Pipeline, dict[str, Any]]]) -> None:
    pipeline, _ = synthesized["madrid"]
    fire = next_fire(pipeline, datetime(2026, 11, 26, 2, 0, tzinfo=UTC),
                     datetime(2026, 11, 26, 2, 0, tzinfo=UTC))
    assert fire == datetime(2026, 11, 26, 2, 15, tzinfo=UTC)  # 03:15 in Madrid (UTC+1)
    assert logical_date_of_firing(pipeline, datetime(2026, 11, 26, 23, 30, tzinfo=UTC)) \
        == "2026-11-27"


def test_a_firing_starts_one_run_even_if_fired_twice(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(SEED / "searches", ws / "searches")
    (ws / "searches" / "export_searches.sh").write_text("#!/bin/sh\necho exported\n")
    (ws / "searches" / "export_searches.sh").chmod(0o755)
    rt = Runtime(ws, schedules=False, out=lambda _: None)
    rt.open()
    try:
        rt.start()
        when = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)
        rt._fire("222222222222/searches", when)
        rt._fire("222222222222/searches", when)
        rt.serve(until_idle=True)
    finally:
        rt.shutdown()
    store = rt.ws.connect()
    rows = store.conn.execute("SELECT run_id, logical_date, reason, status FROM lr_runs") \
        .fetchall()
    assert len(rows) == 1
    run_id, logical, reason, status = rows[0]
    assert run_id.startswith("sched-20261126T0500-")
    assert (logical, reason, status) == ("2026-11-26", "schedule", "SUCCEEDED")
