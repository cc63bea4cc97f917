"""Property-based tests of the trigger engine under hostile and accidental delivery.

Random organisations (1-3 scheduled roots and 1-4 children in three accounts; conditions of
nested ``allOf``/``anyOf`` blocks combined by ``AND``/``OR``; daily or hourly windows in UTC,
America/New_York or Europe/Madrid; both ``rerun`` policies) are validated by the real
pipeline.yaml model and registered into an :class:`Engine` over SQLite (both the plain and
the exclusive write-behind mode of ``dpc simulate``). Runs start around a day on which
clocks change (New York's and Madrid's autumn and spring days) or an ordinary one. Their
event streams mix every accident the contract names: duplicates, events of one run out of
order, events without ``input`` (AWS drops it when large), runs whose logical date arrives
only with a later event (they move), redrives, events forged by another account (its own
state machine carrying someone else's ``executionArn``, or naming another account's state
machine), and garbage (bad fields, other JSON values).

Checked on every stream, event by event:

* no exception escapes :meth:`Engine.handle`, whatever the event;
* a forged or garbage event records nothing and decides nothing;
* a real event is recorded as rule 1 says (new, duplicate or stale), computed here from the
  events alone;
* under ``rerun: never`` at most one trigger per child and window;
* every trigger's parents were, at that moment, the latest runs of their window (by start,
  then ARN; a run in the window of its one logical date) with a status their reference
  accepts, and the condition held over the latest runs of the window.

The bookkeeping below is a test oracle (which runs exist, their status, their window), not
a second engine: windows are named by the engine's own :func:`window_of`, which its own
tests pin down.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from helpers.engine import epoch_ms
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dpc_core.engine import Engine, window_of
from dpc_core.events import make_status_event
from dpc_core.loader import Positions, validate_document
from dpc_core.store import STATUS_RANK, Recorded, pkey
from dpc_core.stores.sqlite import SqliteStore

ACCOUNTS = ("111111111111", "222222222222", "333333333333")
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
ZONES = ("UTC", "America/New_York", "Europe/Madrid")
#: When runs start: two hours of real time around a clock change (New York and Madrid going
#: back, New York going forward) or an ordinary day, and the zone it happens in.
DAYS = ((datetime(2026, 11, 1, 5, tzinfo=UTC), "America/New_York"),
        (datetime(2026, 10, 25, 0, tzinfo=UTC), "Europe/Madrid"),
        (datetime(2026, 3, 8, 6, tzinfo=UTC), "America/New_York"),
        (datetime(2026, 11, 26, 0, tzinfo=UTC), "UTC"))
REGION = "eu-west-1"
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

Doc = dict[str, Any]


# -- organisations -------------------------------------------------------------------------


def _block(draw: st.DrawFn, parents: list[tuple[str, str]], own: str, depth: int) -> Doc:
    """A block over ``parents`` (each referenced at least once), nested up to 3 deep."""
    items: list[Doc] = []
    rest = list(parents)
    while rest:
        if depth < 3 and len(rest) >= 2 and draw(st.booleans()):
            size = draw(st.integers(2, len(rest)))
            items.append(_block(draw, rest[:size], own, depth + 1))
            rest = rest[size:]
            continue
        account, name = rest.pop(0)
        ref: Doc = {"name": name, "status": draw(st.lists(
            st.sampled_from((*TERMINAL, "SUCCESS")), min_size=1, max_size=2, unique=True))}
        if account != own or draw(st.booleans()):
            ref["account"] = account
        items.append(ref)
    kind = draw(st.sampled_from(["allOf", "anyOf", "both"] if len(items) >= 2 else
                                ["allOf", "anyOf"]))
    if kind != "both":
        return {kind: items}
    cut = draw(st.integers(1, len(items) - 1))
    block: Doc = {"allOf": items[:cut], "anyOf": items[cut:]}
    if draw(st.booleans()):
        block["operator"] = draw(st.sampled_from(["AND", "OR"]))
    return block


@st.composite
def orgs(draw: st.DrawFn, zone: str = "UTC") -> list[Doc]:
    """Pipeline documents, parents before children (time zones favour ``zone``)."""
    docs: list[Doc] = []
    keys: list[tuple[str, str]] = []
    step = [{"name": "work", "type": "shell", "command": "true"}]
    for i in range(draw(st.integers(1, 3))):
        account = draw(st.sampled_from(ACCOUNTS))
        docs.append({"name": f"p{i}", "account": account, "trigger": {"schedule": {"hour": 1}},
                     "steps": step})
        keys.append((account, f"p{i}"))
    for j in range(draw(st.integers(1, 4))):
        account = draw(st.sampled_from(ACCOUNTS))
        parents = draw(st.lists(st.sampled_from(keys), min_size=1, max_size=min(4, len(keys)),
                                unique=True))
        trigger: Doc = {"executions": _block(draw, parents, account, 1),
                        "window": draw(st.sampled_from(["daily", "hourly"])),
                        "timezone": draw(st.sampled_from((zone, zone, *ZONES))),
                        "rerun": draw(st.sampled_from(["never", "on-new-parent-run"]))}
        docs.append({"name": f"c{j}", "account": account, "trigger": trigger, "steps": step})
        keys.append((account, f"c{j}"))
    return docs


# -- event streams ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Real:
    """A genuine status event and what it says."""

    event: Doc
    arn: str
    pipeline: str  # account/name
    status: str
    rc: int
    start: int
    logical: str | None  # None also when the event carries no input


@dataclass(frozen=True)
class Hostile:
    """A forged or garbage event: it must record and decide nothing."""

    event: Any
    why: str


def _run_events(draw: st.DrawFn, account: str, name: str, run: str, start: datetime,
                logical: str | None) -> list[Real]:
    """RUNNING, a terminal status, maybe a redrive; some events lose their input."""
    arn = f"arn:aws:states:{REGION}:{account}:execution:{name}:{run}"
    statuses = [("RUNNING", 0), (draw(st.sampled_from(TERMINAL)), 0)]
    if statuses[1][0] != "SUCCEEDED" and draw(st.booleans()):
        statuses += [("RUNNING", 1), (draw(st.sampled_from(TERMINAL)), 1)]
    # A run started by dpc carries its logical date in every event's input, but AWS leaves
    # the input out of some: the run may be placed by its start, then move.
    out = []
    for status, rc in statuses:
        ev = make_status_event(account=account, region=REGION, pipeline=name, execution=run,
                               status=status, start_ms=epoch_ms(start), redrive_count=rc,
                               input={"dpc": {"logicalDate": logical}} if logical else None)
        carried = logical
        if draw(st.integers(0, 3)) == 0:
            del ev["detail"]["input"]
            carried = None
        out.append(Real(ev, arn, pkey(account, name), status, rc, epoch_ms(start), carried))
    return out


def _logical(draw: st.DrawFn, start: datetime) -> str | None:
    kind = draw(st.sampled_from(["none", "none", "day", "hour"]))
    if kind == "none":
        return None
    when = start - timedelta(hours=draw(st.integers(0, 48)))
    return when.strftime("%Y-%m-%d") if kind == "day" else when.strftime("%Y-%m-%dT%H")


GARBAGE_FIELDS: list[Doc] = [
    {"startDate": True}, {"startDate": 253_402_300_800_000}, {"startDate": -1},
    {"startDate": "1795662000000"}, {"redriveCount": 2**64}, {"redriveCount": None, "status": 7},
    {"status": "DONE"}, {"executionArn": "arn:aws:states:::execution"},
    {"stateMachineArn": None}, {"input": '{"dpc": {"logicalDate": "garbage"}}'},
    {"input": '{"dpc": {"logicalDate": "$(id)>x;#"}}'},
    {"input": '{"dpc": ' + "[" * 3000 + "]" * 3000 + "}"},
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["source", "detail-type", "detail", "account", "x"]), inner,
        max_size=4),
    max_leaves=12)


def _hostile(draw: st.DrawFn, reals: list[Real], docs: list[Doc]) -> Hostile:
    victim = draw(st.sampled_from(reals))
    kind = draw(st.sampled_from(["forged-arn", "other-account", "bad-field", "json"]))
    if kind == "json":
        return Hostile(draw(json_values), "a JSON value")
    ev = json.loads(json.dumps(victim.event))
    if kind == "bad-field":
        ev["detail"].update(draw(st.sampled_from(GARBAGE_FIELDS)))
        return Hostile(ev, "bad field")
    forger = draw(st.sampled_from([d for d in docs]))
    if kind == "other-account":
        others = [a for a in ACCOUNTS if a != victim.pipeline.split("/")[0]]
        ev["account"] = draw(st.sampled_from(others))  # names a state machine it does not own
        return Hostile(ev, "account does not own the state machine")
    # Its own state machine, someone else's execution (another account or state machine).
    if pkey(forger["account"], forger["name"]) == victim.pipeline:
        forger = {"account": forger["account"], "name": forger["name"] + "x"}
    ev["account"] = forger["account"]
    ev["detail"]["stateMachineArn"] = (f"arn:aws:states:{REGION}:{forger['account']}:"
                                       f"stateMachine:{forger['name']}")
    ev["detail"]["redriveCount"] = draw(st.sampled_from([victim.rc, 1000]))
    ev["detail"]["status"] = draw(st.sampled_from(("RUNNING", *TERMINAL)))
    return Hostile(ev, "executionArn of another state machine")


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Doc], list[Real | Hostile], bool]:
    """An organisation, a delivery stream, and whether the store is exclusive."""
    anchor, zone = draw(st.sampled_from(DAYS))
    docs = draw(orgs(zone))
    per_run: list[list[Real]] = []
    for doc in docs:
        for n in range(draw(st.integers(1, 3))):
            minutes = draw(st.integers(0, 119) | st.integers(-24 * 60, 36 * 60))
            start = anchor + timedelta(minutes=minutes)
            per_run.append(_run_events(draw, doc["account"], doc["name"], f"run-{n}", start,
                                       _logical(draw, start)))
    # Interleave runs, mostly keeping each run's order; some runs are delivered shuffled.
    queues = [draw(st.permutations(q)) if draw(st.integers(0, 4)) == 0 else list(q)
              for q in per_run]
    stream: list[Real | Hostile] = []
    while queues:
        i = draw(st.integers(0, len(queues) - 1))
        stream.append(queues[i].pop(0))
        if not queues[i]:
            queues.pop(i)
    reals = [e for e in stream if isinstance(e, Real)]
    for _ in range(draw(st.integers(0, 6))):  # duplicates, delivered anywhere after
        i = draw(st.integers(0, len(stream) - 1))
        stream.insert(draw(st.integers(i + 1, len(stream))), stream[i])
    for _ in range(draw(st.integers(0, 5))):  # forged and garbage events
        stream.insert(draw(st.integers(0, len(stream))), _hostile(draw, reals, docs))
    return docs, stream, draw(st.booleans())


# -- the oracle --------------------------------------------------------------------------------


@dataclass
class Run:
    """What the events said so far about one run."""

    pipeline: str
    status: str
    rc: int
    start: int
    logical: str | None


@dataclass
class Oracle:
    """Runs known from the events accepted so far."""

    runs: dict[str, Run] = field(default_factory=dict)

    def record(self, ev: Real) -> Recorded:
        """Rule 1, from the events alone; a run's first start and logical date stick, and
        an event bringing the logical date of a run placed by its start moves it."""
        run = self.runs.get(ev.arn)
        if run is None:
            self.runs[ev.arn] = Run(ev.pipeline, ev.status, ev.rc, ev.start, ev.logical)
            return Recorded.NEW
        if (run.status, run.rc) == (ev.status, ev.rc):
            return Recorded.DUPLICATE
        if (ev.rc, STATUS_RANK[ev.status]) <= (run.rc, STATUS_RANK[run.status]):
            return Recorded.STALE
        run.status, run.rc = ev.status, ev.rc
        if run.logical is None and ev.logical is not None:
            event("a run moved to its logical date")
            run.logical = ev.logical
        return Recorded.NEW

    def latest(self, parent: str, window: str, child: Doc) -> tuple[str, Run] | None:
        """The latest run of ``parent`` in ``child``'s ``window``."""
        trig = child["trigger"]
        placed = [(r.start, arn, r) for arn, r in self.runs.items() if r.pipeline == parent
                  and window_of(r.start, r.logical, trig["window"], trig["timezone"]) == window]
        if not placed:
            return None
        _, arn, run = max(placed, key=lambda t: (t[0], t[1]))
        return arn, run


