"""Sensor for a Huawei Cloud DLI (Data Lake Insight) SQL job or Spark batch."""

from __future__ import annotations

from typing import Any

from airflow_jobstatus.exceptions import ConfigurationError
from airflow_jobstatus.hooks.base import check_identifier, require_job_id
from airflow_jobstatus.links import DliJobLink
from airflow_jobstatus.sensors.base import JobStatusSensor

DLI_JOB_TYPES = ("sql", "spark")


class DliJobStatusSensor(JobStatusSensor):
    """Waits for a DLI job; SQL jobs report progress and subjob task counts on every poll."""

    service = "dli"
    operator_extra_links = (DliJobLink(),)
    template_fields = ("job_id", "huaweicloud_conn_id")

    def __init__(
        self,
        *,
        job_id: str,
        job_type: str = "sql",
        huaweicloud_conn_id: str = "huaweicloud_default",
        **kwargs: Any,
    ):
        super().__init__(conn_id=huaweicloud_conn_id, **kwargs)
        if job_type not in DLI_JOB_TYPES:
            raise ConfigurationError(f"job_type {job_type!r} is not one of {', '.join(DLI_JOB_TYPES)}.")
        self.job_id = check_identifier(job_id)
        self.job_type = job_type
        self.huaweicloud_conn_id = huaweicloud_conn_id

    def job_ref(self) -> dict[str, Any]:
        return {"job_id": require_job_id(self.job_id), "job_type": self.job_type}

    def console_link_fields(self) -> dict[str, Any]:
        return {"region": getattr(self.hook, "region", None), "job_id": self.job_id}
