"""DynamoDB store for the trigger engine (the central account's trigger manager).

Three tables (keys, GSIs and item sizes: ``docs/dynamodb-tables.md``):

* **registry** ``(pk, sk)``: per pipeline ``P#account/name`` one spec item (``sk = #SPEC``)
  and, under each *parent's* partition, one edge item per child (``sk = C#child``) that
  carries a copy of the child's spec. ``lookup`` is then a single Query of the parent's
  partition: the parent's own item and every child spec, without a join.
* **runs** ``(arn)`` with GSI ``by_pipeline (pipeline, start)``: the run log.
* **windows** ``(child, window)``: one item per child window holding the latest run of
  each parent (top-level ``S#parent`` map attributes), the version/generation counters,
  the runs of the last trigger and the list of claims. While a claim's trigger event has
  not been acknowledged as delivered (:meth:`DynamoStore.mark_delivered`), the item
  carries ``U#<generation>`` and the keys of the sparse GSI ``undelivered``, which
  :meth:`DynamoStore.undelivered_claims` queries.

Request budget per event (uncontended): ``lookup`` 1 Query, ``record_run`` 1 conditional
UpdateItem, and per child 1 conditional UpdateItem (``update_slot``) plus, when the
condition holds, 1 conditional UpdateItem (``claim``): at most ``2 + 2·c``. Conditional
writes return the item that failed the condition (``ReturnValuesOnConditionCheckFailure
= ALL_OLD``) so telling a duplicate from a stale status, or reading the current window
after a lost update, needs no extra read.

boto3 is only imported here, and this module is only imported when the DynamoDB store
is used (never by ``dpc_core`` itself), so the CLI stays light.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dpc_core.store import (
    STATUS_RANK,
    Claim,
    PipelineSpec,
    Recorded,
    RunRecord,
    Slot,
    WindowState,
    spec_from_json,
)

SPEC_SK = "#SPEC"
EDGE_PREFIX = "C#"
SLOT_PREFIX = "S#"
RUNS_BY_PIPELINE = "by_pipeline"
#: Sparse GSI of the windows table: only windows with a claim not yet marked delivered.
UNDELIVERED_INDEX = "undelivered"
UNDELIVERED_PREFIX = "U#"
#: GSI keys: a constant partition (the index holds a handful of items at any time) and
#: the epoch ms of the oldest undelivered claim of the window.
PENDING = "pending"
PENDING_AT = "pending_at"
_PENDING_VALUE = "U"
#: TransactWriteItems takes at most 100 actions.
_MAX_TRANSACT = 100

AttrValue = dict[str, Any]
Item = dict[str, AttrValue]


@dataclass(frozen=True)
class DynamoTables:
    """Names of the three tables of one deployment."""

    registry: str
    runs: str
    windows: str

    @classmethod
    def with_prefix(cls, prefix: str) -> DynamoTables:
        """``{prefix}registry``, ``{prefix}runs``, ``{prefix}windows``."""
        return cls(f"{prefix}registry", f"{prefix}runs", f"{prefix}windows")


def table_definitions(tables: DynamoTables) -> list[dict[str, Any]]:
    """``CreateTable`` arguments of the three tables (on-demand billing).

    The single source of the table design: :func:`create_tables` uses it, and the CDK
    stack mirrors it (keys, the one GSI, attribute types).
    """
    def s(name: str) -> dict[str, str]:
        return {"AttributeName": name, "AttributeType": "S"}

    return [
        {"TableName": tables.registry, "BillingMode": "PAY_PER_REQUEST",
         "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
         "AttributeDefinitions": [s("pk"), s("sk")]},
        {"TableName": tables.runs, "BillingMode": "PAY_PER_REQUEST",
         "KeySchema": [{"AttributeName": "arn", "KeyType": "HASH"}],
         "AttributeDefinitions": [s("arn"), s("pipeline"),
                                  {"AttributeName": "start", "AttributeType": "N"}],
         "GlobalSecondaryIndexes": [{
             "IndexName": RUNS_BY_PIPELINE,
             "KeySchema": [{"AttributeName": "pipeline", "KeyType": "HASH"},
                           {"AttributeName": "start", "KeyType": "RANGE"}],
             "Projection": {"ProjectionType": "ALL"}}]},
        {"TableName": tables.windows, "BillingMode": "PAY_PER_REQUEST",
         "KeySchema": [{"AttributeName": "child", "KeyType": "HASH"},
                       {"AttributeName": "window", "KeyType": "RANGE"}],
         "AttributeDefinitions": [s("child"), s("window"), s(PENDING),
                                  {"AttributeName": PENDING_AT, "AttributeType": "N"}],
         # Sparse: a window is in it only between a claim and the acknowledgement of its
         # trigger event, so it stays near-empty; keys only (the sweep reads the item).
         "GlobalSecondaryIndexes": [{
             "IndexName": UNDELIVERED_INDEX,
             "KeySchema": [{"AttributeName": PENDING, "KeyType": "HASH"},
                           {"AttributeName": PENDING_AT, "KeyType": "RANGE"}],
             "Projection": {"ProjectionType": "KEYS_ONLY"}}]},
    ]


def create_tables(client: Any, prefix: str = "dpc-") -> DynamoTables:
    """Create the store's tables (tests, benchmarks, local tooling) and wait until active."""
    tables = DynamoTables.with_prefix(prefix)
    for definition in table_definitions(tables):
        client.create_table(**definition)
    waiter = client.get_waiter("table_exists")
    for definition in table_definitions(tables):
        waiter.wait(TableName=definition["TableName"], WaiterConfig={"Delay": 1})
    return tables


