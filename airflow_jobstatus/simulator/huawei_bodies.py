"""CDM and DLI answer bodies as the services document them (and the Huawei SDK models parse).

Plain data, no HTTP: ``huawei`` turns an Answer into a response. Error bodies:

- the API gateway's (``error_code``/``error_msg``, parsed by the SDK): 401 ``APIGW.0301``, 403
  ``APIGW.0302``, 429 ``APIGW.0308`` (throttled), 502 ``APIGW.0202``, 504 ``APIGW.0203``;
- CDM's (``errCode``/``externalMessage``; the SDK does not parse it and reports the HTTP status);
- DLI's (``is_success``/``error_code``/``error_msg``); an unknown job id is 400 ``DLI.0002``.

CDM submissions carry both ``last-udpate-user`` (the documented spelling) and ``last-update-user``
(what the SDK model reads). ``counters`` are served whenever the phase payload has them.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from airflow_jobstatus.simulator.timeline import SimJob
from airflow_jobstatus.simulator.vocabulary import CDM_COUNTERS, SQOOP_COUNTERS

CDM_USER = "cdm"
DLI_OWNER = "sim-user"
GATEWAY_FAULTS = {
    429: ("APIGW.0308", "The throttling threshold has been reached: policy user over ratelimit"),
    502: ("APIGW.0202", "Backend unavailable"),
    504: ("APIGW.0203", "Backend timeout"),
}
SERVICE_FAULT_MESSAGES = {
    409: "The resource is being changed by another request. Try again later.",
    500: "Internal server error.",
    503: "Service temporarily unavailable.",
}


@dataclass
class Answer:
    """What to answer: a status and a JSON-able body (and extra headers)."""

    status: int
    data: Any
    headers: dict[str, str] = field(default_factory=dict)


def apigw_error(status: int, code: str, message: str) -> Answer:
    """The API gateway's error body (the SDK parses error_code/error_msg)."""
    return Answer(status, {"error_code": code, "error_msg": message, "request_id": uuid.uuid4().hex})


def cdm_error(status: int, code: str, message: str) -> Answer:
    """CDM's error body (not parsed by the SDK: it reports the HTTP status and the raw text)."""
    return Answer(status, {"errCode": code, "externalMessage": message})


def dli_error(status: int, code: str, message: str) -> Answer:
    """DLI's error body."""
    return Answer(status, {"is_success": False, "message": message, "error_code": code, "error_msg": message})


def cdm_not_found(name: str) -> Answer:
    return cdm_error(404, "Cdm.0100", f"Job {name} not exist.")


def dli_not_found(job_id: str) -> Answer:
    """What DLI answers for a job id it does not know: 400 DLI.0002, not 404."""
    return dli_error(400, "DLI.0002", f"The job {job_id} does not exist.")


def fault_answer(service: str, status: int, retry_after: str | None = None) -> Answer:
    """The answer of an ``http_<status>`` fault: the gateway's body, or the service's own."""
    if status in GATEWAY_FAULTS:
        answer = apigw_error(status, *GATEWAY_FAULTS[status])
        if retry_after is not None:
            answer.headers["Retry-After"] = retry_after
        return answer
    message = SERVICE_FAULT_MESSAGES.get(status, "Error.")
    if service == "cdm":
        return cdm_error(status, "Cdm.0000", message)
    return dli_error(status, "DLI.0999", message)


def _ms(wall: float) -> int:
    return int(wall * 1000)


def cdm_counters(counters: dict[str, Any]) -> dict[str, Any]:
    """Timeline counters (snake_case) → ``{"org.apache.sqoop...SqoopCounters": {"ROWS_READ": …}}``."""
    wire = {key.upper(): int(counters.get(key) or 0) for key in CDM_COUNTERS}
    wire.update({k.upper(): v for k, v in counters.items() if k not in CDM_COUNTERS})
    return {SQOOP_COUNTERS: wire}


def _cdm_progress(snap: dict[str, Any]) -> float:
    progress = snap.get("progress")
    if progress is not None:
        return round(float(progress), 2)
    return {"SUCCEEDED": 100.0, "FAILED": -1.0, "FAILURE_ON_SUBMIT": -1.0}.get(str(snap["state"]), 0.0)


