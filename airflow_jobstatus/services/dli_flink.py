"""DLI Flink jobs: the job reference, the 14 Flink job statuses, operations, parsing, console URL.

Flink jobs are a kind of their own (not a third DLI ``job_type``): their ids are integers, their
calls live under ``/v1.0/{project_id}/streaming/``, a streaming job normally never ends, and a
stop is a batch call. Every fact about them is here; they share the DLI endpoint (``ENDPOINT``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.services.base import (
    Coalescing,
    JobRef,
    ServiceSpec,
    Watched,
    Watching,
    _configuration_error,
    bad_response,
    table,
)
from airflow_jobstatus.services.huawei import Operation, console

NAME = "dli_flink"
#: The connection endpoint Flink jobs are reached on: DLI's (``dli_endpoint`` or ``dli.<region>…``).
ENDPOINT = "dli"
#: Flink job ``status`` → JobState (huaweicloudsdkdli v1 ``FlinkJob.status``; why each: README).
STATES = table(
    NAME,
    {
        "job_init": JobState.PENDING,  # a draft: never submitted, will not start by itself (warned)
        "job_submitting": JobState.PENDING,
        "job_submit_fail": JobState.FAILED,
        "job_running": JobState.RUNNING,
        "job_running_exception": JobState.FAILED,  # the job stopped on an exception
        "job_downloading": JobState.PENDING,
        "job_idle": JobState.PENDING,  # not running and not started by itself (warned)
        "job_canceling": JobState.CANCELLING,
        "job_cancel_success": JobState.CANCELLED,
        "job_cancel_fail": JobState.RUNNING,  # the stop failed: the job runs on (warned)
        "job_savepointing": JobState.RUNNING,  # a savepoint is taken while the job runs
        "job_arrearage_stopped": JobState.PAUSED,  # stopped for an overdue account until a recharge
        "job_arrearage_recovering": JobState.PENDING,  # being restored after the recharge
        "job_finish": JobState.SUCCEEDED,
    },
)
#: Statuses that will not change by themselves (the wait warns once); PAUSED warns anyway.
ATTENTION = frozenset({"job_init", "job_idle", "job_cancel_fail"})
#: The restart count (``FlinkJob.restart_times``) as ``JobStatus.counters["restart_times"]``.
COUNTER_FIELDS = ("restart_times",)
#: What DLI answers a read of an unknown job with (HTTP 400), as for its SQL jobs.
UNKNOWN_JOB_CODE = "DLI.0002"
NOT_FOUND_HINT = "if it is a SQL job or a Spark batch, wait on it with DliJobStatusSensor"


@dataclass(frozen=True)
class DliFlinkJobRef(JobRef):
    """A DLI Flink job, by its id (an integer on the wire; kept as its decimal string)."""

    service: ClassVar[str] = NAME
    id_fields: ClassVar[tuple[str, ...]] = ("job_id",)
    #: Stands in for a templated job_id when the reference is checked at DAG parse.
    parse_placeholder: ClassVar[str] = "1"
    job_id: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.job_id.isascii() and self.job_id.isdigit()) or int(self.job_id) < 1:
            raise _configuration_error(
                f"DLI Flink job_id must be a positive integer (Flink job ids are numbers), got {self.job_id!r}."
            )
        object.__setattr__(self, "job_id", str(int(self.job_id)))  # "007" and 7 are job 7


def _jobs_path(suffix: str = "") -> str:
    return "/v1.0/{project_id}/streaming/jobs" + suffix


def status_op(ref: DliFlinkJobRef) -> Operation:
    """ShowFlinkJob: ``GET /v1.0/{project_id}/streaming/jobs/{job_id}`` (``job_detail``)."""
    return Operation(
        "get status",
        "GET",
        _jobs_path(f"/{ref.job_id}"),
        ref.job_id,
        is_read=True,
        not_found_codes=(UNKNOWN_JOB_CODE,),
        not_found_hint=NOT_FOUND_HINT,
    )


def cancel_op(ref: DliFlinkJobRef) -> Operation:
    """BatchStopFlinkJobs with this one job, no savepoint; the answer is a JSON array."""
    body = {"job_ids": [int(ref.job_id)], "trigger_savepoint": False}
    return Operation(
        "stop job", "POST", _jobs_path("/stop"), ref.job_id, body=body, body_required=False, array_key="body"
    )


def _truthy(value: Any) -> bool:
    """DLI spells ``is_success`` as a string ("true"/"false") in Flink answers, a bool elsewhere."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def check_cancelled(data: Mapping[str, Any], ref: DliFlinkJobRef) -> None:
    """The stop answer has one result per job id; ``is_success`` false means DLI refused (it ended)."""
    from airflow_jobstatus.core.exceptions import BadRequestError

    results = data.get("body")
    first = results[0] if isinstance(results, list) and results else None
    if isinstance(first, Mapping) and "is_success" in first and not _truthy(first["is_success"]):
        raise BadRequestError(
            f"DLI did not stop Flink job {ref.job_id!r}: {first.get('message') or 'no message'}",
            service=NAME,
            job_id=ref.job_id,
        )


