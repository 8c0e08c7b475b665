"""Vertex AI: the job reference and job types, the JobState table, parsing, the JobService requests
(get, cancel, list per job type), the endpoint and the console page."""

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
    require_choice,
    table,
)
from airflow_jobstatus.services.google import (
    console,
    enum_name,
    label_filter,
    raw_message,
    vertex_listed,
    vertex_target,
)

NAME = "vertex_ai"
INSTALL_HINT = "pip install 'airflow-jobstatus[vertex]'"


@dataclass(frozen=True)
class JobKind:
    """One Vertex AI job type: its resource collection, console page and JobService methods."""

    collection: str
    page: str
    get: str
    cancel: str


#: job_type → its collection, console page and methods.
JOB_KINDS: dict[str, JobKind] = {
    "custom_job": JobKind("customJobs", "training", "get_custom_job", "cancel_custom_job"),
    "batch_prediction_job": JobKind(
        "batchPredictionJobs", "batch-predictions", "get_batch_prediction_job", "cancel_batch_prediction_job"
    ),
    "hyperparameter_tuning_job": JobKind(
        "hyperparameterTuningJobs",
        "training/hyperparameter-tuning-jobs",
        "get_hyperparameter_tuning_job",
        "cancel_hyperparameter_tuning_job",
    ),
}
JOB_TYPES = tuple(JOB_KINDS)

#: ``google.cloud.aiplatform_v1.JobState`` → normalized state.
STATES = table(
    NAME,
    {
        "JOB_STATE_UNSPECIFIED": JobState.UNKNOWN,
        "JOB_STATE_QUEUED": JobState.QUEUED,
        "JOB_STATE_PENDING": JobState.PENDING,
        "JOB_STATE_RUNNING": JobState.RUNNING,
        "JOB_STATE_SUCCEEDED": JobState.SUCCEEDED,
        "JOB_STATE_FAILED": JobState.FAILED,
        "JOB_STATE_CANCELLING": JobState.CANCELLING,
        "JOB_STATE_CANCELLED": JobState.CANCELLED,
        "JOB_STATE_PAUSED": JobState.PAUSED,
        "JOB_STATE_EXPIRED": JobState.EXPIRED,
        "JOB_STATE_UPDATING": JobState.RUNNING,
        "JOB_STATE_PARTIALLY_SUCCEEDED": JobState.PARTIALLY_SUCCEEDED,
    },
)


@dataclass(frozen=True)
class VertexAIJobRef(JobRef):
    """A Vertex AI job: id, location, project (None: the connection's) and job type."""

    service: ClassVar[str] = NAME
    id_fields: ClassVar[tuple[str, ...]] = ("job_id", "location")
    job_id: str
    location: str
    project_id: str | None = None
    job_type: str = "custom_job"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "job_type", require_choice(self.job_type, JOB_TYPES, "Vertex AI job_type"))

    @property
    def kind(self) -> JobKind:
        return JOB_KINDS[self.job_type]

    def resource_name(self, project: str) -> str:
        return f"projects/{project}/locations/{self.location}/{self.kind.collection}/{self.job_id}"


def parse(job: Any, ref: VertexAIJobRef) -> JobStatus:
    """A Vertex AI job resource as a JobStatus; ``error.message`` becomes the message."""
    from google.cloud.aiplatform_v1.types.job_state import JobState as PbJobState

    pb = raw_message(job)
    state = enum_name(PbJobState, pb.state)
    message = pb.error.message if pb.HasField("error") else ""
    normalized = STATES.normalize(state)
    ended = pb.end_time if normalized.is_terminal and pb.HasField("end_time") else None
    return JobStatus(
        service=NAME,
        job_id=ref.job_id,
        state=normalized,
        native_state=state,
        message=message or None,
        ended_at=None if ended is None else ended.seconds + ended.nanos / 1e9,
    )