def _statuses(ref: Doc) -> set[str]:
    return {"SUCCEEDED" if s == "SUCCESS" else s for s in ref["status"]}


def _holds(block: Doc, own: str, status_of: dict[str, str]) -> bool:
    def item(it: Doc) -> bool:
        if "name" not in it:
            return _holds(it, own, status_of)
        return status_of.get(pkey(it.get("account", own), it["name"])) in _statuses(it)

    parts = []
    if "allOf" in block:
        parts.append(all(item(i) for i in block["allOf"]))
    if "anyOf" in block:
        parts.append(any(item(i) for i in block["anyOf"]))
    return all(parts) if block.get("operator", "AND") == "AND" else any(parts)


def _refs(block: Doc, own: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for it in block.get("allOf", []) + block.get("anyOf", []):
        for key, statuses in (_refs(it, own).items() if "name" not in it else
                              [(pkey(it.get("account", own), it["name"]), _statuses(it))]):
            out.setdefault(key, set()).update(statuses)
    return out


# -- the property ------------------------------------------------------------------------------


@SETTINGS
@given(streams())
def test_no_stream_breaks_the_trigger_rules(case: tuple[list[Doc], list[Real | Hostile],
                                                        bool]) -> None:
    docs, stream, exclusive = case
    engine = Engine(SqliteStore(":memory:", exclusive=exclusive))
    engine.register_many(validate_document(d, Positions(), f"<{d['name']}>") for d in docs)
    children = {pkey(d["account"], d["name"]): d for d in docs if "executions" in d["trigger"]}
    oracle = Oracle()
    triggered: dict[tuple[str, str], int] = {}

    for item in stream:
        outcome = engine.handle(item.event)  # must not raise, whatever the event
        if isinstance(item, Hostile):
            event(f"hostile: {item.why}")
            assert outcome.recorded is None and outcome.decisions == [], item.why
            assert outcome.rejected or outcome.skipped, item.why
            continue
        assert outcome.rejected is None and outcome.skipped is None, outcome
        assert outcome.recorded is oracle.record(item)

        for d in outcome.decisions:
            event("a trigger" + (" in a repeated hour" if len(d.window) > 13 else ""))
            key = pkey(d.account, d.pipeline)
            child = children[key]
            trig, own = child["trigger"], child["account"]
            triggered[(key, d.window)] = triggered.get((key, d.window), 0) + 1
            if trig["rerun"] == "never":
                assert triggered[(key, d.window)] == 1, f"{key} twice in {d.window}"
            # The condition held over the latest runs of the window, and each parent named
            # is such a latest run, with a status its reference accepts.
            refs = _refs(trig["executions"], own)
            status_of = {}
            for parent in refs:
                latest = oracle.latest(parent, d.window, child)
                if latest is not None:
                    status_of[parent] = latest[1].status
            assert _holds(trig["executions"], own, status_of), (d, status_of)
            for p in d.parents:
                parent = pkey(p.account, p.pipeline)
                latest = oracle.latest(parent, d.window, child)
                assert latest is not None and latest[0] == p.execution_arn, (d, latest)
                assert p.status == latest[1].status and p.status in refs[parent], (d, p)
