"""The cluster reaper (team account): EMR clusters of runs that ended without teardown.

A run that is stopped (``ABORTED``) or reaches the state machine's timeout
(``TIMED_OUT``) runs no ``Catch``, and Step Functions does not terminate a cluster it
created when the execution stops ("Create and manage Amazon EMR clusters with Step
Functions"). Every cluster a run creates carries the tags ``dpc-pipeline=<state machine>``
and ``dpc-execution=<execution name>`` and is named ``dpc-<pipeline>``
(``dpc_compute_emr.aws``), so the reaper finds a run's clusters by them:

* **on the event** — the account's ``Step Functions Execution Status Change`` for
  ``TIMED_OUT``, ``ABORTED`` or ``FAILED`` (a catch path whose teardown itself failed):
  ``ListClusters`` (active states, created since the run started; EMR cannot filter by
  tag), the pipeline's ``dpc-<pipeline>`` clusters, ``DescribeCluster`` for their tags,
  ``TerminateJobFlows`` of those tagged with this execution;
* **on a schedule** — status events are delivered best effort, so a sweep looks at every
  active ``dpc-*`` cluster and terminates those whose execution (named by the tags) is no
  longer ``RUNNING`` (``DescribeExecution``).

Terminating is idempotent; a cluster the role may not describe (not tagged as dpc's:
the role is limited to tagged clusters) is left alone. The idle auto-termination of
each cluster stays as the last guard.

Environment: ``AWS_REGION`` (the Lambda runtime's).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from dpc_central import plugin_api as common
from dpc_central.plugin_api import SFN_DETAIL_TYPE, SFN_SOURCE
from dpc_compute_emr.names import CLUSTER_PREFIX as EMR_CLUSTER_PREFIX
from dpc_compute_emr.names import TAG_EXECUTION as EMR_TAG_EXECUTION
from dpc_compute_emr.names import TAG_PIPELINE as EMR_TAG_PIPELINE

#: Run statuses after which no teardown will come.
ENDED = ("TIMED_OUT", "ABORTED", "FAILED")
#: Cluster states in which a cluster costs money and can be terminated.
ACTIVE = ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"]
#: A cluster is created after its run starts; the margin covers clock skew.
_MARGIN = timedelta(minutes=5)


def handle(event: Mapping[str, Any] | None = None, context: Any = None) -> dict[str, Any]:
    """Lambda entry point: a Step Functions status event, or a scheduled event (sweep)."""
    event = event or {}
    if event.get("source") == SFN_SOURCE and event.get("detail-type") == SFN_DETAIL_TYPE:
        return reap_execution(event.get("detail") or {})
    return sweep()


def reap_execution(detail: Mapping[str, Any]) -> dict[str, Any]:
    """Terminate the active clusters of the execution a status event is about."""
    status = str(detail.get("status", ""))
    if status not in ENDED:
        return {"status": status, "terminated": []}
    pipeline = str(detail.get("stateMachineArn", "")).rsplit(":", 1)[-1]
    execution = str(detail.get("name", ""))
    if not pipeline or not execution:
        common.emit(logging.WARNING, "reaper-ignored", reason="event without execution")
        return {"status": status, "terminated": []}
    start_ms = detail.get("startDate")
    since = (datetime.fromtimestamp(int(start_ms) / 1000, UTC) - _MARGIN
             if isinstance(start_ms, int | float) else None)
    emr = common.client("emr")
    doomed = [cid for cid, tags, _ in dpc_clusters(emr, since=since, pipeline=pipeline)
              if tags.get(EMR_TAG_PIPELINE) == pipeline
              and tags.get(EMR_TAG_EXECUTION) == execution]
    terminate(emr, doomed, why=f"{pipeline}/{execution} {status}")
    return {"status": status, "terminated": doomed}


def sweep() -> dict[str, Any]:
    """Terminate every active dpc cluster whose run is no longer running."""
    emr = common.client("emr")
    sfn = common.client("stepfunctions")
    doomed: list[str] = []
    for cid, tags, cluster_arn in dpc_clusters(emr):
        pipeline, execution = tags.get(EMR_TAG_PIPELINE), tags.get(EMR_TAG_EXECUTION)
        if not pipeline or not execution or cluster_arn.count(":") < 5:
            continue
        # The run's state machine is in the cluster's partition, region and account.
        partition, region, account = cluster_arn.split(":")[1], cluster_arn.split(":")[3], \
            cluster_arn.split(":")[4]
        arn = f"arn:{partition}:states:{region}:{account}:execution:{pipeline}:{execution}"
        try:
            status = sfn.describe_execution(executionArn=arn)["status"]
        except Exception as exc:
            # A run that does not exist (any more) is not ours to judge: auto-termination.
            common.emit(logging.WARNING, "reaper-unknown-execution", cluster=cid,
                        execution=arn, error=f"{type(exc).__name__}: {exc}")
            continue
        if status != "RUNNING":
            doomed.append(cid)
    terminate(emr, doomed, why="sweep: the run has ended")
    return {"sweep": True, "terminated": doomed}


def dpc_clusters(emr: Any, *, since: datetime | None = None,
                 pipeline: str | None = None) -> Iterator[tuple[str, dict[str, str], str]]:
    """(cluster id, tags, cluster ARN) of the active clusters named like dpc's
    (``dpc-<pipeline>`` when ``pipeline`` is given) created after ``since``."""
    wanted = f"{EMR_CLUSTER_PREFIX}{pipeline}" if pipeline else None
    kwargs: dict[str, Any] = {"ClusterStates": ACTIVE}
    if since is not None:
        kwargs["CreatedAfter"] = since
    for page in emr.get_paginator("list_clusters").paginate(**kwargs):
        for summary in page.get("Clusters", []):
            name = str(summary.get("Name", ""))
            if (wanted and name != wanted) or not name.startswith(EMR_CLUSTER_PREFIX):
                continue
            try:
                cluster = emr.describe_cluster(ClusterId=summary["Id"])["Cluster"]
            except Exception as exc:  # not tagged as dpc's: the role may not describe it
                common.emit(logging.INFO, "reaper-skipped", cluster=summary["Id"],
                            error=f"{type(exc).__name__}: {exc}")
                continue
            tags = {t["Key"]: t.get("Value", "") for t in cluster.get("Tags", [])}
            yield summary["Id"], tags, str(cluster.get("ClusterArn", ""))


def terminate(emr: Any, cluster_ids: list[str], *, why: str) -> None:
    """TerminateJobFlows (idempotent), ten clusters a call."""
    for i in range(0, len(cluster_ids), 10):
        batch = cluster_ids[i:i + 10]
        emr.terminate_job_flows(JobFlowIds=batch)
        common.emit(logging.WARNING, "reaper-terminated", clusters=batch, why=why)