def _counters(job: Mapping[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key in COUNTER_FIELDS:
        value = job.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            out[key] = value
    return out


def parse_job(job: Any, ref: DliFlinkJobRef) -> JobStatus:
    """A ``FlinkJob`` object (a show answer's ``job_detail``, or a list entry) as a JobStatus."""
    if not isinstance(job, Mapping):
        raise bad_response(NAME, ref.job_id, "the job is not an object")
    native = job.get("status")
    if not isinstance(native, str) or not native:
        raise bad_response(NAME, ref.job_id, "no status")
    desc = job.get("status_desc")
    return JobStatus(
        service=NAME,
        job_id=ref.job_id,
        state=STATES.normalize(native),
        native_state=native,
        message=str(desc) if desc else None,
        counters=_counters(job),
    )


def parse(data: Mapping[str, Any], ref: DliFlinkJobRef) -> JobStatus:
    """The JobStatus of a ShowFlinkJob answer (``{"is_success", "message", "job_detail": {...}}``)."""
    job = data.get("job_detail")
    if job is None:
        reason = "no job_detail" + (f" ({data['message']})" if data.get("message") else "")
        raise bad_response(NAME, ref.job_id, reason)
    return parse_job(job, ref)


#: Coalesced polling lists the two statuses a Flink job spends its life in, one ``status`` per
#: call (ListFlinkJobs filters by one). A job in any other non-terminal status (a draft, idle, a
#: stop or savepoint in progress, arrears) is absent from the list and read on its own: never a
#: wrong answer, only fewer calls saved.
LISTED_STATUSES = ("job_submitting", "job_running")
#: Jobs per list page (``limit``; the API's default is 10) and the most pages read per status.
LIST_PAGE_SIZE = 100
LIST_MAX_PAGES = 100


def list_op(status: str, offset: int = 0) -> Operation:
    """ListFlinkJobs: ``GET /v1.0/{project_id}/streaming/jobs`` by ``status``, ``offset``/``limit``."""
    query = (("status", status), ("offset", str(offset)), ("limit", str(LIST_PAGE_SIZE)))
    return Operation("list jobs", "GET", _jobs_path(), "(job list)", query=query, is_read=True)


def list_active_call(project: str, ref: DliFlinkJobRef) -> tuple[Operation, ...]:
    """The first page of each listed status (the project is the connection's)."""
    return tuple(list_op(status) for status in LISTED_STATUSES)


def list_page(op: Operation, data: Mapping[str, Any]) -> tuple[list[Any], Operation | None]:
    """A list answer's jobs and the operation reading the next page (None after the last)."""
    job_list = data.get("job_list")
    jobs = job_list.get("jobs") if isinstance(job_list, Mapping) else None
    if not isinstance(jobs, list):
        raise bad_response(NAME, op.job_id, "the list has no job_list.jobs array")
    query = dict(op.query)
    offset = int(query["offset"]) + len(jobs)
    total = job_list.get("total_count") if isinstance(job_list, Mapping) else None
    more = isinstance(total, int) and total > offset and len(jobs) == LIST_PAGE_SIZE
    if not more or offset >= LIST_PAGE_SIZE * LIST_MAX_PAGES:
        return jobs, None
    return jobs, replace(op, query=tuple((k, str(offset) if k == "offset" else v) for k, v in op.query))


def list_watched_call(
    project: str, scope: Mapping[str, Any], pushed: Mapping[str, Any]
) -> tuple[Operation, ...]:
    """ListFlinkJobs of the project, every status, 100 a page (``offset``/``limit``), at most 100 pages."""
    query = (("offset", "0"), ("limit", str(LIST_PAGE_SIZE)))
    return (Operation("list jobs", "GET", _jobs_path(), "(job list)", query=query, is_read=True),)


def watched(entry: Any, scope: Mapping[str, Any]) -> Watched:
    """A listed ``FlinkJob``: its name, ``job_type`` (``flink_sql_job``…) and ``update_time``."""
    if not isinstance(entry, Mapping) or entry.get("job_id") is None:
        raise bad_response(NAME, "(job list)", "a listed job has no job_id")
    ref = DliFlinkJobRef(job_id=str(entry["job_id"]))
    update = entry.get("update_time")
    changed = (
        update / 1000.0
        if isinstance(update, int | float) and not isinstance(update, bool) and update > 0
        else None
    )
    return Watched(
        status=parse_job(entry, ref),
        ref=ref,
        name=str(entry.get("name") or ""),
        job_type=str(entry.get("job_type") or ""),
        changed_at=changed,
    )


def list_entry_id(entry: Any) -> str:
    """A listed job's ``job_id`` as the ref spells it (a decimal string)."""
    if not isinstance(entry, Mapping) or entry.get("job_id") is None:
        return ""
    return str(entry["job_id"])


def console_url(ref: DliFlinkJobRef, region: str | None) -> str:
    """The job's page in the DLI console's Flink job management."""
    return console("dli", f"/main/jobsManagement/flinkJob/detail?jobId={ref.job_id}", region)


SPEC = ServiceSpec(
    name=NAME,
    title="DLI Flink",
    cloud="huawei",
    ref_type=DliFlinkJobRef,
    tables={"": STATES},
    hook="airflow_jobstatus.hooks.dli_flink.DliFlinkJobHook",
    sensor="airflow_jobstatus.sensors.dli_flink.DliFlinkJobStatusSensor",
    link="airflow_jobstatus.links.DliFlinkJobLink",
    link_name="DLI Flink Job",
    console_url=console_url,
    attention=ATTENTION,
    cancel_note="Stop job: the batch stop call with this one job id, no savepoint.",
    coalescing=Coalescing((), list_active_call, list_entry_id, parse_job),
    watching=Watching(
        (),
        list_watched_call,
        watched,
        list_page=list_page,
        filters=frozenset({"name", "job_id", "job_type"}),
        limits="ListFlinkJobs, every status, 100 a page, at most 100 pages (10,000 jobs); no tags.",
    ),
)
