"""Huawei Cloud CDM and DLI over signed REST (aiohttp routes), answering with ``huawei_bodies``.

Request checks, in order (every path but the /_sim/ control API):

1. ``Authorization`` must be a valid ``SDK-HMAC-SHA256`` signature by the simulator's AK/SK over the
   request as received, with an ``X-Sdk-Date`` within 15 minutes (``signature``); else **401**
   ``APIGW.0301``. Unknown paths are checked too: a signed request to one is a 404.
2. The path's project id must be the simulator's, and ``X-Project-Id`` (when sent) the path's;
   else **403** ``APIGW.0302`` (what a real gateway says for a foreign project).
3. The call is recorded, then a pending fault applies (``take_fault(service, job, "http")``), then
   the operation. An unknown job is CDM **404** ``Cdm.0100``, DLI **400** ``DLI.0002``.

Faults: ``http_<status>`` (``huawei_bodies.fault_answer``; ``http_429`` with ``seconds`` adds
``Retry-After``), ``latency`` (sleep, then answer), ``hold_answer`` (do the operation at once — a
submit creates its job — then sleep before answering: a client lost meanwhile never learns the
job's id), ``drop_connection`` (close the connection
without answering), ``malformed_body`` (200 with the first half of the answer), ``empty_body``
(200 with no body).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from airflow_jobstatus.simulator import huawei_bodies as bodies
from airflow_jobstatus.simulator.core import SimJob, SimulatorCore
from airflow_jobstatus.simulator.http import Handler, json_response, raw_response, read_json
from airflow_jobstatus.simulator.huawei_bodies import Answer, cdm_error, dli_error
from airflow_jobstatus.simulator.signature import check_signature, lower_headers
from airflow_jobstatus.simulator.vocabulary import DLI_SQL_JOB_TYPES, NATIVE_JOB_TYPES

_CDM = "/v1.1/{project_id}/clusters/{cluster_id}/cdm"
_CDM_JOB = _CDM + "/job/{job_name}"
_V1, _V2 = "/v1.0/{project_id}", "/v2.0/{project_id}"


class HuaweiApi:
    """The CDM and DLI routes over one SimulatorCore, and the signature-checking middleware."""

    def __init__(self, core: SimulatorCore, unsigned_prefix: str = "/_sim"):
        self.core = core
        #: Paths under this prefix (the control API) are not Huawei's: no signature needed.
        self.unsigned_prefix = unsigned_prefix

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(_CDM_JOB + "/status", self.cdm_status),
            web.get(_CDM + "/job/all", self.cdm_list),  # before {job_name}: "all" lists every job
            web.get(_CDM_JOB, self.cdm_job),
            web.put(_CDM_JOB + "/start", self.cdm_start),
            web.put(_CDM_JOB + "/stop", self.cdm_stop),
            web.get(_CDM + "/submissions", self.cdm_submissions),
            web.post(_V1 + "/jobs/submit-job", self.dli_submit),
            web.get(_V1 + "/jobs", self.dli_list),
            web.get("/v1/{project_id}/jobs/{job_id}/progress", self.dli_progress),
            web.get(_V1 + "/jobs/{job_id}/status", self.dli_status),
            web.delete(_V1 + "/jobs/{job_id}", self.dli_cancel),
            web.get(_V2 + "/batches", self.spark_list),
            web.get(_V2 + "/batches/{batch_id}/state", self.spark_state),
            web.delete(_V2 + "/batches/{batch_id}", self.spark_cancel),
        ]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Check the signature of every request outside ``unsigned_prefix``, then route."""
        path = request.path
        if path == self.unsigned_prefix or path.startswith(self.unsigned_prefix + "/"):
            return await handler(request)
        target = request.raw_path
        if not target.startswith("/"):  # absolute-form target
            target = request.rel_url.raw_path_qs
        raw_path, _, raw_query = target.partition("?")
        problem = check_signature(
            request.method,
            raw_path,
            raw_query,
            lower_headers(request.headers.items()),
            await request.read(),
            self.core.ak,
            self.core.sk,
        )
        if problem is not None:
            message = f"Incorrect IAM authentication information: {problem}"
            return _response(bodies.apigw_error(401, "APIGW.0301", message))
        return await handler(request)

    async def _serve(
        self,
        request: web.Request,
        service: str,
        job_ref: str | None,
        operation: str,
        respond: Callable[[], Answer],
        scope: str | None = None,
        page: str | None = None,
        **detail: Any,
    ) -> web.StreamResponse:
        """Check the project, record the call, apply a pending fault, then answer.

        A list call names its ``scope`` and ``page`` (the page number or offset; see
        ``SimulatorCore.record_call``)."""
        project = request.match_info.get("project_id")
        header_project = request.headers.get("X-Project-Id")
        if project != self.core.project_id or (header_project is not None and header_project != project):
            message = "The project id in the request does not match the credentials' project."
            return _response(bodies.apigw_error(403, "APIGW.0302", message))
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() != "authorization"}
        query = dict(request.query.items())
        record = {"http_method": request.method, "path": request.raw_path.partition("?")[0], "query": query}
        self.core.record_call(
            service, job_ref, operation, detail={**record, **detail}, headers=headers, scope=scope, page=page
        )
        fault = self.core.take_fault(service, job_ref, "http", operation)
        if fault is None or fault.kind == "latency":
            if fault is not None:
                await asyncio.sleep(fault.seconds or 0.0)
            return _response(respond())
        if fault.kind == "hold_answer":
            answer = respond()
            await asyncio.sleep(fault.seconds or 0.0)
            return _response(answer)
        if fault.kind == "drop_connection":
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=204)  # never sent: aiohttp sees the closed transport
        if fault.kind == "empty_body":
            respond()  # the operation still happens (a submit creates its job)
            return raw_response(200, b"")
        if fault.kind == "malformed_body":
            body = _encode(respond())
            return raw_response(200, body[: max(1, len(body) // 2)])
        status = fault.http_status
        if status is None:  # a grpc_* kind never reaches here (take_fault filters by protocol)
            raise RuntimeError(f"fault {fault.kind} does not apply to HTTP")
        return _response(bodies.fault_answer(service, status, fault.retry_after))

    # ---- CDM ---------------------------------------------------------------------------------------

    def _cdm_history(self, request: web.Request, name: str) -> list[SimJob] | None:
        return self.core.cdm_submissions(name, cluster_id=request.match_info["cluster_id"])

    @staticmethod
    def _cdm_ref(request: web.Request, name: str) -> str:
        return f"{request.match_info['cluster_id']}/{name}"

    async def cdm_status(self, request: web.Request) -> web.StreamResponse:
        """The job's latest submission; a job never started shows one NEVER_EXECUTED entry."""
        name = request.match_info["job_name"]

        def respond() -> Answer:
            history = self._cdm_history(request, name)
            if history is None:
                return bodies.cdm_not_found(name)
            if not history:
                return Answer(200, {"submissions": [bodies.cdm_never_executed(name)]})
            return Answer(200, {"submissions": [bodies.cdm_submission(history[-1])]})

        return await self._serve(request, "cdm", self._cdm_ref(request, name), "ShowJobStatus", respond)

    async def cdm_job(self, request: web.Request) -> web.StreamResponse:
        """Querying a Job: its definition (``huawei_bodies.cdm_job_definition``)."""
        name = request.match_info["job_name"]

        def respond() -> Answer:
            if self._cdm_history(request, name) is None:
                return bodies.cdm_not_found(name)
            return Answer(200, bodies.cdm_job_definition(name))

        return await self._serve(request, "cdm", self._cdm_ref(request, name), "ShowJob", respond)

    async def cdm_list(self, request: web.Request) -> web.StreamResponse:
        """Querying Jobs with ``job_name`` ``all`` (ShowJobs): the cluster's jobs by name, each with
        its last run's ``status`` (``NEW`` when never run); ``filter`` (a case-insensitive fragment of
        the name), ``jobType`` (NORMAL_JOB by default, BATCH_JOB, SCENARIO_JOB), ``page_no`` from 1,
        ``page_size`` 10..100 (default 10); a value outside these is 400 ``Cdm.0001``."""
        query, cluster = request.query, request.match_info["cluster_id"]
        try:
            page_no = int(query.get("page_no", "1"))
            page_size = int(query.get("page_size", "10"))
        except ValueError:
            page_no = page_size = 0
        job_type = query.get("jobType", "NORMAL_JOB")
        if page_no < 1 or not 10 <= page_size <= 100 or job_type not in NATIVE_JOB_TYPES["cdm"]:
            message = (
                "page_no must be >= 1, page_size 10..100, jobType NORMAL_JOB, BATCH_JOB or SCENARIO_JOB."
            )
            return _response(cdm_error(400, "Cdm.0001", message))
        fragment = query.get("filter", "").lower()

        def respond() -> Answer:
            jobs = []
            for name, history in self.core.cdm_jobs(cluster):
                kind = str(history[-1].meta.get("type") or "NORMAL_JOB") if history else "NORMAL_JOB"
                if kind == job_type and fragment in name.lower():
                    jobs.append(bodies.cdm_list_entry(name, history, kind))
            page = jobs[(page_no - 1) * page_size : page_no * page_size]
            return Answer(200, {"total": len(jobs), "jobs": page, "page_no": page_no, "page_size": page_size})

        scope = f"projects/{request.match_info.get('project_id')}/clusters/{cluster}"
        return await self._serve(request, "cdm", None, "ShowJobs", respond, scope=scope, page=str(page_no))

    async def cdm_start(self, request: web.Request) -> web.StreamResponse:
        """A new submission on the default timeline; refused while the latest one still runs."""
        name, cluster = request.match_info["job_name"], request.match_info["cluster_id"]
        body = await read_json(request)
        variables = body.get("variables") if isinstance(body, dict) else None

        def respond() -> Answer:
            history = self._cdm_history(request, name)
            if history is None:
                return bodies.cdm_not_found(name)
            if history and not history[-1].is_terminal():
                return cdm_error(400, "Cdm.0104", f"Job {name} is running.")
            job = self.core.create_job("cdm", name, cluster_id=cluster)
            return Answer(200, {"submissions": [bodies.cdm_submission(job, start=True)]})

        ref = self._cdm_ref(request, name)
        return await self._serve(request, "cdm", ref, "StartJob", respond, body=body, variables=variables)

    async def cdm_stop(self, request: web.Request) -> web.StreamResponse:
        """Stop the latest submission (it turns FAILED); a no-op when nothing runs."""
        name, cluster = request.match_info["job_name"], request.match_info["cluster_id"]

        def respond() -> Answer:
            history = self._cdm_history(request, name)
            if history is None:
                return bodies.cdm_not_found(name)
            if history:
                self.core.cancel_job("cdm", name, action="stop", cluster_id=cluster)
            return Answer(200, {"validation-result": []})

        return await self._serve(request, "cdm", self._cdm_ref(request, name), "StopJob", respond)

    async def cdm_submissions(self, request: web.Request) -> web.StreamResponse:
        """The job's submission history, newest first (``jname`` query parameter)."""
        name = request.query.get("jname")
        if not name:
            return _response(cdm_error(400, "Cdm.0001", "The jname parameter is mandatory."))

        def respond() -> Answer:
            history = self._cdm_history(request, name)
            if history is None:
                return bodies.cdm_not_found(name)
            subs = [bodies.cdm_submission(job) for job in reversed(history)]
            return Answer(200, {"submissions": subs, "total": len(subs), "page_no": 1, "page_size": 10})

        return await self._serve(request, "cdm", self._cdm_ref(request, name), "ShowSubmissions", respond)

    # ---- DLI SQL ------------------------------------------------------------------------------------

    def _dli_job(self, job_id: str, job_type: str) -> SimJob | None:
        return self.core.get_job("dli", job_id, job_type=job_type)

    async def dli_submit(self, request: web.Request) -> web.StreamResponse:
        """Create a SQL job on the default DLI timeline (async mode)."""
        body = await read_json(request)
        sql = body.get("sql") if isinstance(body, dict) else None
        if not isinstance(sql, str) or not sql.strip():
            return _response(dli_error(400, "DLI.0001", "Parameter sql is mandatory."))
        tags = body.get("tags") or []
        problem = bodies.dli_tags_problem(tags)
        if problem is not None:
            return _response(dli_error(400, "DLI.0001", problem))
        job_id = str(uuid.uuid4())
        job_type = DLI_SQL_JOB_TYPES.get(sql.split(None, 1)[0].upper(), "DDL")

        def respond() -> Answer:
            meta = {
                "statement": sql,
                "type": job_type,
                "queue_name": body.get("queue_name") or "default",
                "database_name": body.get("currentdb") or "",
                "user_conf": body.get("conf") or [],
                "tags": [{"key": t["key"], "value": t["value"]} for t in tags],
            }
            self.core.create_job("dli", job_id, meta=meta, job_type="sql")
            data = {"is_success": True, "message": "", "job_id": job_id, "job_type": job_type}
            return Answer(200, {**data, "job_mode": "async"})

        return await self._serve(request, "dli", job_id, "CreateSqlJob", respond, body=body)

    async def dli_list(self, request: web.Request) -> web.StreamResponse:
        """Querying All Jobs (ListSqlJobs): SQL jobs by ``job-status``, ``job-type`` (or
        ``job_types``, repeated), ``tags``, ``queue_name``, ``job-id``, ``owner``, ``db_name``,
        ``sql_pattern`` (a case-insensitive fragment of the statement), ``start``/``end`` (ms: jobs
        started at or after / at or before), ``order`` (``start_time_desc`` default, ``start_time_asc``,
        ``duration_desc``, ``duration_asc``), paged by ``page-size`` 1..100 (default 50) and
        ``current-page`` from 1; ``job_count`` counts every match. ``tags``: ``key=value``, several
        joined by ``,`` (a job must carry all). A value outside these is 400 ``DLI.0001``.
        """
        query = request.query
        try:
            criteria = bodies.DliSqlListQuery.parse(query)
        except ValueError as err:
            return _response(dli_error(400, "DLI.0001", str(err)))
        queue = query.get("queue_name")
        scope = f"projects/{request.match_info.get('project_id')}" + (f"/queues/{queue}" if queue else "")

        def respond() -> Answer:
            entries = []
            for job in self.core.listed_jobs("dli", job_type="sql"):
                entry = bodies.dli_list_entry(job, job.meta)
                if criteria.keeps(entry, job.meta):
                    entries.append(entry)
            entries.sort(key=criteria.sort_key)
            size, page = criteria.page_size, criteria.current_page
            jobs = entries[(page - 1) * size : page * size]
            return Answer(200, {"is_success": True, "message": "", "job_count": len(entries), "jobs": jobs})

        page = str(criteria.current_page)
        return await self._serve(request, "dli", None, "ListSqlJobs", respond, scope=scope, page=page)

    async def dli_progress(self, request: web.Request) -> web.StreamResponse:
        """Status, progress and subjobs as in the reference doc."""
        job_id = request.match_info["job_id"]

        def respond() -> Answer:
            job = self._dli_job(job_id, "sql")
            return bodies.dli_not_found(job_id) if job is None else Answer(200, bodies.dli_progress(job))

        return await self._serve(request, "dli", job_id, "ShowSqlJobProgress", respond)

    async def dli_status(self, request: web.Request) -> web.StreamResponse:
        """The job status body read by ShowSqlJobStatusResponse."""
        job_id = request.match_info["job_id"]

        def respond() -> Answer:
            job = self._dli_job(job_id, "sql")
            if job is None:
                return bodies.dli_not_found(job_id)
            return Answer(200, bodies.dli_status(job, job.meta))

        return await self._serve(request, "dli", job_id, "ShowSqlJobStatus", respond)

    async def dli_cancel(self, request: web.Request) -> web.StreamResponse:
        """Cancel a SQL job (it turns CANCELLED); refused once the job has ended, as DLI does."""
        job_id = request.match_info["job_id"]

        def respond() -> Answer:
            job = self._dli_job(job_id, "sql")
            if job is None:
                return bodies.dli_not_found(job_id)
            if job.is_terminal():
                message = f"The job {job_id} is {job.state_at()} and can no longer be cancelled."
                return dli_error(400, "DLI.0999", message)
            self.core.cancel_job("dli", job_id, job_type="sql")
            return Answer(200, {"is_success": True, "message": ""})

        return await self._serve(request, "dli", job_id, "CancelSqlJob", respond)

    # ---- DLI Spark ----------------------------------------------------------------------------------

    async def spark_list(self, request: web.Request) -> web.StreamResponse:
        """Querying Batch Job List (ListSparkJobs): batches by ``state`` (case-insensitive),
        ``queue_name`` or ``cluster_name`` (the queue), ``job_name``, ``job-id``, ``start``/``end``
        (ms: created at or after / at or before), ``order`` (CREATE_TIME_DESC, the default,
        CREATE_TIME_ASC, DURATION_DESC, DURATION_ASC), ``from`` (index, from 0) and ``size``
        (default 100)."""
        query = request.query
        try:
            start = int(query.get("from", "0"))
            size = int(query.get("size", "100"))
            since = int(query["start"]) if query.get("start") else None
            until = int(query["end"]) if query.get("end") else None
        except ValueError:
            start = size = -1
            since = until = None
        order = query.get("order", "CREATE_TIME_DESC")
        orders = ("CREATE_TIME_DESC", "CREATE_TIME_ASC", "DURATION_DESC", "DURATION_ASC")
        if start < 0 or size < 1 or order not in orders:
            return _response(
                dli_error(400, "DLI.0001", f"from must be >= 0, size >= 1, order one of {orders}.")
            )
        state = query.get("state", "").lower()
        queue = query.get("queue_name") or query.get("cluster_name")
        name, job_id = query.get("job_name"), query.get("job-id")

        def keeps(entry: dict[str, Any]) -> bool:
            if (state and str(entry["state"]).lower() != state) or (queue and entry["queue"] != queue):
                return False
            if (name and entry.get("name") != name) or (job_id and entry["id"] != job_id):
                return False
            created = entry["create_time"]
            return (since is None or created >= since) and (until is None or created <= until)

        def respond() -> Answer:
            batches = [
                entry
                for entry in (
                    bodies.spark_list_entry(job) for job in self.core.listed_jobs("dli", job_type="spark")
                )
                if keeps(entry)
            ]
            field = "duration" if order.startswith("DURATION") else "create_time"
            desc = order.endswith("_DESC")
            batches.sort(key=lambda e: (-e[field] if desc else e[field], e["id"]))
            sessions = batches[start : start + size]
            return Answer(200, {"from": start, "total": len(batches), "sessions": sessions})

        scope = f"projects/{request.match_info.get('project_id')}" + (f"/queues/{queue}" if queue else "")
        page = str(start)
        return await self._serve(request, "dli", None, "ListSparkJobs", respond, scope=scope, page=page)

    async def spark_state(self, request: web.Request) -> web.StreamResponse:
        """``{"id", "state"}`` with the state exactly as the timeline spells it (``running``, ``Success``)."""
        batch_id = request.match_info["batch_id"]

        def respond() -> Answer:
            job = self._dli_job(batch_id, "spark")
            if job is None:
                return bodies.dli_not_found(batch_id)
            return Answer(200, {"id": batch_id, "state": job.state_at()})

        return await self._serve(request, "dli", batch_id, "ShowSparkJobStatus", respond)

    async def spark_cancel(self, request: web.Request) -> web.StreamResponse:
        """Cancel a batch (it turns ``dead``; a finished one is left alone); ``{"msg": "deleted"}``."""
        batch_id = request.match_info["batch_id"]

        def respond() -> Answer:
            if self._dli_job(batch_id, "spark") is None:
                return bodies.dli_not_found(batch_id)
            self.core.cancel_job("dli", batch_id, job_type="spark")
            return Answer(200, {"msg": "deleted"})

        return await self._serve(request, "dli", batch_id, "CancelSparkJob", respond)


def _encode(answer: Answer) -> bytes:
    return json.dumps(answer.data).encode()


def _response(answer: Answer) -> web.Response:
    return json_response(answer.status, answer.data, answer.headers)
