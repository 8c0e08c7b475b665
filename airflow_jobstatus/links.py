"""Console links (operator extra links) to the job pages in the Google Cloud and Huawei Cloud consoles.

Airflow 3 calls ``get_link`` on the worker when the task finishes, with the operator that ran, so a
link is built from the operator's rendered fields (``console_link_fields()``) and stored as an XCom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

VERTEX_PAGES = {
    "custom_job": "training",
    "batch_prediction_job": "batch-predictions",
    "hyperparameter_tuning_job": "training/hyperparameter-tuning-jobs",
}


class ConsoleLink(BaseOperatorLink):
    """A console URL made from ``operator.console_link_fields()``; empty while a field is unknown."""

    name: ClassVar[str]  # type: ignore[misc]
    base: ClassVar[str] = "https://console.cloud.google.com"
    path: ClassVar[str]
    query: ClassVar[tuple[str, ...]] = ("project",)

    @classmethod
    def url(cls, fields: dict[str, Any]) -> str:
        fields = {k: v for k, v in fields.items() if v not in (None, "")}
        if "job_type" in fields:
            fields["page"] = VERTEX_PAGES.get(str(fields["job_type"]), "training")
        try:
            path = cls.path.format(**fields)
        except KeyError:
            return ""
        query = urlencode({k: fields[k] for k in cls.query if k in fields})
        return f"{cls.base}{path}" + (f"?{query}" if query else "")

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        fields: Any = getattr(operator, "console_link_fields", dict)()
        return self.url(fields) if isinstance(fields, dict) else ""


class DataprocJobLink(ConsoleLink):
    name = "Dataproc Job"
    path = "/dataproc/jobs/{job_id}"
    query = ("region", "project")


class DataflowJobLink(ConsoleLink):
    name = "Dataflow Job"
    path = "/dataflow/jobs/{location}/{job_id}"


class VertexAIJobLink(ConsoleLink):
    name = "Vertex AI Job"
    path = "/vertex-ai/locations/{location}/{page}/{job_id}"


class CdmJobLink(ConsoleLink):
    name = "CDM Job"
    base = "https://console.huaweicloud.com"
    path = "/cdm/?region={region}#/cdm/clusterDetail/{cluster_id}/jobManagement?jobName={job_name}"
    query = ()


class DliJobLink(ConsoleLink):
    name = "DLI Job"
    base = "https://console.huaweicloud.com"
    path = "/dli/?region={region}#/main/jobsManagement/sqlJob?jobId={job_id}"
    query = ()
