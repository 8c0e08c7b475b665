"""Vertex AI hook: reads and cancels custom, batch prediction and tuning jobs. Needs the ``vertex`` extra."""

from __future__ import annotations

from typing import Any

from airflow_jobstatus.core.states import JobStatus
from airflow_jobstatus.hooks.gcp import ClientKind, GoogleJobHook
from airflow_jobstatus.services import vertex_ai
from airflow_jobstatus.services.vertex_ai import VertexAIJobRef

# Only the light GAPIC package ``google.cloud.aiplatform_v1``, never the heavy ``google.cloud.aiplatform``.
JOB_SERVICE = ClientKind(
    vertex_ai.NAME,
    "google.cloud.aiplatform_v1.services.job_service",
    "JobService",
    install_hint=vertex_ai.INSTALL_HINT,
)


class VertexAIJobHook(GoogleJobHook[VertexAIJobRef]):
    """Reads a Vertex AI job's state as a JobStatus; also cancels jobs."""

    service = vertex_ai.NAME
    hook_name = "Google Vertex AI job status"
    client_kind = JOB_SERVICE

    def parse(self, response: Any, ref: VertexAIJobRef) -> JobStatus:
        return vertex_ai.parse(response, ref)

    def default_target(self, ref: VertexAIJobRef) -> str:
        return vertex_ai.default_target(ref.location)

    def status_call(self, project: str, ref: VertexAIJobRef) -> tuple[str, dict[str, Any]]:
        return ref.kind.get, {"name": ref.resource_name(project)}

    def cancel_call(self, project: str, ref: VertexAIJobRef) -> tuple[str, dict[str, Any]]:
        return ref.kind.cancel, {"name": ref.resource_name(project)}
