"""OpenLineage run events for dpc runs and steps (Marquez-compatible HTTP endpoint).

Mapping:

* job namespace = the pipeline's AWS account; job name = the pipeline, ``pipeline.step``
  for a step;
* run id = a UUID derived from ``(account, pipeline, execution name)``, so that the
  ``executionArn`` of a parent named in a triggered run's ``parents`` maps to the same
  run id the parent's own events carried, with no state kept here;
* a triggered run carries a ``parent`` facet naming the run that triggered it (the first
  of its parents; OpenLineage allows one) and a ``jobDependencies`` facet listing every
  parent run whose status satisfied the condition; a step's ``parent`` is its run;
* statuses: RUNNING → START, SUCCEEDED → COMPLETE, FAILED and TIMED_OUT → FAIL,
  ABORTED → ABORT.

Delivery never raises: a failure is logged and the run goes on. The openlineage client
is imported on first use (it is an optional extra: ``pip install dpc-core[openlineage]``).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from dpc_core import __version__

log = logging.getLogger(__name__)

#: Identifies dpc as the producer of the events (a URI, as the spec asks).
PRODUCER = f"urn:dpc:dpc-core:{__version__}"
#: Where Marquez (and the OpenLineage HTTP transport) takes events.
DEFAULT_ENDPOINT = "api/v1/lineage"
ENV_URL = "DPC_OPENLINEAGE_URL"
#: Fixed namespace of dpc's run UUIDs (uuid5), so every process derives the same ids.
RUN_ID_NAMESPACE = uuid.UUID("7d1e4c5a-2f0b-5b8e-9a51-6b3f0e2d9c41")
#: dpc run status → OpenLineage event type.
EVENT_TYPES = {"RUNNING": "START", "SUCCEEDED": "COMPLETE", "FAILED": "FAIL",
               "TIMED_OUT": "FAIL", "ABORTED": "ABORT"}


def execution_name(run_id: str) -> str:
    """The execution name of a run given by name or by Step Functions execution ARN
    (``arn:aws:states:REGION:ACCOUNT:execution:STATE_MACHINE:NAME``)."""
    return run_id.rsplit(":", 1)[-1] if run_id.startswith("arn:") else run_id


def run_uuid(account: str, pipeline: str, run_id: str) -> str:
    """The OpenLineage run id of a dpc run (stable across processes and runtimes)."""
    return str(uuid.uuid5(RUN_ID_NAMESPACE, f"{account}/{pipeline}/{execution_name(run_id)}"))


def step_uuid(account: str, pipeline: str, run_id: str, step: str) -> str:
    """The OpenLineage run id of one step of a dpc run."""
    return str(uuid.uuid5(RUN_ID_NAMESPACE,
                          f"{account}/{pipeline}/{execution_name(run_id)}#step/{step}"))


def split_url(url: str) -> tuple[str, str]:
    """``(base URL, endpoint)`` for the HTTP transport: a bare server URL gets Marquez's
    ``api/v1/lineage``; a URL that already names an endpoint path keeps it."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.strip("/")
    if path.endswith("lineage"):
        return base, path
    return base, f"{path}/{DEFAULT_ENDPOINT}" if path else DEFAULT_ENDPOINT


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _nominal(logical_date: str) -> str:
    # A daily window starts at midnight UTC of its date; an hourly one at its hour.
    if len(logical_date) >= 13:
        return f"{logical_date[:13]}:00:00Z"
    return f"{logical_date[:10]}T00:00:00Z"


