"""Dataproc hook: reads, cancels and submits jobs through the JobController API (requests: ``services.dataproc``)."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow_jobstatus.hooks.gcp import ClientKind, GoogleJobHook, GoogleService
from airflow_jobstatus.services import dataproc
from airflow_jobstatus.services.dataproc import DataprocJobRef

JOB_CONTROLLER = ClientKind(
    dataproc.NAME, "google.cloud.dataproc_v1.services.job_controller", "JobController"
)


class DataprocJobHook(GoogleJobHook[DataprocJobRef]):
    """Reads a Dataproc job's state as a JobStatus; also cancels and submits jobs."""

    service = dataproc.NAME
    hook_name = "Google Dataproc job status"
    client_kind = JOB_CONTROLLER
    api: ClassVar[GoogleService] = dataproc

    def submit_job(self, job: dict[str, Any], region: str, project_id: str | None = None) -> str:
        """Submit a job (a ``dataproc_v1.Job`` as a dict) and return its job id."""
        ref = dataproc.submit_ref(job, region, project_id)
        target = self._target(self.google_connection(), ref)
        return dataproc.submitted_id(self.call(target, *dataproc.submit_call(target.project, ref, job)))
