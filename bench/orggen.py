"""Synthetic organisations and status-event streams for benchmarks and tests.

An organisation is ``N`` pipelines over ``M`` accounts: about 30% scheduled roots, the rest
children with 1–4 parents (any account) under ``allOf``/``anyOf`` blocks, some nested, some
combined with ``operator: OR``. Parents are picked among the preceding ``locality`` pipelines,
as teams build on a neighbourhood of datasets, so the number of children per pipeline does
not grow with ``N`` (what docs/triggers.md rule 2 is about). Each pipeline sits in one of
``layers`` layers (roots in layer 0) and takes parents from lower layers only, so lineage is
at most ``layers - 1`` deep, as in a real organisation, and a day's runs fit in the day.

Events are K days of Step Functions status events in the real AWS shape
(:func:`dpc_core.events.make_status_event`): each pipeline runs once a day after its parents
(``RUNNING`` then a terminal status), a few runs fail and some failed runs are redriven,
delivered in event-time order.

Import it from a bench script or a test::

    sys.path.insert(0, str(Path(__file__).parent))  # bench/
    from orggen import generate_org, generate_events
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

#: The first day of generated event streams (UTC midnight).
DAY0 = datetime(2026, 11, 26, tzinfo=UTC)
REGION = "eu-west-1"

Doc = dict[str, Any]


def account_ids(m: int) -> list[str]:
    """``m`` distinct 12-digit account ids."""
    return [f"{100000000000 + 7919 * i:012d}" for i in range(1, m + 1)]


def _ref(rng: random.Random, parent: tuple[str, str], own: str, fallback: bool) -> Doc:
    account, name = parent
    status = ["FAILED", "TIMED_OUT"] if fallback else ["SUCCEEDED"]
    ref: Doc = {"name": name, "status": status}
    if account != own or rng.random() < 0.5:
        ref["account"] = account
    return ref


def _condition(rng: random.Random, parents: list[tuple[str, str]], own: str) -> Doc:
    """A block over ``parents``: mostly ``allOf``; nested ``anyOf``; sometimes ``OR``."""
    fallback = len(parents) == 1 and rng.random() < 0.1
    refs = [_ref(rng, p, own, fallback) for p in parents]
    if len(refs) == 1:
        return {"anyOf" if fallback else "allOf": refs}
    shape = rng.random()
    if len(refs) >= 3 and shape < 0.3:
        # allOf [a, anyOf [b, c, ...]]: one required input, alternatives for the rest.
        return {"allOf": [refs[0], {"anyOf": refs[1:]}]}
    if shape < 0.45:
        cut = rng.randint(1, len(refs) - 1)
        return {"allOf": refs[:cut], "anyOf": refs[cut:], "operator": rng.choice(["AND", "OR"])}
    if len(refs) >= 4 and shape < 0.6:
        # anyOf [allOf [a, b], allOf [c, d]]: two complete sources, either will do.
        half = len(refs) // 2
        return {"anyOf": [{"allOf": refs[:half]}, {"allOf": refs[half:]}]}
    return {"allOf": refs}


def generate_org(n: int, m: int | None = None, *, seed: int = 0, roots: float = 0.3,
                 locality: int = 100, layers: int = 6) -> list[Doc]:
    """``n`` pipeline.yaml documents (dicts) over ``m`` accounts (default ``n // 10``).

    Parents come before their children in the list, so registering in order never meets an
    undefined parent, and there is no cycle.
    """
    rng = random.Random(seed)
    accounts = account_ids(m or max(1, n // 10))
    docs: list[Doc] = []
    keys: list[tuple[tuple[str, str], int]] = []  # ((account, name), layer)
    step = [{"name": "work", "type": "shell", "command": "./work.sh"}]
    for i in range(n):
        account = rng.choice(accounts)
        name = f"pipeline-{i:05d}"
        doc: Doc = {"name": name, "account": account, "steps": step}
        layer = 0 if rng.random() < roots else rng.randint(1, layers - 1)
        pool = [k for k, lay in keys[-locality:] if lay < layer]
        if not pool:
            layer = 0
            doc["trigger"] = {"schedule": {"hour": rng.randint(0, 5), "minute": rng.choice(
                [0, 15, 30, 45])}}
        else:
            parents = rng.sample(pool, min(len(pool), rng.choice([1, 1, 2, 2, 2, 3, 3, 4])))
            trigger: Doc = {"executions": _condition(rng, parents, account)}
            if rng.random() < 0.1:
                trigger["window"] = "hourly"
            if rng.random() < 0.1:
                trigger["timezone"] = "Europe/Madrid"
            if rng.random() < 0.2:
                trigger["rerun"] = "on-new-parent-run"
            doc["trigger"] = trigger
        docs.append(doc)
        keys.append(((account, name), layer))
    return docs


def parents_of(doc: Doc) -> list[tuple[str, str]]:
    """``(account, name)`` of every pipeline a document's condition references."""
    out: dict[tuple[str, str], None] = {}

    def walk(block: Doc) -> None:
        for item in (*block.get("allOf", ()), *block.get("anyOf", ())):
            if "name" in item:
                out[(item.get("account", doc["account"]), item["name"])] = None
            else:
                walk(item)

    executions = doc.get("trigger", {}).get("executions")
    if executions:
        walk(executions)
    return list(out)


def children_count(docs: Iterable[Doc]) -> Counter[tuple[str, str]]:
    """How many children reference each ``(account, name)``."""
    counts: Counter[tuple[str, str]] = Counter()
    for doc in docs:
        for parent in parents_of(doc):
            counts[parent] += 1
    return counts


def _depths(docs: Sequence[Doc]) -> dict[tuple[str, str], int]:
    depth: dict[tuple[str, str], int] = {}
    for doc in docs:  # parents come first
        ps = parents_of(doc)
        depth[(doc["account"], doc["name"])] = 1 + max((depth[p] for p in ps), default=-1)
    return depth


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def generate_events(docs: Sequence[Doc], days: int, *, seed: int = 0,
                    failure_rate: float = 0.05, redrive_rate: float = 0.5) -> list[Doc]:
    """``days`` days of status events for every pipeline of ``docs``, in event-time order.

    Each pipeline runs once a day, a little after its deepest parent: ``RUNNING``, then
    ``SUCCEEDED`` (or ``FAILED``/``TIMED_OUT`` with ``failure_rate``; half of those are
    redriven: ``RUNNING`` and ``SUCCEEDED`` again with ``redriveCount`` 1).
    """
    rng = random.Random(seed)
    depth = _depths(docs)
    timed: list[tuple[int, int, Doc]] = []
    seq = 0
    for day in range(days):
        base = DAY0 + timedelta(days=day)
        for doc in docs:
            key = (doc["account"], doc["name"])
            start = base + timedelta(hours=1, minutes=30 * depth[key] + rng.randint(0, 20),
                                     seconds=rng.randint(0, 59))
            stop = start + timedelta(minutes=rng.randint(5, 30))
            common = {"account": doc["account"], "region": REGION, "pipeline": doc["name"],
                      "execution": f"d{day}-{doc['name']}", "start_ms": _ms(start)}
            status = "SUCCEEDED"
            if rng.random() < failure_rate:
                status = rng.choice(["FAILED", "TIMED_OUT"])
            runs = [(start, "RUNNING", 0), (stop, status, 0)]
            if status != "SUCCEEDED" and rng.random() < redrive_rate:
                again = stop + timedelta(minutes=rng.randint(5, 30))
                runs += [(again, "RUNNING", 1), (again + timedelta(minutes=10), "SUCCEEDED", 1)]
            for when, st, rc in runs:
                from dpc_core.events import make_status_event

                ev = make_status_event(
                    status=st, redrive_count=rc, time=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    stop_ms=None if st == "RUNNING" else _ms(when), event_id=f"ev-{seq}",
                    **common)
                timed.append((_ms(when), seq, ev))
                seq += 1
    timed.sort(key=lambda t: (t[0], t[1]))
    return [ev for _, _, ev in timed]


def write_org(docs: Iterable[Doc], root: Path) -> Path:
    """Write ``root/<account>/<name>/pipeline.yaml`` for each document; return ``root``."""
    for doc in docs:
        d = root / doc["account"] / doc["name"]
        d.mkdir(parents=True, exist_ok=True)
        (d / "pipeline.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root


def write_events(events: Iterable[Doc], path: Path) -> Path:
    """One event per line (the ``dpc simulate --events`` format); return ``path``."""
    with path.open("w", encoding="utf-8") as out:
        for ev in events:
            out.write(json.dumps(ev) + "\n")
    return path


def to_pipelines(docs: Iterable[Doc]) -> list[Any]:
    """Validate documents with the real pipeline.yaml model (as ``dpc simulate`` loads them)."""
    from dpc_core.loader import Positions, validate_document
    from dpc_core.plugins import get_registry

    reg = get_registry()
    return [validate_document(doc, Positions(), f"<{doc['name']}>", reg) for doc in docs]
