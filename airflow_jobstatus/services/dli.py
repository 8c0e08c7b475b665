"""DLI (Data Lake Insight): the job reference and job types, SQL and Spark states, operations, parsing."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, ClassVar

from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.services.base import (
    Coalescing,
    JobRef,
    ServiceSpec,
    Watched,
    Watching,
    bad_response,
    require_choice,
    table,
)
from airflow_jobstatus.services.huawei import Operation, console, quote_segment

NAME = "dli"
JOB_TYPES = ("sql", "spark")
#: SQL job ``status`` → JobState (docs: Querying the Job Execution Progress).
SQL_STATES = table(
    "dli (sql)",
    {
        "LAUNCHING": JobState.PENDING,
        "RUNNING": JobState.RUNNING,
        "SCALING": JobState.RUNNING,
        "FINISHED": JobState.SUCCEEDED,
        "FAILED": JobState.FAILED,
        "CANCELLED": JobState.CANCELLED,
    },
)
#: Spark batch ``state`` → JobState; compared lower-cased (the docs' own example says "Success").
SPARK_STATES = table(
    "dli (spark)",
    {
        "starting": JobState.PENDING,
        "running": JobState.RUNNING,
        "recovering": JobState.RETRYING,
        "success": JobState.SUCCEEDED,
        "dead": JobState.FAILED,
    },
)
#: The documented subjob fields (open-source Spark JobData), copied into JobStatus.sub_jobs when present.
SUB_JOB_FIELDS = (
    "id",
    "name",
    "description",
    "submission_time",
    "completion_time",
    "stage_ids",
    "job_group",
    "status",
    "num_tasks",
    "num_active_tasks",
    "num_completed_tasks",
    "num_skipped_tasks",
    "num_failed_tasks",
    "num_killed_tasks",
    "num_completed_indices",
    "num_active_stages",
    "num_completed_stages",
    "num_skipped_stages",
    "num_failed_stages",
    "killed_tasks_summary",
)
#: The error code DLI answers a status read of an unknown job with (HTTP 400): a not-found.
UNKNOWN_JOB_CODE = "DLI.0002"
#: What a not-found of each job type may really be: SQL jobs and Spark batches are read by different
#: calls, so a Spark batch id read as a SQL job (or the reverse) is "not found" too.
WRONG_TYPE_HINTS = {
    "sql": "if it is a Spark batch, read it with job_type 'spark'",
    "spark": "if it is a SQL job, read it with job_type 'sql'",
}


@dataclass(frozen=True)
class DliJobRef(JobRef):
    """A DLI SQL job or Spark batch, by id."""

    service: ClassVar[str] = NAME
    id_fields: ClassVar[tuple[str, ...]] = ("job_id",)
    job_id: str
    job_type: str = "sql"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "job_type", require_choice(self.job_type, JOB_TYPES, "DLI job_type"))


def status_op(ref: DliJobRef) -> Operation:
    """SQL: the progress call (status, progress, subjobs); Spark: the batch state."""
    job = quote_segment(ref.job_id)
    if ref.job_type == "sql":
        path = f"/v1/{{project_id}}/jobs/{job}/progress"
    else:
        path = f"/v2.0/{{project_id}}/batches/{job}/state"
    # An unknown job id is a 400 DLI.0002 on a read: a not-found (in a finished job's message it is not).
    return Operation(
        "get status",
        "GET",
        path,
        ref.job_id,
        is_read=True,
        not_found_codes=(UNKNOWN_JOB_CODE,),
        not_found_hint=WRONG_TYPE_HINTS[ref.job_type],
    )


def cancel_op(ref: DliJobRef) -> Operation:
    job = quote_segment(ref.job_id)
    path = (
        f"/v1.0/{{project_id}}/jobs/{job}" if ref.job_type == "sql" else f"/v2.0/{{project_id}}/batches/{job}"
    )
    return Operation("cancel job", "DELETE", path, ref.job_id, body_required=False)


def submit_sql_op(
    sql: str,
    queue_name: str,
    database_name: str | None,
    conf: Mapping[str, Any] | list[str] | None,
    tags: list[dict[str, str]] | None = None,
) -> Operation:
    """Submit a SQL statement to a queue. ``conf``: a dict or ["key=value", …]; ``tags``: [{key, value}]."""
    conf_list = [f"{k}={v}" for k, v in conf.items()] if isinstance(conf, Mapping) else conf
    body: dict[str, Any] = {"sql": sql, "queue_name": queue_name}
    if database_name:
        body["currentdb"] = database_name
    if conf_list:
        body["conf"] = list(conf_list)
    if tags:
        body["tags"] = [check_tag(tag) for tag in tags]
    # Not logged as "done" by the transport: the hook logs the new job's id once it has it.
    return Operation(
        "submit SQL", "POST", "/v1.0/{project_id}/jobs/submit-job", "(new job)", body=body, log_done=False
    )


# -- finding the job a lost try submitted (the task-identity tag) ------------------------------------
#: Every SQL job the operator submits carries the tag ``airflow-task`` = the SHA-256 (64 lower-case
#: hex digits) of the compact JSON ``[dag_id, run_id, task_id, map_index]``: the same for every try of
#: one task instance (and after a clear), different for every other one. Hashed because DLI tag values
#: hold at most 255 characters of letters, digits, spaces and ``_.:=+-@`` (a DAG id alone may be 250).
TASK_TAG_KEY = "airflow-task"
#: And ``airflow-try`` = ``try<N>-first<F>-clear<C>``: the submitting try, the task's first try since
#: its last clear and the run's clear count (empty when unknown), read back by the try that finds it.
TRY_TAG_KEY = "airflow-try"
#: DLI's tag limits (SDK ``Tag``: key 1..128, value 1..255; the API reference's character set).
TAG_KEY_MAX, TAG_VALUE_MAX = 128, 255
_TAG_TEXT = re.compile(r"[\w .:=+\-@]+")
_TRY_TAG = re.compile(r"try(\d*)-first(\d*)-clear(\d*)")
#: Listed jobs read when looking for the task's job (newest first: the newest is the one wanted).
FIND_PAGE_SIZE = 10


def check_tag(tag: Mapping[str, Any]) -> dict[str, str]:
    """A ``{key, value}`` tag as DLI accepts it; ConfigurationError naming what is wrong."""
    from airflow_jobstatus.core.exceptions import ConfigurationError

    key, value = tag.get("key"), tag.get("value")
    for name, text, limit in (("key", key, TAG_KEY_MAX), ("value", value, TAG_VALUE_MAX)):
        if not isinstance(text, str) or not 1 <= len(text) <= limit:
            raise ConfigurationError(f"A DLI tag {name} must be a string of 1..{limit} characters: {text!r}.")
        if not _TAG_TEXT.fullmatch(text) or text != text.strip():
            raise ConfigurationError(
                f"A DLI tag {name} may hold letters, digits, inner spaces and _.:=+-@ only: {text!r}."
            )
    if str(key).startswith("_sys_"):
        raise ConfigurationError(f"A DLI tag key may not start with _sys_: {key!r}.")
    return {"key": str(key), "value": str(value)}


def task_tag_value(identity: Mapping[str, Any]) -> str:
    """The ``airflow-task`` value of a task instance (``dag_id``, ``run_id``, ``task_id``, ``map_index``)."""
    from airflow_jobstatus.core.exceptions import ConfigurationError

    parts = [identity.get(name) for name in ("dag_id", "run_id", "task_id")]
    map_index = identity.get("map_index", -1)
    if not all(isinstance(p, str) and p for p in parts):
        raise ConfigurationError(f"A task identity needs dag_id, run_id and task_id: {dict(identity)!r}.")
    if not isinstance(map_index, int) or isinstance(map_index, bool):
        raise ConfigurationError(f"A task identity's map_index must be an integer: {map_index!r}.")
    text = json.dumps([*parts, map_index], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _number(value: Any) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else ""


def submit_tags(identity: Mapping[str, Any], generation: Mapping[str, Any]) -> list[dict[str, str]]:
    """The tags of a submit: the task identity, and the try (``generation``: ``try_number``,
    ``first_try``, ``clear_number``) that submitted it."""
    try_value = "try{}-first{}-clear{}".format(
        *(_number(generation.get(k)) for k in ("try_number", "first_try", "clear_number"))
    )
    return [
        {"key": TASK_TAG_KEY, "value": task_tag_value(identity)},
        {"key": TRY_TAG_KEY, "value": try_value},
    ]


def find_started_op(identity: Mapping[str, Any]) -> Operation:
    """The SQL jobs carrying the task's tag, newest first ("Querying All Jobs": ``tags=key=value``)."""
    query = (
        ("tags", f"{TASK_TAG_KEY}={task_tag_value(identity)}"),
        ("job-type", "ALL"),
        ("order", "start_time_desc"),
        ("page-size", str(FIND_PAGE_SIZE)),
        ("current-page", "1"),
    )
    return Operation(
        "find the task's job", "GET", "/v1.0/{project_id}/jobs", "(job list)", query=query, is_read=True
    )


