"""Sensor for a Huawei Cloud DLI Flink job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_jobstatus.links import DliFlinkJobLink
from airflow_jobstatus.sensors.base import JobStatusSensor


class DliFlinkJobStatusSensor(JobStatusSensor):
    """Waits for a DLI Flink job; each poll reports its status description and restart count.

    A streaming job normally never ends: wait for it to be up with ``success_states={"RUNNING"}``
    (a job that fails or is stopped meanwhile fails the sensor).

    :param job_id: the Flink job id, an integer (templated).
    :param huaweicloud_conn_id: a ``huaweicloud`` connection (templated); calls go to its DLI endpoint.
    """

    service = "dli_flink"
    operator_extra_links = (DliFlinkJobLink(),)
    template_fields: Sequence[str] = ("job_id", "huaweicloud_conn_id")

    def __init__(
        self,
        *,
        job_id: int | str,
        huaweicloud_conn_id: str = "huaweicloud_default",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.job_id = job_id
        self.huaweicloud_conn_id = huaweicloud_conn_id
        self.check_ref_now()
