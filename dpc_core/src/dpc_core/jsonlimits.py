"""JSON decoding with a nesting limit.

Python's ``json`` recurses once per nesting level: a document nested a few thousand
levels deep raises ``RecursionError`` (or worse, exhausts the C stack in code that walks
the result). Every JSON text dpc reads from outside (event lines, ``detail.input``) goes
through :func:`loads` so that such a text is refused with a plain :class:`TooDeep`.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Strings (skipped whole, escapes included) or brackets: a nesting scan looks only at these.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


class TooDeep(ValueError):
    """A JSON text nests arrays/objects deeper than allowed."""


def depth_exceeds(text: str, limit: int) -> bool:
    """True when ``text`` (JSON) opens more than ``limit`` nested arrays/objects.

    Brackets inside strings do not count. The common case (fewer opening brackets in the
    whole text than the limit) costs two ``str.count`` calls.
    """
    if text.count("{") + text.count("[") <= limit:
        return False
    depth = 0
    for match in _TOKENS.finditer(text):
        c = match.group()
        if c == "{" or c == "[":
            depth += 1
            if depth > limit:
                return True
        elif c == "}" or c == "]":
            depth -= 1
    return False


def loads(text: str, *, max_depth: int) -> Any:
    """``json.loads`` that refuses texts nested deeper than ``max_depth`` levels.

    Raises :class:`TooDeep` or ``json.JSONDecodeError`` (both are ``ValueError``).
    """
    if depth_exceeds(text, max_depth):
        raise TooDeep(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except RecursionError:  # pragma: no cover - the scan above refuses such texts first
        raise TooDeep(f"JSON nested deeper than {max_depth} levels") from None
