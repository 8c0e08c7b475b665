"""Vertex AI jobs (custom, batch prediction, hyperparameter tuning): the JobState table and a hook."""

from __future__ import annotations

from typing import Any

from airflow_jobstatus.exceptions import ConfigurationError
from airflow_jobstatus.hooks.base import require_job_id
from airflow_jobstatus.hooks.gcp import (
    ClientKind,
    GoogleConnection,
    GoogleJobHook,
    JobRef,
    enum_name,
    raw_message,
)
from airflow_jobstatus.states import JobState, JobStatus, NativeStateTable

SERVICE = "vertex_ai"
INSTALL_HINT = "pip install 'airflow-jobstatus[vertex]'"
# Only the light GAPIC package ``google.cloud.aiplatform_v1``, never the heavy ``google.cloud.aiplatform``.
JOB_SERVICE = ClientKind(
    SERVICE, "google.cloud.aiplatform_v1.services.job_service", "JobService", install_hint=INSTALL_HINT
)

#: job_type → (resource collection, get method, cancel method).
JOB_TYPES: dict[str, tuple[str, str, str]] = {
    "custom_job": ("customJobs", "get_custom_job", "cancel_custom_job"),
    "batch_prediction_job": (
        "batchPredictionJobs",
        "get_batch_prediction_job",
        "cancel_batch_prediction_job",
    ),
    "hyperparameter_tuning_job": (
        "hyperparameterTuningJobs",
        "get_hyperparameter_tuning_job",
        "cancel_hyperparameter_tuning_job",
    ),
}

#: ``google.cloud.aiplatform_v1.JobState`` → normalized state.
VERTEX_AI_STATES = NativeStateTable(
    SERVICE,
    {
        "JOB_STATE_UNSPECIFIED": JobState.UNKNOWN,
        "JOB_STATE_QUEUED": JobState.QUEUED,
        "JOB_STATE_PENDING": JobState.PENDING,
        "JOB_STATE_RUNNING": JobState.RUNNING,
        "JOB_STATE_SUCCEEDED": JobState.SUCCEEDED,
        "JOB_STATE_FAILED": JobState.FAILED,
        "JOB_STATE_CANCELLING": JobState.CANCELLING,
        "JOB_STATE_CANCELLED": JobState.CANCELLED,
        "JOB_STATE_PAUSED": JobState.PAUSED,
        "JOB_STATE_EXPIRED": JobState.EXPIRED,
        "JOB_STATE_UPDATING": JobState.RUNNING,
        "JOB_STATE_PARTIALLY_SUCCEEDED": JobState.PARTIALLY_SUCCEEDED,
    },
)


def job_status(job: Any, job_id: str) -> JobStatus:
    """A Vertex AI job resource as a JobStatus; ``error.message`` becomes the message."""
    from google.cloud.aiplatform_v1.types.job_state import JobState as PbJobState

    pb = raw_message(job)
    state = enum_name(PbJobState, pb.state)
    message = pb.error.message if pb.HasField("error") else ""
    return JobStatus(
        service=SERVICE,
        job_id=job_id,
        state=VERTEX_AI_STATES.normalize(state),
        native_state=state,
        message=message or None,
    )


def default_target(location: str) -> str:
    """The regional Vertex AI endpoint (``global`` uses the global one)."""
    return (
        "aiplatform.googleapis.com:443"
        if location == "global"
        else f"{location}-aiplatform.googleapis.com:443"
    )


def job_type_info(job_type: str) -> tuple[str, str, str]:
    """The collection and methods for ``job_type``; ConfigurationError naming the valid ones."""
    try:
        return JOB_TYPES[job_type]
    except (KeyError, TypeError):
        raise ConfigurationError(
            f"Unknown Vertex AI job_type {job_type!r}. Valid job types: {', '.join(JOB_TYPES)}."
        ) from None


class VertexAIJobHook(GoogleJobHook):
    """Reads a Vertex AI job's state as a JobStatus; also cancels jobs. Needs the ``vertex`` extra."""

    service = SERVICE
    hook_name = "Google Vertex AI job status"

    def _ref(
        self, conn: GoogleConnection, job_id: Any, location: str, project_id: str | None, job_type: str
    ) -> tuple[JobRef, tuple[str, str, str]]:
        info = job_type_info(job_type)
        job_id, location = require_job_id(job_id), require_job_id(location, "location")
        project = conn.project(project_id)
        name = f"projects/{project}/locations/{location}/{info[0]}/{job_id}"
        where = f"project {project!r}, location {location!r} ({job_type})"
        return self.job_ref(conn, job_id, default_target(location), {"name": name}, where), info

    def get_status(
        self, job_id: str, location: str, project_id: str | None = None, job_type: str = "custom_job"
    ) -> JobStatus:
        ref, (_, get, _) = self._ref(self.google_connection(), job_id, location, project_id, job_type)
        return self.parse(job_status, self.call(JOB_SERVICE, ref, get), ref)

    async def aget_status(
        self, job_id: str, location: str, project_id: str | None = None, job_type: str = "custom_job"
    ) -> JobStatus:
        ref, (_, get, _) = self._ref(await self.agoogle_connection(), job_id, location, project_id, job_type)
        return self.parse(job_status, await self.acall(JOB_SERVICE, ref, get), ref)

    def cancel(
        self, job_id: str, location: str, project_id: str | None = None, job_type: str = "custom_job"
    ) -> None:
        """Ask Vertex AI to cancel the job (it goes through CANCELLING to CANCELLED)."""
        ref, (_, _, cancel) = self._ref(self.google_connection(), job_id, location, project_id, job_type)
        self.call(JOB_SERVICE, ref, cancel)

    async def acancel(
        self, job_id: str, location: str, project_id: str | None = None, job_type: str = "custom_job"
    ) -> None:
        ref, (_, _, cancel) = self._ref(
            await self.agoogle_connection(), job_id, location, project_id, job_type
        )
        await self.acall(JOB_SERVICE, ref, cancel)
