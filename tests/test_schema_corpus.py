"""What an editor sees: `dpc schema` checked by check-jsonschema over the broken corpus.

check-jsonschema validates YAML the way editors do (ECMA-262 regular expressions for
``pattern``). The schema cannot say everything `dpc validate` says (a range that runs
backwards, a duplicate step name, a missing plugin): the test counts what it catches,
prints the count (``pytest -s``), and insists on the cases users met in editors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BROKEN = REPO / "tests" / "broken"
BIN = Path(sys.executable).parent
VALID = sorted([*(REPO / "examples").glob("*/*/pipeline.yaml")])
# Files made to break YAML parsers: check-jsonschema's own parser (ruamel) overflows the
# stack on 1,000 nested `[` and would walk the alias bomb's billion values. Editors are no
# defence there; `dpc validate`'s limits are (tests/broken/*/expected.txt).
# A scalar tag that does not fit its value (`!!bool maybe`, an empty `!!int`) raises a
# KeyError/IndexError inside ruamel as it did inside PyYAML.
HOSTILE = {"yaml_1000_nested_brackets", "yaml_alias_bomb", "yaml_alias_refers_to_itself",
           "tag_bool_not_boolean", "tag_int_without_value"}
CASES = sorted(p.name for p in BROKEN.iterdir()
               if (p / "pipeline.yaml").is_file() and p.name not in HOSTILE)
# What users met: an editor accepted these, `dpc validate` refused them.
NAMED = {
    "account_not_12_digits": "$.account",            # account: "12345"
    "cron_field_out_of_range": "$.trigger.schedule.hour",  # hour: 27
    "cron_not_a_cron": "$.trigger.schedule.cron",     # cron: "not a cron"
    "timezone_on_mars": "$.trigger.timezone",         # timezone: Mars/Olympus
    "retries_count_too_high": "$.steps[0].retries",  # retries: 11
    "retries_unknown_error": "$.steps[0].retries.on[1]",  # on: [FAILED, CRASHED]
    "timeout_without_unit": "$.steps[0].timeout",     # timeout: 30
    "catchup_without_schedule": "$.trigger",          # catchup on a parent trigger
}


def _schema() -> dict[str, Any]:
    proc = subprocess.run([str(BIN / "dpc"), "schema"], capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    """`dpc schema` with every installed plugin."""
    return _schema()


@pytest.fixture(scope="module")
def report(schema: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One check-jsonschema run over the corpus and the valid examples, by file."""
    path = tmp_path_factory.mktemp("schema") / "pipeline.schema.json"
    path.write_text(json.dumps(schema))
    files = [str(BROKEN / c / "pipeline.yaml") for c in CASES] + [str(p) for p in VALID]
    proc = subprocess.run([str(BIN / "check-jsonschema"), "--schemafile", str(path),
                           "--output-format", "json", *files],
                          capture_output=True, text=True, timeout=300)
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def _case(filename: str) -> str:
    return Path(filename).parent.name


def test_the_valid_pipelines_pass_the_schema(report: dict[str, Any]) -> None:
    valid = {str(p) for p in VALID}
    assert len(valid) >= 4
    assert [e for e in report["errors"] if e["filename"] in valid] == []
    assert [e for e in report["parse_errors"] if e["filename"] in valid] == []


@pytest.mark.parametrize(("case", "where"), sorted(NAMED.items()))
def test_the_schema_catches_what_editors_used_to_accept(
    case: str, where: str, report: dict[str, Any]
) -> None:
    errors = [e for e in report["errors"] if _case(e["filename"]) == case]
    assert errors, f"the schema accepts tests/broken/{case}"
    deepest = {e.get("best_deep_match", {}).get("path", e["path"]) for e in errors}
    assert where in deepest


def test_how_much_of_the_corpus_the_schema_catches(report: dict[str, Any]) -> None:
    caught = {_case(e["filename"]) for e in report["errors"]}
    unparsable = {_case(e["filename"]) for e in report["parse_errors"]}
    missed = sorted(set(CASES) - caught - unparsable)
    print(f"\nschema catches {len(caught)} of {len(CASES)} broken files checked "
          f"({len(unparsable)} more are not YAML to the editor; {len(HOSTILE)} hostile files "
          f"left to dpc validate); missed: {', '.join(missed)}")
    # Regression guard: 70 at the time of writing.
    assert len(caught) >= 70


def _properties(node: Any) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found += [(k, v) for k, v in (node.get("properties") or {}).items()
                  if isinstance(v, dict)]
        for key, value in node.items():
            if key != "not":
                found += _properties(value)
    elif isinstance(node, list):
        for value in node:
            found += _properties(value)
    return found


def test_titles_are_written_not_allof(schema: dict[str, Any]) -> None:
    titles = {name: prop.get("title") for name, prop in _properties(schema)}
    assert titles["allOf"] == "All of"
    assert titles["weekDay"] == "Day of week"
    for name, title in titles.items():
        assert title, f"{name} has no title"
        if any(c.isupper() for c in name[1:]):
            assert title != name.title(), f"{name} is titled {title!r}"


def test_every_core_field_has_a_description(schema: dict[str, Any]) -> None:
    core = {k: v for k, v in schema["$defs"].items()
            if k in {"Block", "Ref", "ScheduleSpec", "Trigger", "Target", "Notifications"}}
    props = _properties(core) + list(schema["properties"].items())
    missing = sorted(name for name, prop in props if not prop.get("description"))
    assert missing == []


def test_the_schema_lists_the_time_zones_and_bounds_the_numbers(schema: dict[str, Any]) -> None:
    trigger = schema["$defs"]["Trigger"]["properties"]
    assert "Europe/Madrid" in trigger["timezone"]["enum"]
    assert "Mars/Olympus" not in trigger["timezone"]["enum"]
    hour = schema["$defs"]["ScheduleSpec"]["properties"]["hour"]["anyOf"]
    assert {"type": "integer", "minimum": 0, "maximum": 23} in hour
