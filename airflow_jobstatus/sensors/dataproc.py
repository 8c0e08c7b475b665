"""Sensor for a Dataproc job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_jobstatus.links import DataprocJobLink
from airflow_jobstatus.sensors.base import JobStatusSensor


class DataprocJobStatusSensor(JobStatusSensor):
    """Waits for a Dataproc job; a failed attempt (RETRYING) and a pending cancel keep waiting.

    :param job_id: the Dataproc job id (templated).
    :param region: the job's region (templated).
    :param project_id: the project (default: the connection's ``project``).
    :param gcp_conn_id: a ``google_cloud_platform`` connection (templated).
    :param impersonation_chain: a service account (or chain) to impersonate.
    """

    service = "dataproc"
    operator_extra_links = (DataprocJobLink(),)
    template_fields: Sequence[str] = ("job_id", "region", "project_id", "gcp_conn_id")

    def __init__(
        self,
        *,
        job_id: str,
        region: str,
        project_id: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.job_id, self.region, self.project_id = job_id, region, project_id
        self.gcp_conn_id = gcp_conn_id
        self.check_ref_now()
