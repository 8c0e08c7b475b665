"""Sensor for a Vertex AI custom, batch prediction or hyperparameter tuning job."""

from __future__ import annotations

from typing import Any

from airflow_jobstatus.exceptions import ConfigurationError
from airflow_jobstatus.hooks.base import check_identifier, require_job_id
from airflow_jobstatus.links import VertexAIJobLink
from airflow_jobstatus.sensors.base import JobStatusSensor

VERTEX_JOB_TYPES = ("custom_job", "batch_prediction_job", "hyperparameter_tuning_job")


class VertexAIJobStatusSensor(JobStatusSensor):
    """Waits for a Vertex AI job; PARTIALLY_SUCCEEDED and EXPIRED fail unless accepted, PAUSED waits."""

    service = "vertex_ai"
    operator_extra_links = (VertexAIJobLink(),)
    template_fields = ("job_id", "location", "project_id", "gcp_conn_id")

    def __init__(
        self,
        *,
        job_id: str,
        location: str,
        job_type: str = "custom_job",
        project_id: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        **kwargs: Any,
    ):
        super().__init__(conn_id=gcp_conn_id, **kwargs)
        if job_type not in VERTEX_JOB_TYPES:
            raise ConfigurationError(f"job_type {job_type!r} is not one of {', '.join(VERTEX_JOB_TYPES)}.")
        self.job_id = check_identifier(job_id)
        self.location = check_identifier(location, "location")
        self.job_type = job_type
        self.project_id = project_id
        self.gcp_conn_id = gcp_conn_id

    def job_ref(self) -> dict[str, Any]:
        return {
            "job_id": require_job_id(self.job_id),
            "location": require_job_id(self.location, "location"),
            "project_id": self.project_id,
            "job_type": self.job_type,
        }

    def console_link_fields(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "location": self.location,
            "job_type": self.job_type,
            "project": self.project_id,
        }