def status_call(project: str, ref: VertexAIJobRef) -> tuple[str, dict[str, Any]]:
    """Get<Type>Job: the JobService method and request that read the job."""
    return ref.kind.get, {"name": ref.resource_name(project)}


def cancel_call(project: str, ref: VertexAIJobRef) -> tuple[str, dict[str, Any]]:
    """Cancel<Type>Job."""
    return ref.kind.cancel, {"name": ref.resource_name(project)}


#: Jobs per List<Type>Jobs page asked for (the service may return fewer).
LIST_PAGE_SIZE = 100
#: The list filter keeping jobs that are not terminal (AIP-160 syntax: ``state`` supports = and !=).
ACTIVE_FILTER = " AND ".join(
    f'state!="{native}"' for native, state in STATES.table.items() if state.is_terminal
)


def list_active_call(project: str, ref: VertexAIJobRef) -> tuple[str, dict[str, Any]]:
    """List<Type>Jobs of the ref's project and location, filtered to the states that are not terminal."""
    parent = f"projects/{project}/locations/{ref.location}"
    request = {"parent": parent, "filter": ACTIVE_FILTER, "page_size": LIST_PAGE_SIZE}
    return f"list_{ref.job_type}s", request


def list_entry_id(job: Any) -> str:
    """A listed job's id: the last segment of its resource name."""
    return str(raw_message(job).name).rpartition("/")[2]


def list_watched_call(
    project: str, scope: Mapping[str, Any], pushed: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """List<Type>Jobs of a location (the scope's ``job_type``, default custom jobs), every state, 100
    a page; ``filter`` takes the pushed-down labels (AIP-160 ``labels.k="v"``)."""
    job_type = scope.get("job_type") or "custom_job"
    request: dict[str, Any] = {"parent": f"projects/{project}/locations/{scope['location']}"}
    if pushed.get("labels"):
        request["filter"] = label_filter(pushed["labels"], quote=True)
    return f"list_{job_type}s", {**request, "page_size": LIST_PAGE_SIZE}


def watched(job: Any, scope: Mapping[str, Any]) -> Watched:
    """A listed job: its display name, labels, and ``end_time`` (else ``update_time``)."""
    pb, job_id, labels, changed_at = vertex_listed(job)
    ref = VertexAIJobRef(
        job_id=job_id,
        location=scope["location"],
        project_id=scope.get("project_id"),
        job_type=scope.get("job_type") or "custom_job",
    )
    return Watched(
        status=parse(job, ref),
        ref=ref,
        name=pb.display_name,
        labels=labels,
        job_type=ref.job_type,
        changed_at=changed_at,
    )


def default_target(ref: VertexAIJobRef) -> str:
    """The regional endpoint of the job's location."""
    return vertex_target(ref.location)


def console_url(ref: VertexAIJobRef, project: str | None) -> str:
    path = f"/vertex-ai/locations/{ref.location}/{ref.kind.page}/{ref.job_id}"
    return console(path, project=ref.project_id or project)


SPEC = ServiceSpec(
    name=NAME,
    title="Vertex AI",
    cloud="google",
    ref_type=VertexAIJobRef,
    tables={"": STATES},
    hook="airflow_jobstatus.hooks.vertex_ai.VertexAIJobHook",
    sensor="airflow_jobstatus.sensors.vertex_ai.VertexAIJobStatusSensor",
    link="airflow_jobstatus.links.VertexAIJobLink",
    link_name="Vertex AI Job",
    console_url=console_url,
    job_types=JOB_TYPES,
    cancel_note="Cancel<Type>Job: the job goes through CANCELLING to CANCELLED.",
    coalescing=Coalescing(("project_id", "location", "job_type"), list_active_call, list_entry_id, parse),
    watching=Watching(
        ("project_id", "location", "job_type"),
        list_watched_call,
        watched,
        required_scope=("location",),
        filters=frozenset({"labels", "name", "job_id"}),
        limits="List<Type>Jobs, every state, 100 a page, every page; labels pushed down as filter when not shared.",
    ),
)
