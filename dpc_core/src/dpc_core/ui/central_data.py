"""The UI's data source over the central account: its registry and run log (DynamoDB),
read with the caller's AWS credentials, behind the interface of
:class:`dpc_core.ui.source.DataSource` (``dpc ui --central``).

Reads: the registry is one Scan, each pipeline's runs one Query of the run log's
``by_pipeline`` index; both are kept for a short while (:attr:`CentralSource.ttl`) so a
page load, its statuses and its health do not read the tables three times.

Live: one poller for all open pages (at most one read round per ``poll_s``): the
registry (pipelines added, removed, edited: a ``graph`` event) and the runs that started
in the last :data:`LOOKBACK_MS` (new runs and status changes: a ``change`` event). Older
runs rarely change; a page shows them fresh on its next read.

Actions (run, rerun, backfill) start the pipeline's state machine with the caller's own
credentials; what they may not do becomes :class:`~dpc_core.ui.source.ActionDenied`.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date as Date
from typing import TYPE_CHECKING, Any

from dpc_core.errors import DpcError
from dpc_core.ui.source import CHANGE, GRAPH, ActionDenied

if TYPE_CHECKING:
    from dpc_core.lineage import LineageGraph
    from dpc_core.store import PipelineSpec, RunRecord
    from dpc_core.stores.dynamodb import DynamoStore

#: Runs that started this long ago or less are watched for changes (3 days).
LOOKBACK_MS = 3 * 24 * 3600 * 1000
#: Error codes that mean "your credentials may not do this".
DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
          "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredTokenException")
#: Parallel Queries of the run log (one per pipeline).
READERS = 8


def _error(exc: BaseException) -> tuple[str, str, bool]:
    """``(code, message, denied)`` of a botocore error. An endpoint that answers a JSON
    protocol call with an XML error body leaves botocore only the HTTP status: the code
    and message are then read from the body's ``<Code>``/``<Message>``; any 403 is a
    refusal."""
    response = getattr(exc, "response", {}) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    message = str(response.get("Error", {}).get("Message", "")) or str(exc)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    xml_code = re.search(r"<Code>([^<]+)</Code>", str(exc))
    if xml_code and (not code or code.isdigit()):
        code = xml_code[1]
        xml_message = re.search(r"<Message>([^<]*)</Message>", str(exc))
        message = html.unescape(xml_message[1]) if xml_message else message
    return code, message, code in DENIED or status == 403 or code == "403"


def _day(value: str) -> str:
    try:
        return Date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        raise DpcError(f"{value!r} is not a date; write YYYY-MM-DD") from None


class CentralWatch:
    """One page's watch: compares the source's shared fingerprint with what it saw."""

    def __init__(self, source: CentralSource) -> None:
        self.source = source
        self.interval = source.poll_s
        self.last = source.fingerprint()

    def poll(self) -> list[str]:
        """``[]``, ``["change"]`` or ``["graph", "change"]``."""
        now = self.source.fingerprint()
        if now == self.last:
            return []
        events = [GRAPH] if now[0] != self.last[0] else []
        self.last = now
        return [*events, CHANGE]

    def close(self) -> None:
        """Nothing to release (the poller is the source's)."""


class CentralSource:
    """The central account's registry and run log as the UI's data source."""

    blocking = True

    def __init__(self, store: DynamoStore, session: Any, *, poll_s: float = 5.0) -> None:
        """``store``: the central tables (:func:`dpc_core.cli.lineage.central_store`);
        ``session``: the boto3 session of the caller (actions); ``poll_s``: seconds
        between two reads of the tables for the live stream."""
        self.store = store
        self.session = session
        self.poll_s = poll_s
        self.ttl = min(poll_s, 5.0)
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}
        self._fp: tuple[float, tuple[str, str]] | None = None
        self._fp_lock = threading.Lock()

    # -- reads ------------------------------------------------------------------------

    def _cached(self, name: str, load: Any) -> Any:
        with self._lock:
            hit = self._cache.get(name)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        value = load()
        with self._lock:
            self._cache[name] = (time.monotonic(), value)
        return value

    def specs(self) -> dict[str, PipelineSpec]:
        """The registered pipelines by key (notification secrets removed)."""
        from dpc_core.address_secrets import public_spec

        def load() -> dict[str, PipelineSpec]:
            return {s.key: public_spec(s) for s in self.store.pipelines()}

        out: dict[str, PipelineSpec] = self._cached("specs", load)
        return out

    def runs(self) -> dict[str, list[RunRecord]]:
        """Every registered pipeline's runs, oldest first."""
        def load() -> dict[str, list[RunRecord]]:
            keys = list(self.specs())
            with ThreadPoolExecutor(READERS) as pool:
                return dict(zip(keys, pool.map(self.store.runs_of, keys), strict=True))

        out: dict[str, list[RunRecord]] = self._cached("runs", load)
        return out

    def grid(self, dates: list[str], filters: dict[str, str | None]) -> dict[str, Any]:
        """The run grid over the central run log (the runs read for the page)."""
        from dpc_core.grid import build, cells_of_runs

        specs = self.specs()
        cells = {k: c for k, runs in self.runs().items() if (c := cells_of_runs(dates, runs))}
        return build(dates, specs.values(), cells, account=filters.get("account"),
                     owner=filters.get("owner"), status=filters.get("status")).to_dict()

    def _latest(self, date: str) -> dict[str, RunRecord]:
        from dpc_core.lineage import latest_run_on

        out = {}
        for key, runs in self.runs().items():
            best = latest_run_on(runs, date)
            if best is not None:
                out[key] = best
        return out

    def graph(self, date: str) -> LineageGraph:
        """The lineage graph of the registry with each pipeline's status for ``date``."""
        from dpc_core.lineage import build_graph

        runs = self.runs()
        return build_graph(self.specs().values(), lambda k: runs.get(k, []), date)

    def statuses(self, date: str) -> dict[str, Any]:
        """``{key: [status, run arn]}`` for ``date``."""
        return {k: [r.status, r.arn] for k, r in self._latest(date).items()}

    def health(self, date: str, now_ms: int) -> dict[str, Any]:
        """Health categories and counts, as :func:`dpc_core.ui.data.health`."""
        from dpc_core.ui.data import health_of

        latest = {k: (r.status, r.arn) for k, r in self._latest(date).items()}
        return health_of(self.store, self.specs(), latest, date, now_ms)

    def pipeline(self, key: str, date: str) -> dict[str, Any] | None:
        """A pipeline's page: definition, runs of the run log (no steps or logs: those
        are in the pipeline's own account), what its condition for ``date`` waits on."""
        from dpc_core.lineage import day_of
        from dpc_core.ui.data import waits_of

        spec = self.specs().get(key)
        if spec is None:
            return None
        runs: list[dict[str, Any]] = [{
            "arn": r.arn, "run_id": r.arn.rsplit(":", 1)[-1], "date": day_of(r) or "",
            "status": r.status, "reason": "", "why": "", "parents": [],
            "created_ms": r.start_ms, "start_ms": r.start_ms, "stop_ms": r.stop_ms,
            "error": r.error, "steps": []} for r in reversed(self.runs().get(key, []))]
        return {"key": key, "name": spec.name, "account": spec.account,
                "info": dict(spec.info), "condition": spec.condition, "window": spec.window,
                "date": date, "runs": runs, "waits": waits_of(self.store, spec, date),
                "notifications": [],
                "backfills": [], "central": True}

    def log_chunk(self, arn: str, idx: int, offset: int) -> dict[str, Any]:
        """Step logs stay in the pipeline's account: none here."""
        return {"text": "", "offset": offset, "running": False}

    # -- live -------------------------------------------------------------------------

    def fingerprint(self) -> tuple[str, str]:
        """``(registry digest, recent runs digest)``, read at most once per ``poll_s``
        whatever the number of open pages; a change empties the read cache."""
        with self._fp_lock:
            if self._fp is not None and time.monotonic() - self._fp[0] < self.poll_s * 0.9:
                return self._fp[1]
            registered = list(self.store.pipelines())
            reg = hashlib.sha256("\n".join(sorted(repr(s) for s in registered)).encode()
                                 ).hexdigest()
            since = int(time.time() * 1000) - LOOKBACK_MS
            names = sorted(s.key for s in registered)
            with ThreadPoolExecutor(READERS) as pool:
                recent = list(pool.map(lambda k: self.store.runs_of(k, since), names))
            runs = hashlib.sha256(json.dumps(
                [[r.arn, r.status, r.redrive_count, r.stop_ms] for rs in recent for r in rs]
            ).encode()).hexdigest()
            fp = (reg, runs)
            if self._fp is not None and self._fp[1] != fp:
                with self._lock:
                    self._cache.clear()
            self._fp = (time.monotonic(), fp)
            return fp

    def watch(self) -> CentralWatch:
        """A page's watch on the shared poller."""
        return CentralWatch(self)

    # -- actions ----------------------------------------------------------------------

    def _spec(self, pipeline: str) -> PipelineSpec:
        specs = self.specs()
        if pipeline in specs:
            return specs[pipeline]
        named = [s for s in specs.values() if s.name == pipeline]
        if len(named) == 1:
            return named[0]
        raise DpcError(f"no pipeline {pipeline!r} in the central registry" if not named else
                       f"{pipeline!r} is in several accounts; write account/name")

    def _denied(self, exc: BaseException, doing: str, spec: PipelineSpec) -> DpcError:
        code, message, denied = _error(exc)
        if denied:
            return ActionDenied(f"your AWS credentials may not {doing} {spec.name} (account "
                                f"{spec.account}): {code}: {message}")
        if code == "StateMachineDoesNotExist":
            return DpcError(f"no state machine {spec.name!r} in account {spec.account} "
                            f"({self.session.region_name}); `dpc deploy` it first")
        return DpcError(f"cannot {doing} {spec.name}: {exc}")

    def action(self, action: str, pipeline: str, date: str) -> str:
        """Start the pipeline's state machine (in its own account) for ``date``, as
        ``dpc run --aws`` / ``dpc rerun --aws`` do: the caller's rights decide."""
        from botocore.exceptions import BotoCoreError, ClientError

        from dpc_core.aws_runs import state_machine_arn

        reasons = {"run": ("manual", False), "rerun": ("rerun", False),
                   "rerun-downstream": ("rerun-downstream", True)}
        if action not in reasons:
            raise DpcError(f"unknown action {action!r}")
        reason, downstream = reasons[action]
        spec, day = self._spec(pipeline), _day(date)
        dpc: dict[str, Any] = {"logicalDate": day, "parents": [], "reason": reason}
        if downstream:
            dpc["downstream"] = True
        region = self.session.region_name
        name = f"{reason}-{day}-{uuid.uuid4().hex[:8]}"
        try:
            out = self.session.client("stepfunctions").start_execution(
                stateMachineArn=state_machine_arn(spec.account, region, spec.name),
                name=name, input=json.dumps({"dpc": dpc}))
        except (BotoCoreError, ClientError) as exc:
            raise self._denied(exc, "start", spec) from None
        return f"{spec.key} {name} for {day}: started ({out['executionArn']})"

    def backfill(self, pipeline: str, first: str, last: str,
                 downstream: bool) -> dict[str, Any]:
        """``dpc backfill --aws`` for the pipeline: needs credentials of its account."""
        from botocore.exceptions import BotoCoreError, ClientError

        from dpc_core.aws_backfill import run_backfill
        from dpc_core.local.backfill import dates

        spec = self._spec(pipeline)
        days = dates(first, last)
        try:
            account = self.session.client("sts").get_caller_identity()["Account"]
        except (BotoCoreError, ClientError) as exc:
            raise self._denied(exc, "backfill", spec) from None
        if account != spec.account:
            raise ActionDenied(f"a backfill starts {spec.name}'s runs with credentials of its "
                               f"account {spec.account}; yours are of account {account}")
        try:
            lines = list(run_backfill(spec.name, days, region=self.session.region_name,
                                      downstream=downstream))
        except DpcError as exc:
            if any(code in str(exc) for code in DENIED):
                raise ActionDenied(f"your AWS credentials may not backfill {spec.name}: "
                                   f"{exc}") from None
            raise
        return {"message": "\n".join(lines), "backfill": None}
