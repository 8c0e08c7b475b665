"""Vertex AI Pipelines hook: reads and cancels pipeline jobs through the PipelineService API
(requests: ``services.vertex_pipeline``). Needs the ``vertex`` extra."""

from __future__ import annotations

from typing import ClassVar

from airflow_jobstatus.hooks.gcp import ClientKind, GoogleJobHook, GoogleService
from airflow_jobstatus.services import vertex_pipeline
from airflow_jobstatus.services.vertex_pipeline import VertexAIPipelineJobRef

PIPELINE_SERVICE = ClientKind(
    vertex_pipeline.NAME,
    "google.cloud.aiplatform_v1.services.pipeline_service",
    "PipelineService",
    install_hint=vertex_pipeline.INSTALL_HINT,
)


class VertexAIPipelineJobHook(GoogleJobHook[VertexAIPipelineJobRef]):
    """Reads a Vertex AI pipeline job's state (and its tasks) as a JobStatus; also cancels it."""

    service = vertex_pipeline.NAME
    hook_name = "Google Vertex AI pipeline job status"
    client_kind = PIPELINE_SERVICE
    api: ClassVar[GoogleService] = vertex_pipeline
