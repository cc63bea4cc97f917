"""Which project script a shell step's command runs: read by the local plugin (the files
a deploy uploads) and by its AWS form (how the cluster runs it), so neither imports the
other."""

from __future__ import annotations

import shlex


def project_script(command: str) -> tuple[str, list[str]] | None:
    """The project script a command runs (``./export.sh args`` or ``scripts/x.sh``) and
    its arguments, or None (a plain command line, or one with pipes, redirections or
    substitutions, which runs as written)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words or not words[0].startswith(("./", "scripts/")) or \
            any(c in command for c in "|;&><`$"):
        return None
    return words[0], words[1:]
