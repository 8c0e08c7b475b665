"""Sensor for a Vertex AI custom, batch prediction or hyperparameter tuning job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_jobstatus.links import VertexAIJobLink
from airflow_jobstatus.sensors.base import JobStatusSensor
from airflow_jobstatus.services.vertex_ai import JOB_TYPES


class VertexAIJobStatusSensor(JobStatusSensor):
    """Waits for a Vertex AI job; partial success and expiry fail unless accepted, a pause waits.

    :param job_id: the job id (templated).
    :param location: the job's region (templated).
    :param job_type: one of ``services.vertex_ai.JOB_TYPES`` (a custom job by default).
    :param project_id: the project (default: the connection's ``project``).
    :param gcp_conn_id: a ``google_cloud_platform`` connection (templated).
    :param impersonation_chain: a service account (or chain) to impersonate.
    """

    service = "vertex_ai"
    operator_extra_links = (VertexAIJobLink(),)
    template_fields: Sequence[str] = ("job_id", "location", "project_id", "gcp_conn_id")

    def __init__(
        self,
        *,
        job_id: str,
        location: str,
        job_type: str = JOB_TYPES[0],
        project_id: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.job_id, self.location, self.project_id = job_id, location, project_id
        self.job_type = job_type
        self.gcp_conn_id = gcp_conn_id
        self.check_ref_now()
