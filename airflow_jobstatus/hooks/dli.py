"""Huawei Cloud DLI: SQL job progress and Spark batch state as a JobStatus; submitting and cancelling.

Every fact about DLI (paths, bodies, states, subjobs) is in ``airflow_jobstatus.services.dli``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from airflow_jobstatus.hooks.huaweicloud import HuaweiCloudHook, HuaweiService
from airflow_jobstatus.services import dli
from airflow_jobstatus.services.dli import DliJobRef


class DliJobHook(HuaweiCloudHook[DliJobRef]):
    """DLI job status (SQL: one progress call; Spark: the batch state), SQL submission and cancel
    (BadRequestError when DLI refuses: the job has ended)."""

    service = dli.NAME
    api: ClassVar[HuaweiService] = dli

    async def alist_active(self, ref: DliJobRef) -> list[Any]:
        """Every page of the SQL job list for each non-terminal status (coalesced polling)."""
        return await self.apages(dli.list_active_call("", ref), dli.list_page)

    def submit_sql(
        self,
        sql: str,
        queue_name: str,
        database_name: str | None = None,
        conf: Mapping[str, Any] | list[str] | None = None,
        tags: list[dict[str, str]] | None = None,
    ) -> str:
        """Submit a SQL statement to a queue; the DLI job id. ``conf``: a dict or ["key=value", …];
        ``tags``: ``[{"key": …, "value": …}]`` (``dli.submit_tags`` gives the operator's)."""
        op = dli.submit_sql_op(sql, queue_name, database_name, conf, tags)
        job_id = dli.parse_submitted_id(self.send(op))
        self.log.info("DLI: submitted SQL job %s to queue %s.", job_id, queue_name)
        return job_id

    def find_started(self, identity: Mapping[str, Any]) -> dict[str, Any] | None:
        """The newest SQL job tagged with this task instance's identity (``dli.TASK_TAG_KEY``), as a
        job record; None when DLI lists none."""
        return dli.parse_found(self.send(dli.find_started_op(identity)), identity)
