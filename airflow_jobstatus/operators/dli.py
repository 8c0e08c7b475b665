"""Submit a Huawei Cloud DLI SQL job, wait for it, and surface subjob progress as XComs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_jobstatus.core.exceptions import ConfigurationError
from airflow_jobstatus.core.states import JobStatus
from airflow_jobstatus.hooks.dli import DliJobHook
from airflow_jobstatus.links import DliJobLink
from airflow_jobstatus.operators.base import StartJobOperator
from airflow_jobstatus.services.dli import JOB_TYPES, DliJobRef, submit_tags

if TYPE_CHECKING:
    from airflow.sdk import Context

SQL = JOB_TYPES[0]


def outcome_xcoms(status: JobStatus, seen: dict[str, Any]) -> dict[str, Any]:
    """The XComs of a finished wait besides ``return_value`` (pushed by the worker or the triggerer)."""
    return {
        "status": status.state.value,
        "progress": status.progress,
        "sub_jobs": [dict(s) for s in status.sub_jobs] or seen["last_sub_jobs"],
        "progress_history": seen["progress_history"],
    }


class DliRunSqlJobOperator(StartJobOperator):
    """Submits ``sql`` (a string or a ``.sql`` file) to DLI queue ``queue_name`` and waits for it.

    XComs: ``job_id``, ``status``, ``progress`` (0..1), ``sub_jobs`` (the last non-empty subjob
    list, kept after the API stops listing them), ``progress_history`` (one entry per change,
    bounded); ``return_value`` is the final ``JobStatus.to_dict()``.
    """

    service = "dli"
    template_fields: Sequence[str] = ("sql", "queue_name", "database_name", "conf", "huaweicloud_conn_id")
    template_ext = (".sql",)
    template_fields_renderers = {"sql": "sql", "conf": "json"}
    operator_extra_links = (DliJobLink(),)
    started_id_key = "job_id"
    outcome_xcoms_function = "airflow_jobstatus.operators.dli:outcome_xcoms"
    lineage_sql_field = "sql"  # OpenLineage: the submitted SQL as the job's ``sql`` facet

    def __init__(
        self,
        *,
        sql: str,
        queue_name: str,
        database_name: str | None = None,
        conf: list[str] | dict[str, Any] | None = None,
        huaweicloud_conn_id: str = "huaweicloud_default",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not sql or not str(sql).strip():
            raise ConfigurationError("sql must be a non-empty SQL statement or a path to a .sql file.")
        if not queue_name or not str(queue_name).strip():
            raise ConfigurationError("queue_name must name the DLI queue to run the SQL on.")
        self.sql = sql
        self.queue_name = queue_name
        self.database_name = database_name
        self.conf = conf
        self.huaweicloud_conn_id = huaweicloud_conn_id
        self.job_id: str | None = None
        self.job_type = SQL

    def job_ref(self) -> DliJobRef:
        if not self.job_id:
            raise ConfigurationError("The DLI job has not been submitted yet.")
        return DliJobRef(job_id=self.job_id, job_type=SQL)

    def start(self, context: Context) -> Any:
        """Submit the SQL, tagged with the task instance (``services.dli.submit_tags``): a retry that
        finds no record of it (its worker was lost before the answer) finds the job by that tag."""
        assert isinstance(self.hook, DliJobHook)
        identity = self.task_identity(context)
        tags = None if identity is None else submit_tags(identity, self._generation(context))
        self.job_id = self.hook.submit_sql(
            self.sql, self.queue_name, database_name=self.database_name, conf=self.conf, tags=tags
        )
        return self.job_id
