"""Dataflow hook: reads, cancels and drains jobs through the JobsV1Beta3 API (requests: ``services.dataflow``)."""

from __future__ import annotations

from typing import ClassVar

from airflow_jobstatus.hooks.gcp import ClientKind, GoogleJobHook, GoogleService
from airflow_jobstatus.services import dataflow
from airflow_jobstatus.services.dataflow import DataflowJobRef

JOBS = ClientKind(dataflow.NAME, "google.cloud.dataflow_v1beta3.services.jobs_v1_beta3", "JobsV1Beta3")


class DataflowJobHook(GoogleJobHook[DataflowJobRef]):
    """Reads a Dataflow job's state as a JobStatus; also cancels and drains jobs."""

    service = dataflow.NAME
    hook_name = "Google Dataflow job status"
    client_kind = JOBS
    api: ClassVar[GoogleService] = dataflow

    def drain(self, ref: DataflowJobRef) -> None:
        """Ask for a drain: stop reading input, finish in-flight data (streaming jobs)."""
        target = self._target(self.google_connection(), ref)
        self.call(target, *dataflow.drain_call(target.project, ref))

    async def adrain(self, ref: DataflowJobRef) -> None:
        target = self._target(await self.agoogle_connection(), ref)
        await self.acall(target, *dataflow.drain_call(target.project, ref))
