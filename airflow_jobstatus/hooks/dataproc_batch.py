"""Dataproc Serverless hook: reads batches through the BatchController API and cancels them through
the Operations API on the same channel (requests: ``services.dataproc_batch``)."""

from __future__ import annotations

from typing import ClassVar

from airflow_jobstatus.hooks.gcp import ClientKind, GoogleJobHook, GoogleService
from airflow_jobstatus.services import dataproc_batch
from airflow_jobstatus.services.dataproc_batch import DataprocBatchRef

BATCH_CONTROLLER = ClientKind(
    dataproc_batch.NAME, "google.cloud.dataproc_v1.services.batch_controller", "BatchController"
)


class DataprocBatchHook(GoogleJobHook[DataprocBatchRef]):
    """Reads a Dataproc Serverless batch's state as a JobStatus; also cancels batches."""

    service = dataproc_batch.NAME
    hook_name = "Google Dataproc Serverless batch status"
    client_kind = BATCH_CONTROLLER
    api: ClassVar[GoogleService] = dataproc_batch
