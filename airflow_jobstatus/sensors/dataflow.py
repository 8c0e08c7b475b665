"""Sensor for a Dataflow job."""

from __future__ import annotations

from typing import Any

from airflow_jobstatus.hooks.base import check_identifier, require_job_id
from airflow_jobstatus.links import DataflowJobLink
from airflow_jobstatus.sensors.base import JobStatusSensor


class DataflowJobStatusSensor(JobStatusSensor):
    """Waits for a Dataflow job; DRAINED and UPDATED succeed by default, STOPPED (not started) waits."""

    service = "dataflow"
    operator_extra_links = (DataflowJobLink(),)
    template_fields = ("job_id", "location", "project_id", "gcp_conn_id")

    def __init__(
        self,
        *,
        job_id: str,
        location: str,
        project_id: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        **kwargs: Any,
    ):
        super().__init__(conn_id=gcp_conn_id, **kwargs)
        self.job_id = check_identifier(job_id)
        self.location = check_identifier(location, "location")
        self.project_id = project_id
        self.gcp_conn_id = gcp_conn_id

    def job_ref(self) -> dict[str, Any]:
        return {
            "job_id": require_job_id(self.job_id),
            "location": require_job_id(self.location, "location"),
            "project_id": self.project_id,
        }

    def console_link_fields(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "location": self.location,
            "project": self.project_id,
        }
