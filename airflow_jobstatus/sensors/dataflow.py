"""Sensor for a Dataflow job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_jobstatus.links import DataflowJobLink
from airflow_jobstatus.sensors.base import JobStatusSensor


class DataflowJobStatusSensor(JobStatusSensor):
    """Waits for a Dataflow job; DRAINED and UPDATED succeed by default, STOPPED (not started) waits.

    :param job_id: the Dataflow job id (templated).
    :param location: the job's region (templated).
    :param project_id: the project (default: the connection's ``project``).
    :param gcp_conn_id: a ``google_cloud_platform`` connection (templated).
    :param impersonation_chain: a service account (or chain) to impersonate.
    """

    service = "dataflow"
    operator_extra_links = (DataflowJobLink(),)
    template_fields: Sequence[str] = ("job_id", "location", "project_id", "gcp_conn_id")

    def __init__(
        self,
        *,
        job_id: str,
        location: str,
        project_id: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.job_id, self.location, self.project_id = job_id, location, project_id
        self.gcp_conn_id = gcp_conn_id
        self.check_ref_now()