# -- attribute values -------------------------------------------------------------------
# Hand-written (de)serialisation of the few shapes used: faster than TypeSerializer and
# keeps numbers as int rather than Decimal.

def _s(value: str) -> AttrValue:
    return {"S": value}


def _n(value: int) -> AttrValue:
    return {"N": str(value)}


def _slot_av(slot: Slot) -> AttrValue:
    return {"M": {"arn": _s(slot.arn), "start": _n(slot.start_ms), "status": _s(slot.status),
                  "rc": _n(slot.redrive_count), "rank": _n(STATUS_RANK[slot.status])}}


def _slot(av: AttrValue) -> Slot:
    m = av["M"]
    return Slot(m["arn"]["S"], int(m["start"]["N"]), m["status"]["S"], int(m["rc"]["N"]))


def _claim_av(claim: Claim, at: int) -> AttrValue:
    parents = [{"M": {k: _s(str(v)) for k, v in p.items()}} for p in claim.parents]
    fields: dict[str, AttrValue] = {"generation": _n(claim.generation),
                                    "name": _s(claim.execution_name),
                                    "parents": {"L": parents}, "at": _n(at)}
    if claim.downstream:
        fields["downstream"] = {"BOOL": True}
    return {"M": fields}


def _window_state(item: Item | None) -> WindowState:
    if not item:
        return WindowState()
    slots = {k[len(SLOT_PREFIX):]: _slot(v) for k, v in item.items()
             if k.startswith(SLOT_PREFIX)}
    last = tuple(v["S"] for v in item.get("last_runs", {}).get("L", []))
    return WindowState(slots, int(item.get("version", {"N": "0"})["N"]),
                       int(item.get("generation", {"N": "0"})["N"]), last)


def _claims_of(item: Item) -> list[tuple[int, Claim]]:
    out = []
    for av in item.get("claims", {}).get("L", []):
        m = av["M"]
        parents = tuple({k: v["S"] for k, v in p["M"].items()} for p in m["parents"]["L"])
        out.append((int(m["at"]["N"]), Claim(item["child"]["S"], item["window"]["S"],
                                              int(m["generation"]["N"]), m["name"]["S"],
                                              parents,
                                              m.get("downstream", {}).get("BOOL", False))))
    return out


