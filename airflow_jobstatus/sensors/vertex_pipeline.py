"""Sensor for a Vertex AI pipeline job (a pipeline run)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_jobstatus.links import VertexAIPipelineJobLink
from airflow_jobstatus.sensors.base import JobStatusSensor


class VertexAIPipelineJobStatusSensor(JobStatusSensor):
    """Waits for a Vertex AI pipeline job; a cancel in progress and a pause keep waiting.

    Each poll logs the share of the pipeline's tasks that have finished; the return value's
    ``sub_jobs`` lists the tasks (name, state, start and end).

    :param pipeline_job_id: the pipeline job id (templated).
    :param location: the job's region (templated).
    :param project_id: the project (default: the connection's ``project``).
    :param gcp_conn_id: a ``google_cloud_platform`` connection (templated).
    :param impersonation_chain: a service account (or chain) to impersonate.
    """

    service = "vertex_pipeline"
    operator_extra_links = (VertexAIPipelineJobLink(),)
    template_fields: Sequence[str] = ("pipeline_job_id", "location", "project_id", "gcp_conn_id")

    def __init__(
        self,
        *,
        pipeline_job_id: str,
        location: str,
        project_id: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.pipeline_job_id, self.location, self.project_id = pipeline_job_id, location, project_id
        self.gcp_conn_id = gcp_conn_id
        self.check_ref_now()
