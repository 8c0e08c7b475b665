"""Start a Huawei Cloud CDM job, wait for it, and surface its counters as XComs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_jobstatus.hooks.base import check_identifier, require_job_id
from airflow_jobstatus.links import CdmJobLink
from airflow_jobstatus.operators.base import StartJobOperator
from airflow_jobstatus.states import JobStatus

if TYPE_CHECKING:
    from airflow.sdk import Context


class CdmStartJobOperator(StartJobOperator):
    """Starts CDM job ``job_name`` on ``cluster_id`` and waits like ``CdmJobStatusSensor``.

    XComs: ``submission_id``, ``status`` (normalized name), ``progress`` (0..1), ``counters``
    (rows/bytes/files read and written, …); ``return_value`` is the final ``JobStatus.to_dict()``.
    """

    service = "cdm"
    template_fields = ("cluster_id", "job_name", "variables", "huaweicloud_conn_id")
    template_fields_renderers = {"variables": "json"}
    operator_extra_links = (CdmJobLink(),)

    def __init__(
        self,
        *,
        cluster_id: str,
        job_name: str,
        variables: dict[str, Any] | None = None,
        huaweicloud_conn_id: str = "huaweicloud_default",
        **kwargs: Any,
    ):
        super().__init__(conn_id=huaweicloud_conn_id, **kwargs)
        self.cluster_id = check_identifier(cluster_id, "cluster_id")
        self.job_name = check_identifier(job_name, "job_name")
        self.variables = variables
        self.huaweicloud_conn_id = huaweicloud_conn_id
        self.submission_id: str | None = None

    def job_ref(self) -> dict[str, Any]:
        return {
            "cluster_id": require_job_id(self.cluster_id, "cluster_id"),
            "job_name": require_job_id(self.job_name, "job_name"),
        }

    def start(self, context: Context) -> Any:
        ref = self.job_ref()
        self.submission_id = self.hook.start_job(variables=self.variables, **ref)  # type: ignore[attr-defined]
        self.log.info(
            "Started CDM job %s on cluster %s: submission %s",
            ref["job_name"],
            ref["cluster_id"],
            self.submission_id,
        )
        context["ti"].xcom_push(key="submission_id", value=self.submission_id)
        return self.submission_id

    def restore(self, job_ref: dict[str, Any]) -> None:
        self.cluster_id, self.job_name = job_ref["cluster_id"], job_ref["job_name"]

    def push_outcome(self, context: Context, status: JobStatus, seen: dict[str, Any]) -> None:
        ti = context["ti"]
        ti.xcom_push(key="status", value=status.state.value)
        ti.xcom_push(key="progress", value=status.progress)
        ti.xcom_push(key="counters", value=dict(status.counters))

    def console_link_fields(self) -> dict[str, Any]:
        return {
            "region": getattr(self.hook, "region", None),
            "cluster_id": self.cluster_id,
            "job_name": self.job_name,
        }
