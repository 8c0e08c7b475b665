"""Vertex AI hook: reads and cancels custom, batch prediction and tuning jobs (requests: ``services.vertex_ai``).

Needs the ``vertex`` extra.
"""

from __future__ import annotations

from typing import ClassVar

from airflow_jobstatus.hooks.gcp import ClientKind, GoogleJobHook, GoogleService
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
    api: ClassVar[GoogleService] = vertex_ai
