"""The cross-account dependency graph (``dpc lineage``): model, status and renderers.

Plain Python over the registry (:class:`dpc_core.store.PipelineSpec`) and the run log
(:class:`dpc_core.store.RunRecord`); no AWS, no third-party imports. Nodes are pipelines
``(account, name)``; an edge goes from a parent to a child that waits on it, labelled
with the statuses the child waits for and whether the reference sits in an ``allOf``
(``all``) or ``anyOf`` (``any``) list. References to pipelines that are not registered
become *dangling* nodes. Registration refuses cycles, but every walk here still guards
against them, so a hand-edited registry cannot hang the command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dpc_core.errors import UnknownPipeline
from dpc_core.store import PipelineSpec, RunRecord, pkey, split_pkey

#: Fill colours by status (shared by Mermaid, DOT and HTML so the three read alike).
STATUS_COLOURS: dict[str, str] = {
    "SUCCEEDED": "#c8e6c9",
    "RUNNING": "#bbdefb",
    "FAILED": "#ffcdd2",
    "TIMED_OUT": "#ffe0b2",
    "ABORTED": "#e0e0e0",
    "NONE": "#ffffff",
}
#: Border colours by status (stronger than the fill, for legibility in a screenshot).
STATUS_BORDERS: dict[str, str] = {
    "SUCCEEDED": "#2e7d32",
    "RUNNING": "#1565c0",
    "FAILED": "#c62828",
    "TIMED_OUT": "#ef6c00",
    "ABORTED": "#616161",
    "NONE": "#78909c",
}
#: The text renderers here; the HTML page is :func:`dpc_core.ui.page.render_html`.
FORMATS = ("text", "mermaid", "dot")


@dataclass(frozen=True)
class Node:
    """One pipeline in the graph; ``registered`` is False for a dangling reference."""

    account: str
    name: str
    registered: bool = True
    status: str | None = None
    run: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    condition: str | None = None
    #: The condition as registered (``allOf``/``anyOf``/``operator``), for the page's
    #: AND/OR junctions; None for a root.
    block: Mapping[str, Any] | None = None

    @property
    def key(self) -> str:
        """``account/name``."""
        return pkey(self.account, self.name)

    @property
    def status_class(self) -> str:
        """The status word used for colours: the run's status, or ``NONE`` without a run."""
        return self.status if self.status in STATUS_COLOURS else "NONE"


@dataclass(frozen=True)
class Edge:
    """``parent`` → ``child``: the child waits for one of ``statuses`` of the parent."""

    parent: str
    child: str
    statuses: tuple[str, ...]
    group: str  # "all" or "any": the kind of list the reference sits in

    @property
    def label(self) -> str:
        """``SUCCEEDED`` or ``FAILED|TIMED_OUT``, with ``(any)`` for anyOf references."""
        words = "|".join(self.statuses)
        return words if self.group == "all" else f"{words} (any)"