def _tags_of(entry: Mapping[str, Any]) -> dict[str, str]:
    tags = entry.get("tags")
    if not isinstance(tags, list):
        return {}
    return {str(t.get("key")): str(t.get("value")) for t in tags if isinstance(t, Mapping)}


def _start_time(entry: Mapping[str, Any]) -> int:
    start = entry.get("start_time")
    return start if isinstance(start, int) else -1


def parse_found(data: Mapping[str, Any], identity: Mapping[str, Any]) -> dict[str, Any] | None:
    """The newest listed job carrying the task's tag (checked on each entry, not trusted to the filter)
    as a job record (``job_ref``, ``ids``, ``submitted_at``, the submitting try); None when there is none."""
    jobs = data.get("jobs")
    if not isinstance(jobs, list):
        raise bad_response(NAME, "(job list)", "the list has no jobs array")
    wanted = task_tag_value(identity)
    mine = [
        job
        for job in jobs
        if isinstance(job, Mapping) and job.get("job_id") and _tags_of(job).get(TASK_TAG_KEY) == wanted
    ]
    if not mine:
        return None
    newest = max(mine, key=_start_time)
    job_id = str(newest["job_id"])
    submitted = newest.get("start_time")
    found: dict[str, Any] = {
        "job_ref": DliJobRef(job_id=job_id, job_type="sql").to_dict(),
        "ids": {"job_id": job_id},
        "submitted_at": (
            datetime.fromtimestamp(submitted / 1000, timezone.utc).isoformat()
            if isinstance(submitted, int)
            else None
        ),
        "try_number": None,
        "first_try": None,
        "clear_number": None,
    }
    generation = _TRY_TAG.fullmatch(_tags_of(newest).get(TRY_TAG_KEY, ""))
    if generation is not None:
        for name, text in zip(("try_number", "first_try", "clear_number"), generation.groups(), strict=True):
            found[name] = int(text) if text else None
    return found


