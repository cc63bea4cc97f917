"""The HTML shell of the UI page, shared by ``dpc ui`` and ``dpc lineage --format html``.

Plain Python (no web framework): the page is a small document whose ``<script
type="application/json">`` carries the data and whose scripts draw everything. Every
name reaches the page as JSON and is put into the document with ``textContent``, never
as markup, so a name or description holding ``<``, quotes or ``</script>`` stays text.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from dpc_core.lineage import STATUS_BORDERS, STATUS_COLOURS

if TYPE_CHECKING:
    from dpc_core.lineage import LineageGraph

#: Fill and border per status; queued runs (local runtime) have their own colour.
COLOURS: dict[str, list[str]] = {
    **{s: [STATUS_COLOURS[s], STATUS_BORDERS[s]] for s in STATUS_COLOURS},
    "PENDING": ["#fff9c4", "#f9a825"],
}
#: The scripts and styles, in load order (dagre first: app.js uses it).
SCRIPTS = ("dagre.min.js", "app.js")
STYLES = ("app.css",)


def page_data(graph: LineageGraph, *, live: bool) -> dict[str, Any]:
    """The JSON the page starts from: the graph, the colours, and whether a server is
    behind it (live) or the page stands alone (a file from ``dpc lineage``)."""
    return {"live": live, "date": graph.date, "colours": COLOURS, "graph": graph.to_dict()}


def asset(name: str) -> str:
    """The text of a file of ``dpc_core/ui/static`` (inside the installed package)."""
    return (resources.files("dpc_core.ui") / "static" / name).read_text(encoding="utf-8")


def json_for_script(value: object) -> str:
    """JSON safe inside a ``<script>`` element: ``<`` written as ``\\u003c`` (the same
    JSON string) so no ``</script>`` or ``<!--`` can end or alter the element."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).replace("<", "\\u003c")


def render_page(data: dict[str, Any], *, inline: bool) -> str:
    """The page. ``inline``: styles and scripts inside it (a self-contained file that
    loads nothing); else linked from ``/static/`` of the server."""
    date = data.get("date")
    title = "dpc" + (f" — {date}" if date else "")
    if inline:
        styles = "".join(f"<style>{asset(n)}</style>" for n in STYLES)
        # A script element ends at "</script"; the vendored and own files never hold it
        # (tests/test_ui.py checks), so they can be inlined as they are.
        scripts = "".join(f"<script>{asset(n)}</script>" for n in SCRIPTS)
    else:
        styles = "".join(f'<link rel="stylesheet" href="/static/{n}">' for n in STYLES)
        scripts = "".join(f'<script src="/static/{n}"></script>' for n in SCRIPTS)
    import html

    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"{styles}</head><body><div id=\"app\"></div>"
            f"<script type=\"application/json\" id=\"dpc-data\">{json_for_script(data)}"
            f"</script>{scripts}</body></html>\n")


def render_html(graph: LineageGraph) -> str:
    """``dpc lineage --format html``: a self-contained page drawn by the same front end as
    ``dpc ui`` (its scripts, styles and the vendored dagre layout engine inlined, the graph
    embedded as JSON); it loads nothing from anywhere."""
    return render_page(page_data(graph, live=False), inline=True)