class OpenLineageEmitter:
    """Sends OpenLineage run events for dpc runs and steps to an HTTP endpoint.

    ``url`` defaults to ``$DPC_OPENLINEAGE_URL``. ``transport`` replaces the HTTP
    transport (any object with ``emit(event)``: tests, or another openlineage transport).
    """

    def __init__(self, url: str | None = None, *, timeout: float = 5.0, retries: int = 2,
                 transport: Any = None) -> None:
        self.url = url or os.environ.get(ENV_URL, "")
        self.timeout = timeout
        self.retries = retries
        self._transport = transport
        self._client: Any = None
        self.sent = 0
        self.failed = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OpenLineageEmitter | None:
        """An emitter when ``DPC_OPENLINEAGE_URL`` is set, else None."""
        url = (os.environ if env is None else env).get(ENV_URL)
        return cls(url) if url else None

    # -- delivery -----------------------------------------------------------------

    def _get_client(self) -> Any:
        if self._client is None:
            from openlineage.client import OpenLineageClient

            transport = self._transport
            if transport is None:
                from openlineage.client.transport.http import HttpConfig, HttpTransport

                base, endpoint = split_url(self.url)
                # Few quick retries: the runtime waits for delivery, and lineage is
                # best-effort next to the run itself.
                retry = {"total": self.retries, "read": self.retries,
                         "connect": self.retries, "backoff_factor": 0.2,
                         "status_forcelist": [500, 502, 503, 504],
                         "allowed_methods": ["HEAD", "POST"]}
                transport = HttpTransport(HttpConfig(url=base, endpoint=endpoint,
                                                     timeout=self.timeout, retry=retry))
            self._client = OpenLineageClient(transport=transport)
        return self._client

    def _emit(self, event: Any) -> bool:
        try:
            self._get_client().emit(event)
        except Exception as exc:
            self.failed += 1
            log.warning("OpenLineage: could not deliver %s of %s/%s to %s: %s",
                        event.eventType.value if event.eventType else "event",
                        event.job.namespace, event.job.name, self.url or "transport", exc)
            return False
        self.sent += 1
        return True

    # -- building -----------------------------------------------------------------

    def _event(self, event_type: str, account: str, job_name: str, run_uuid_: str,
               run_facets: dict[str, Any], job_type: str, event_time: str | None) -> Any:
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import job_type_job

        job_facets: dict[str, Any] = {"jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="DPC", jobType=job_type, producer=PRODUCER)}
        return RunEvent(eventType=RunState(event_type), eventTime=event_time or _now(),
                        run=Run(runId=run_uuid_, facets=run_facets),
                        job=Job(namespace=account, name=job_name, facets=job_facets),
                        producer=PRODUCER)

    def _run_facets(self, logical_date: str | None,
                    parents: Sequence[Mapping[str, str]]) -> dict[str, Any]:
        from openlineage.client.facet_v2 import (
            job_dependencies_run,
            nominal_time_run,
            parent_run,
        )

        facets: dict[str, Any] = {}
        if logical_date:
            facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
                nominalStartTime=_nominal(logical_date), producer=PRODUCER)
        linked = [p for p in parents if p.get("pipeline") and p.get("account")
                  and p.get("executionArn")]
        if linked:
            first = linked[0]
            facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=run_uuid(first["account"], first["pipeline"],
                                                  first["executionArn"])),
                job=parent_run.Job(namespace=first["account"], name=first["pipeline"]),
                producer=PRODUCER)
            facets["jobDependencies"] = job_dependencies_run.JobDependenciesRunFacet(
                upstream=[job_dependencies_run.JobDependency(
                    job=job_dependencies_run.JobIdentifier(namespace=p["account"],
                                                           name=p["pipeline"]),
                    run=job_dependencies_run.RunIdentifier(
                        runId=run_uuid(p["account"], p["pipeline"], p["executionArn"])),
                    dependency_type="DIRECT_INVOCATION",
                    sequence_trigger_rule="FINISH_TO_START",
                    status_trigger_rule=("EXECUTE_ON_SUCCESS"
                                         if p.get("status") == "SUCCEEDED"
                                         else "EXECUTE_ON_FAILURE"),
                ) for p in linked],
                producer=PRODUCER)
        return facets

    @staticmethod
    def _error_facet(error: str | None) -> dict[str, Any]:
        if not error:
            return {}
        from openlineage.client.facet_v2 import error_message_run

        return {"errorMessage": error_message_run.ErrorMessageRunFacet(
            message=error, programmingLanguage="shell", producer=PRODUCER)}

    @staticmethod
    def _event_type(status: str) -> str:
        return EVENT_TYPES.get(status.upper(), "OTHER")

    # -- the runtime's calls ------------------------------------------------------

    def run_started(self, pipeline: str, account: str, run_id: str, logical_date: str | None,
                    parents: Sequence[Mapping[str, str]] = (), *,
                    event_time: str | None = None) -> bool:
        """START of a pipeline run; ``parents`` are the runs that triggered it
        (``{pipeline, account, executionArn, status}``). True when delivered."""
        facets = self._run_facets(logical_date, parents)
        return self._emit(self._event("START", account, pipeline,
                                      run_uuid(account, pipeline, run_id), facets,
                                      "PIPELINE", event_time))

    def run_finished(self, pipeline: str, account: str, run_id: str, status: str, *,
                     logical_date: str | None = None,
                     parents: Sequence[Mapping[str, str]] = (), error: str | None = None,
                     event_time: str | None = None) -> bool:
        """COMPLETE, FAIL or ABORT of a pipeline run, by its dpc ``status``."""
        facets = {**self._run_facets(logical_date, parents), **self._error_facet(error)}
        return self._emit(self._event(self._event_type(status), account, pipeline,
                                      run_uuid(account, pipeline, run_id), facets,
                                      "PIPELINE", event_time))

    def _step_facets(self, pipeline: str, account: str, run_id: str,
                     logical_date: str | None) -> dict[str, Any]:
        from openlineage.client.facet_v2 import parent_run

        facets = self._run_facets(logical_date, ())
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=run_uuid(account, pipeline, run_id)),
            job=parent_run.Job(namespace=account, name=pipeline), producer=PRODUCER)
        return facets

    def step_started(self, pipeline: str, account: str, run_id: str, step: str, *,
                     logical_date: str | None = None, event_time: str | None = None) -> bool:
        """START of one step; its ``parent`` facet is the pipeline run."""
        facets = self._step_facets(pipeline, account, run_id, logical_date)
        return self._emit(self._event("START", account, f"{pipeline}.{step}",
                                      step_uuid(account, pipeline, run_id, step), facets,
                                      "STEP", event_time))

    def step_finished(self, pipeline: str, account: str, run_id: str, step: str, status: str,
                      *, logical_date: str | None = None, error: str | None = None,
                      event_time: str | None = None) -> bool:
        """COMPLETE, FAIL or ABORT of one step."""
        facets = {**self._step_facets(pipeline, account, run_id, logical_date),
                  **self._error_facet(error)}
        return self._emit(self._event(self._event_type(status), account, f"{pipeline}.{step}",
                                      step_uuid(account, pipeline, run_id, step), facets,
                                      "STEP", event_time))

    def emit(self, note: Any) -> bool:
        """Send the event of a :class:`dpc_core.types.Notification` (the local runtime's
        outbox item): its ``kind`` says run or step, start or finish."""
        kind = note.kind
        if kind == "PIPELINE_STARTED":
            return self.run_started(note.pipeline, note.account, note.run_id,
                                    note.logical_date, note.parents)
        if kind == "PIPELINE_FINISHED":
            return self.run_finished(note.pipeline, note.account, note.run_id, note.status,
                                     logical_date=note.logical_date, parents=note.parents,
                                     error=note.error)
        if kind == "STEP_STARTED":
            return self.step_started(note.pipeline, note.account, note.run_id, note.step,
                                     logical_date=note.logical_date)
        if kind == "STEP_FINISHED":
            return self.step_finished(note.pipeline, note.account, note.run_id, note.step,
                                      note.status, logical_date=note.logical_date,
                                      error=note.error)
        log.debug("OpenLineage: nothing to send for %r", kind)
        return False

    def close(self) -> None:
        """Release the HTTP session."""
        if self._client is not None:
            try:
                self._client.transport.close()
            except Exception:
                log.debug("OpenLineage: closing the transport failed", exc_info=True)
