"""DLI Flink jobs over signed REST: ShowFlinkJob, ListFlinkJobs and BatchStopFlinkJobs.

The routes go through ``HuaweiApi``'s middleware (the signature check) and its ``_serve`` (the
project check, the call record and every HTTP fault kind), so they behave like the other Huawei
paths. Bodies follow the DLI v1 API models (``ShowFlinkJobResponse``, ``ListFlinkJobsResponse``,
``FlinkJob``, ``BatchStopFlinkJobsResponse``): ``job_id`` is an integer, ``is_success`` a string.
An unknown job is 400 ``DLI.0002``, as for DLI's other jobs.

Timeline payload keys: ``status_desc`` (served as is), ``restart_times`` (a number). Where-key:
``name`` (default ``flink-<id>``), which ListFlinkJobs filters on.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from airflow_jobstatus.simulator.core import SimJob
from airflow_jobstatus.simulator.http import json_response, read_json
from airflow_jobstatus.simulator.huawei import HuaweiApi
from airflow_jobstatus.simulator.huawei_bodies import (
    DLI_OWNER,
    Answer,
    dli_error,
    dli_not_found,
    dli_tag_filter,
)
from airflow_jobstatus.simulator.vocabulary import NATIVE_JOB_TYPES

SERVICE = "dli_flink"
_JOBS = "/v1.0/{project_id}/streaming/jobs"
JOB_TYPE = "flink_opensource_sql_job"
QUEUE = "sim_flink_queue"
#: ``limit``'s default when absent, and the largest one accepted.
DEFAULT_LIMIT, MAX_LIMIT = 10, 100


class DliFlinkApi:
    """The Flink job routes, served through a ``HuaweiApi`` (its checks, records and faults)."""

    def __init__(self, huawei: HuaweiApi):
        self.huawei = huawei
        self.core = huawei.core

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(_JOBS, self.list_jobs),
            web.post(_JOBS + "/stop", self.stop_jobs),
            web.get(_JOBS + "/{job_id}", self.show_job),
        ]

    def _body(self, job: SimJob, detail: bool) -> dict[str, Any]:
        return flink_job(job, detail, self.core.project_id)

    def _job(self, job_id: str) -> SimJob | None:
        return self.core.get_job(SERVICE, job_id)

    async def show_job(self, request: web.Request) -> web.StreamResponse:
        """ShowFlinkJob: ``{"is_success": "true", "message", "job_detail": FlinkJob}``."""
        job_id = request.match_info["job_id"]
        if not job_id.isdigit():
            return _bad_request(f"job_id must be an integer, got {job_id!r}.")

        def respond() -> Answer:
            job = self._job(job_id)
            if job is None:
                return dli_not_found(job_id)
            message = "Querying of the job details succeeds."
            return Answer(
                200, {"is_success": "true", "message": message, "job_detail": self._body(job, True)}
            )

        return await self.huawei._serve(request, SERVICE, job_id, "ShowFlinkJob", respond)

    async def list_jobs(self, request: web.Request) -> web.StreamResponse:
        """ListFlinkJobs: by ``status``, ``name`` (exact), ``tags`` (``k=v[,k=v…]``: a job must carry
        all), ``job_type``, ``queue_name`` and ``user_name``; ``order`` by job id (desc by default),
        ``offset`` (jobs skipped) and ``limit`` (default 10, at most 100)."""
        query = request.query
        try:
            offset = int(query.get("offset", "0"))
            limit = int(query.get("limit", str(DEFAULT_LIMIT)))
        except ValueError:
            offset = limit = -1
        order = query.get("order", "desc")
        if offset < 0 or not 0 <= limit <= MAX_LIMIT or order not in ("asc", "desc"):
            return _bad_request(f"offset must be >= 0, limit 0..{MAX_LIMIT} and order asc or desc.")
        status, name = query.get("status"), query.get("name")
        detail = query.get("show_detail", "false").lower() == "true"
        wanted = dli_tag_filter(query.get("tags", ""))
        if wanted is None:
            return _bad_request("tags must be key=value[,key=value…].")
        job_type = query.get("job_type")
        if job_type and job_type not in NATIVE_JOB_TYPES[SERVICE]:
            return _bad_request(f"job_type must be one of {', '.join(NATIVE_JOB_TYPES[SERVICE])}.")
        equal = {k: query[k] for k in ("queue_name", "user_name") if query.get(k)}

        def keeps(job: SimJob) -> bool:
            if (status and job.state_at() != status) or (name and _name(job) != name):
                return False
            if job_type and _job_type(job) != job_type:
                return False
            if not wanted <= {(t["key"], t["value"]) for t in job.meta.get("tags", [])}:
                return False
            listed = {"queue_name": _queue(job), "user_name": DLI_OWNER}
            return all(listed[k] == v for k, v in equal.items())

        def respond() -> Answer:
            jobs = [job for job in self.core.listed_jobs(SERVICE) if keeps(job)]
            jobs.sort(key=lambda job: _number(job.job_id), reverse=order == "desc")
            page = [self._body(job, detail) for job in jobs[offset : offset + limit]]
            job_list = {"total_count": len(jobs), "jobs": page}
            message = "Querying of the job list succeeds."
            return Answer(200, {"is_success": "true", "message": message, "job_list": job_list})

        scope = f"projects/{request.match_info.get('project_id')}"
        return await self.huawei._serve(
            request, SERVICE, None, "ListFlinkJobs", respond, scope=scope, page=str(offset), query=dict(query)
        )

    async def stop_jobs(self, request: web.Request) -> web.StreamResponse:
        """BatchStopFlinkJobs: one ``{"is_success", "message"}`` per job id, in order (a JSON array)."""
        body = await read_json(request)
        ids = body.get("job_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids or not all(_is_int(i) for i in ids):
            return _bad_request("job_ids must be a non-empty list of integers.")
        job_ids = [str(i) for i in ids]

        def respond() -> Answer:
            return Answer(200, [self._stop(job_id) for job_id in job_ids])

        one = job_ids[0] if len(job_ids) == 1 else None
        return await self.huawei._serve(request, SERVICE, one, "BatchStopFlinkJobs", respond, body=body)

    def _stop(self, job_id: str) -> dict[str, str]:
        job = self._job(job_id)
        if job is None:
            return {"is_success": "false", "message": f"The job {job_id} does not exist."}
        if job.is_terminal():
            return {
                "is_success": "false",
                "message": f"The job {job_id} is {job.state_at()} and cannot be stopped.",
            }
        self.core.cancel_job(SERVICE, job_id, action="stop")
        return {
            "is_success": "true",
            "message": "The request for stopping DLI jobs is delivered successfully.",
        }


def flink_job(job: SimJob, detail: bool, project_id: str = "") -> dict[str, Any]:
    """A ``FlinkJob`` (``detail``: the show call's fields; else a list entry's)."""
    snap = job.snapshot()
    now = time.time()
    started = job.created_wall
    body: dict[str, Any] = {
        "job_id": _number(job.job_id),
        "name": _name(job),
        "desc": "",
        "user_name": DLI_OWNER,
        "job_type": _job_type(job),
        "status": snap["state"],
        "status_desc": str(snap.get("status_desc") or ""),
        "create_time": _ms(job.created_wall),
        "start_time": _ms(started),
        "update_time": _ms(snap["state_start_wall"]),
        "queue_name": _queue(job),
        "graph_editor_enabled": False,
        "has_savepoint": False,
        "edge_group_ids": [],
        "restart_times": int(snap.get("restart_times") or 0),
        "savepoint_path": "",
    }
    if detail:
        body.update(
            user_id="sim-user-id",
            project_id=project_id,
            run_mode="exclusive_cluster",
            entrypoint_args="",
            job_config={"checkpoint_enabled": False, "log_enabled": False, "restart_when_exception": False},
        )
    else:
        end = snap["state_start_wall"] if job.is_terminal() else now
        body.update(duration=max(0, _ms(end) - _ms(started)), root_id=-1, sql_body="", main_class="")
    return body


def _job_type(job: SimJob) -> str:
    return str(job.meta.get("type") or JOB_TYPE)


def _queue(job: SimJob) -> str:
    return str(job.meta.get("queue_name") or QUEUE)


def _name(job: SimJob) -> str:
    return job.where.get("name") or f"flink-{job.job_id}"


def _number(job_id: str) -> int | str:
    """The id as the wire spells it: an integer (a non-numeric simulator id stays a string)."""
    return int(job_id) if job_id.isdigit() else job_id


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ms(wall: float) -> int:
    return int(wall * 1000)


def _bad_request(message: str) -> web.Response:
    answer = dli_error(400, "DLI.0001", message)
    return json_response(answer.status, answer.data)