def _run(item: Item) -> RunRecord:
    def opt_s(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    return RunRecord(arn=item["arn"]["S"], pipeline=item["pipeline"]["S"],
                     status=item["status"]["S"], redrive_count=int(item["rc"]["N"]),
                     start_ms=int(item["start"]["N"]), logical=opt_s("logical"),
                     stop_ms=int(item["stop"]["N"]) if "stop" in item else None,
                     error=opt_s("error"))


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class DynamoStore:
    """The trigger store on DynamoDB (one instance may be shared by threads: boto3
    clients are thread-safe and the store keeps no per-event state)."""

    def __init__(self, client: Any, tables: DynamoTables | str = "dpc-",
                 consistent_reads: bool = True) -> None:
        """``client``: a boto3 DynamoDB client or a boto3 session; ``tables``: their names,
        or the prefix given to :func:`create_tables`.

        Reads are strongly consistent by default (a pipeline registered a moment ago is
        seen by the next event); eventually consistent reads halve the read cost.
        """
        if hasattr(client, "meta") and hasattr(client.meta, "client"):
            # A resource's client (de)serialises Python values itself; this store speaks
            # the low-level attribute-value format.
            raise TypeError("DynamoStore needs a boto3 DynamoDB client or session, "
                            "not a resource")
        if not hasattr(client, "update_item") and hasattr(client, "client"):  # a session
            client = client.client("dynamodb")
        self.client = client
        self.tables = tables if isinstance(tables, DynamoTables) else \
            DynamoTables.with_prefix(tables)
        self.consistent = consistent_reads
        self._clock_lock = threading.Lock()
        self._last_at = 0

    # -- transactions -------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """No-op: every write is atomic on its own (conditional writes on one item)."""
        yield

    # -- registry -----------------------------------------------------------------

    def _spec(self, text: str) -> PipelineSpec:
        return spec_from_json(text)

    def _spec_item(self, key: str) -> Item | None:
        resp = self.client.get_item(TableName=self.tables.registry,
                                    Key={"pk": _s("P#" + key), "sk": _s(SPEC_SK)},
                                    ConsistentRead=True)
        item: Item | None = resp.get("Item")
        return item

    def _write_registry(self, actions: list[dict[str, Any]]) -> bool:
        """Apply registry writes; False when the spec item's revision moved meanwhile.

        Up to 100 actions go in one transaction (spec + edges of up to 98 parents). Beyond
        that the edges are written first in chunks and the guarded spec item last.
        """
        chunks = [actions[i:i + _MAX_TRANSACT] for i in range(0, len(actions), _MAX_TRANSACT)]
        if len(chunks) > 1:  # the guarded spec write (first action) goes last
            chunks = [actions[1:][i:i + _MAX_TRANSACT]
                      for i in range(0, len(actions) - 1, _MAX_TRANSACT)] + [actions[:1]]
        for chunk in chunks:
            try:
                self.client.transact_write_items(TransactItems=chunk)
            except Exception as exc:
                if _error_code(exc) in {"TransactionCanceledException",
                                        "ConditionalCheckFailedException"}:
                    return False
                raise
        return True

    def put_pipeline(self, spec: PipelineSpec) -> None:
        """Register or replace a pipeline: its spec item, and its spec copied into an edge
        item under each parent's partition (edges of dropped parents are deleted)."""
        text = spec.to_json()
        parents = list(dict.fromkeys(spec.parents))
        for _ in range(20):  # optimistic concurrency on the spec item's revision
            old = self._spec_item(spec.key)
            rev = int(old["rev"]["N"]) if old else 0
            old_parents = PipelineSpec.from_json(old["spec"]["S"]).parents if old else ()
            put_spec: dict[str, Any] = {
                "TableName": self.tables.registry,
                "Item": {"pk": _s("P#" + spec.key), "sk": _s(SPEC_SK), "spec": _s(text),
                         "rev": _n(rev + 1), "updated": _n(int(time.time()))}}
            if old:
                put_spec["ConditionExpression"] = "rev = :rev"
                put_spec["ExpressionAttributeValues"] = {":rev": _n(rev)}
            else:
                put_spec["ConditionExpression"] = "attribute_not_exists(pk)"
            actions: list[dict[str, Any]] = [{"Put": put_spec}]
            actions += [{"Put": {"TableName": self.tables.registry,
                                 "Item": {"pk": _s("P#" + p), "sk": _s(EDGE_PREFIX + spec.key),
                                          "spec": _s(text)}}} for p in parents]
            actions += [{"Delete": {"TableName": self.tables.registry,
                                    "Key": {"pk": _s("P#" + p),
                                            "sk": _s(EDGE_PREFIX + spec.key)}}}
                        for p in dict.fromkeys(old_parents) if p not in parents]
            if self._write_registry(actions):
                return
        raise RuntimeError(f"registration of {spec.key} kept conflicting")  # pragma: no cover

    def delete_pipeline(self, account: str, name: str) -> bool:
        """Unregister a pipeline and its edge items as a child."""
        key = f"{account}/{name}"
        for _ in range(20):
            old = self._spec_item(key)
            if old is None:
                return False
            parents = dict.fromkeys(PipelineSpec.from_json(old["spec"]["S"]).parents)
            actions: list[dict[str, Any]] = [{"Delete": {
                "TableName": self.tables.registry,
                "Key": {"pk": _s("P#" + key), "sk": _s(SPEC_SK)},
                "ConditionExpression": "rev = :rev",
                "ExpressionAttributeValues": {":rev": old["rev"]}}}]
            actions += [{"Delete": {"TableName": self.tables.registry,
                                    "Key": {"pk": _s("P#" + p), "sk": _s(EDGE_PREFIX + key)}}}
                        for p in parents]
            if self._write_registry(actions):
                return True
        raise RuntimeError(f"deletion of {key} kept conflicting")  # pragma: no cover

    def get_pipeline(self, key: str) -> PipelineSpec | None:
        """The spec of ``account/name``."""
        resp = self.client.get_item(TableName=self.tables.registry,
                                    Key={"pk": _s("P#" + key), "sk": _s(SPEC_SK)},
                                    ConsistentRead=self.consistent,
                                    ProjectionExpression="spec")
        item = resp.get("Item")
        return self._spec(item["spec"]["S"]) if item else None

    def pipelines(self) -> Iterator[PipelineSpec]:
        """Every registered pipeline, by key (a Scan: not on the event path)."""
        specs = [self._spec(item["spec"]["S"]) for item in self._paginate(
            "scan", TableName=self.tables.registry, FilterExpression="sk = :sk",
            ExpressionAttributeValues={":sk": _s(SPEC_SK)}, ProjectionExpression="spec")]
        return iter(sorted(specs, key=lambda s: s.key))

    def lookup(self, key: str) -> tuple[PipelineSpec, list[PipelineSpec]] | None:
        """The pipeline and its children: one Query of the parent's registry partition
        (more pages only past 1 MB of child specs)."""
        me: PipelineSpec | None = None
        children: list[PipelineSpec] = []
        for item in self._paginate("query", TableName=self.tables.registry,
                                   KeyConditionExpression="pk = :pk",
                                   ExpressionAttributeValues={":pk": _s("P#" + key)},
                                   ConsistentRead=self.consistent):
            spec = self._spec(item["spec"]["S"])
            if item["sk"]["S"] == SPEC_SK:
                me = spec
            else:
                children.append(spec)
        if me is None:
            return None
        return me, children  # sorted by child key: the sort key order

    def _paginate(self, op: str, **kwargs: Any) -> Iterator[Item]:
        call = getattr(self.client, op)
        while True:
            resp = call(**kwargs)
            yield from resp.get("Items", [])
            last = resp.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    # -- run log ------------------------------------------------------------------

    def record_run(self, run: RunRecord) -> Recorded:
        """Insert or advance a run; duplicates and stale statuses change nothing."""
        return self.record(run)[0]

    def record(self, run: RunRecord) -> tuple[Recorded, RunRecord | None]:
        """One conditional UpdateItem: insert, or advance past an older (redrive, status).

        The item as it was comes back with the write (``ReturnValues = ALL_OLD``) or with
        the failed condition, which tells a duplicate (same status and redriveCount) from
        a stale status: no extra read either way.
        """
        names = {"#pl": "pipeline", "#st": "status", "#rc": "rc", "#rk": "rank",
                 "#start": "start", "#up": "updated"}
        values: dict[str, AttrValue] = {
            ":pl": _s(run.pipeline), ":st": _s(run.status), ":rc": _n(run.redrive_count),
            ":rk": _n(STATUS_RANK[run.status]), ":start": _n(run.start_ms),
            ":up": _n(int(time.time()))}
        sets = ["#pl = if_not_exists(#pl, :pl)", "#st = :st", "#rc = :rc", "#rk = :rk",
                "#start = if_not_exists(#start, :start)", "#up = :up"]
        removes = []
        if run.logical is not None:  # the first logical date seen sticks (as in SQLite)
            names["#lg"] = "logical"
            values[":lg"] = _s(run.logical)
            sets.append("#lg = if_not_exists(#lg, :lg)")
        for attr, value in (("stop", run.stop_ms), ("error", run.error)):
            names["#" + attr] = attr
            if value is None:
                removes.append("#" + attr)
            else:
                values[":" + attr] = _n(value) if isinstance(value, int) else _s(value)
                sets.append(f"#{attr} = :{attr}")
        expr = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            resp = self.client.update_item(
                TableName=self.tables.runs, Key={"arn": _s(run.arn)}, UpdateExpression=expr,
                ConditionExpression="attribute_not_exists(#st) OR #rc < :rc "
                                    "OR (#rc = :rc AND #rk < :rk)",
                ExpressionAttributeNames=names, ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD", ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except Exception as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = getattr(exc, "response", {}).get("Item")
            # An endpoint that does not return the item: one extra read.
            prior = self.get_run(run.arn) if old is None else _run(old)
            same = prior is not None and (prior.status, prior.redrive_count) == (
                run.status, run.redrive_count)
            return (Recorded.DUPLICATE if same else Recorded.STALE), prior
        old = resp.get("Attributes")
        return Recorded.NEW, (_run(old) if old and "status" in old else None)

    def get_run(self, arn: str) -> RunRecord | None:
        """One run by ARN."""
        resp = self.client.get_item(TableName=self.tables.runs, Key={"arn": _s(arn)},
                                    ConsistentRead=self.consistent)
        item = resp.get("Item")
        return _run(item) if item else None

    def runs_of(self, key: str, since_ms: int = 0) -> list[RunRecord]:
        """Runs of one pipeline, oldest first (GSI ``by_pipeline``: eventually consistent)."""
        items = self._paginate("query", TableName=self.tables.runs, IndexName=RUNS_BY_PIPELINE,
                               KeyConditionExpression="#pl = :pl AND #start >= :since",
                               ExpressionAttributeNames={"#pl": "pipeline", "#start": "start"},
                               ExpressionAttributeValues={":pl": _s(key),
                                                          ":since": _n(since_ms)})
        return sorted((_run(i) for i in items), key=lambda r: (r.start_ms, r.arn))

    # -- windows and claims -------------------------------------------------------

    def _window_key(self, child: str, window: str) -> Item:
        return {"child": _s(child), "window": _s(window)}

    def window_state(self, child: str, window: str) -> WindowState:
        """The stored state of a child window."""
        resp = self.client.get_item(TableName=self.tables.windows,
                                    Key=self._window_key(child, window), ConsistentRead=True)
        return _window_state(resp.get("Item"))

    def update_slot(self, child: str, window: str, parent: str, slot: Slot) -> WindowState:
        """One conditional UpdateItem: the parent's slot is replaced only if ``slot``
        supersedes it (:meth:`Slot.superseded_by`), bumping the window's version."""
        names = {"#s": SLOT_PREFIX + parent, "#arn": "arn", "#start": "start", "#rc": "rc",
                 "#rk": "rank", "#v": "version", "#g": "generation", "#lr": "last_runs"}
        values = {":slot": _slot_av(slot), ":arn": _s(slot.arn), ":start": _n(slot.start_ms),
                  ":rc": _n(slot.redrive_count), ":rk": _n(STATUS_RANK[slot.status]),
                  ":zero": _n(0), ":one": _n(1), ":empty": {"L": []}}
        # Same run: a higher (redriveCount, rank). Another run: a later (start, arn).
        condition = (
            "attribute_not_exists(#s)"
            " OR (#s.#arn = :arn AND (#s.#rc < :rc OR (#s.#rc = :rc AND #s.#rk < :rk)))"
            " OR (#s.#arn <> :arn AND (#s.#start < :start"
            " OR (#s.#start = :start AND #s.#arn < :arn)))")
        try:
            resp = self.client.update_item(
                TableName=self.tables.windows, Key=self._window_key(child, window),
                UpdateExpression="SET #s = :slot, #v = if_not_exists(#v, :zero) + :one, "
                                 "#g = if_not_exists(#g, :zero), "
                                 "#lr = if_not_exists(#lr, :empty)",
                ConditionExpression=condition, ExpressionAttributeNames=names,
                ExpressionAttributeValues=values, ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except Exception as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = getattr(exc, "response", {}).get("Item")
            return _window_state(old) if old is not None else self.window_state(child, window)
        return _window_state(resp["Attributes"])

    def replace_slot(self, child: str, window: str, parent: str, arn: str,
                     slot: Slot | None) -> WindowState:
        """One conditional UpdateItem: replace (or remove) ``parent``'s slot iff it holds
        run ``arn``, bumping the version so that a concurrent claim's compare-and-set fails."""
        names = {"#s": SLOT_PREFIX + parent, "#arn": "arn", "#v": "version"}
        values: dict[str, AttrValue] = {":arn": _s(arn), ":one": _n(1)}
        if slot is None:
            update = "REMOVE #s SET #v = #v + :one"
        else:
            update = "SET #s = :slot, #v = #v + :one"
            values[":slot"] = _slot_av(slot)
        try:
            resp = self.client.update_item(
                TableName=self.tables.windows, Key=self._window_key(child, window),
                UpdateExpression=update, ConditionExpression="#s.#arn = :arn",
                ExpressionAttributeNames=names, ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except Exception as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = getattr(exc, "response", {}).get("Item")
            return _window_state(old) if old is not None else self.window_state(child, window)
        return _window_state(resp["Attributes"])

    def _now(self) -> int:
        # Strictly increasing per store, so claims made one after another list in order.
        with self._clock_lock:
            self._last_at = max(time.time_ns(), self._last_at + 1)
            return self._last_at

    def claim(self, child: str, window: str, seen: WindowState, claim: Claim) -> bool:
        """One conditional UpdateItem: compare-and-set (version, generation) and append the
        claim to the window item, so the claim and the generation change are one write.

        The same write marks the claim undelivered (``U#<generation>`` = epoch ms) and puts
        the window in the sparse GSI ``undelivered`` (``pending_at`` keeps the oldest
        undelivered claim's time) until :meth:`mark_delivered`.
        """
        last_runs = sorted({p["executionArn"] for p in claim.parents})
        at = self._now()
        at_ms = _n(at // 1_000_000)
        try:
            self.client.update_item(
                TableName=self.tables.windows, Key=self._window_key(child, window),
                UpdateExpression="SET #g = :ng, #lr = :lr, "
                                 "#cl = list_append(if_not_exists(#cl, :empty), :claim), "
                                 "#u = :ms, #p = :p, #pa = if_not_exists(#pa, :ms)",
                ConditionExpression="#v = :v AND #g = :g",
                ExpressionAttributeNames={"#v": "version", "#g": "generation",
                                          "#lr": "last_runs", "#cl": "claims",
                                          "#u": UNDELIVERED_PREFIX + str(claim.generation),
                                          "#p": PENDING, "#pa": PENDING_AT},
                ExpressionAttributeValues={
                    ":v": _n(seen.version), ":g": _n(seen.generation),
                    ":ng": _n(claim.generation), ":lr": {"L": [_s(a) for a in last_runs]},
                    ":empty": {"L": []}, ":claim": {"L": [_claim_av(claim, at)]},
                    ":ms": at_ms, ":p": _s(_PENDING_VALUE)})
        except Exception as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claims(self, child: str | None = None) -> list[Claim]:
        """Claims in the order they were made (a Query of the child's windows, or a Scan
        of all windows: not on the event path)."""
        if child is None:
            items = self._paginate("scan", TableName=self.tables.windows,
                                   ProjectionExpression="child, #w, claims",
                                   ExpressionAttributeNames={"#w": "window"})
        else:
            items = self._paginate("query", TableName=self.tables.windows,
                                   KeyConditionExpression="child = :c",
                                   ExpressionAttributeValues={":c": _s(child)},
                                   ProjectionExpression="child, #w, claims",
                                   ExpressionAttributeNames={"#w": "window"},
                                   ConsistentRead=True)
        made = [c for item in items for c in _claims_of(item)]
        made.sort(key=lambda t: (t[0], t[1].child, t[1].window, t[1].generation))
        return [c for _, c in made]

    # -- delivery of claimed triggers ----------------------------------------------------
    # Not part of the TriggerStore contract: the central account's handlers put a claim's
    # trigger event on EventBridge *after* the claim, so a claim whose PutEvents never
    # succeeded must be found again (a redelivered status event will not decide it anew).

    def mark_delivered(self, child: str, window: str, generation: int) -> None:
        """Acknowledge that the trigger event of claim ``generation`` was put.

        Usually one UpdateItem: it removes ``U#<generation>`` and the window's GSI keys,
        on condition that no later claim was made (``generation`` unchanged) and that the
        GSI's time is this claim's (no older claim of the window is still undelivered).
        Otherwise only ``U#<generation>`` goes, and the GSI keys follow when no ``U#``
        remains. Idempotent: marking a claim twice, or an unknown one, does nothing.
        """
        key = self._window_key(child, window)
        names = {"#u": UNDELIVERED_PREFIX + str(generation), "#p": PENDING,
                 "#pa": PENDING_AT, "#g": "generation"}
        try:
            self.client.update_item(
                TableName=self.tables.windows, Key=key,
                UpdateExpression="REMOVE #u, #p, #pa",
                ConditionExpression="#g = :g AND #pa = #u",
                ExpressionAttributeNames=names, ExpressionAttributeValues={":g": _n(generation)})
            return
        except Exception as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
        try:
            # The condition keeps an unknown window from being created by the REMOVE.
            resp = self.client.update_item(
                TableName=self.tables.windows, Key=key, UpdateExpression="REMOVE #u",
                ConditionExpression="attribute_exists(#g)",
                ExpressionAttributeNames={"#u": names["#u"], "#g": "generation"},
                ReturnValues="ALL_NEW")
        except Exception as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            return
        self._clear_pending_if_done(resp["Attributes"])

    def _clear_pending_if_done(self, item: Item) -> None:
        """Drop the window's GSI keys when none of its claims is undelivered, unless a
        claim was made meanwhile (the condition on ``generation``)."""
        if PENDING_AT not in item or any(k.startswith(UNDELIVERED_PREFIX) for k in item):
            return
        try:
            self.client.update_item(
                TableName=self.tables.windows,
                Key={"child": item["child"], "window": item["window"]},
                UpdateExpression="REMOVE #p, #pa", ConditionExpression="#g = :g",
                ExpressionAttributeNames={"#p": PENDING, "#pa": PENDING_AT,
                                          "#g": "generation"},
                ExpressionAttributeValues={":g": item["generation"]})
        except Exception as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise

    def undelivered_claims(self, older_than_ms: int, now_ms: int | None = None,
                           limit: int | None = None) -> list[Claim]:
        """Claims made at least ``older_than_ms`` ago (before ``now_ms``, default now)
        whose trigger events were never marked delivered, oldest first, at most ``limit``.

        One Query of the sparse GSI ``undelivered`` (empty in the steady state), then one
        strongly consistent GetItem per window found: the GSI is eventually consistent,
        the item says which claims are still undelivered.
        """
        now = int(time.time() * 1000) if now_ms is None else now_ms
        cutoff = now - older_than_ms
        found: list[tuple[int, Claim]] = []
        keys = self._paginate("query", TableName=self.tables.windows,
                              IndexName=UNDELIVERED_INDEX,
                              KeyConditionExpression="#p = :p AND #pa <= :cut",
                              ExpressionAttributeNames={"#p": PENDING, "#pa": PENDING_AT},
                              ExpressionAttributeValues={":p": _s(_PENDING_VALUE),
                                                         ":cut": _n(cutoff)})
        for key in keys:
            if limit is not None and len(found) >= limit:
                break
            item = self.client.get_item(
                TableName=self.tables.windows, ConsistentRead=True,
                Key={"child": key["child"], "window": key["window"]}).get("Item")
            if not item:
                continue
            pending = {int(k[len(UNDELIVERED_PREFIX):]): int(v["N"]) for k, v in item.items()
                       if k.startswith(UNDELIVERED_PREFIX)}
            if not pending:  # delivered meanwhile, GSI keys left by a race: tidy up
                self._clear_pending_if_done(item)
                continue
            for _, claim in _claims_of(item):
                at = pending.get(claim.generation)
                if at is not None and at <= cutoff:
                    found.append((at, claim))
        found.sort(key=lambda t: (t[0], t[1].child, t[1].window, t[1].generation))
        claims = [c for _, c in found]
        return claims[:limit] if limit is not None else claims

    def close(self) -> None:
        """Nothing to release (the client belongs to the caller)."""


__all__ = ["UNDELIVERED_INDEX", "DynamoStore", "DynamoTables", "create_tables",
           "table_definitions"]
