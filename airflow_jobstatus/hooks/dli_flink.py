"""Huawei Cloud DLI Flink jobs: a job's status as a JobStatus; stopping it (the cancel).

Every fact about Flink jobs (paths, bodies, statuses, the restart counter) is in
``airflow_jobstatus.services.dli_flink``; the calls go to the DLI endpoint.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow_jobstatus.hooks.huaweicloud import HuaweiCloudHook, HuaweiService
from airflow_jobstatus.services import dli_flink
from airflow_jobstatus.services.dli_flink import DliFlinkJobRef


class DliFlinkJobHook(HuaweiCloudHook[DliFlinkJobRef]):
    """DLI Flink job status (ShowFlinkJob), the active-job list (ListFlinkJobs) and stop (the cancel:
    BatchStopFlinkJobs with one job; BadRequestError when DLI refuses)."""

    service = dli_flink.NAME
    endpoint_service = dli_flink.ENDPOINT
    api: ClassVar[HuaweiService] = dli_flink

    async def alist_active(self, ref: DliFlinkJobRef) -> list[Any]:
        """Every page of the Flink job list for each listed status (coalesced polling)."""
        return await self.apages(dli_flink.list_active_call("", ref), dli_flink.list_page)

    def stop_job(self, ref: DliFlinkJobRef) -> None:
        """DLI's own name for ``cancel``: stop the Flink job (no savepoint)."""
        self.cancel(ref)

    async def astop_job(self, ref: DliFlinkJobRef) -> None:
        """``stop_job`` without blocking the event loop (``acancel``)."""
        await self.acancel(ref)
