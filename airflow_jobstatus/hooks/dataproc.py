"""Dataproc jobs: the JobStatus.State/Substate table and a hook reading, cancelling and submitting jobs."""

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

SERVICE = "dataproc"
JOB_CONTROLLER = ClientKind(SERVICE, "google.cloud.dataproc_v1.services.job_controller", "JobController")

#: ``google.cloud.dataproc_v1.JobStatus.State`` → normalized state.
DATAPROC_STATES = NativeStateTable(
    SERVICE,
    {
        "STATE_UNSPECIFIED": JobState.UNKNOWN,
        "PENDING": JobState.PENDING,
        "SETUP_DONE": JobState.PENDING,
        "RUNNING": JobState.RUNNING,
        "CANCEL_PENDING": JobState.CANCELLING,
        "CANCEL_STARTED": JobState.CANCELLING,
        "CANCELLED": JobState.CANCELLED,
        "DONE": JobState.SUCCEEDED,
        "ERROR": JobState.FAILED,
        "ATTEMPT_FAILURE": JobState.RETRYING,
    },
)

#: ``JobStatus.Substate`` → the normalized state of a RUNNING job in that substate.
DATAPROC_RUNNING_SUBSTATES = NativeStateTable(
    SERVICE,
    {
        "UNSPECIFIED": JobState.RUNNING,
        "SUBMITTED": JobState.RUNNING,
        "QUEUED": JobState.QUEUED,
        "STALE_STATUS": JobState.RUNNING,
    },
)


def normalize(state: str, substate: str | None) -> JobState:
    """A Dataproc state (and substate) as a JobState: RUNNING/QUEUED is QUEUED."""
    normalized = DATAPROC_STATES.normalize(state)
    if normalized is JobState.RUNNING and substate:
        by_substate = DATAPROC_RUNNING_SUBSTATES.normalize(substate)  # warns once about an unknown one
        return JobState.RUNNING if by_substate is JobState.UNKNOWN else by_substate
    return normalized


def job_status(job: Any, job_id: str) -> JobStatus:
    """A ``dataproc_v1.Job`` as a JobStatus; ``status.details`` becomes the message."""
    from google.cloud.dataproc_v1 import JobStatus as PbJobStatus

    status = raw_message(job).status
    state = enum_name(PbJobStatus.State, status.state)
    substate: str | None = enum_name(PbJobStatus.Substate, status.substate)
    if substate == "UNSPECIFIED":
        substate = None
    return JobStatus(
        service=SERVICE,
        job_id=job_id,
        state=normalize(state, substate),
        native_state=state,
        substate=substate,
        message=status.details or None,
    )


def default_target(region: str) -> str:
    """The regional Dataproc endpoint (``global`` uses the global one)."""
    return "dataproc.googleapis.com:443" if region == "global" else f"{region}-dataproc.googleapis.com:443"


class DataprocJobHook(GoogleJobHook):
    """Reads a Dataproc job's state as a JobStatus; also cancels and submits jobs."""

    service = SERVICE
    hook_name = "Google Dataproc job status"

    def _ref(self, conn: GoogleConnection, job_id: Any, region: str, project_id: str | None) -> JobRef:
        job_id, region = require_job_id(job_id), require_job_id(region, "region")
        project = conn.project(project_id)
        request = {"project_id": project, "region": region, "job_id": job_id}
        where = f"project {project!r}, region {region!r}"
        return self.job_ref(conn, job_id, default_target(region), request, where)

    def get_status(self, job_id: str, region: str, project_id: str | None = None) -> JobStatus:
        ref = self._ref(self.google_connection(), job_id, region, project_id)
        return self.parse(job_status, self.call(JOB_CONTROLLER, ref, "get_job"), ref)

    async def aget_status(self, job_id: str, region: str, project_id: str | None = None) -> JobStatus:
        ref = self._ref(await self.agoogle_connection(), job_id, region, project_id)
        return self.parse(job_status, await self.acall(JOB_CONTROLLER, ref, "get_job"), ref)

    def cancel(self, job_id: str, region: str, project_id: str | None = None) -> None:
        """Ask Dataproc to cancel the job (it goes through CANCEL_PENDING to CANCELLED)."""
        self.call(
            JOB_CONTROLLER, self._ref(self.google_connection(), job_id, region, project_id), "cancel_job"
        )

    async def acancel(self, job_id: str, region: str, project_id: str | None = None) -> None:
        ref = self._ref(await self.agoogle_connection(), job_id, region, project_id)
        await self.acall(JOB_CONTROLLER, ref, "cancel_job")

    def submit_job(self, job: dict[str, Any], region: str, project_id: str | None = None) -> str:
        """Submit a job (a ``dataproc_v1.Job`` as a dict) and return its job id."""
        conn = self.google_connection()
        region = require_job_id(region, "region")
        project = conn.project(project_id)
        ref_id = str(((job or {}).get("reference") or {}).get("job_id") or "(new job)")
        ref = self.job_ref(
            conn, ref_id, default_target(region), {}, f"project {project!r}, region {region!r}"
        )
        request = {"project_id": project, "region": region, "job": job}
        submitted = self.call(JOB_CONTROLLER, ref, "submit_job", request)
        return self.parse(lambda response, _: str(response.reference.job_id), submitted, ref)
