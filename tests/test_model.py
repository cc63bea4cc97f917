"""The pipeline.yaml model: what a valid file means once loaded.

(What an invalid file reports is the broken corpus, tests/test_broken_corpus.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dpc_core.errors import ValidationFailed
from dpc_core.loader import load_pipelines, parse_yaml, validate_document
from dpc_core.model import (
    Block,
    NotificationType,
    Pipeline,
    Ref,
    ScheduleSpec,
    Status,
    Trigger,
    iter_refs,
    parse_status,
)

CASE_STUDY = Path(__file__).resolve().parents[1] / "examples" / "seed"
STEP = "steps:\n  - name: s\n    type: shell\n    command: 'true'\n"


def load(text: str) -> Pipeline:
    """Validate one pipeline.yaml text with the installed plugins."""
    data, pos = parse_yaml(text)
    return validate_document(data, pos, "pipeline.yaml")


# -- statuses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "status"),
    [("SUCCESS", Status.SUCCEEDED), ("FAILURE", Status.FAILED), ("SUCCEEDED", Status.SUCCEEDED),
     ("timed_out", Status.TIMED_OUT), ("success", Status.SUCCEEDED), (" ABORTED ", Status.ABORTED)],
)
def test_status_words_include_synonyms_and_any_case(word: str, status: Status) -> None:
    assert parse_status(word) is status


def test_an_unknown_status_lists_the_allowed_words() -> None:
    with pytest.raises(ValueError, match="allowed: RUNNING, SUCCEEDED, FAILED, TIMED_OUT, "
                                         "ABORTED, SUCCESS, FAILURE"):
        parse_status("DONE")


def test_only_running_is_not_terminal() -> None:
    assert [s for s in Status if not s.terminal] == [Status.RUNNING]


def test_a_single_status_word_is_read_as_a_list() -> None:
    assert Ref.model_validate({"name": "p", "status": "SUCCESS"}).status == [Status.SUCCEEDED]


# -- trigger -------------------------------------------------------------------------------


def test_trigger_defaults_are_daily_utc_never_rerun_and_no_condition() -> None:
    t = Trigger()
    assert (t.window, t.timezone, t.rerun, t.schedule, t.executions) == (
        "daily", "UTC", "never", None, None)


def test_a_pipeline_without_trigger_is_started_only_by_hand() -> None:
    p = load("name: manual\n" + STEP)
    assert p.trigger.schedule is None and p.trigger.executions is None


def test_schedule_hour_alone_means_once_a_day_at_that_hour() -> None:
    spec = ScheduleSpec.model_validate({"hour": 3})
    assert spec.expression() == "cron(0 3 * * ? *)"


@pytest.mark.parametrize(
    ("schedule", "expression"),
    [({"cron": "0 3 * * ? *"}, "cron(0 3 * * ? *)"),
     ({"cron": "cron(0 6 ? * MON-FRI *)"}, "cron(0 6 ? * MON-FRI *)"),
     ({"rate": "rate(5 minutes)"}, "rate(5 minutes)"),
     ({"weekDay": "FRI", "hour": 18, "minute": 30}, "cron(30 18 ? * FRI *)")],
)
def test_a_schedule_is_cron_fields_a_cron_or_a_rate(
    schedule: dict[str, Any], expression: str
) -> None:
    assert ScheduleSpec.model_validate(schedule).expression() == expression


def test_the_operator_defaults_to_and_and_takes_any_case() -> None:
    refs = [{"name": "a", "status": ["SUCCEEDED"]}]
    assert Block.model_validate({"allOf": refs}).operator == "AND"
    assert Block.model_validate({"allOf": refs, "anyOf": refs, "operator": "or"}).operator == "OR"


def test_nested_blocks_are_read_as_blocks_and_references_as_refs() -> None:
    block = Block.model_validate({"allOf": [
        {"name": "a", "status": ["SUCCEEDED"]},
        {"anyOf": [{"name": "b", "status": ["FAILED"]}, {"name": "c", "status": ["TIMED_OUT"]}]},
    ]})
    assert block.all_of is not None
    assert isinstance(block.all_of[0], Ref) and isinstance(block.all_of[1], Block)
    assert [r.name for r in iter_refs(block)] == ["a", "b", "c"]


def test_a_reference_without_account_means_the_childs_own_account() -> None:
    p = load('name: child\naccount: "333333333333"\ntrigger:\n  executions:\n    allOf:\n'
             "      - name: parent\n        status: [SUCCESS]\n"
             '      - name: other\n        account: "111111111111"\n        status: [SUCCESS]\n'
             + STEP)
    assert p.parents() == [("333333333333", "parent"), ("111111111111", "other")]


def test_parents_are_listed_once_even_when_referenced_twice() -> None:
    p = load('name: child\naccount: "333333333333"\ntrigger:\n  executions:\n    anyOf:\n'
             "      - name: parent\n        status: [FAILED]\n"
             "      - allOf:\n          - name: parent\n            status: [TIMED_OUT]\n"
             + STEP)
    assert p.parents() == [("333333333333", "parent")]


# -- top-level fields ------------------------------------------------------------------------


def test_an_unquoted_twelve_digit_account_is_kept_as_text() -> None:
    assert load("name: p\naccount: 111111111111\n" + STEP).account == "111111111111"


def test_compute_defaults_to_the_local_compute() -> None:
    assert load("name: p\n" + STEP).compute.type == "local"


def test_steps_are_validated_into_the_plugins_config_models() -> None:
    p = load("name: p\nsteps:\n  - name: s\n    type: spark\n    script: jobs/a.py\n"
             "    args: [--day, today]\n")
    step = p.steps[0]
    assert type(step).__name__ == "SparkStep"
    assert step.model_dump()["args"] == ["--day", "today"]


def test_notification_channels_are_case_insensitive() -> None:
    p = load(f"name: p\n{STEP}notifications:\n  type: PIPELINE\n  targets:\n"
             "    - channel: slack\n      addresses: [data-alerts]\n")
    assert p.notifications.type is NotificationType.PIPELINE
    assert p.notifications.targets[0].channel == "SLACK"


def test_notifications_default_to_failures_only_with_no_targets() -> None:
    p = load("name: p\n" + STEP)
    assert (p.notifications.type, p.notifications.targets) == (
        NotificationType.FAILURES_ONLY, [])


def test_a_validation_error_carries_every_problem_with_its_position() -> None:
    data, pos = parse_yaml("name: bad name\nsteps: []\n")
    with pytest.raises(ValidationFailed) as err:
        validate_document(data, pos, "p.yaml")
    assert [(p.line, p.column, p.field) for p in err.value.problems] == [
        (1, 7, "name"), (2, 8, "steps")]


# -- the case study --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def case_study() -> dict[str, Pipeline]:
    """The four case-study pipelines, by name."""
    return {p.name: p for p in load_pipelines([CASE_STUDY], require_account=True,
                                              check_refs=True)}


def test_the_case_study_loads_as_written(case_study: dict[str, Pipeline]) -> None:
    assert sorted(case_study) == ["listings", "listings-fallback", "pipeline-x", "searches"]


def test_pipeline_x_waits_for_both_parents_to_succeed(case_study: dict[str, Pipeline]) -> None:
    x = case_study["pipeline-x"]
    assert x.trigger.executions is not None
    refs = iter_refs(x.trigger.executions)
    assert [(r.account, r.name, r.status) for r in refs] == [
        ("111111111111", "listings", [Status.SUCCEEDED]),
        ("222222222222", "searches", [Status.SUCCEEDED])]
    assert x.trigger.executions.any_of is None


def test_the_fallback_runs_on_failure_or_timeout(case_study: dict[str, Pipeline]) -> None:
    fb = case_study["listings-fallback"]
    assert fb.trigger.executions is not None and fb.trigger.executions.any_of is not None
    assert iter_refs(fb.trigger.executions)[0].status == [Status.FAILED, Status.TIMED_OUT]


@pytest.mark.parametrize(("name", "expression"), [("listings", "cron(0 3 * * ? *)"),
                                                  ("searches", "cron(0 5 * * ? *)")])
def test_the_scheduled_parents_run_daily(
    case_study: dict[str, Pipeline], name: str, expression: str
) -> None:
    schedule = case_study[name].trigger.schedule
    assert schedule is not None and schedule.expression() == expression



# -- what the model refuses however it is built (YAML or Python) -----------------------------


def _nested(levels: int) -> dict[str, Any]:
    block: dict[str, Any] = {"allOf": [{"name": "p", "status": ["SUCCEEDED"]}]}
    for _ in range(levels - 1):
        block = {"allOf": [block]}
    return block


def test_a_condition_of_32_levels_is_accepted() -> None:
    trigger = Trigger.model_validate({"executions": _nested(32)})
    assert [r.name for r in iter_refs(trigger.executions)] == ["p"]  # type: ignore[arg-type]


@pytest.mark.parametrize("levels", [33, 10_000])
def test_a_condition_deeper_than_32_levels_is_refused_without_recursing(levels: int) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        Trigger.model_validate({"executions": _nested(levels)})
    (err,) = info.value.errors()
    assert err["type"] == "condition_too_deep"
    assert len(err["ctx"]["path"]) == 2 * 32  # the 33rd block: allOf[0] 32 times


@pytest.mark.parametrize("account", ["111111111111\n", "١١١١١١١١١١١١", "11111111111", "x" * 12])
def test_an_account_is_exactly_twelve_ascii_digits(account: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must be 12 digits"):
        Ref.model_validate({"name": "p", "account": account, "status": "SUCCEEDED"})


@pytest.mark.parametrize("zone", ["right/UTC", "posix/Europe/Madrid", "posixrules", "utc"])
def test_a_time_zone_is_one_the_schema_lists(zone: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown time zone"):
        Trigger.model_validate({"timezone": zone})


@pytest.mark.parametrize("name", ["a/b", "-x", "_x", ".", "..", "a" * 81, "a b"])
def test_a_step_name_is_a_safe_file_and_state_name(name: str) -> None:
    with pytest.raises(ValidationFailed, match=r"steps\[0\]\.name: must start with a letter"):
        load(f"name: p\nsteps:\n  - name: '{name}'\n    type: shell\n    command: 'true'\n")
