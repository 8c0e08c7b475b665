"""Huawei Cloud CDM and DLI over signed REST, answering with the documented bodies the SDKs parse.

Request checks, in order (all but the /_sim/ control API):
1. ``Authorization`` must be a valid ``SDK-HMAC-SHA256`` signature by the simulator's AK/SK over the
   request as received (method, path, query, signed headers, body hash) with an ``X-Sdk-Date`` within
   15 minutes; else **401** with the API gateway's body ``{"error_code": "APIGW.0301", ...}``.
2. The path's project id must be the simulator's, and ``X-Project-Id`` (when sent) the path's;
   else **403** ``{"error_code": "APIGW.0302", ...}`` (what a real gateway says for a foreign project).
3. Faults (``take_fault(service, job, "http")``), then the operation. An unknown job is **404** with the
   service's body: CDM ``{"errCode": "Cdm.0100", "externalMessage": "Job <name> not exist."}`` (the
   SDK does not parse it), DLI ``{"is_success": false, "error_code": "DLI.0002", "error_msg": ...}``.

Fault bodies: 429, 502 and 504 come from the API gateway (``APIGW.0308`` throttled, ``APIGW.0202``
backend unavailable, ``APIGW.0203`` backend timeout); 500 and 503 from the service (CDM ``errCode``/
``externalMessage``, DLI ``is_success``/``error_code``/``error_msg``).

CDM submissions carry both ``last-udpate-user`` (the documented spelling) and ``last-update-user``
(what the SDK model reads). ``counters`` are served whenever the phase payload has them.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import re
import time
import uuid
import weakref
from collections.abc import Callable
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from airflow_jobstatus.simulator.core import SimJob, SimulatorCore
from airflow_jobstatus.simulator.http import Handler, Request, Response, Router, json_response

MAX_CLOCK_SKEW_SECONDS = 15 * 60
CDM_USER = "cdm"
DLI_OWNER = "sim-user"
_AUTH = re.compile(
    r"SDK-HMAC-SHA256\s+Access=(?P<ak>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<sig>[0-9a-fA-F]+)"
)
_P = r"/(?P<project_id>[^/]+)"
_CDM_JOB = r"/v1\.1" + _P + r"/clusters/(?P<cluster_id>[^/]+)/cdm/job/(?P<job_name>[^/]+)"
#: snake_case timeline counter keys → the documented wire keys.
CDM_COUNTERS = (
    "bytes_written",
    "total_files",
    "rows_read",
    "bytes_read",
    "rows_written",
    "files_written",
    "files_read",
    "total_size",
    "files_skipped",
    "rows_written_skipped",
)
SQOOP_COUNTERS = "org.apache.sqoop.submission.counter.SqoopCounters"
_GATEWAY_FAULTS = {
    429: ("APIGW.0308", "The throttling threshold has been reached: policy user over ratelimit"),
    502: ("APIGW.0202", "Backend unavailable"),
    504: ("APIGW.0203", "Backend timeout"),
}
_SQL_TYPES = {
    "SELECT": "QUERY",
    "WITH": "QUERY",
    "INSERT": "INSERT",
    "LOAD": "IMPORT",
    "GRANT": "DCL",
    "REVOKE": "DCL",
}


def apigw_error(status: int, code: str, message: str) -> Response:
    """The API gateway's error body (the SDK parses error_code/error_msg)."""
    return json_response(status, {"error_code": code, "error_msg": message, "request_id": uuid.uuid4().hex})


def cdm_error(status: int, code: str, message: str) -> Response:
    """CDM's error body (not parsed by the SDK: it reports the HTTP status and the raw text)."""
    return json_response(status, {"errCode": code, "externalMessage": message})


def dli_error(status: int, code: str, message: str) -> Response:
    """DLI's error body."""
    return json_response(
        status, {"is_success": False, "message": message, "error_code": code, "error_msg": message}
    )


def _ms(wall: float) -> int:
    return int(wall * 1000)


@functools.lru_cache(maxsize=1)
def _signer_classes() -> tuple[type, type]:
    """The SDK's own signer and request types (imported lazily: the SDK is heavy)."""
    from huaweicloudsdkcore.sdk_request import SdkRequest
    from huaweicloudsdkcore.signer.signer import Signer

    return Signer, SdkRequest


