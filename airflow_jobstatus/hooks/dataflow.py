"""Dataflow jobs: the JobState table and a hook reading, cancelling and draining jobs."""

from __future__ import annotations

from typing import Any

from airflow_jobstatus.hooks.base import require_job_id
from airflow_jobstatus.hooks.gcp import (
    ClientKind,
    GoogleConnection,
    GoogleJobHook,
    JobRef,
    enum_name,
    raw_message,
)
from airflow_jobstatus.states import JobState, JobStatus, NativeStateTable

SERVICE = "dataflow"
JOBS = ClientKind(SERVICE, "google.cloud.dataflow_v1beta3.services.jobs_v1_beta3", "JobsV1Beta3")
#: Dataflow's API is global; the location travels in the request.
DEFAULT_TARGET = "dataflow.googleapis.com:443"

#: ``google.cloud.dataflow_v1beta3.JobState`` → normalized state (STOPPED means "not started yet").
DATAFLOW_STATES = NativeStateTable(
    SERVICE,
    {
        "JOB_STATE_UNKNOWN": JobState.UNKNOWN,
        "JOB_STATE_STOPPED": JobState.PENDING,
        "JOB_STATE_RUNNING": JobState.RUNNING,
        "JOB_STATE_DONE": JobState.SUCCEEDED,
        "JOB_STATE_FAILED": JobState.FAILED,
        "JOB_STATE_CANCELLED": JobState.CANCELLED,
        "JOB_STATE_UPDATED": JobState.UPDATED,
        "JOB_STATE_DRAINING": JobState.DRAINING,
        "JOB_STATE_DRAINED": JobState.DRAINED,
        "JOB_STATE_PENDING": JobState.PENDING,
        "JOB_STATE_CANCELLING": JobState.CANCELLING,
        "JOB_STATE_QUEUED": JobState.QUEUED,
        "JOB_STATE_RESOURCE_CLEANING_UP": JobState.RUNNING,
        "JOB_STATE_PAUSING": JobState.PAUSED,
        "JOB_STATE_PAUSED": JobState.PAUSED,
    },
)


def job_status(job: Any, job_id: str) -> JobStatus:
    """A ``dataflow_v1beta3.Job`` as a JobStatus (native_state keeps the full SDK name)."""
    from google.cloud.dataflow_v1beta3 import JobState as PbJobState

    state = enum_name(PbJobState, raw_message(job).current_state)
    return JobStatus(
        service=SERVICE, job_id=job_id, state=DATAFLOW_STATES.normalize(state), native_state=state
    )


class DataflowJobHook(GoogleJobHook):
    """Reads a Dataflow job's state as a JobStatus; also cancels and drains jobs."""

    service = SERVICE
    hook_name = "Google Dataflow job status"

    def _ref(self, conn: GoogleConnection, job_id: Any, location: str, project_id: str | None) -> JobRef:
        job_id, location = require_job_id(job_id), require_job_id(location, "location")
        project = conn.project(project_id)
        request = {"project_id": project, "location": location, "job_id": job_id}
        where = f"project {project!r}, location {location!r}"
        return self.job_ref(conn, job_id, DEFAULT_TARGET, request, where)

    @staticmethod
    def _update(ref: JobRef, requested_state: str) -> dict[str, Any]:
        return {**ref.request, "job": {"requested_state": requested_state}}

    def get_status(self, job_id: str, location: str, project_id: str | None = None) -> JobStatus:
        ref = self._ref(self.google_connection(), job_id, location, project_id)
        return self.parse(job_status, self.call(JOBS, ref, "get_job"), ref)

    async def aget_status(self, job_id: str, location: str, project_id: str | None = None) -> JobStatus:
        ref = self._ref(await self.agoogle_connection(), job_id, location, project_id)
        return self.parse(job_status, await self.acall(JOBS, ref, "get_job"), ref)

    def cancel(self, job_id: str, location: str, project_id: str | None = None) -> None:
        """Request JOB_STATE_CANCELLED: stop now, dropping in-flight data."""
        ref = self._ref(self.google_connection(), job_id, location, project_id)
        self.call(JOBS, ref, "update_job", self._update(ref, "JOB_STATE_CANCELLED"))

    async def acancel(self, job_id: str, location: str, project_id: str | None = None) -> None:
        ref = self._ref(await self.agoogle_connection(), job_id, location, project_id)
        await self.acall(JOBS, ref, "update_job", self._update(ref, "JOB_STATE_CANCELLED"))

    def drain(self, job_id: str, location: str, project_id: str | None = None) -> None:
        """Request JOB_STATE_DRAINED: stop reading input, finish in-flight data (streaming jobs)."""
        ref = self._ref(self.google_connection(), job_id, location, project_id)
        self.call(JOBS, ref, "update_job", self._update(ref, "JOB_STATE_DRAINED"))

    async def adrain(self, job_id: str, location: str, project_id: str | None = None) -> None:
        ref = self._ref(await self.agoogle_connection(), job_id, location, project_id)
        await self.acall(JOBS, ref, "update_job", self._update(ref, "JOB_STATE_DRAINED"))