#: Non-terminal SQL statuses ("Querying All Jobs" filters by one ``job-status`` per call) and Spark
#: batch states ("Querying Batch Job List" filters by one ``state`` per call).
ACTIVE_SQL_STATUSES = tuple(native for native, state in SQL_STATES.table.items() if not state.is_terminal)
ACTIVE_SPARK_STATES = tuple(native for native, state in SPARK_STATES.table.items() if not state.is_terminal)
#: Jobs per list page: SQL ``page-size`` and ``current-page`` both range over 1..100; batches ``size``.
LIST_PAGE_SIZE = 100
LIST_MAX_PAGES = 100


def _sql_list_op(status: str, page: int) -> Operation:
    query = (
        ("job-status", status),
        ("job-type", "ALL"),
        ("page-size", str(LIST_PAGE_SIZE)),
        ("current-page", str(page)),
    )
    return Operation("list jobs", "GET", "/v1.0/{project_id}/jobs", "(job list)", query=query, is_read=True)


def _batch_list_op(state: str, start: int) -> Operation:
    query = (("state", state), ("from", str(start)), ("size", str(LIST_PAGE_SIZE)))
    return Operation(
        "list batches", "GET", "/v2.0/{project_id}/batches", "(job list)", query=query, is_read=True
    )


def list_active_call(project: str, ref: DliJobRef) -> tuple[Operation, ...]:
    """The first list page for each non-terminal status of the ref's job type (the project is the
    connection's): SQL jobs by ``job-status``, Spark batches by ``state``."""
    if ref.job_type == "spark":
        return tuple(_batch_list_op(state, 0) for state in ACTIVE_SPARK_STATES)
    return tuple(_sql_list_op(status, 1) for status in ACTIVE_SQL_STATUSES)


def list_page(op: Operation, data: Mapping[str, Any]) -> tuple[list[Any], Operation | None]:
    """A list answer's entries and the operation reading the next page (None after the last)."""
    batches = op.path.endswith("/batches")
    jobs = data.get("sessions" if batches else "jobs")
    if not isinstance(jobs, list):
        raise bad_response(NAME, op.job_id, f"the list has no {'sessions' if batches else 'jobs'} array")
    query = dict(op.query)
    total = data.get("total" if batches else "job_count")
    if batches:
        start = int(query["from"])
        more = isinstance(total, int) and total > start + len(jobs) and len(jobs) == LIST_PAGE_SIZE
        return jobs, _batch_list_op(query["state"], start + len(jobs)) if more else None
    page = int(query["current-page"])
    more = isinstance(total, int) and total > page * LIST_PAGE_SIZE and len(jobs) == LIST_PAGE_SIZE
    if not more or page >= LIST_MAX_PAGES:  # past page 100 the jobs are read one by one
        return jobs, None
    return jobs, replace(
        op, query=tuple((k, str(page + 1) if k == "current-page" else v) for k, v in op.query)
    )