@dataclass(frozen=True)
class LineageGraph:
    """Pipelines, the edges between them, and the date their statuses are for."""

    nodes: dict[str, Node]
    edges: tuple[Edge, ...]
    date: str | None = None

    # -- queries ------------------------------------------------------------------

    def accounts(self) -> list[str]:
        """Accounts in the graph, sorted."""
        return sorted({n.account for n in self.nodes.values()})

    def parents_of(self, key: str) -> list[Edge]:
        """Edges into ``key``."""
        return [e for e in self.edges if e.child == key]

    def children_of(self, key: str) -> list[Edge]:
        """Edges out of ``key``."""
        return [e for e in self.edges if e.parent == key]

    def roots(self) -> list[str]:
        """Nodes with no parent in the graph, by key; plus, defensively, one node of
        every cycle (a cycle has no root, and would otherwise not be shown at all)."""
        roots = [k for k in sorted(self.nodes) if not self.parents_of(k)]
        reached = set(self._reach(roots, down=True))
        for k in sorted(self.nodes):
            if k not in reached:
                roots.append(k)
                reached |= self._reach([k], down=True)
        return roots

    def resolve(self, name: str) -> str:
        """The key of ``name`` or ``account/name``; raises when unknown or ambiguous."""
        if "/" in name:
            if name in self.nodes:
                return name
            raise UnknownPipeline(f"no pipeline {name!r} in the graph")
        matches = sorted(k for k, n in self.nodes.items() if n.name == name)
        if not matches:
            raise UnknownPipeline(f"no pipeline named {name!r} in the graph")
        if len(matches) > 1:
            raise UnknownPipeline(f"{name!r} is ambiguous ({', '.join(matches)}); "
                                  "write account/name")
        return matches[0]

    def _reach(self, start: Iterable[str], *, down: bool) -> set[str]:
        # Iterative walk with a seen-set: safe on cycles.
        seen: set[str] = set()
        stack = list(start)
        while stack:
            key = stack.pop()
            if key in seen:
                continue
            seen.add(key)
            for e in self.edges:
                if down and e.parent == key:
                    stack.append(e.child)
                elif not down and e.child == key:
                    stack.append(e.parent)
        return seen

    def restrict(self, *, upstream: str | None = None,
                 downstream: str | None = None) -> LineageGraph:
        """The subgraph of what ``upstream`` depends on and/or what depends on
        ``downstream`` (each including the pipeline itself)."""
        if upstream is None and downstream is None:
            return self
        keep: set[str] = set()
        if upstream is not None:
            keep |= self._reach([self.resolve(upstream)], down=False)
        if downstream is not None:
            keep |= self._reach([self.resolve(downstream)], down=True)
        nodes = {k: n for k, n in self.nodes.items() if k in keep}
        edges = tuple(e for e in self.edges if e.parent in keep and e.child in keep)
        return LineageGraph(nodes, edges, self.date)

    def layers(self) -> dict[str, int]:
        """Depth of each node: 0 for roots, else one more than its deepest parent.

        Bounded by the node count so a cycle cannot loop forever."""
        depth = dict.fromkeys(self.nodes, 0)
        for _ in range(len(self.nodes)):
            changed = False
            for e in self.edges:
                if e.parent in depth and e.child in depth and depth[e.child] <= depth[e.parent]:
                    if depth[e.parent] + 1 >= len(self.nodes):
                        continue  # a cycle: stop pushing
                    depth[e.child] = depth[e.parent] + 1
                    changed = True
            if not changed:
                break
        return depth

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (embedded in the HTML page)."""
        return {
            "date": self.date,
            "accounts": self.accounts(),
            "nodes": [{"key": n.key, "account": n.account, "name": n.name,
                       "registered": n.registered, "status": n.status, "run": n.run,
                       "condition": n.condition, "info": dict(n.info),
                       "block": n.block}
                      for n in (self.nodes[k] for k in sorted(self.nodes))],
            "edges": [{"parent": e.parent, "child": e.child, "statuses": list(e.statuses),
                       "group": e.group, "label": e.label} for e in self.edges],
        }


# -- building -------------------------------------------------------------------------


def _walk_condition(block: Mapping[str, Any], own_account: str,
                    out: list[tuple[str, tuple[str, ...], str]]) -> str:
    """Collect ``(parent key, statuses, group)`` of every reference; return the condition
    as one line of text, e.g. ``all(listings@111… SUCCEEDED, searches@222… SUCCEEDED)``."""
    parts: list[str] = []
    for key, group in (("allOf", "all"), ("anyOf", "any")):
        items = block.get(key)
        if not items:
            continue
        texts: list[str] = []
        for item in items:
            if not isinstance(item, Mapping):
                continue
            if "name" in item and not ({"allOf", "anyOf"} & item.keys()):
                acct = str(item.get("account") or own_account)
                statuses = item.get("status") or []
                if isinstance(statuses, str):
                    statuses = [statuses]
                words = tuple(str(s) for s in statuses)
                out.append((pkey(acct, str(item["name"])), words, group))
                texts.append(f"{item['name']}@{acct} {'|'.join(words)}")
            else:
                texts.append(_walk_condition(item, own_account, out))
        parts.append(f"{group}({', '.join(texts)})")
    op = str(block.get("operator") or "AND").upper()
    return parts[0] if len(parts) == 1 else f" {op} ".join(parts)


def day_of(run: RunRecord) -> str:
    """The date a run counts for: its logical date, else the UTC day it started."""
    if run.logical:
        return run.logical[:10]
    return datetime.fromtimestamp(run.start_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def latest_run_on(runs: Iterable[RunRecord], date: str) -> RunRecord | None:
    """The latest-started run whose logical window is ``date`` (``YYYY-MM-DD``)."""
    best: RunRecord | None = None
    for r in runs:
        if day_of(r) == date and (best is None or (r.start_ms, r.arn) > (best.start_ms, best.arn)):
            best = r
    return best


def build_graph(specs: Iterable[PipelineSpec],
                runs_of: Callable[[str], list[RunRecord]] | None = None,
                date: str | None = None) -> LineageGraph:
    """The graph of the registered ``specs``; with ``runs_of`` and ``date``, each node
    carries the status of its latest run for that date."""
    nodes: dict[str, Node] = {}
    edges: list[Edge] = []
    for spec in sorted(specs, key=lambda s: s.key):
        refs: list[tuple[str, tuple[str, ...], str]] = []
        text = _walk_condition(spec.condition, spec.account, refs) if spec.condition else None
        status = run = None
        if runs_of is not None and date is not None:
            latest = latest_run_on(runs_of(spec.key), date)
            if latest is not None:
                status, run = latest.status, latest.arn
        nodes[spec.key] = Node(spec.account, spec.name, True, status, run, dict(spec.info), text,
                               spec.condition)
        merged: dict[tuple[str, str], list[str]] = {}
        for parent, statuses, group in refs:
            # One edge per parent and group: the same parent twice in one list is one wait.
            words = merged.setdefault((parent, group), [])
            words.extend(s for s in statuses if s not in words)
        edges.extend(Edge(p, spec.key, tuple(w), g) for (p, g), w in merged.items())
    for e in edges:
        if e.parent not in nodes:
            acct, name = split_pkey(e.parent)
            nodes[e.parent] = Node(acct, name, registered=False)
    return LineageGraph(dict(sorted(nodes.items())), tuple(edges), date)


# -- text -----------------------------------------------------------------------------


def _node_line(n: Node, date: str | None) -> str:
    if not n.registered:
        return f"{n.name} [{n.account}]  ?? not registered (dangling reference)"
    status = n.status or ("no run" if date else "")
    bits = [f"{n.name} [{n.account}]"]
    if status:
        bits.append(status)
    if n.info.get("schedule"):
        bits.append(f"schedule {n.info['schedule']}")
    if n.info.get("owner"):
        bits.append(f"owner {n.info['owner']}" + (f" <{n.info['contact']}>"
                                                  if n.info.get("contact") else ""))
    return "  ".join(bits)


def render_text(graph: LineageGraph) -> str:
    """A tree from each root down; a node seen before is referred to, not repeated."""
    lines: list[str] = []
    title = "Lineage"
    if graph.date:
        title += f" for {graph.date}"
    lines.append(f"{title}: {len(graph.nodes)} pipeline(s) in "
                 f"{len(graph.accounts())} account(s)")
    for acct in graph.accounts():
        names = sorted(n.name for n in graph.nodes.values() if n.account == acct)
        lines.append(f"  account {acct}: {', '.join(names)}")
    lines.append("")
    shown: set[str] = set()

    def walk(key: str, prefix: str, last: bool, edge: Edge | None, path: tuple[str, ...]) -> None:
        n = graph.nodes[key]
        branch = "" if edge is None else ("└── " if last else "├── ")
        wait = "" if edge is None else f"waits {edge.group} of: {'|'.join(edge.statuses)} ─ "
        line = f"{prefix}{branch}{wait}{_node_line(n, graph.date)}"
        if key in path:
            lines.append(line + "  (cycle!)")
            return
        kids = sorted(graph.children_of(key), key=lambda e: e.child)
        if key in shown and kids:
            lines.append(line + "  (children shown above)")
            return
        lines.append(line)
        shown.add(key)
        inner = prefix + ("" if edge is None else ("    " if last else "│   "))
        for i, e in enumerate(kids):
            walk(e.child, inner, i == len(kids) - 1, e, (*path, key))

    for root in graph.roots():
        walk(root, "", True, None, ())
    conds = [n for n in (graph.nodes[k] for k in sorted(graph.nodes)) if n.condition]
    if conds:
        lines.append("")
        lines.append("Conditions:")
        lines.extend(f"  {n.name} [{n.account}]: {n.condition}" for n in conds)
    return "\n".join(lines)


# -- Mermaid and DOT ------------------------------------------------------------------


def _ids(graph: LineageGraph) -> dict[str, str]:
    # Pipeline names allow '-', which neither Mermaid nor DOT like in bare ids.
    return {k: f"n{i}" for i, k in enumerate(sorted(graph.nodes))}


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def render_mermaid(graph: LineageGraph) -> str:
    """A Mermaid flowchart, one subgraph per account, nodes classed by status."""
    ids = _ids(graph)
    out = ["flowchart LR"]
    for i, acct in enumerate(graph.accounts()):
        out.append(f'  subgraph a{i}["account {acct}"]')
        for key in sorted(k for k, n in graph.nodes.items() if n.account == acct):
            n = graph.nodes[key]
            sub = n.status or ("no run" if graph.date else "")
            if not n.registered:
                sub = "not registered"
            owner = n.info.get("owner") if n.registered else None
            label = _mermaid_text(n.name + (f"<br/>{sub}" if sub else "")
                                  + (f"<br/>owner {owner}" if owner else ""))
            out.append(f'    {ids[key]}["{label}"]')
        out.append("  end")
    for e in graph.edges:
        out.append(f'  {ids[e.parent]} -- "{_mermaid_text(e.label)}" --> {ids[e.child]}')
    for status, fill in STATUS_COLOURS.items():
        out.append(f"  classDef {status} fill:{fill},stroke:{STATUS_BORDERS[status]},color:#000")
    out.append("  classDef dangling fill:#fff,stroke:#9e9e9e,stroke-dasharray:5 5,color:#616161")
    for key, n in graph.nodes.items():
        out.append(f"  class {ids[key]} {n.status_class if n.registered else 'dangling'}")
    return "\n".join(out)


def _dot(*lines: str) -> str:
    """A quoted DOT string; ``lines`` are joined with DOT's own line break."""
    return '"' + "\\n".join(s.replace("\\", "\\\\").replace('"', '\\"') for s in lines) + '"'


