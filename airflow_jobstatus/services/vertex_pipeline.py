"""Vertex AI pipeline jobs: the job reference, the PipelineState table, parsing (error message, the
tasks as sub-jobs, progress), the PipelineService requests (get, cancel, list by state), the endpoint
and the console page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.services.base import Coalescing, JobRef, ServiceSpec, Watched, Watching, table
from airflow_jobstatus.services.google import (
    console,
    enum_name,
    label_filter,
    raw_message,
    vertex_listed,
    vertex_target,
)

NAME = "vertex_pipeline"
INSTALL_HINT = "pip install 'airflow-jobstatus[vertex]'"

#: ``google.cloud.aiplatform_v1.PipelineState`` → normalized state.
STATES = table(
    NAME,
    {
        "PIPELINE_STATE_UNSPECIFIED": JobState.UNKNOWN,
        "PIPELINE_STATE_QUEUED": JobState.QUEUED,
        "PIPELINE_STATE_PENDING": JobState.PENDING,
        "PIPELINE_STATE_RUNNING": JobState.RUNNING,
        "PIPELINE_STATE_SUCCEEDED": JobState.SUCCEEDED,
        "PIPELINE_STATE_FAILED": JobState.FAILED,
        # Not terminal: a pipeline being cancelled can still end SUCCEEDED or FAILED.
        "PIPELINE_STATE_CANCELLING": JobState.CANCELLING,
        "PIPELINE_STATE_CANCELLED": JobState.CANCELLED,
        # Not terminal: a paused pipeline can be resumed.
        "PIPELINE_STATE_PAUSED": JobState.PAUSED,
    },
)
#: ``PipelineTaskDetail.State`` values of a task that will not run any more (progress counts them done).
FINISHED_TASK_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED", "NOT_TRIGGERED"})


@dataclass(frozen=True)
class VertexAIPipelineJobRef(JobRef):
    """A Vertex AI pipeline job (a pipeline run): id, location, project (None: the connection's)."""

    service: ClassVar[str] = NAME
    id_fields: ClassVar[tuple[str, ...]] = ("pipeline_job_id", "location")
    pipeline_job_id: str
    location: str
    project_id: str | None = None

    @property
    def display_id(self) -> str:
        return self.pipeline_job_id

    def resource_name(self, project: str) -> str:
        return f"projects/{project}/locations/{self.location}/pipelineJobs/{self.pipeline_job_id}"


def _time(pb: Any, name: str) -> str | None:
    return str(getattr(pb, name).ToJsonString()) if pb.HasField(name) else None


def tasks(job: Any) -> list[dict[str, Any]]:
    """The pipeline's tasks as sub-jobs: the leaf tasks of ``job_detail.task_details`` (a task that is
    the parent of others is the pipeline's root or a sub-DAG, not work of its own), in the API's order.

    Each is ``{"id": task name, "task_id", "status", "start_time", "end_time", "num_tasks": 1,
    "num_completed_tasks": 0 or 1}``: one task per sub-job, so the page, the CLI and the logs count
    finished tasks as they count DLI's.
    """
    from google.cloud.aiplatform_v1.types.pipeline_job import PipelineTaskDetail

    details = list(raw_message(job).job_detail.task_details)
    parents = {d.parent_task_id for d in details if d.parent_task_id}
    out = []
    for detail in details:
        if detail.task_id in parents:
            continue
        state = enum_name(PipelineTaskDetail.State, detail.state)
        out.append(
            {
                "id": detail.task_name or str(detail.task_id),
                "task_id": int(detail.task_id),
                "status": state,
                "start_time": _time(detail, "start_time"),
                "end_time": _time(detail, "end_time"),
                "num_tasks": 1,
                "num_completed_tasks": int(state in FINISHED_TASK_STATES),
            }
        )
    return out


def parse(job: Any, ref: VertexAIPipelineJobRef) -> JobStatus:
    """A ``PipelineJob`` as a JobStatus: ``error.message`` is the message, its tasks the sub-jobs and
    progress the share of them finished (None while the job lists no task)."""
    from google.cloud.aiplatform_v1.types.pipeline_state import PipelineState

    pb = raw_message(job)
    state = enum_name(PipelineState, pb.state)
    message = pb.error.message if pb.HasField("error") else ""
    sub_jobs = tasks(job)
    done = sum(s["num_completed_tasks"] for s in sub_jobs)
    return JobStatus(
        service=NAME,
        job_id=ref.pipeline_job_id,
        state=STATES.normalize(state),
        native_state=state,
        message=message or None,
        progress=done / len(sub_jobs) if sub_jobs else None,
        sub_jobs=sub_jobs,
    )


def status_call(project: str, ref: VertexAIPipelineJobRef) -> tuple[str, dict[str, Any]]:
    """GetPipelineJob."""
    return "get_pipeline_job", {"name": ref.resource_name(project)}


def cancel_call(project: str, ref: VertexAIPipelineJobRef) -> tuple[str, dict[str, Any]]:
    """CancelPipelineJob."""
    return "cancel_pipeline_job", {"name": ref.resource_name(project)}


#: Pipeline jobs per ListPipelineJobs page asked for (the service may return fewer).
LIST_PAGE_SIZE = 100
#: The list filter keeping jobs that are not terminal (``state`` supports = and !=).
ACTIVE_FILTER = " AND ".join(
    f'state!="{native}"' for native, state in STATES.table.items() if state.is_terminal
)


def list_active_call(project: str, ref: VertexAIPipelineJobRef) -> tuple[str, dict[str, Any]]:
    """ListPipelineJobs of the ref's project and location, filtered to the states that are not terminal."""
    parent = f"projects/{project}/locations/{ref.location}"
    return "list_pipeline_jobs", {"parent": parent, "filter": ACTIVE_FILTER, "page_size": LIST_PAGE_SIZE}


def list_entry_id(job: Any) -> str:
    """A listed job's id: the last segment of its resource name."""
    return str(raw_message(job).name).rpartition("/")[2]


def list_watched_call(
    project: str, scope: Mapping[str, Any], pushed: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """ListPipelineJobs of a location, every state, 100 a page; ``filter`` takes the pushed-down
    labels (AIP-160 ``labels.k="v"``)."""
    request: dict[str, Any] = {"parent": f"projects/{project}/locations/{scope['location']}"}
    if pushed.get("labels"):
        request["filter"] = label_filter(pushed["labels"], quote=True)
    return "list_pipeline_jobs", {**request, "page_size": LIST_PAGE_SIZE}


def watched(job: Any, scope: Mapping[str, Any]) -> Watched:
    """A listed ``PipelineJob``: its display name, labels, and ``end_time`` (else ``update_time``)."""
    pb, job_id, labels, changed_at = vertex_listed(job)
    ref = VertexAIPipelineJobRef(
        pipeline_job_id=job_id,
        location=scope["location"],
        project_id=scope.get("project_id"),
    )
    return Watched(
        status=parse(job, ref),
        ref=ref,
        name=pb.display_name,
        labels=labels,
        changed_at=changed_at,
    )


def default_target(ref: VertexAIPipelineJobRef) -> str:
    """The regional endpoint of the job's location."""
    return vertex_target(ref.location)


def console_url(ref: VertexAIPipelineJobRef, project: str | None) -> str:
    path = f"/vertex-ai/locations/{ref.location}/pipelines/runs/{ref.pipeline_job_id}"
    return console(path, project=ref.project_id or project)


SPEC = ServiceSpec(
    name=NAME,
    title="Vertex AI Pipelines",
    cloud="google",
    ref_type=VertexAIPipelineJobRef,
    tables={"": STATES},
    hook="airflow_jobstatus.hooks.vertex_pipeline.VertexAIPipelineJobHook",
    sensor="airflow_jobstatus.sensors.vertex_pipeline.VertexAIPipelineJobStatusSensor",
    link="airflow_jobstatus.links.VertexAIPipelineJobLink",
    link_name="Vertex AI Pipeline Run",
    console_url=console_url,
    cancel_note=(
        "CancelPipelineJob: the job goes through CANCELLING to CANCELLED (or SUCCEEDED/FAILED when "
        "its tasks end first)."
    ),
    coalescing=Coalescing(("project_id", "location"), list_active_call, list_entry_id, parse),
    watching=Watching(
        ("project_id", "location"),
        list_watched_call,
        watched,
        required_scope=("location",),
        filters=frozenset({"labels", "name", "job_id"}),
        limits="ListPipelineJobs, every state, 100 a page, every page; labels pushed down as filter when not shared.",
    ),
)