def cdm_submission(job: SimJob, start: bool = False) -> dict[str, Any]:
    """One submission in the documented dashed-key form (``start``: the start call's shorter form)."""
    snap = job.snapshot()
    created = _ms(job.created_wall)
    counters = snap.get("counters") if isinstance(snap.get("counters"), dict) else None
    sub: dict[str, Any] = {
        "isIncrementing": False,
        "delete_rows": 0,
        "update_rows": 0,
        "write_rows": int((counters or {}).get("rows_written") or 0),
        "submission-id": job.submission_id,
        "job-name": job.job_id,
        "creation-user": CDM_USER,
        "creation-date": created,
        "execute-date": created,
        "progress": _cdm_progress(snap),
        "status": snap["state"],
        "isStopingIncrement": "",
        "is-execute-auto": False,
        "last-update-date": _ms(snap["state_start_wall"]),
        "last-udpate-user": CDM_USER,
        "last-update-user": CDM_USER,
        "isDeleteJob": False,
    }
    if start:
        return sub
    sub["external-id"] = f"job_local{job.submission_id}_0001"
    if counters is not None:
        sub["counters"] = cdm_counters(counters)
    for key in ("error_summary", "error_details"):
        if snap.get(key) is not None:
            sub[key.replace("_", "-")] = str(snap[key])
    return sub


def cdm_never_executed(name: str) -> dict[str, Any]:
    """What the status call shows for a job that exists but was never started."""
    return {
        "job-name": name,
        "creation-user": CDM_USER,
        "creation-date": _ms(time.time()),
        "progress": 0.0,
        "status": "NEVER_EXECUTED",
    }


def cdm_job_definition(name: str) -> dict[str, Any]:
    """What "Querying a Job" answers for a defined job: a MySQL table copied to a DWS table of its name."""

    def config(name_prefix: str, schema: str, table: str) -> dict[str, Any]:
        inputs = [
            {"name": f"{name_prefix}.schemaName", "value": schema},
            {"name": f"{name_prefix}.tableName", "value": table},
        ]
        return {"configs": [{"inputs": inputs, "name": name_prefix}]}

    job = {
        "job_type": "NORMAL_JOB",
        "name": name,
        "from-connector-name": "generic-jdbc-connector",
        "from-link-name": "sim-mysql-link",
        "from-config-values": config("fromJobConfig", "sim_src", name),
        "to-connector-name": "generic-jdbc-connector",
        "to-link-name": "sim-dws-link",
        "to-config-values": config("toJobConfig", "sim_dw", name),
        "driver-config-values": {"configs": [{"inputs": [], "name": "throttlingConfig"}]},
        "creation-user": CDM_USER,
    }
    return {"total": 1, "jobs": [job], "page_no": 1, "page_size": 10}


def cdm_list_entry(name: str, history: list[SimJob], job_type: str) -> dict[str, Any]:
    """One job of "Querying Jobs" with ``all``: the definition plus its last run (SDK ``Job``)."""
    job: dict[str, Any] = dict(cdm_job_definition(name)["jobs"][0])
    job["job_type"] = job_type
    if not history:
        created = _ms(time.time())
        job.update({"status": "NEW", "creation-date": created, "update-date": created})
        return job
    first, last = history[0], history[-1]
    snap = last.snapshot()
    job.update(
        {
            "status": snap["state"],
            "creation-date": _ms(first.created_wall),
            "update-date": _ms(snap["state_start_wall"]),
            "update-user": CDM_USER,
            "execute_create_date": _ms(last.created_wall),
            "execute_start_date": _ms(last.created_wall),
            "execute_update_date": _ms(snap["state_start_wall"]),
            "external_id": f"job_local{last.submission_id}_0001",
        }
    )
    counters = snap.get("counters") if isinstance(snap.get("counters"), dict) else None
    if counters is not None:
        for key in (
            "rows_read",
            "rows_written",
            "bytes_read",
            "bytes_written",
            "files_read",
            "files_written",
        ):
            job[key] = int(counters.get(key) or 0)
    return job


