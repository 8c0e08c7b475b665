"""Sensor for a Huawei Cloud CDM (Cloud Data Migration) job's latest submission."""

from __future__ import annotations

from typing import Any

from airflow_jobstatus.hooks.base import check_identifier, require_job_id
from airflow_jobstatus.links import CdmJobLink
from airflow_jobstatus.sensors.base import JobStatusSensor


class CdmJobStatusSensor(JobStatusSensor):
    """Waits for a CDM job; no submission yet or NEVER_EXECUTED keeps waiting (with a warning)."""

    service = "cdm"
    operator_extra_links = (CdmJobLink(),)
    template_fields = ("cluster_id", "job_name", "huaweicloud_conn_id")

    def __init__(
        self,
        *,
        cluster_id: str,
        job_name: str,
        huaweicloud_conn_id: str = "huaweicloud_default",
        **kwargs: Any,
    ):
        super().__init__(conn_id=huaweicloud_conn_id, **kwargs)
        self.cluster_id = check_identifier(cluster_id, "cluster_id")
        self.job_name = check_identifier(job_name, "job_name")
        self.huaweicloud_conn_id = huaweicloud_conn_id

    def job_ref(self) -> dict[str, Any]:
        return {
            "cluster_id": require_job_id(self.cluster_id, "cluster_id"),
            "job_name": require_job_id(self.job_name, "job_name"),
        }

    def console_link_fields(self) -> dict[str, Any]:
        return {
            "region": getattr(self.hook, "region", None),
            "cluster_id": self.cluster_id,
            "job_name": self.job_name,
        }
