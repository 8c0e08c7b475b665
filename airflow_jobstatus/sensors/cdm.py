"""Sensor for a Huawei Cloud CDM (Cloud Data Migration) job's latest submission."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_jobstatus.links import CdmJobLink
from airflow_jobstatus.sensors.base import JobStatusSensor


class CdmJobStatusSensor(JobStatusSensor):
    """Waits for a CDM job; a job never submitted or never executed keeps waiting (with a warning).

    :param cluster_id: the CDM cluster (templated).
    :param job_name: the CDM job's name (templated).
    :param huaweicloud_conn_id: a ``huaweicloud`` connection (templated).
    """

    service = "cdm"
    operator_extra_links = (CdmJobLink(),)
    template_fields: Sequence[str] = ("cluster_id", "job_name", "huaweicloud_conn_id")

    def __init__(
        self,
        *,
        cluster_id: str,
        job_name: str,
        huaweicloud_conn_id: str = "huaweicloud_default",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.cluster_id, self.job_name = cluster_id, job_name
        self.huaweicloud_conn_id = huaweicloud_conn_id
        self.check_ref_now()
