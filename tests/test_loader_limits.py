"""The loader's hard limits: each says what was exceeded, with FILE:LINE:COL, in time.

The broken-file corpus (tests/broken/) holds the small hostile files; the ones here are
too large to keep in the repository, or check a time bound.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dpc_core.errors import ValidationFailed
from dpc_core.loader import MAX_FILE_BYTES, MAX_STRING, load_file, parse_yaml

STEPS = 'steps:\n  - {name: run, type: shell, command: "true"}\n'


def _refusal(path: Path) -> tuple[str, float]:
    started = time.process_time()
    with pytest.raises(ValidationFailed) as info:
        load_file(path)
    return str(info.value), time.process_time() - started


def test_a_10_mb_file_is_refused_at_the_line_where_it_crosses_the_limit(tmp_path: Path) -> None:
    f = tmp_path / "pipeline.yaml"
    f.write_text("name: big\n" + STEPS + "# a comment line of padding\n" * 370_000)
    message, cpu = _refusal(f)
    line = (("name: big\n" + STEPS).count("\n")
            + (MAX_FILE_BYTES - len("name: big\n" + STEPS)) // 28 + 1)
    assert message.startswith(f"{f}:{line}:")
    assert "larger than 64 KiB" in message
    assert cpu < 0.1


def test_a_file_just_under_the_size_limit_loads_in_under_a_second(tmp_path: Path) -> None:
    tags = "".join(f"  key{i:05d}: value{i:05d}\n" for i in range(2_700))
    text = "name: dense\ntags:\n" + tags + STEPS
    assert MAX_FILE_BYTES - 4_096 < len(text) <= MAX_FILE_BYTES
    f = tmp_path / "pipeline.yaml"
    f.write_text(text)
    started = time.process_time()
    assert len(load_file(f).pipeline.tags) == 2_700
    assert time.process_time() - started < 1.0


def test_a_nine_level_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    bomb = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 10))
    f = tmp_path / "pipeline.yaml"
    f.write_text("name: bomb\n" + bomb + STEPS)
    message, cpu = _refusal(f)
    assert message == (f"{f}:6:5: this value expands to more than 100,000 values (aliases "
                       "repeat what they refer to)")
    assert cpu < 0.5


@pytest.mark.parametrize(("text", "where", "what"), [
    ("x: &a [*a]\n", "1:8", "alias *a refers to a collection that contains it"),
    ("x: &a {k: [*a]}\n", "1:12", "alias *a refers to a collection that contains it"),
    ("x: " + "[" * 1000 + "]" * 1000 + "\n", "1:104", "nested more than 100 levels deep"),
    ("x:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 200)), "100:100",
     "nested more than 100 levels deep"),
    ("x: " + "y" * (MAX_STRING + 1) + "\n", "1:4", "a value of 10,001 characters"),
    ("a: 1\nb: \x1b[0m\n", "2:4", "control character U+001B is not allowed"),
    ("a: !!int 0xfz\n", "1:4", "cannot read '0xfz' as !!int"),
    ("? !!timestamp 2026-02-30\n: x\n", "1:3", "cannot read '2026-02-30' as !!timestamp"),
])
def test_hostile_yaml_is_a_yaml_error_at_its_position(text: str, where: str, what: str) -> None:
    import yaml

    with pytest.raises(yaml.YAMLError) as info:
        parse_yaml(text)
    mark = info.value.problem_mark  # type: ignore[attr-defined]
    assert f"{mark.line + 1}:{mark.column + 1}" == where
    assert what in str(info.value)


def test_a_fifo_or_a_device_named_pipeline_yaml_is_refused_without_blocking(
        tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer: `dpc validate` hung on one."""
    project = tmp_path / "project"
    project.mkdir()
    os.mkfifo(project / "pipeline.yaml")
    dpc = str(Path(sys.executable).parent / "dpc")
    for target in (project / "pipeline.yaml", project):
        proc = subprocess.run([dpc, "validate", str(target)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == (f"{project / 'pipeline.yaml'}:1:1: not a regular file "
                                       "(a FIFO); a pipeline.yaml must be a file")
    with pytest.raises(ValidationFailed, match=r"not a regular file \(a character device\)"):
        load_file(Path("/dev/zero"))