# -- event watchers (JobEventTrigger) ----------------------------------------------------------------


def list_watched_call(
    project: str, scope: Mapping[str, Any], pushed: Mapping[str, Any]
) -> tuple[Operation, ...]:
    """The first page of the scope's list, every status: SQL jobs ("Querying All Jobs", newest first,
    ``tags=k=v,…`` and ``queue_name`` pushed down, 100 a page, at most 100 pages) or Spark batches
    ("Querying Batch Job List", ``queue_name``, 100 a page)."""
    queue = scope.get("queue_name")
    if scope.get("job_type") == "spark":
        query: tuple[tuple[str, str], ...] = (("from", "0"), ("size", str(LIST_PAGE_SIZE)))
        query += (("queue_name", str(queue)),) if queue else ()
        return (
            Operation(
                "list batches", "GET", "/v2.0/{project_id}/batches", "(job list)", query=query, is_read=True
            ),
        )
    query = (("job-type", "ALL"), ("order", "start_time_desc"))
    tags = pushed.get("labels") or {}
    if tags:
        query += (("tags", ",".join(f"{k}={v}" for k, v in sorted(tags.items()))),)
    if queue:
        query += (("queue_name", str(queue)),)
    query += (("page-size", str(LIST_PAGE_SIZE)), ("current-page", "1"))
    return (
        Operation("list jobs", "GET", "/v1.0/{project_id}/jobs", "(job list)", query=query, is_read=True),
    )


def watched_page(op: Operation, data: Mapping[str, Any]) -> tuple[list[Any], Operation | None]:
    """``list_page`` for watchers: batches paged by ``from``; entries of another queue left out (the
    queue is also checked on each entry, not trusted to the filter)."""
    query = dict(op.query)
    if op.path.endswith("/batches"):
        jobs = data.get("sessions")
        if not isinstance(jobs, list):
            raise bad_response(NAME, op.job_id, "the list has no sessions array")
        start, total = int(query["from"]), data.get("total")
        more = isinstance(total, int) and total > start + len(jobs) and len(jobs) == LIST_PAGE_SIZE
        nxt = replace(op, query=tuple((k, str(start + len(jobs)) if k == "from" else v) for k, v in op.query))
        page: tuple[list[Any], Operation | None] = (jobs, nxt if more else None)
    else:
        page = list_page(op, data)
    queue = query.get("queue_name")
    if queue:
        key = "queue" if op.path.endswith("/batches") else "queue_name"
        page = ([j for j in page[0] if isinstance(j, Mapping) and j.get(key) in (None, queue)], page[1])
    return page


def _ms(value: Any) -> float | None:
    return (
        value / 1000.0
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        else None
    )


def watched(entry: Any, scope: Mapping[str, Any]) -> Watched:
    """A listed SQL job (its tags, ``job_type`` such as QUERY, and end = ``start_time`` + ``duration``
    once ended) or Spark batch (its ``update_time``)."""
    if not isinstance(entry, Mapping):
        raise bad_response(NAME, "(job list)", "a listed job is not an object")
    if scope.get("job_type") == "spark":
        ref = DliJobRef(job_id=str(entry.get("id") or ""), job_type="spark")
        status = parse(entry, ref)
        return Watched(
            status, ref, name=str(entry.get("name") or ref.job_id), changed_at=_ms(entry.get("update_time"))
        )
    ref = DliJobRef(job_id=str(entry.get("job_id") or ""), job_type="sql")
    status = parse(entry, ref)
    start, duration = _ms(entry.get("start_time")), entry.get("duration")
    ended = None
    if status.state.is_terminal and start is not None and isinstance(duration, int | float):
        ended = start + duration / 1000.0
    return Watched(
        status=status,
        ref=ref,
        name=ref.job_id,
        labels=_tags_of(entry),
        job_type=str(entry.get("job_type") or ""),
        changed_at=ended,
    )


def auto_unsupported(ref: DliJobRef) -> str | None:
    """Why ``coalesce="auto"`` reads a SQL job on its own: a listed SQL job carries no progress and no
    subjobs, which its progress read does (the XComs would differ from per-job polling's). A listed
    Spark batch carries its state, all its read has: auto may list it."""
    if ref.job_type == "sql":
        return "DLI's SQL job list carries no progress and no subjobs, which a read does"
    return None