def dli_progress(job: SimJob) -> dict[str, Any]:
    """The ``/v1/{project_id}/jobs/{job_id}/progress`` body."""
    snap = job.snapshot()
    state = str(snap["state"])
    progress = snap.get("progress")
    if progress is None:
        progress = 1.0 if state == "FINISHED" else 0.0
    sub_jobs = [dict(s) for s in snap.get("sub_jobs") or [] if isinstance(s, dict)]
    body: dict[str, Any] = {
        "is_success": True,
        "message": str(snap.get("message") or ""),
        "job_id": job.job_id,
        "status": state,
        "progress": float(progress),
        "sub_jobs": sub_jobs,
    }
    running = next((s for s in sub_jobs if str(s.get("status", "")).upper() == "RUNNING"), None)
    if running is not None and "id" in running:
        body["sub_job_id"] = running["id"]
    return body


def dli_status(job: SimJob, meta: dict[str, Any]) -> dict[str, Any]:
    """The ``/v1.0/{project_id}/jobs/{job_id}/status`` body (ShowSqlJobStatusResponse)."""
    snap = job.snapshot()
    end = snap["state_start_wall"] if job.is_terminal() else time.time()
    return {
        "is_success": True,
        "message": str(snap.get("message") or ""),
        "job_id": job.job_id,
        "job_type": meta.get("type", "QUERY"),
        "job_mode": "async",
        "queue_name": meta.get("queue_name", "default"),
        "owner": DLI_OWNER,
        "start_time": _ms(job.created_wall),
        "duration": max(0, _ms(end) - _ms(job.created_wall)),
        "status": snap["state"],
        "input_row_count": 0,
        "bad_row_count": 0,
        "input_size": 0,
        "result_count": 0,
        "database_name": meta.get("database_name", ""),
        "table_name": "",
        "detail": "",
        "user_conf": json.dumps(meta.get("user_conf", [])),
        "result_format": "CSV",
        "statement": meta.get("statement", ""),
        "tags": [dict(t) for t in meta.get("tags", [])],
    }


#: DLI's tag rules (SDK ``Tag``: key 1..128, value 1..255 characters; the API reference's set).
_TAG_TEXT = re.compile(r"[\w .:=+\-@]+")


def dli_tags_problem(tags: Any) -> str | None:
    """Why a submit's ``tags`` would be refused (a list of ``{key, value}``), or None."""
    if not isinstance(tags, list):
        return "tags must be a list of {key, value} objects."
    for tag in tags:
        if not isinstance(tag, dict):
            return "tags must be a list of {key, value} objects."
        for name, limit in (("key", 128), ("value", 255)):
            text = tag.get(name)
            if not isinstance(text, str) or not 1 <= len(text) <= limit or not _TAG_TEXT.fullmatch(text):
                return f"tag {name} {text!r} must be 1..{limit} letters, digits, spaces or _.:=+-@."
    return None


def dli_tag_filter(text: str) -> set[tuple[str, str]] | None:
    """The ``tags`` list filter (``key=value``, several joined by ``,``) as pairs; None when malformed."""
    wanted = set()
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            return None
        wanted.add((key, value))
    return wanted


def dli_list_entry(job: SimJob, meta: dict[str, Any]) -> dict[str, Any]:
    """One job of "Querying All Jobs" (``SqlJob``: the status body's fields without the single-job
    ones, plus ``end_time`` once the job has ended)."""
    entry = dli_status(job, meta)
    for key in ("is_success", "job_mode", "user_conf"):
        entry.pop(key, None)
    ended = job.ended_wall()
    if ended is not None:
        entry["end_time"] = _ms(ended)
    return entry


#: ListSqlJobs ``job-status`` values (the API reference's list) and ``job-type`` ones (plus ALL).
DLI_SQL_STATUSES = frozenset(
    [
        "LAUNCHING",
        "RUNNING",
        "FAILED",
        "CANCELLED",
        "COMPUTED",
        "SUSPENDED",
        "ACTIVE",
        "DELETED",
        "CREATING",
        "FINISHED",
        "SCALING",
    ]
)
DLI_SQL_LIST_TYPES = frozenset(
    [
        "DDL",
        "DCL",
        "IMPORT",
        "EXPORT",
        "QUERY",
        "INSERT",
        "DATA_MIGRATION",
        "UPDATE",
        "DELETE",
        "RESTART_QUEUE",
        "SCALE_QUEUE",
        "ALL",
    ]
)
DLI_SQL_ORDERS = ("start_time_desc", "start_time_asc", "duration_desc", "duration_asc")


