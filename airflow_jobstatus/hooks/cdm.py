"""Huawei Cloud CDM: a migration job's latest submission as a JobStatus, and starting/stopping jobs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_jobstatus.exceptions import BadResponseError
from airflow_jobstatus.hooks.base import require_job_id
from airflow_jobstatus.hooks.huaweicloud import CallContext, HuaweiCloudHook
from airflow_jobstatus.states import JobState, JobStatus, NativeStateTable

SERVICE = "cdm"
#: CDM submission ``status`` → JobState (docs: Querying Job Status).
CDM_STATES = NativeStateTable(
    SERVICE,
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
COUNTER_KEYS = (
    "rows_read",
    "rows_written",
    "bytes_read",
    "bytes_written",
    "files_read",
    "files_written",
    "files_skipped",
    "rows_written_skipped",
    "total_files",
    "total_size",
)
_JOB_PATH = "/v1.1/{project_id}/clusters/{cluster_id}/cdm/job/{job_name}"
_MODELS = "huaweicloudsdkcdm.v1.model"


def cdm_job_id(cluster_id: str, job_name: str) -> str:
    """The JobStatus.job_id of a CDM job."""
    return f"{cluster_id}/{job_name}"


def _bad(job_id: str, reason: str) -> BadResponseError:
    return BadResponseError(
        f"unparseable job status for {job_id!r}: {reason}", service=SERVICE, job_id=job_id
    )


def _latest(submissions: list[Any], job_id: str) -> Mapping[str, Any]:
    """The latest submission: the highest submission id (the first listed when ids are missing)."""
    if not all(isinstance(s, Mapping) for s in submissions):
        raise _bad(job_id, "a submission is not an object")

    def key(sub: Mapping[str, Any]) -> int:
        try:
            return int(sub.get("submission_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return -1

    return max(submissions, key=key)


def _progress(value: Any) -> float | None:
    """CDM progress 0..100 as a fraction; None when unknown or -1 (failed)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number < 0 else min(number / 100.0, 1.0)


def _counters(counters: Any) -> dict[str, int]:
    group = counters.get("org_apache_sqoop_submission_counter_sqoop_counters") if counters else None
    if not isinstance(group, Mapping):
        return {}
    result: dict[str, int] = {}
    for key in COUNTER_KEYS:
        value = group.get(key)
        if value is not None:
            try:
                result[key] = int(value)
            except (TypeError, ValueError):
                continue
    return result


def parse_job_status(data: Mapping[str, Any], cluster_id: str, job_name: str) -> JobStatus:
    """The JobStatus of a show-job-status body, keyed by the SDK's attribute names (``to_dict()`` form)."""
    job_id = cdm_job_id(cluster_id, job_name)
    submissions = data.get("submissions") or []
    if not isinstance(submissions, list):
        raise _bad(job_id, "'submissions' is not a list")
    if not submissions:
        return JobStatus(
            SERVICE, job_id, JobState.PENDING, NO_SUBMISSION, message="the job has no submission yet"
        )
    sub = _latest(submissions, job_id)
    native = sub.get("status")
    if not isinstance(native, str) or not native:
        raise _bad(job_id, "the submission has no status")
    errors = [str(sub[k]) for k in ("error_summary", "error_details") if sub.get(k)]
    return JobStatus(
        service=SERVICE,
        job_id=job_id,
        state=CDM_STATES.normalize(native),
        native_state=native,
        message="; ".join(errors) or None,
        progress=_progress(sub.get("progress")),
        counters=_counters(sub.get("counters")),
    )


class CdmJobHook(HuaweiCloudHook):
    """CDM job status (sync through the SDK, async through signed httpx), start and stop."""

    service = SERVICE
    sdk_client_path = "huaweicloudsdkcdm.v1:CdmClient"
    async_models = (f"{_MODELS}:ShowJobStatusResponse",)

    def _ctx(self, cluster_id: str, job_name: str, action: str) -> CallContext:
        where = f"CDM cluster {cluster_id!r} of project {self.config.project_id!r}"
        return CallContext(SERVICE, cdm_job_id(cluster_id, job_name), where, action)

    def get_status(self, cluster_id: str, job_name: str) -> JobStatus:  # type: ignore[override]
        """The latest submission's status."""
        from huaweicloudsdkcdm.v1 import ShowJobStatusRequest

        cluster_id, job_name = _ref(cluster_id, job_name)
        request = ShowJobStatusRequest(cluster_id=cluster_id, job_name=job_name)
        data = self.call("show_job_status", request, self._ctx(cluster_id, job_name, "get status"))
        return parse_job_status(data, cluster_id, job_name)

    async def aget_status(self, cluster_id: str, job_name: str) -> JobStatus:  # type: ignore[override]
        """The latest submission's status, without blocking the event loop."""
        cluster_id, job_name = _ref(cluster_id, job_name)
        await self.aconfig()
        data = await self.arequest(
            "GET",
            _JOB_PATH + "/status",
            self._ctx(cluster_id, job_name, "get status"),
            path_params={"cluster_id": cluster_id, "job_name": job_name},
            model=f"{_MODELS}:ShowJobStatusResponse",
        )
        return parse_job_status(data, cluster_id, job_name)

    def start_job(self, cluster_id: str, job_name: str, variables: dict[str, str] | None = None) -> str:
        """Start the job (with optional job variables); return the new submission id."""
        from huaweicloudsdkcdm.v1 import CdmStartJobReq, StartJobRequest

        cluster_id, job_name = _ref(cluster_id, job_name)
        body = CdmStartJobReq(variables=dict(variables)) if variables else CdmStartJobReq()
        request = StartJobRequest(cluster_id=cluster_id, job_name=job_name, body=body)
        ctx = self._ctx(cluster_id, job_name, "start job")
        data = self.call("start_job", request, ctx)
        submissions = data.get("submissions") or []
        submission_id = submissions[0].get("submission_id") if submissions else None
        if submission_id is None:
            raise _bad(ctx.job_id, "the start response has no submission id")
        self.log.info("Started CDM job %s (submission %s).", ctx.job_id, submission_id)
        return str(submission_id)

    def stop_job(self, cluster_id: str, job_name: str) -> None:
        """Stop the job's running submission."""
        from huaweicloudsdkcdm.v1 import StopJobRequest

        cluster_id, job_name = _ref(cluster_id, job_name)
        request = StopJobRequest(cluster_id=cluster_id, job_name=job_name)
        self.call("stop_job", request, self._ctx(cluster_id, job_name, "stop job"), require_body=False)
        self.log.info("Asked CDM to stop job %s.", cdm_job_id(cluster_id, job_name))

    async def astop_job(self, cluster_id: str, job_name: str) -> None:
        """Stop the job without blocking the event loop (a trigger's on_kill)."""
        cluster_id, job_name = _ref(cluster_id, job_name)
        await self.aconfig()
        await self.arequest(
            "PUT",
            _JOB_PATH + "/stop",
            self._ctx(cluster_id, job_name, "stop job"),
            path_params={"cluster_id": cluster_id, "job_name": job_name},
            require_body=False,
        )
        self.log.info("Asked CDM to stop job %s.", cdm_job_id(cluster_id, job_name))

    # The generic names the operators and the trigger's on_kill call: stopping is CDM's cancel.
    cancel = stop_job
    acancel = astop_job


def _ref(cluster_id: Any, job_name: Any) -> tuple[str, str]:
    return require_job_id(cluster_id, "cluster_id"), require_job_id(job_name, "job_name")
