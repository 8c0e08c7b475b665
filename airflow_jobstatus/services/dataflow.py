"""Dataflow: the job reference, the JobState table, parsing, the JobsV1Beta3 requests (get, cancel,
drain, list), the endpoint and the console page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.services.base import Coalescing, JobRef, ServiceSpec, Watched, Watching, table
from airflow_jobstatus.services.google import console, enum_name, raw_message, seconds

NAME = "dataflow"
#: Dataflow's API is global; the location travels in the request.
DEFAULT_TARGET = "dataflow.googleapis.com:443"

#: ``google.cloud.dataflow_v1beta3.JobState`` → normalized state (STOPPED means "not started yet").
STATES = table(
    NAME,
    {
        "JOB_STATE_UNKNOWN": JobState.UNKNOWN,
        "JOB_STATE_STOPPED": JobState.PENDING,
        "JOB_STATE_RUNNING": JobState.RUNNING,
        "JOB_STATE_DONE": JobState.SUCCEEDED,
        "JOB_STATE_FAILED": JobState.FAILED,
        "JOB_STATE_CANCELLED": JobState.CANCELLED,
        "JOB_STATE_UPDATED": JobState.UPDATED,
        "JOB_STATE_DRAINING": JobState.DRAINING,
        "JOB_STATE_DRAINED": JobState.DRAINED,
        "JOB_STATE_PENDING": JobState.PENDING,
        "JOB_STATE_CANCELLING": JobState.CANCELLING,
        "JOB_STATE_QUEUED": JobState.QUEUED,
        "JOB_STATE_RESOURCE_CLEANING_UP": JobState.RUNNING,
        "JOB_STATE_PAUSING": JobState.PAUSED,
        "JOB_STATE_PAUSED": JobState.PAUSED,
    },
)
#: ``requested_state`` values for UpdateJob.
CANCEL_REQUEST = "JOB_STATE_CANCELLED"
DRAIN_REQUEST = "JOB_STATE_DRAINED"


@dataclass(frozen=True)
class DataflowJobRef(JobRef):
    """A Dataflow job: its id, location (region), and project (None: the connection's)."""

    service: ClassVar[str] = NAME
    id_fields: ClassVar[tuple[str, ...]] = ("job_id", "location")
    job_id: str
    location: str
    project_id: str | None = None


def parse(job: Any, ref: DataflowJobRef) -> JobStatus:
    """A ``dataflow_v1beta3.Job`` as a JobStatus (native_state keeps the full SDK name; logs: Cloud Logging)."""
    from google.cloud.dataflow_v1beta3 import JobState as PbJobState

    message = raw_message(job)
    state = enum_name(PbJobState, message.current_state)
    normalized = STATES.normalize(state)
    ended = (
        message.current_state_time
        if normalized.is_terminal and message.HasField("current_state_time")
        else None
    )
    return JobStatus(
        service=NAME,
        job_id=ref.job_id,
        state=normalized,
        native_state=state,
        logs_url=logs_url(ref, ref.project_id or message.project_id or None),
        ended_at=None if ended is None else ended.seconds + ended.nanos / 1e9,  # a terminal state's start
    )


def logs_url(ref: DataflowJobRef, project: str | None) -> str:
    """The job's logs in the Cloud Logging console (its steps' and workers' entries carry its job id)."""
    from urllib.parse import quote

    query = f'resource.type="dataflow_step"\nresource.labels.job_id="{ref.job_id}"'
    return console(f"/logs/query;query={quote(query, safe='')}", project=project)


def _job(project: str, ref: DataflowJobRef) -> dict[str, Any]:
    return {"project_id": project, "location": ref.location, "job_id": ref.job_id}


def status_call(project: str, ref: DataflowJobRef) -> tuple[str, dict[str, Any]]:
    """GetJob: the JobsV1Beta3 method and request that read the job."""
    return "get_job", _job(project, ref)


def _update_call(project: str, ref: DataflowJobRef, requested: str) -> tuple[str, dict[str, Any]]:
    return "update_job", {**_job(project, ref), "job": {"requested_state": requested}}


def cancel_call(project: str, ref: DataflowJobRef) -> tuple[str, dict[str, Any]]:
    """UpdateJob with ``requested_state=JOB_STATE_CANCELLED``: stops now, dropping in-flight data."""
    return _update_call(project, ref, CANCEL_REQUEST)


def drain_call(project: str, ref: DataflowJobRef) -> tuple[str, dict[str, Any]]:
    """UpdateJob with ``requested_state=JOB_STATE_DRAINED``: stop reading input, finish in-flight data."""
    return _update_call(project, ref, DRAIN_REQUEST)


#: Jobs per ListJobs page asked for (the service may return fewer).
LIST_PAGE_SIZE = 100


def list_active_call(project: str, ref: DataflowJobRef) -> tuple[str, dict[str, Any]]:
    """ListJobs of the ref's project and location with ``filter=ACTIVE`` (jobs not yet terminal)."""
    request = {"project_id": project, "location": ref.location, "filter": "ACTIVE"}
    return "list_jobs", {**request, "page_size": LIST_PAGE_SIZE}


def list_entry_id(job: Any) -> str:
    """A listed ``dataflow_v1beta3.Job``'s id."""
    return str(raw_message(job).id)


def list_watched_call(
    project: str, scope: Mapping[str, Any], pushed: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """ListJobs of a location, ``filter=ALL`` (the filter is an enum, ALL/TERMINATED/ACTIVE: labels and
    names are applied to the listed jobs), 100 a page."""
    request = {"project_id": project, "location": scope["location"], "filter": "ALL"}
    return "list_jobs", {**request, "page_size": LIST_PAGE_SIZE}


def watched(job: Any, scope: Mapping[str, Any]) -> Watched:
    """A listed ``dataflow_v1beta3.Job``: its name, labels, type (``JOB_TYPE_BATCH``/``_STREAMING``)
    and ``current_state_time``."""
    from google.cloud.dataflow_v1beta3 import JobType

    pb = raw_message(job)
    ref = DataflowJobRef(job_id=pb.id, location=scope["location"], project_id=scope.get("project_id"))
    return Watched(
        status=parse(job, ref),
        ref=ref,
        name=pb.name,
        labels=dict(pb.labels),
        job_type=enum_name(JobType, pb.type_),
        changed_at=seconds(pb, "current_state_time"),
    )


def default_target(ref: DataflowJobRef) -> str:
    """The global endpoint: the location travels in the request."""
    return DEFAULT_TARGET


def console_url(ref: DataflowJobRef, project: str | None) -> str:
    return console(f"/dataflow/jobs/{ref.location}/{ref.job_id}", project=ref.project_id or project)


SPEC = ServiceSpec(
    name=NAME,
    title="Dataflow",
    cloud="google",
    ref_type=DataflowJobRef,
    tables={"": STATES},
    hook="airflow_jobstatus.hooks.dataflow.DataflowJobHook",
    sensor="airflow_jobstatus.sensors.dataflow.DataflowJobStatusSensor",
    link="airflow_jobstatus.links.DataflowJobLink",
    link_name="Dataflow Job",
    console_url=console_url,
    cancel_note="UpdateJob requested_state=JOB_STATE_CANCELLED: stops now, dropping in-flight data.",
    coalescing=Coalescing(("project_id", "location"), list_active_call, list_entry_id, parse),
    watching=Watching(
        ("project_id", "location"),
        list_watched_call,
        watched,
        required_scope=("location",),
        filters=frozenset({"labels", "name", "job_id", "job_type"}),
        limits="ListJobs filter=ALL, 100 a page, every page; no label filter in the API (applied to the list).",
    ),
)