@dataclass
class DliSqlListQuery:
    """A ListSqlJobs query, checked (``parse``: ValueError naming the bad parameter)."""

    page_size: int = 50
    current_page: int = 1
    status: str | None = None
    types: frozenset[str] = frozenset({"ALL"})
    tags: frozenset[tuple[str, str]] = frozenset()
    order: str = "start_time_desc"
    equal: dict[str, str] = field(default_factory=dict)
    sql_pattern: str = ""
    start: int | None = None
    end: int | None = None

    @classmethod
    def parse(cls, query: Any) -> DliSqlListQuery:
        out = cls()
        try:
            out.page_size = int(query.get("page-size", "50"))
            out.current_page = int(query.get("current-page", "1"))
            out.start = int(query["start"]) if query.get("start") else None
            out.end = int(query["end"]) if query.get("end") else None
        except ValueError:
            raise ValueError("page-size, current-page, start and end must be integers.") from None
        if not 1 <= out.page_size <= 100 or out.current_page < 1:
            raise ValueError("page-size must be 1..100 and current-page >= 1.")
        if (out.start is not None and out.start < 1) or (out.end is not None and out.end < 0):
            raise ValueError("start must be >= 1 and end >= 0 (unix milliseconds).")
        out.status = query.get("job-status") or None
        if out.status is not None and out.status not in DLI_SQL_STATUSES:
            raise ValueError(f"job-status must be one of {', '.join(sorted(DLI_SQL_STATUSES))}.")
        types = [*query.getall("job_types", [])] or [query.get("job-type", "ALL") or "ALL"]
        if not set(types) <= DLI_SQL_LIST_TYPES:
            raise ValueError(f"job-type must be one of {', '.join(sorted(DLI_SQL_LIST_TYPES))}.")
        out.types = frozenset(types)
        wanted = dli_tag_filter(query.get("tags", ""))
        if wanted is None:
            raise ValueError("tags must be key=value[,key=value…].")
        out.tags = frozenset(wanted)
        out.order = query.get("order", "start_time_desc")
        if out.order not in DLI_SQL_ORDERS:
            raise ValueError(f"order must be one of {', '.join(DLI_SQL_ORDERS)}.")
        for name, key in (
            ("queue_name", "queue_name"),
            ("job-id", "job_id"),
            ("owner", "owner"),
            ("db_name", "database_name"),
        ):
            if query.get(name):
                out.equal[key] = query[name]
        out.sql_pattern = (query.get("sql_pattern") or "").lower()
        return out

    def keeps(self, entry: dict[str, Any], meta: dict[str, Any]) -> bool:
        if self.status and entry["status"] != self.status:
            return False
        if "ALL" not in self.types and entry["job_type"] not in self.types:
            return False
        carried = {(t["key"], t["value"]) for t in meta.get("tags", [])}
        if not self.tags <= carried:
            return False
        if any(str(entry.get(k, "")) != v for k, v in self.equal.items()):
            return False
        if self.sql_pattern and self.sql_pattern not in str(entry.get("statement", "")).lower():
            return False
        if self.start is not None and entry["start_time"] < self.start:
            return False
        return self.end is None or entry["start_time"] <= self.end

    def sort_key(self, entry: dict[str, Any]) -> tuple[int, str]:
        value = entry["duration" if self.order.startswith("duration") else "start_time"]
        return (-value if self.order.endswith("_desc") else value, entry["job_id"])


def spark_list_entry(job: SimJob) -> dict[str, Any]:
    """One batch of "Querying Batch Job List" (the state exactly as the timeline spells it)."""
    snap = job.snapshot()
    end = snap["state_start_wall"] if job.is_terminal() else time.time()
    return {
        "id": job.job_id,
        "state": snap["state"],
        "appId": f"application_{_ms(job.created_wall)}_0001",
        "log": [],
        "sc_type": "A",
        "cluster_name": "default",
        "queue": str(job.meta.get("queue_name") or "default"),
        "create_time": _ms(job.created_wall),
        "update_time": _ms(snap["state_start_wall"]),
        "duration": max(0, _ms(end) - _ms(job.created_wall)),
        "owner": DLI_OWNER,
        "kind": "",
        **({"name": str(job.meta["name"])} if job.meta.get("name") else {}),
    }
