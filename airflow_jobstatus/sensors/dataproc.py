"""Sensor for a Dataproc job."""

from __future__ import annotations

from typing import Any

from airflow_jobstatus.hooks.base import check_identifier, require_job_id
from airflow_jobstatus.links import DataprocJobLink
from airflow_jobstatus.sensors.base import JobStatusSensor


class DataprocJobStatusSensor(JobStatusSensor):
    """Waits for a Dataproc job; ATTEMPT_FAILURE (RETRYING) and CANCEL_PENDING keep waiting."""

    service = "dataproc"
    operator_extra_links = (DataprocJobLink(),)
    template_fields = ("job_id", "region", "project_id", "gcp_conn_id")

    def __init__(
        self,
        *,
        job_id: str,
        region: str,
        project_id: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        **kwargs: Any,
    ):
        super().__init__(conn_id=gcp_conn_id, **kwargs)
        self.job_id = check_identifier(job_id)
        self.region = check_identifier(region, "region")
        self.project_id = project_id
        self.gcp_conn_id = gcp_conn_id

    def job_ref(self) -> dict[str, Any]:
        return {
            "job_id": require_job_id(self.job_id),
            "region": require_job_id(self.region, "region"),
            "project_id": self.project_id,
        }

    def console_link_fields(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "region": self.region, "project": self.project_id}