def _header_text(value: str) -> str:
    """A header value as the signer saw it (HTTP carries UTF-8 bytes, read here as latin-1)."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def check_signature(request: Request, ak: str, sk: str, now: float | None = None) -> str | None:
    """Why the request's SDK-HMAC-SHA256 signature is not valid for (ak, sk); None when it is."""
    match = _AUTH.fullmatch((request.header("authorization") or "").strip())
    if match is None:
        return "missing or malformed SDK-HMAC-SHA256 Authorization header"
    if match["ak"] != ak:
        return "unknown access key"
    signed = [h.lower() for h in match["signed"].split(";")]
    if "x-sdk-date" not in signed:
        return "X-Sdk-Date must be a signed header"
    if any(h not in request.headers for h in signed):
        return "a signed header is missing from the request"
    try:
        when = datetime.strptime(request.headers["x-sdk-date"], "%Y%m%dT%H%M%SZ")
    except ValueError:
        return "X-Sdk-Date is not in the form YYYYMMDDTHHMMSSZ"
    current = time.time() if now is None else now
    if abs(when.replace(tzinfo=timezone.utc).timestamp() - current) > MAX_CLOCK_SKEW_SECONDS:
        return "the request has expired (X-Sdk-Date too far from server time)"
    signer_cls, request_cls = _signer_classes()
    signer = signer_cls(SimpleNamespace(ak=ak, sk=sk))
    sdk_request = request_cls(
        method=request.method,
        resource_path=request.path,
        query_params=list(request.query),
        header_params={k: _header_text(v) for k, v in request.headers.items()},
        body=request.body,
    )
    canonical = signer._process_canonical_request(sdk_request, signed)
    string_to_sign = signer._process_string_to_sign(canonical, when)
    expected = signer._sign_string_to_sign(string_to_sign, sk)
    if not hmac.compare_digest(expected, match["sig"].lower()):
        return "verify aksk signature fail"
    return None


