"""Dataproc Serverless batches: the batch reference, the Batch.State table, parsing (state message,
approximate usage), the BatchController requests (get, cancel through the batch's long-running
operation, list by state), the endpoint and the console page."""

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
    bad_response,
    table,
)
from airflow_jobstatus.services.google import console, enum_name, label_filter, raw_message, seconds

NAME = "dataproc_batch"

#: ``google.cloud.dataproc_v1.Batch.State`` → normalized state.
STATES = table(
    NAME,
    {
        "STATE_UNSPECIFIED": JobState.UNKNOWN,
        "PENDING": JobState.PENDING,
        "RUNNING": JobState.RUNNING,
        "CANCELLING": JobState.CANCELLING,
        "CANCELLED": JobState.CANCELLED,
        "SUCCEEDED": JobState.SUCCEEDED,
        "FAILED": JobState.FAILED,
    },
)
#: ``runtime_info.approximate_usage`` fields reported as counters (the batch's billable usage).
USAGE_COUNTERS = ("milli_dcu_seconds", "shuffle_storage_gb_seconds", "milli_accelerator_seconds")


@dataclass(frozen=True)
class DataprocBatchRef(JobRef):
    """A Dataproc Serverless batch: its id, region, and project (None: the connection's)."""

    service: ClassVar[str] = NAME
    id_fields: ClassVar[tuple[str, ...]] = ("batch_id", "region")
    batch_id: str
    region: str
    project_id: str | None = None

    @property
    def display_id(self) -> str:
        return self.batch_id

    def resource_name(self, project: str) -> str:
        return f"projects/{project}/locations/{self.region}/batches/{self.batch_id}"


def parse(batch: Any, ref: DataprocBatchRef) -> JobStatus:
    """A ``dataproc_v1.Batch`` as a JobStatus: ``state_message`` is the message, the approximate
    usage (milli-DCU-seconds, shuffle storage GB-seconds, milli-accelerator-seconds) the counters."""
    from google.cloud.dataproc_v1 import Batch

    pb = raw_message(batch)
    state = enum_name(Batch.State, pb.state)
    usage = pb.runtime_info.approximate_usage
    counters = {name: int(getattr(usage, name)) for name in USAGE_COUNTERS if getattr(usage, name)}
    return JobStatus(
        service=NAME,
        job_id=ref.batch_id,
        state=STATES.normalize(state),
        native_state=state,
        message=pb.state_message or None,
        counters=counters,
    )


def status_call(project: str, ref: DataprocBatchRef) -> tuple[str, dict[str, Any]]:
    """GetBatch: the BatchController method and request that read the batch."""
    return "get_batch", {"name": ref.resource_name(project)}


def cancel_call(project: str, ref: DataprocBatchRef) -> tuple[str, dict[str, Any]]:
    """The first call of a cancel: GetBatch, for the batch's operation (``cancel_after_read``)."""
    return status_call(project, ref)


def cancel_after_read(batch: Any, ref: DataprocBatchRef) -> tuple[str, dict[str, Any]]:
    """CancelOperation (google.longrunning, same channel) of the batch's long-running operation."""
    operation = str(raw_message(batch).operation)
    if not operation:
        raise bad_response(NAME, ref.batch_id, "the batch names no operation to cancel")
    return "cancel_operation", {"name": operation}


#: Batches per ListBatches page asked for (the service may return fewer).
LIST_PAGE_SIZE = 100
#: The ListBatches filter keeping the batches that are not terminal (``state = X OR state = Y``).
ACTIVE_FILTER = " OR ".join(
    f"state = {native}"
    for native, state in STATES.table.items()
    if not state.is_terminal and state is not JobState.UNKNOWN
)


def list_active_call(project: str, ref: DataprocBatchRef) -> tuple[str, dict[str, Any]]:
    """ListBatches of the ref's project and region, filtered to the states that are not terminal."""
    parent = f"projects/{project}/locations/{ref.region}"
    return "list_batches", {"parent": parent, "filter": ACTIVE_FILTER, "page_size": LIST_PAGE_SIZE}


def list_entry_id(batch: Any) -> str:
    """A listed batch's id: the last segment of its resource name."""
    return str(raw_message(batch).name).rpartition("/")[2]


def list_watched_call(
    project: str, scope: Mapping[str, Any], pushed: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """ListBatches of a region, every state, 100 a page; ``filter`` takes the pushed-down labels
    (``labels.k = v``; the filter also knows ``state`` and ``create_time``)."""
    request: dict[str, Any] = {"parent": f"projects/{project}/locations/{scope['region']}"}
    if pushed.get("labels"):
        request["filter"] = label_filter(pushed["labels"], quote=False)
    return "list_batches", {**request, "page_size": LIST_PAGE_SIZE}


def watched(batch: Any, scope: Mapping[str, Any]) -> Watched:
    """A listed ``dataproc_v1.Batch``: its labels, its type (``spark_batch``, ``pyspark_batch``…) and
    ``state_time`` (when it entered its state)."""
    pb = raw_message(batch)
    ref = DataprocBatchRef(
        batch_id=str(pb.name).rpartition("/")[2], region=scope["region"], project_id=scope.get("project_id")
    )
    return Watched(
        status=parse(batch, ref),
        ref=ref,
        name=ref.batch_id,
        labels=dict(pb.labels),
        job_type=pb.WhichOneof("batch_config") or "",
        changed_at=seconds(pb, "state_time"),
    )


def default_target(ref: DataprocBatchRef) -> str:
    """The regional endpoint (``global`` uses the global one)."""
    if ref.region == "global":
        return "dataproc.googleapis.com:443"
    return f"{ref.region}-dataproc.googleapis.com:443"


def console_url(ref: DataprocBatchRef, project: str | None) -> str:
    return console(f"/dataproc/batches/{ref.region}/{ref.batch_id}", project=ref.project_id or project)


SPEC = ServiceSpec(
    name=NAME,
    title="Dataproc Serverless",
    cloud="google",
    ref_type=DataprocBatchRef,
    tables={"": STATES},
    hook="airflow_jobstatus.hooks.dataproc_batch.DataprocBatchHook",
    sensor="airflow_jobstatus.sensors.dataproc_batch.DataprocBatchStatusSensor",
    link="airflow_jobstatus.links.DataprocBatchLink",
    link_name="Dataproc Batch",
    console_url=console_url,
    cancel_note="CancelOperation of the batch's operation: the batch goes through CANCELLING to CANCELLED.",
    coalescing=Coalescing(("project_id", "region"), list_active_call, list_entry_id, parse),
    watching=Watching(
        ("project_id", "region"),
        list_watched_call,
        watched,
        required_scope=("region",),
        filters=frozenset({"labels", "name", "job_id", "job_type"}),
        limits="ListBatches, every state, 100 a page, every page; labels pushed down as filter when not shared.",
    ),
)
