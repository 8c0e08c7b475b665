"""Huawei Cloud DLI: SQL job progress and Spark batch state as a JobStatus, submitting and cancelling jobs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_jobstatus.exceptions import BadRequestError, BadResponseError, ConfigurationError
from airflow_jobstatus.hooks.base import require_job_id
from airflow_jobstatus.hooks.huaweicloud import CallContext, HuaweiCloudHook
from airflow_jobstatus.states import JobState, JobStatus, NativeStateTable

SERVICE = "dli"
JOB_TYPES = ("sql", "spark")
#: DLI SQL job ``status`` → JobState (docs: Querying the Job Execution Progress).
SQL_STATES = NativeStateTable(
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
#: DLI Spark batch ``state`` → JobState.
SPARK_STATES = NativeStateTable(
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
_MODELS = "huaweicloudsdkdli.v1.model"
_SQL_PROGRESS_PATH = "/v1/{project_id}/jobs/{job_id}/progress"
_SQL_JOB_PATH = "/v1.0/{project_id}/jobs/{job_id}"
_SPARK_STATE_PATH = "/v2.0/{project_id}/batches/{job_id}/state"
_SPARK_BATCH_PATH = "/v2.0/{project_id}/batches/{job_id}"


def _bad(job_id: str, reason: str) -> BadResponseError:
    return BadResponseError(
        f"unparseable job status for {job_id!r}: {reason}", service=SERVICE, job_id=job_id
    )


def _job_type(job_type: Any) -> str:
    value = str(job_type or "").strip().lower()
    if value not in JOB_TYPES:
        raise ConfigurationError(
            f"Unknown DLI job_type {job_type!r}. Valid job types: {', '.join(JOB_TYPES)}."
        )
    return value


def _sub_job(sub: Any) -> dict[str, Any]:
    if not isinstance(sub, Mapping):
        return {}
    return {key: sub[key] for key in SUB_JOB_FIELDS if sub.get(key) is not None}


def parse_sql_progress(data: Mapping[str, Any], job_id: str) -> JobStatus:
    """The JobStatus of a SQL job-progress body (``to_dict()`` form); progress is already 0..1."""
    native = data.get("status")
    if not isinstance(native, str) or not native:
        reason = "no status" + (f" ({data['message']})" if data.get("message") else "")
        raise _bad(job_id, reason)
    progress = data.get("progress")
    sub_jobs = data.get("sub_jobs") or []
    if not isinstance(sub_jobs, list):
        raise _bad(job_id, "'sub_jobs' is not a list")
    return JobStatus(
        service=SERVICE,
        job_id=job_id,
        state=SQL_STATES.normalize(native),
        native_state=native,
        message=str(data["message"]) if data.get("message") else None,
        progress=float(progress) if isinstance(progress, int | float) else None,
        sub_jobs=[s for s in (_sub_job(sub) for sub in sub_jobs) if s],
    )


def parse_spark_state(data: Mapping[str, Any], job_id: str) -> JobStatus:
    """The JobStatus of a Spark batch-state body."""
    native = data.get("state")
    if not isinstance(native, str) or not native:
        raise _bad(job_id, "no state")
    return JobStatus(SERVICE, job_id, SPARK_STATES.normalize(native), native)


class DliJobHook(HuaweiCloudHook):
    """DLI job status (sync through the SDK, async through signed httpx), SQL submission and cancel."""

    service = SERVICE
    sdk_client_path = "huaweicloudsdkdli.v1:DliClient"
    async_models = (f"{_MODELS}:ShowSqlJobProgressResponse", f"{_MODELS}:ShowSparkJobStatusResponse")

    def _ctx(self, job_id: str, action: str) -> CallContext:
        config = self.config
        where = f"DLI project {config.project_id!r} at {config.endpoint(SERVICE)}"
        if config.region:
            where += f" (region {config.region})"
        return CallContext(SERVICE, job_id, where, action)

    def get_status(self, job_id: str, job_type: str = "sql") -> JobStatus:  # type: ignore[override]
        """SQL: one progress call (status, progress, subjobs); Spark: the batch state."""
        from huaweicloudsdkdli.v1 import ShowSparkJobStatusRequest, ShowSqlJobProgressRequest

        job_id, job_type = require_job_id(job_id), _job_type(job_type)
        ctx = self._ctx(job_id, "get status")
        if job_type == "sql":
            data = self.call("show_sql_job_progress", ShowSqlJobProgressRequest(job_id=job_id), ctx)
            return parse_sql_progress(data, job_id)
        data = self.call("show_spark_job_status", ShowSparkJobStatusRequest(batch_id=job_id), ctx)
        return parse_spark_state(data, job_id)

    async def aget_status(self, job_id: str, job_type: str = "sql") -> JobStatus:  # type: ignore[override]
        """The same reading as ``get_status``, without blocking the event loop."""
        job_id, job_type = require_job_id(job_id), _job_type(job_type)
        await self.aconfig()
        ctx = self._ctx(job_id, "get status")
        if job_type == "sql":
            data = await self.arequest(
                "GET",
                _SQL_PROGRESS_PATH,
                ctx,
                path_params={"job_id": job_id},
                model=f"{_MODELS}:ShowSqlJobProgressResponse",
            )
            return parse_sql_progress(data, job_id)
        data = await self.arequest(
            "GET",
            _SPARK_STATE_PATH,
            ctx,
            path_params={"job_id": job_id},
            model=f"{_MODELS}:ShowSparkJobStatusResponse",
        )
        return parse_spark_state(data, job_id)

    def submit_sql(
        self,
        sql: str,
        queue_name: str,
        database_name: str | None = None,
        conf: Mapping[str, Any] | list[str] | None = None,
    ) -> str:
        """Submit a SQL statement to a queue; return the DLI job id. ``conf``: dict or ["key=value", …]."""
        from huaweicloudsdkdli.v1 import CreateSqlJobRequest, CreateSqlJobRequestBody

        if not sql or not str(sql).strip():
            raise ConfigurationError("sql must be a non-empty statement.")
        queue_name = require_job_id(queue_name, "queue_name")
        conf_list = [f"{k}={v}" for k, v in conf.items()] if isinstance(conf, Mapping) else conf
        body = CreateSqlJobRequestBody(
            sql=sql, queue_name=queue_name, currentdb=database_name or None, conf=conf_list or None
        )
        ctx = self._ctx("(new job)", "submit SQL")
        data = self.call("create_sql_job", CreateSqlJobRequest(body=body), ctx)
        if data.get("is_success") is False:
            raise BadRequestError(f"DLI refused the SQL job: {data.get('message')}", service=SERVICE)
        job_id = data.get("job_id")
        if not job_id:
            raise BadResponseError("the submit response has no job_id", service=SERVICE)
        self.log.info("Submitted DLI SQL job %s on queue %s.", job_id, queue_name)
        return str(job_id)

    def cancel(self, job_id: str, job_type: str = "sql") -> None:
        """Cancel a SQL job or a Spark batch."""
        from huaweicloudsdkdli.v1 import CancelSparkJobRequest, CancelSqlJobRequest

        job_id, job_type = require_job_id(job_id), _job_type(job_type)
        ctx = self._ctx(job_id, "cancel job")
        if job_type == "sql":
            data = self.call("cancel_sql_job", CancelSqlJobRequest(job_id=job_id), ctx, require_body=False)
        else:
            data = self.call(
                "cancel_spark_job", CancelSparkJobRequest(batch_id=job_id), ctx, require_body=False
            )
        _check_cancelled(data, job_id)
        self.log.info("Asked DLI to cancel %s job %s.", job_type, job_id)

    async def acancel(self, job_id: str, job_type: str = "sql") -> None:
        """Cancel without blocking the event loop (a trigger's on_kill)."""
        job_id, job_type = require_job_id(job_id), _job_type(job_type)
        await self.aconfig()
        path = _SQL_JOB_PATH if job_type == "sql" else _SPARK_BATCH_PATH
        ctx = self._ctx(job_id, "cancel job")
        data = await self.arequest("DELETE", path, ctx, path_params={"job_id": job_id}, require_body=False)
        _check_cancelled(data, job_id)
        self.log.info("Asked DLI to cancel %s job %s.", job_type, job_id)


def _check_cancelled(data: Mapping[str, Any], job_id: str) -> None:
    """A 200 with is_success=false means DLI refused the cancel (e.g. the job already ended)."""
    if data.get("is_success") is False:
        raise BadRequestError(
            f"DLI did not cancel job {job_id!r}: {data.get('message') or 'no message'}",
            service=SERVICE,
            job_id=job_id,
        )