def list_entry_id(entry: Any) -> str:
    """A listed SQL job's ``job_id`` or Spark batch's ``id``."""
    if not isinstance(entry, Mapping):
        return ""
    return str(entry.get("job_id") or entry.get("id") or "")


def normalize(native: str, substate: str | None = None, job_type: str | None = None) -> JobState:
    """SQL states are upper-case, Spark states lower-case; either may arrive in another case."""
    if job_type == "spark":
        return SPARK_STATES.normalize(native.lower())
    return SQL_STATES.normalize(native.upper())


def _sub_job(sub: Any) -> dict[str, Any]:
    if not isinstance(sub, Mapping):
        return {}
    return {key: sub[key] for key in SUB_JOB_FIELDS if sub.get(key) is not None}


def parse(data: Mapping[str, Any], ref: DliJobRef) -> JobStatus:
    """The JobStatus of a SQL progress body (progress already 0..1) or a Spark batch-state body."""
    if ref.job_type == "spark":
        native = data.get("state")
        if not isinstance(native, str) or not native:
            raise bad_response(NAME, ref.job_id, "no state")
        return JobStatus(NAME, ref.job_id, normalize(native, None, "spark"), native)
    native = data.get("status")
    if not isinstance(native, str) or not native:
        reason = "no status" + (f" ({data['message']})" if data.get("message") else "")
        raise bad_response(NAME, ref.job_id, reason)
    progress = data.get("progress")
    sub_jobs = data.get("sub_jobs") or []
    if not isinstance(sub_jobs, list):
        raise bad_response(NAME, ref.job_id, "'sub_jobs' is not a list")
    return JobStatus(
        service=NAME,
        job_id=ref.job_id,
        state=normalize(native, None, "sql"),
        native_state=native,
        message=str(data["message"]) if data.get("message") else None,
        progress=float(progress) if isinstance(progress, int | float) else None,
        sub_jobs=[s for s in (_sub_job(sub) for sub in sub_jobs) if s],
    )


def parse_submitted_id(data: Mapping[str, Any]) -> str:
    """The job id in a submit answer; a refusal (is_success false) is a bad request."""
    from airflow_jobstatus.core.exceptions import BadRequestError

    if data.get("is_success") is False:
        raise BadRequestError(f"DLI refused the SQL job: {data.get('message')}", service=NAME)
    job_id = data.get("job_id")
    if not job_id:
        raise bad_response(NAME, "(new job)", "the submit answer has no job_id")
    return str(job_id)


def check_cancelled(data: Mapping[str, Any], ref: DliJobRef) -> None:
    """A 200 with is_success=false means DLI refused the cancel (e.g. the job already ended)."""
    from airflow_jobstatus.core.exceptions import BadRequestError

    if data.get("is_success") is False:
        raise BadRequestError(
            f"DLI did not cancel job {ref.job_id!r}: {data.get('message') or 'no message'}",
            service=NAME,
            job_id=ref.job_id,
        )


#: The console's job-management page of each job type (SQL jobs and Spark batches are listed apart).
CONSOLE_PAGES = {"sql": "sqlJob", "spark": "sparkJob"}


def console_url(ref: DliJobRef, region: str | None) -> str:
    """The job's page: SQL jobs on the SQL job page, Spark batches on the Spark job page."""
    page = CONSOLE_PAGES[ref.job_type]
    return console("dli", f"/main/jobsManagement/{page}?jobId={ref.job_id}", region)


SPEC = ServiceSpec(
    name=NAME,
    title="DLI",
    cloud="huawei",
    ref_type=DliJobRef,
    tables={"sql": SQL_STATES, "spark": SPARK_STATES},
    hook="airflow_jobstatus.hooks.dli.DliJobHook",
    sensor="airflow_jobstatus.sensors.dli.DliJobStatusSensor",
    link="airflow_jobstatus.links.DliJobLink",
    link_name="DLI Job",
    console_url=console_url,
    job_types=JOB_TYPES,
    normalizer=normalize,
    cancel_note="SQL: DELETE the job; Spark: DELETE the batch. A job that already ended is not cancelled.",
    coalescing=Coalescing(
        ("job_type",), list_active_call, list_entry_id, parse, auto_unsupported=auto_unsupported
    ),
    watching=Watching(
        ("job_type", "queue_name"),
        list_watched_call,
        watched,
        list_page=watched_page,
        filters=frozenset({"tags", "name", "job_id"}),
        limits=(
            "SQL: Querying All Jobs, every status, newest first, 100 a page, at most 100 pages (10,000 "
            "jobs); tags and queue_name pushed down when not shared. Spark: Querying Batch Job List, "
            "100 a page; batches carry no tags."
        ),
    ),
)
