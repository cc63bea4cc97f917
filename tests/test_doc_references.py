"""Every Markdown file the code, tests and docs point a reader to exists in the repository.

A reference such as ``docs/triggers.md`` or ``README.md`` in a docstring or comment is a
promise that the reader finds that page here; a name of a file that is not in the clone
(an outside spec, a renamed page) sends a newcomer nowhere.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".venv", ".git", "node_modules", "cdk.out", "__pycache__", "build", "dist"}
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".js", ".html"}
#: A path or bare name ending in .md, not part of a URL or a longer word.
MD_REF = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)*[\w-]+\.md)\b")


def _source_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        if path.is_file() and path.suffix in SUFFIXES:
            files.append(path)
    return files


def dangling_md_references(files: list[Path], root: Path = ROOT) -> list[str]:
    """``file:line: name`` for each .md name that resolves to no file of the repository.

    A name with a folder resolves from the repository root or from the referring file's
    folder; a bare name must be the name of some Markdown file of the repository."""
    md_names = {p.name for p in files if p.suffix == ".md"}
    missing = []
    for path in files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for ref in MD_REF.findall(line):
                if "/" in ref:
                    first = ref.split("/", 1)[0]
                    if not ((root / first).is_dir() or (path.parent / first).is_dir()):
                        continue  # a path inside another repository, named with its URL
                    ok = (root / ref).is_file() or (path.parent / ref).is_file()
                else:
                    ok = ref in md_names
                if not ok:
                    missing.append(f"{path.relative_to(root)}:{number}: {ref}")
    return missing


def test_every_md_reference_names_a_file_of_the_repository() -> None:
    assert dangling_md_references(_source_files()) == []


def test_a_reference_to_a_page_the_clone_lacks_is_found(tmp_path: Path) -> None:
    # Split so that this file names no missing page itself.
    outside_spec, gone = "TRIGGERS" ".md", "docs/gone" ".md"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "triggers.md").write_text("# rules\n")
    code = tmp_path / "engine.py"
    code.write_text(f'"""The rules: {outside_spec}; docs/triggers.md; {gone}."""\n')
    found = dangling_md_references([code], root=tmp_path)
    assert found == [f"engine.py:1: {outside_spec}", f"engine.py:1: {gone}"]
