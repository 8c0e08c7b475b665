"""CDM (Cloud Data Migration): the job reference, submission states, counters, operations and parsing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.services.base import JobRef, ServiceSpec, Watched, Watching, bad_response, table
from airflow_jobstatus.services.huawei import Operation, console, quote_segment

NAME = "cdm"
#: Submission ``status`` → JobState (docs: Querying Job Status).
STATES = table(
    NAME,
    {
        "BOOTING": JobState.PENDING,
        "FAILURE_ON_SUBMIT": JobState.FAILED,
        "RUNNING": JobState.RUNNING,
        "SUCCEEDED": JobState.SUCCEEDED,
        "FAILED": JobState.FAILED,
        "UNKNOWN": JobState.UNKNOWN,
        "NEVER_EXECUTED": JobState.PENDING,
    },
)
#: The native state reported when the job has never been submitted: pending, never a success.
NO_SUBMISSION = "NO_SUBMISSION"
#: Where the counters sit in a submission, and their wire names; JobStatus.counters uses them lower-cased.
COUNTER_GROUP = "org.apache.sqoop.submission.counter.SqoopCounters"
COUNTERS = (
    "ROWS_READ",
    "ROWS_WRITTEN",
    "BYTES_READ",
    "BYTES_WRITTEN",
    "FILES_READ",
    "FILES_WRITTEN",
    "FILES_SKIPPED",
    "ROWS_WRITTEN_SKIPPED",
    "TOTAL_FILES",
    "TOTAL_SIZE",
)
COUNTER_KEYS = tuple(c.lower() for c in COUNTERS)


@dataclass(frozen=True)
class CdmJobRef(JobRef):
    """A CDM job: the cluster it runs on and its name (its status is the latest submission's)."""

    service: ClassVar[str] = NAME
    id_fields: ClassVar[tuple[str, ...]] = ("cluster_id", "job_name")
    cluster_id: str
    job_name: str

    @property
    def display_id(self) -> str:
        return f"{self.cluster_id}/{self.job_name}"

    def _path(self, suffix: str) -> str:
        cluster, name = quote_segment(self.cluster_id), quote_segment(self.job_name)
        return f"/v1.1/{{project_id}}/clusters/{cluster}/cdm/job/{name}/{suffix}"


def status_op(ref: CdmJobRef) -> Operation:
    return Operation("get status", "GET", ref._path("status"), ref.display_id, is_read=True)


def start_op(ref: CdmJobRef, variables: Mapping[str, Any] | None = None) -> Operation:
    body = {"variables": {str(k): str(v) for k, v in variables.items()}} if variables else {}
    # Not logged as "done" by the transport: the hook logs the new submission's id once it has it.
    return Operation("start job", "PUT", ref._path("start"), ref.display_id, body=body, log_done=False)


def cancel_op(ref: CdmJobRef) -> Operation:
    """CDM's cancel: Stop Job stops the job's running submission."""
    return Operation("stop job", "PUT", ref._path("stop"), ref.display_id, body={}, body_required=False)


def check_cancelled(data: Mapping[str, Any], ref: CdmJobRef) -> None:
    """A stop's 2xx answer is its acceptance: there is nothing more in it to check (errors are statuses)."""


def _latest(submissions: list[Any], job_id: str) -> Mapping[str, Any]:
    """The latest submission: the highest submission id (the first listed when ids are missing)."""
    if not all(isinstance(s, Mapping) for s in submissions):
        raise bad_response(NAME, job_id, "a submission is not an object")

    def key(sub: Mapping[str, Any]) -> int:
        try:
            return int(sub.get("submission-id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return -1

    return max(submissions, key=key)


def _progress(value: Any) -> float | None:
    """Progress 0..100 as a fraction; None when unknown or -1 (failed)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number < 0 else min(number / 100.0, 1.0)


def _counters(counters: Any) -> dict[str, int]:
    group = counters.get(COUNTER_GROUP) if isinstance(counters, Mapping) else None
    if not isinstance(group, Mapping):
        return {}
    result: dict[str, int] = {}
    for wire in COUNTERS:
        try:
            result[wire.lower()] = int(group[wire])
        except (KeyError, TypeError, ValueError):
            continue
    return result


def parse(data: Mapping[str, Any], ref: CdmJobRef) -> JobStatus:
    """The JobStatus of a show-job-status body (wire JSON): the latest submission's state."""
    job_id = ref.display_id
    submissions = data.get("submissions")
    if submissions is None and "submissions" not in data:
        raise bad_response(NAME, job_id, "no 'submissions' in the answer")
    if not isinstance(submissions, list):
        raise bad_response(NAME, job_id, "'submissions' is not a list")
    if not submissions:
        return JobStatus(
            NAME, job_id, JobState.PENDING, NO_SUBMISSION, message="the job has no submission yet"
        )
    sub = _latest(submissions, job_id)
    native = sub.get("status")
    if not isinstance(native, str) or not native:
        raise bad_response(NAME, job_id, "the submission has no status")
    errors = [str(sub[k]) for k in ("error-summary", "error-details") if sub.get(k)]
    state = STATES.normalize(native)
    return JobStatus(
        service=NAME,
        job_id=job_id,
        state=state,
        native_state=native,
        message="; ".join(errors) or None,
        progress=_progress(sub.get("progress")),
        counters=_counters(sub.get("counters")),
        ended_at=_ended_at(sub) if state.is_terminal else None,
    )


def _ended_at(sub: Mapping[str, Any]) -> float | None:
    """A finished submission's ``last-update-date`` (epoch ms) in seconds: when it ended."""
    value = sub.get("last-update-date")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return value / 1000.0
    return None


def parse_submission_id(data: Mapping[str, Any], ref: CdmJobRef) -> str:
    """The submission id in a start-job answer."""
    submissions = data.get("submissions")
    first = submissions[0] if isinstance(submissions, list) and submissions else None
    value = first.get("submission-id") if isinstance(first, Mapping) else None
    if value is None:
        raise bad_response(NAME, ref.display_id, "the start answer has no submission id")
    return str(value)


def job_op(ref: CdmJobRef) -> Operation:
    """Querying a Job: the job's definition (its from/to links and their job configs)."""
    cluster, name = quote_segment(ref.cluster_id), quote_segment(ref.job_name)
    path = f"/v1.1/{{project_id}}/clusters/{cluster}/cdm/job/{name}"
    return Operation("get job", "GET", path, ref.display_id, is_read=True, log_done=False)


#: The job-config inputs that name what a side of a job reads or writes: a table, else a path.
DATASET_INPUTS = {
    "from": ("fromJobConfig.schemaName", "fromJobConfig.tableName", "fromJobConfig.inputDirectory"),
    "to": ("toJobConfig.schemaName", "toJobConfig.tableName", "toJobConfig.outputDirectory"),
}


def _inputs(config_values: Any) -> dict[str, str]:
    """``{input name: value}`` of a ``from-config-values``/``to-config-values`` object."""
    configs = config_values.get("configs") if isinstance(config_values, Mapping) else None
    values: dict[str, str] = {}
    for config in configs if isinstance(configs, list) else []:
        for item in config.get("inputs") or [] if isinstance(config, Mapping) else []:
            if isinstance(item, Mapping) and item.get("name") and item.get("value") not in (None, ""):
                values[str(item["name"])] = str(item["value"])
    return values


def datasets(data: Mapping[str, Any], ref: CdmJobRef) -> dict[str, list[tuple[str, str]]]:
    """What a job definition says it reads (``from``) and writes (``to``): ``(namespace, name)`` pairs,
    the namespace naming the cluster and the link (``cdm://<cluster>/<link>``), the name the table
    (``schema.table``) or the directory. A side whose config names neither is left out."""
    jobs = data.get("jobs")
    job = jobs[0] if isinstance(jobs, list) and jobs and isinstance(jobs[0], Mapping) else {}
    found: dict[str, list[tuple[str, str]]] = {"from": [], "to": []}
    for side, (schema_key, table_key, path_key) in DATASET_INPUTS.items():
        link, values = job.get(f"{side}-link-name"), _inputs(job.get(f"{side}-config-values"))
        table = values.get(table_key)
        name = ".".join(p for p in (values.get(schema_key), table) if p) if table else values.get(path_key)
        if link and name:
            found[side].append((f"cdm://{ref.cluster_id}/{link}", name))
    return found


# -- event watchers (JobEventTrigger) ----------------------------------------------------------------
#: Jobs per page of the cluster's job list ("Querying a Job" with job name ``all``) and the most pages.
WATCH_PAGE_SIZE = 100
WATCH_MAX_PAGES = 100


def _all_jobs_op(cluster_id: str, page: int) -> Operation:
    path = f"/v1.1/{{project_id}}/clusters/{quote_segment(cluster_id)}/cdm/job/all"
    query = (("page_no", str(page)), ("page_size", str(WATCH_PAGE_SIZE)))
    return Operation("list jobs", "GET", path, "(job list)", query=query, is_read=True, log_done=False)


def list_watched_call(
    project: str, scope: Mapping[str, Any], pushed: Mapping[str, Any]
) -> tuple[Operation, ...]:
    """The cluster's job list (job name ``all``), every job defined on it, 100 a page, at most 100
    pages: it has no status or time filter, so a poll costs as many pages as the cluster has jobs."""
    return (_all_jobs_op(str(scope["cluster_id"]), 1),)


def watched_page(op: Operation, data: Mapping[str, Any]) -> tuple[list[Any], Operation | None]:
    """A page's ``jobs`` and the next page's operation (None after ``total`` or the last page)."""
    jobs = data.get("jobs")
    if not isinstance(jobs, list):
        raise bad_response(NAME, op.job_id, "the job list has no jobs array")
    query = dict(op.query)
    page, total = int(query["page_no"]), data.get("total")
    more = isinstance(total, int) and total > page * WATCH_PAGE_SIZE and len(jobs) == WATCH_PAGE_SIZE
    if not more or page >= WATCH_MAX_PAGES:
        return jobs, None
    return jobs, replace(op, query=(("page_no", str(page + 1)), ("page_size", str(WATCH_PAGE_SIZE))))


def _epoch_ms(entry: Mapping[str, Any], *keys: str) -> int | None:
    """The first of ``keys`` that holds a positive epoch-ms number (the list sends ints or digit strings)."""
    for key in keys:
        value = entry.get(key)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return int(value)
    return None


#: A listed job's last run: created at ``execute_create_date``, last changed at ``execute_update_date``
#: (SDK ``Job``; ``update-date`` is the definition's). ``last-update-date`` is a run status's key.
_RUN_CREATED = ("execute_create_date", "execute_start_date", "last-update-date")
_RUN_CHANGED = ("execute_update_date", "last-update-date", "update-date")


def watched(entry: Any, scope: Mapping[str, Any]) -> Watched:
    """A listed job: its name, its last run's ``status``, start and last change (epoch ms)."""
    if not isinstance(entry, Mapping) or not entry.get("name"):
        raise bad_response(NAME, "(job list)", "a listed job has no name")
    ref = CdmJobRef(cluster_id=str(scope["cluster_id"]), job_name=str(entry["name"]))
    native = str(entry.get("status") or NO_SUBMISSION)
    state = JobState.PENDING if native == NO_SUBMISSION else STATES.normalize(native)
    run, changed = _epoch_ms(entry, *_RUN_CREATED), _epoch_ms(entry, *_RUN_CHANGED)
    return Watched(
        status=JobStatus(NAME, ref.display_id, state, native),
        ref=ref,
        name=ref.job_name,
        job_type=str(entry.get("type") or ""),
        changed_at=None if changed is None else changed / 1000.0,
        run="" if run is None else str(run),  # a job name runs again: one event per run
    )


def console_url(ref: CdmJobRef, region: str | None) -> str:
    fragment = f"/cdm/clusterDetail/{ref.cluster_id}/jobManagement?jobName={ref.job_name}"
    return console("cdm", fragment, region)


SPEC = ServiceSpec(
    name=NAME,
    title="CDM",
    cloud="huawei",
    ref_type=CdmJobRef,
    tables={"": STATES},
    hook="airflow_jobstatus.hooks.cdm.CdmJobHook",
    sensor="airflow_jobstatus.sensors.cdm.CdmJobStatusSensor",
    link="airflow_jobstatus.links.CdmJobLink",
    link_name="CDM Job",
    console_url=console_url,
    attention=frozenset({"NEVER_EXECUTED", NO_SUBMISSION}),
    cancel_note="Stop job: CDM stops the job's running submission.",
    no_coalescing_reason=(
        "CDM has no list of active jobs: its job list (job name 'all', per cluster) has no status "
        "filter, so each poll would page (at most 100 a page) through every job ever defined on the "
        "cluster, finished and never-run ones included: its cost grows with the cluster's job count, "
        "not with the waits. Every CDM wait reads its own job."
    ),
    watching=Watching(
        ("cluster_id",),
        list_watched_call,
        watched,
        required_scope=("cluster_id",),
        list_page=watched_page,
        filters=frozenset({"name", "job_type"}),
        limits=(
            "Querying a Job with job name 'all': every job of the cluster, 100 a page, at most 100 pages; "
            "no status, time or tag filter (names and types are applied to the list)."
        ),
    ),
)
