"""Huawei Cloud CDM: a migration job's latest submission as a JobStatus; starting and stopping jobs.

Every fact about CDM (paths, bodies, states, counters) is in ``airflow_jobstatus.services.cdm``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from airflow_jobstatus.hooks.huaweicloud import HuaweiCloudHook, HuaweiService
from airflow_jobstatus.services import cdm
from airflow_jobstatus.services.cdm import CdmJobRef


class CdmJobHook(HuaweiCloudHook[CdmJobRef]):
    """CDM job status (the latest submission's, sync and async), start, and stop (CDM's cancel)."""

    service = cdm.NAME
    api: ClassVar[HuaweiService] = cdm

    def start_job(self, ref: CdmJobRef, variables: Mapping[str, Any] | None = None) -> str:
        """Start the job (with optional job variables); the new submission id."""
        submission_id = cdm.parse_submission_id(self.send(cdm.start_op(ref, variables)), ref)
        self.log.info("CDM: started job %s: submission %s.", ref.display_id, submission_id)
        return submission_id

    def get_job(self, ref: CdmJobRef) -> dict[str, Any]:
        """The job's definition (Querying a Job): its links and their configs, as CDM answers it."""
        return self.send(cdm.job_op(ref))

    def stop_job(self, ref: CdmJobRef) -> None:
        """CDM's own name for ``cancel``: stop the job's running submission."""
        self.cancel(ref)

    async def astop_job(self, ref: CdmJobRef) -> None:
        """``stop_job`` without blocking the event loop (``acancel``)."""
        await self.acancel(ref)
