"""Start a Huawei Cloud CDM job, wait for it, and surface its counters as XComs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_jobstatus.core.states import JobStatus
from airflow_jobstatus.hooks.cdm import CdmJobHook
from airflow_jobstatus.links import CdmJobLink
from airflow_jobstatus.operators.base import StartJobOperator
from airflow_jobstatus.services import cdm
from airflow_jobstatus.services.base import JobRef
from airflow_jobstatus.services.cdm import NO_SUBMISSION, CdmJobRef

if TYPE_CHECKING:
    from airflow.sdk import Context


def outcome_xcoms(status: JobStatus, seen: dict[str, Any]) -> dict[str, Any]:
    """The XComs of a finished wait besides ``return_value`` (pushed by the worker or the triggerer)."""
    return {"status": status.state.value, "progress": status.progress, "counters": dict(status.counters)}


class CdmStartJobOperator(StartJobOperator):
    """Starts CDM job ``job_name`` on ``cluster_id`` and waits like ``CdmJobStatusSensor``.

    XComs: ``submission_id``, ``status`` (normalized name), ``progress`` (0..1), ``counters``
    (rows/bytes/files read and written, …); ``return_value`` is the final ``JobStatus.to_dict()``.
    """

    service = "cdm"
    template_fields: Sequence[str] = ("cluster_id", "job_name", "variables", "huaweicloud_conn_id")
    template_fields_renderers = {"variables": "json"}
    operator_extra_links = (CdmJobLink(),)
    started_id_key = "submission_id"
    outcome_xcoms_function = "airflow_jobstatus.operators.cdm:outcome_xcoms"

    def __init__(
        self,
        *,
        cluster_id: str,
        job_name: str,
        variables: dict[str, Any] | None = None,
        huaweicloud_conn_id: str = "huaweicloud_default",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.cluster_id, self.job_name = cluster_id, job_name
        self.variables = variables
        self.huaweicloud_conn_id = huaweicloud_conn_id
        self.submission_id: str | None = None
        self.check_ref_now()

    def start(self, context: Context) -> Any:
        ref = self.job_ref()
        assert isinstance(ref, CdmJobRef) and isinstance(self.hook, CdmJobHook)
        self.submission_id = self.hook.start_job(ref, variables=self.variables)
        return self.submission_id

    def ref_before_start(self) -> JobRef:
        """CDM jobs are named before they start: a record-less retry can find a running one."""
        return self.job_ref()

    def lineage_datasets(self) -> dict[str, list[tuple[str, str]]]:
        """OpenLineage: what the job definition's from/to links read and write (one read, at the end)."""
        ref = self.job_ref()
        assert isinstance(ref, CdmJobRef) and isinstance(self.hook, CdmJobHook)
        return cdm.datasets(self.hook.get_job(ref), ref)

    def recorded_job_gone(self, status: JobStatus) -> bool:
        """A job whose submissions are all gone reports no submission: the recorded one no longer exists."""
        return status.native_state == NO_SUBMISSION
