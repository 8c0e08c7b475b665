"""Dataproc: the job reference, the JobStatus.State/Substate table, parsing, the JobController requests
(get, cancel, list, submit), the endpoint and the console page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.services.base import (
    Coalescing,
    JobRef,
    ServiceSpec,
    Watched,
    Watching,
    require_id,
    table,
)
from airflow_jobstatus.services.google import console, enum_name, label_filter, raw_message, seconds

NAME = "dataproc"

#: ``google.cloud.dataproc_v1.JobStatus.State`` → normalized state.
STATES = table(
    NAME,
    {
        "STATE_UNSPECIFIED": JobState.UNKNOWN,
        "PENDING": JobState.PENDING,
        "SETUP_DONE": JobState.PENDING,
        "RUNNING": JobState.RUNNING,
        "CANCEL_PENDING": JobState.CANCELLING,
        "CANCEL_STARTED": JobState.CANCELLING,
        "CANCELLED": JobState.CANCELLED,
        "DONE": JobState.SUCCEEDED,
        "ERROR": JobState.FAILED,
        "ATTEMPT_FAILURE": JobState.RETRYING,
    },
)
#: ``JobStatus.Substate`` → the normalized state of a RUNNING job in that substate.
RUNNING_SUBSTATES = table(
    NAME,
    {
        "UNSPECIFIED": JobState.RUNNING,
        "SUBMITTED": JobState.RUNNING,
        "QUEUED": JobState.QUEUED,
        "STALE_STATUS": JobState.RUNNING,
    },
)


@dataclass(frozen=True)
class DataprocJobRef(JobRef):
    """A Dataproc job: its id, region, and project (None: the connection's)."""

    service: ClassVar[str] = NAME
    id_fields: ClassVar[tuple[str, ...]] = ("job_id", "region")
    job_id: str
    region: str
    project_id: str | None = None


def normalize(state: str, substate: str | None, job_type: str | None = None) -> JobState:
    """A Dataproc state (and substate) as a JobState: RUNNING/QUEUED is QUEUED."""
    normalized = STATES.normalize(state)
    if normalized is JobState.RUNNING and substate:
        by_substate = RUNNING_SUBSTATES.normalize(substate)  # warns once about an unknown one
        return JobState.RUNNING if by_substate is JobState.UNKNOWN else by_substate
    return normalized


def parse(job: Any, ref: DataprocJobRef) -> JobStatus:
    """A ``dataproc_v1.Job`` as a JobStatus; ``status.details`` becomes the message, the driver output the logs."""
    from google.cloud.dataproc_v1 import JobStatus as PbJobStatus

    message = raw_message(job)
    status = message.status
    state = enum_name(PbJobStatus.State, status.state)
    substate: str | None = enum_name(PbJobStatus.Substate, status.substate)
    if substate == "UNSPECIFIED":
        substate = None
    normalized = normalize(state, substate)
    ended = (
        status.state_start_time if normalized.is_terminal and status.HasField("state_start_time") else None
    )
    return JobStatus(
        service=NAME,
        job_id=ref.job_id,
        state=normalized,
        native_state=state,
        substate=substate,
        message=status.details or None,
        logs_url=logs_url(message),
        ended_at=None if ended is None else ended.seconds + ended.nanos / 1e9,  # a terminal state's start
    )


def logs_url(job: Any) -> str | None:
    """The job's driver output (``driver_output_resource_uri``, a ``gs://`` prefix); None before Dataproc sets it."""
    return str(job.driver_output_resource_uri) or None


def _job(project: str, ref: DataprocJobRef) -> dict[str, Any]:
    return {"project_id": project, "region": ref.region, "job_id": ref.job_id}


def status_call(project: str, ref: DataprocJobRef) -> tuple[str, dict[str, Any]]:
    """GetJob: the JobController method and request that read the job."""
    return "get_job", _job(project, ref)


def cancel_call(project: str, ref: DataprocJobRef) -> tuple[str, dict[str, Any]]:
    """CancelJob."""
    return "cancel_job", _job(project, ref)


#: Jobs per ListJobs page asked for (the service may return fewer).
LIST_PAGE_SIZE = 100


def list_active_call(project: str, ref: DataprocJobRef) -> tuple[str, dict[str, Any]]:
    """ListJobs of the ref's project and region with ``job_state_matcher=ACTIVE`` (non-terminal jobs)."""
    request = {"project_id": project, "region": ref.region, "job_state_matcher": "ACTIVE"}
    return "list_jobs", {**request, "page_size": LIST_PAGE_SIZE}


def list_entry_id(job: Any) -> str:
    """A listed ``dataproc_v1.Job``'s id."""
    return str(raw_message(job).reference.job_id)


def list_watched_call(
    project: str, scope: Mapping[str, Any], pushed: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """ListJobs of a region, every state (``job_state_matcher=ALL``), 100 a page; ``filter`` takes
    the pushed-down labels (``labels.k = v``; ListJobs' filter also knows ``status.state``)."""
    request: dict[str, Any] = {"project_id": project, "region": scope["region"], "job_state_matcher": "ALL"}
    if pushed.get("labels"):
        request["filter"] = label_filter(pushed["labels"], quote=False)
    return "list_jobs", {**request, "page_size": LIST_PAGE_SIZE}


def watched(job: Any, scope: Mapping[str, Any]) -> Watched:
    """A listed ``dataproc_v1.Job``: its labels, its type (``spark_job``, ``pyspark_job``…) and the
    start of its current state (its end, once ended)."""
    pb = raw_message(job)
    ref = DataprocJobRef(
        job_id=pb.reference.job_id, region=scope["region"], project_id=scope.get("project_id")
    )
    return Watched(
        status=parse(job, ref),
        ref=ref,
        name=ref.job_id,
        labels=dict(pb.labels),
        job_type=pb.WhichOneof("type_job") or "",
        changed_at=seconds(pb.status, "state_start_time"),
    )


def submit_ref(job: Mapping[str, Any] | None, region: str, project_id: str | None = None) -> DataprocJobRef:
    """Where a submit goes, named in its errors by the job's own id when it sets one, else ``(new job)``."""
    reference = ((job or {}).get("reference") or {}).get("job_id") or "(new job)"
    return DataprocJobRef(job_id=str(reference), region=require_id(region, "region"), project_id=project_id)


def submit_call(project: str, ref: DataprocJobRef, job: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """SubmitJob of ``job`` (a ``dataproc_v1.Job`` as a dict) in the ref's project and region."""
    return "submit_job", {"project_id": project, "region": ref.region, "job": job}


def submitted_id(job: Any) -> str:
    """The id of the job a SubmitJob answer describes."""
    return str(job.reference.job_id)


def default_target(ref: DataprocJobRef) -> str:
    """The regional endpoint (``global`` uses the global one)."""
    if ref.region == "global":
        return "dataproc.googleapis.com:443"
    return f"{ref.region}-dataproc.googleapis.com:443"


def console_url(ref: DataprocJobRef, project: str | None) -> str:
    return console(f"/dataproc/jobs/{ref.job_id}", region=ref.region, project=ref.project_id or project)


SPEC = ServiceSpec(
    name=NAME,
    title="Dataproc",
    cloud="google",
    ref_type=DataprocJobRef,
    tables={"": STATES},
    hook="airflow_jobstatus.hooks.dataproc.DataprocJobHook",
    sensor="airflow_jobstatus.sensors.dataproc.DataprocJobStatusSensor",
    link="airflow_jobstatus.links.DataprocJobLink",
    link_name="Dataproc Job",
    console_url=console_url,
    normalizer=normalize,
    attention=frozenset({"STALE_STATUS"}),
    cancel_note="CancelJob: the job goes through CANCEL_PENDING to CANCELLED.",
    coalescing=Coalescing(("project_id", "region"), list_active_call, list_entry_id, parse),
    watching=Watching(
        ("project_id", "region"),
        list_watched_call,
        watched,
        required_scope=("region",),
        filters=frozenset({"labels", "name", "job_id", "job_type"}),
        limits="ListJobs, job_state_matcher=ALL, 100 a page, every page; labels pushed down as filter when not shared.",
    ),
)