class HuaweiApi:
    """The CDM and DLI routes over one SimulatorCore; ``handle`` is the HTTP handler for them."""

    def __init__(self, core: SimulatorCore):
        self.core = core
        self.router = Router()
        self.router.extend(self.routes())
        #: What each DLI SQL job was submitted with (statement, queue, database), kept while the job is.
        self._dli_meta: weakref.WeakKeyDictionary[SimJob, dict[str, Any]] = weakref.WeakKeyDictionary()

    def routes(self) -> list[tuple[str, str, Handler]]:
        v1, v2 = r"/v1\.0" + _P, r"/v2\.0" + _P
        return [
            ("GET", _CDM_JOB + "/status", self.cdm_status),
            ("PUT", _CDM_JOB + "/start", self.cdm_start),
            ("PUT", _CDM_JOB + "/stop", self.cdm_stop),
            (
                "GET",
                r"/v1\.1" + _P + r"/clusters/(?P<cluster_id>[^/]+)/cdm/submissions",
                self.cdm_submissions,
            ),
            ("POST", v1 + r"/jobs/submit-job", self.dli_submit),
            ("GET", r"/v1" + _P + r"/jobs/(?P<job_id>[^/]+)/progress", self.dli_progress),
            ("GET", v1 + r"/jobs/(?P<job_id>[^/]+)/status", self.dli_status),
            ("DELETE", v1 + r"/jobs/(?P<job_id>[^/]+)", self.dli_cancel),
            ("GET", v2 + r"/batches/(?P<batch_id>[^/]+)/state", self.spark_state),
            ("DELETE", v2 + r"/batches/(?P<batch_id>[^/]+)", self.spark_cancel),
        ]

    async def handle(self, request: Request) -> Response:
        """Check the signature, then route."""
        problem = check_signature(request, self.core.ak, self.core.sk)
        if problem is not None:
            return apigw_error(401, "APIGW.0301", f"Incorrect IAM authentication information: {problem}")
        return await self.router.dispatch(request)

    async def _serve(
        self,
        request: Request,
        service: str,
        job_ref: str | None,
        operation: str,
        respond: Callable[[], Response],
        **detail: Any,
    ) -> Response:
        """Check the project, record the call, apply a pending fault, then answer."""
        project = request.params.get("project_id")
        header_project = request.header("x-project-id")
        if project != self.core.project_id or (header_project is not None and header_project != project):
            return apigw_error(
                403, "APIGW.0302", "The project id in the request does not match the credentials' project."
            )
        headers = {k: v for k, v in request.headers.items() if k != "authorization"}
        record = {"http_method": request.method, "path": request.path, "query": dict(request.query), **detail}
        self.core.record_call(service, job_ref, operation, detail=record, headers=headers)
        fault = self.core.take_fault(service, job_ref, "http")
        malformed = False
        if fault is not None:
            if fault.kind == "latency":
                await asyncio.sleep(fault.seconds or 0.0)
            elif fault.kind == "drop_connection":
                return Response(drop=True)
            elif fault.kind == "malformed_body":
                malformed = True
            elif fault.http_status is not None:
                return self._fault_response(service, fault.http_status)
        response = respond()
        if malformed:
            cut = max(1, len(response.body) // 2)
            return Response(status=200, body=response.body[:cut], content_type=response.content_type)
        return response

    @staticmethod
    def _fault_response(service: str, status: int) -> Response:
        if status in _GATEWAY_FAULTS:
            return apigw_error(status, *_GATEWAY_FAULTS[status])
        message = "Internal server error." if status == 500 else "Service temporarily unavailable."
        if service == "cdm":
            return cdm_error(status, "Cdm.0000", message)
        return dli_error(status, "DLI.0999", message)

    # ---- CDM ---------------------------------------------------------------------------------------

    def _cdm_history(self, request: Request) -> list[SimJob] | None:
        return self.core.cdm_submissions(request.params["job_name"], cluster_id=request.params["cluster_id"])

    @staticmethod
    def _cdm_ref(request: Request) -> str:
        return f"{request.params['cluster_id']}/{request.params['job_name']}"

    @staticmethod
    def _cdm_not_found(name: str) -> Response:
        return cdm_error(404, "Cdm.0100", f"Job {name} not exist.")

    async def cdm_status(self, request: Request) -> Response:
        """The job's latest submission; a job never started shows one NEVER_EXECUTED entry."""
        name = request.params["job_name"]

        def respond() -> Response:
            history = self._cdm_history(request)
            if history is None:
                return self._cdm_not_found(name)
            if not history:
                return json_response(200, {"submissions": [cdm_never_executed(name)]})
            return json_response(200, {"submissions": [cdm_submission(history[-1])]})

        return await self._serve(request, "cdm", self._cdm_ref(request), "ShowJobStatus", respond)

    async def cdm_start(self, request: Request) -> Response:
        """A new submission on the default timeline; refused while the latest one still runs."""
        name, cluster = request.params["job_name"], request.params["cluster_id"]
        body = request.json()
        variables = body.get("variables") if isinstance(body, dict) else None

        def respond() -> Response:
            history = self._cdm_history(request)
            if history is None:
                return self._cdm_not_found(name)
            if history and not history[-1].is_terminal():
                return cdm_error(400, "Cdm.0104", f"Job {name} is running.")
            job = self.core.create_job("cdm", name, cluster_id=cluster)
            return json_response(200, {"submissions": [cdm_submission(job, start=True)]})

        return await self._serve(
            request, "cdm", self._cdm_ref(request), "StartJob", respond, body=body, variables=variables
        )

    async def cdm_stop(self, request: Request) -> Response:
        """Stop the latest submission (it turns FAILED); a no-op when nothing runs."""
        name, cluster = request.params["job_name"], request.params["cluster_id"]

        def respond() -> Response:
            history = self._cdm_history(request)
            if history is None:
                return self._cdm_not_found(name)
            if history:
                self.core.cancel_job("cdm", name, action="stop", cluster_id=cluster)
            return json_response(200, {"validation-result": []})

        return await self._serve(request, "cdm", self._cdm_ref(request), "StopJob", respond)

    async def cdm_submissions(self, request: Request) -> Response:
        """The job's submission history, newest first (``jname`` query parameter)."""
        name = request.query_value("jname")
        if not name:
            return cdm_error(400, "Cdm.0001", "The jname parameter is mandatory.")
        request.params["job_name"] = name

        def respond() -> Response:
            history = self._cdm_history(request)
            if history is None:
                return self._cdm_not_found(name)
            subs = [cdm_submission(job) for job in reversed(history)]
            return json_response(
                200, {"submissions": subs, "total": len(subs), "page_no": 1, "page_size": 10}
            )

        return await self._serve(request, "cdm", self._cdm_ref(request), "ShowSubmissions", respond)

    # ---- DLI SQL ------------------------------------------------------------------------------------

    def _dli_job(self, job_id: str, job_type: str) -> SimJob | None:
        return self.core.get_job("dli", job_id, job_type=job_type)

    async def dli_submit(self, request: Request) -> Response:
        """Create a SQL job on the default DLI timeline (async mode)."""
        body = request.json()
        sql = body.get("sql") if isinstance(body, dict) else None
        if not isinstance(sql, str) or not sql.strip():
            return dli_error(400, "DLI.0001", "Parameter sql is mandatory.")
        job_id = str(uuid.uuid4())
        job_type = _SQL_TYPES.get(sql.split(None, 1)[0].upper(), "DDL")

        def respond() -> Response:
            job = self.core.create_job("dli", job_id, job_type="sql")
            self._dli_meta[job] = {
                "statement": sql,
                "job_type": job_type,
                "queue_name": body.get("queue_name") or "default",
                "database_name": body.get("currentdb") or "",
                "user_conf": body.get("conf") or [],
            }
            return json_response(
                200,
                {
                    "is_success": True,
                    "message": "",
                    "job_id": job_id,
                    "job_type": job_type,
                    "job_mode": "async",
                },
            )

        return await self._serve(request, "dli", job_id, "CreateSqlJob", respond, body=body)

    def _dli_not_found(self, job_id: str) -> Response:
        return dli_error(404, "DLI.0002", f"The job {job_id} does not exist.")

    async def dli_progress(self, request: Request) -> Response:
        """Status, progress and subjobs as in the reference doc."""
        job_id = request.params["job_id"]

        def respond() -> Response:
            job = self._dli_job(job_id, "sql")
            return self._dli_not_found(job_id) if job is None else json_response(200, dli_progress(job))

        return await self._serve(request, "dli", job_id, "ShowSqlJobProgress", respond)

    async def dli_status(self, request: Request) -> Response:
        """The job status body read by ShowSqlJobStatusResponse."""
        job_id = request.params["job_id"]

        def respond() -> Response:
            job = self._dli_job(job_id, "sql")
            if job is None:
                return self._dli_not_found(job_id)
            return json_response(200, dli_status(job, self._dli_meta.get(job, {})))

        return await self._serve(request, "dli", job_id, "ShowSqlJobStatus", respond)

    async def dli_cancel(self, request: Request) -> Response:
        """Cancel a SQL job (it turns CANCELLED); refused once the job has ended, as DLI does."""
        job_id = request.params["job_id"]

        def respond() -> Response:
            job = self._dli_job(job_id, "sql")
            if job is None:
                return self._dli_not_found(job_id)
            if job.is_terminal():
                return dli_error(
                    400, "DLI.0999", f"The job {job_id} is {job.state_at()} and can no longer be cancelled."
                )
            self.core.cancel_job("dli", job_id, job_type="sql")
            return json_response(200, {"is_success": True, "message": ""})

        return await self._serve(request, "dli", job_id, "CancelSqlJob", respond)

    # ---- DLI Spark ----------------------------------------------------------------------------------

    async def spark_state(self, request: Request) -> Response:
        """``{"id", "state"}`` with Spark's lower-case state."""
        batch_id = request.params["batch_id"]

        def respond() -> Response:
            job = self._dli_job(batch_id, "spark")
            if job is None:
                return self._dli_not_found(batch_id)
            return json_response(200, {"id": batch_id, "state": job.state_at()})

        return await self._serve(request, "dli", batch_id, "ShowSparkJobStatus", respond)

    async def spark_cancel(self, request: Request) -> Response:
        """Cancel a batch (it turns ``dead``); ``{"msg": "deleted"}``."""
        batch_id = request.params["batch_id"]

        def respond() -> Response:
            if self._dli_job(batch_id, "spark") is None:
                return self._dli_not_found(batch_id)
            self.core.cancel_job("dli", batch_id, job_type="spark")
            return json_response(200, {"msg": "deleted"})

        return await self._serve(request, "dli", batch_id, "CancelSparkJob", respond)


# ---- wire bodies -------------------------------------------------------------------------------------


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
        "job_type": meta.get("job_type", "QUERY"),
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
        "tags": [],
    }


def huawei_handler(core: SimulatorCore) -> Handler:
    """The handler serving CDM and DLI for ``core``."""
    return HuaweiApi(core).handle
