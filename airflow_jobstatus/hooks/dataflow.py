"""Dataflow hook: reads, cancels and drains jobs through the JobsV1Beta3 API."""

from __future__ import annotations

from typing import Any

from airflow_jobstatus.core.states import JobStatus
from airflow_jobstatus.hooks.gcp import ClientKind, GoogleJobHook
from airflow_jobstatus.services import dataflow
from airflow_jobstatus.services.dataflow import DataflowJobRef

JOBS = ClientKind(dataflow.NAME, "google.cloud.dataflow_v1beta3.services.jobs_v1_beta3", "JobsV1Beta3")


class DataflowJobHook(GoogleJobHook[DataflowJobRef]):
    """Reads a Dataflow job's state as a JobStatus; also cancels and drains jobs."""

    service = dataflow.NAME
    hook_name = "Google Dataflow job status"
    client_kind = JOBS

    def parse(self, response: Any, ref: DataflowJobRef) -> JobStatus:
        return dataflow.parse(response, ref)

    def default_target(self, ref: DataflowJobRef) -> str:
        return dataflow.DEFAULT_TARGET

    def status_call(self, project: str, ref: DataflowJobRef) -> tuple[str, dict[str, Any]]:
        return "get_job", {"project_id": project, "location": ref.location, "job_id": ref.job_id}

    def cancel_call(self, project: str, ref: DataflowJobRef) -> tuple[str, dict[str, Any]]:
        return self._update(project, ref, dataflow.CANCEL_REQUEST)

    def _update(self, project: str, ref: DataflowJobRef, requested: str) -> tuple[str, dict[str, Any]]:
        request = {"project_id": project, "location": ref.location, "job_id": ref.job_id}
        return "update_job", {**request, "job": {"requested_state": requested}}

    def drain(self, ref: DataflowJobRef) -> None:
        """Ask for a drain: stop reading input, finish in-flight data (streaming jobs)."""
        target = self._target(self.google_connection(), ref)
        self.call(target, *self._update(target.project, ref, dataflow.DRAIN_REQUEST))

    async def adrain(self, ref: DataflowJobRef) -> None:
        target = self._target(await self.agoogle_connection(), ref)
        await self.acall(target, *self._update(target.project, ref, dataflow.DRAIN_REQUEST))