def render_dot(graph: LineageGraph) -> str:
    """Graphviz DOT: one cluster per account, fill colour by status, dangling dashed."""
    ids = _ids(graph)
    out = ["digraph lineage {", "  rankdir=LR;",
           '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
           '  edge [fontname="Helvetica", fontsize=10];']
    if graph.date:
        out.append(f"  label={_dot('dpc lineage for ' + graph.date)}; labelloc=t;")
    for i, acct in enumerate(graph.accounts()):
        out.append(f"  subgraph cluster_{i} {{")
        out.append(f"    label={_dot('account ' + acct)}; style=rounded; color=\"#90a4ae\";")
        for key in sorted(k for k, n in graph.nodes.items() if n.account == acct):
            n = graph.nodes[key]
            if n.registered:
                sub = n.status or ("no run" if graph.date else "")
                owner = [f"owner {n.info['owner']}"] if n.info.get("owner") else []
                label = _dot(n.name, *([sub] if sub else []), *owner)
                s = n.status_class
                out.append(f"    {ids[key]} [label={label}, fillcolor=\"{STATUS_COLOURS[s]}\""
                           f", color=\"{STATUS_BORDERS[s]}\"];")
            else:
                label = _dot(n.name, "(not registered)")
                out.append(f"    {ids[key]} [label={label}, "
                           'style="rounded,dashed", color="#9e9e9e", fontcolor="#616161"];')
        out.append("  }")
    for e in graph.edges:
        style = ", style=dashed" if e.group == "any" else ""
        out.append(f"  {ids[e.parent]} -> {ids[e.child]} [label={_dot(e.label)}{style}];")
    out.append("}")
    return "\n".join(out)


RENDERERS: dict[str, Callable[[LineageGraph], str]] = {
    "text": render_text,
    "mermaid": render_mermaid,
    "dot": render_dot,
}


def render(graph: LineageGraph, fmt: str) -> str:
    """Render ``graph`` in one of :data:`FORMATS`."""
    return RENDERERS[fmt](graph)
