"""Console links (operator extra links) to a job's page in the Google Cloud or Huawei Cloud console.

Airflow 3 calls ``get_link`` on the worker when the task finishes, with the operator that ran, and
stores the URL as an XCom: the URL is built from the rendered job reference and the connection's
project (Google) or region (Huawei), through the service's ``console_url``. A sensor that starts and
ends in the triggerer never runs that worker code: its trigger pushes the same XCom (``link_for``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from airflow.sdk import BaseOperatorLink

from airflow_jobstatus.services import REGISTRY

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class ConsoleLink(BaseOperatorLink):
    """The job's console page; empty while the job is unknown."""

    service: ClassVar[str]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        console_url = getattr(operator, "console_url", None)
        return str(console_url()) if callable(console_url) else ""


class DataprocJobLink(ConsoleLink):
    service = "dataproc"
    name = REGISTRY[service].link_name


class DataflowJobLink(ConsoleLink):
    service = "dataflow"
    name = REGISTRY[service].link_name


class VertexAIJobLink(ConsoleLink):
    service = "vertex_ai"
    name = REGISTRY[service].link_name


class CdmJobLink(ConsoleLink):
    service = "cdm"
    name = REGISTRY[service].link_name


class DliJobLink(ConsoleLink):
    service = "dli"
    name = REGISTRY[service].link_name


class DataprocBatchLink(ConsoleLink):
    service = "dataproc_batch"
    name = REGISTRY[service].link_name


class VertexAIPipelineJobLink(ConsoleLink):
    service = "vertex_pipeline"
    name = REGISTRY[service].link_name


class DliFlinkJobLink(ConsoleLink):
    service = "dli_flink"
    name = REGISTRY[service].link_name


def link_for(service: str) -> ConsoleLink | None:
    """The console link of ``service``'s tasks (its ``xcom_key`` is where the URL is stored)."""
    for cls in ConsoleLink.__subclasses__():
        if cls.service == service:
            return cls()
    return None
