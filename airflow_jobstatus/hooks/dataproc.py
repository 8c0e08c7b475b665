"""Dataproc hook: reads, cancels and submits jobs through the JobController API."""

from __future__ import annotations

from typing import Any

from airflow_jobstatus.core.states import JobStatus
from airflow_jobstatus.hooks.gcp import ClientKind, GoogleJobHook
from airflow_jobstatus.services import dataproc
from airflow_jobstatus.services.base import require_id
from airflow_jobstatus.services.dataproc import DataprocJobRef

JOB_CONTROLLER = ClientKind(
    dataproc.NAME, "google.cloud.dataproc_v1.services.job_controller", "JobController"
)


class DataprocJobHook(GoogleJobHook[DataprocJobRef]):
    """Reads a Dataproc job's state as a JobStatus; also cancels and submits jobs."""

    service = dataproc.NAME
    hook_name = "Google Dataproc job status"
    client_kind = JOB_CONTROLLER

    def parse(self, response: Any, ref: DataprocJobRef) -> JobStatus:
        return dataproc.parse(response, ref)

    def default_target(self, ref: DataprocJobRef) -> str:
        return dataproc.default_target(ref.region)

    def status_call(self, project: str, ref: DataprocJobRef) -> tuple[str, dict[str, Any]]:
        return "get_job", {"project_id": project, "region": ref.region, "job_id": ref.job_id}

    def cancel_call(self, project: str, ref: DataprocJobRef) -> tuple[str, dict[str, Any]]:
        return "cancel_job", {"project_id": project, "region": ref.region, "job_id": ref.job_id}

    def submit_job(self, job: dict[str, Any], region: str, project_id: str | None = None) -> str:
        """Submit a job (a ``dataproc_v1.Job`` as a dict) and return its job id."""
        reference = ((job or {}).get("reference") or {}).get("job_id") or "(new job)"
        ref = DataprocJobRef(
            job_id=str(reference), region=require_id(region, "region"), project_id=project_id
        )
        target = self._target(self.google_connection(), ref)
        request = {"project_id": target.project, "region": ref.region, "job": job}
        submitted = self.call(target, "submit_job", request)
        return str(submitted.reference.job_id)
