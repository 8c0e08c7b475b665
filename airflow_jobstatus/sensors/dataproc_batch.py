"""Sensor for a Dataproc Serverless batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_jobstatus.links import DataprocBatchLink
from airflow_jobstatus.sensors.base import JobStatusSensor


class DataprocBatchStatusSensor(JobStatusSensor):
    """Waits for a Dataproc Serverless batch; a cancel in progress (CANCELLING) keeps waiting.

    :param batch_id: the batch id (templated).
    :param region: the batch's region (templated).
    :param project_id: the project (default: the connection's ``project``).
    :param gcp_conn_id: a ``google_cloud_platform`` connection (templated).
    :param impersonation_chain: a service account (or chain) to impersonate.
    """

    service = "dataproc_batch"
    operator_extra_links = (DataprocBatchLink(),)
    template_fields: Sequence[str] = ("batch_id", "region", "project_id", "gcp_conn_id")

    def __init__(
        self,
        *,
        batch_id: str,
        region: str,
        project_id: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.batch_id, self.region, self.project_id = batch_id, region, project_id
        self.gcp_conn_id = gcp_conn_id
        self.check_ref_now()
