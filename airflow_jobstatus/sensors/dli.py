"""Sensor for a Huawei Cloud DLI (Data Lake Insight) SQL job or Spark batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_jobstatus.links import DliJobLink
from airflow_jobstatus.sensors.base import JobStatusSensor
from airflow_jobstatus.services.dli import JOB_TYPES


class DliJobStatusSensor(JobStatusSensor):
    """Waits for a DLI job; SQL jobs report progress and subjob task counts on every poll.

    :param job_id: the DLI job (or Spark batch) id (templated).
    :param job_type: one of ``services.dli.JOB_TYPES`` (SQL by default).
    :param huaweicloud_conn_id: a ``huaweicloud`` connection (templated).
    """

    service = "dli"
    operator_extra_links = (DliJobLink(),)
    template_fields: Sequence[str] = ("job_id", "huaweicloud_conn_id")

    def __init__(
        self,
        *,
        job_id: str,
        job_type: str = JOB_TYPES[0],
        huaweicloud_conn_id: str = "huaweicloud_default",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.job_id, self.job_type = job_id, job_type
        self.huaweicloud_conn_id = huaweicloud_conn_id
        self.check_ref_now()
