"""OpenLineage facets of a finished wait: which external job it was, and what it ran.

Used only when ``apache-airflow-providers-openlineage`` is installed (extra ``openlineage``) and
enabled: its listener asks the task, once the task has ended, for
``get_openlineage_facets_on_complete(task_instance)`` (or ``..._on_failure``). The provider and the
OpenLineage client are imported inside those methods, never when a DAG file imports a sensor; without
them the methods return None.

What a task reports:

- a run facet ``jobStatus`` (:func:`run_facet_class`, schema ``JobStatusRunFacet``): the service, the
  job id, the normalized and native state of the last reading, the console URL and, where the
  service names one, the job's own logs; and the standard ``externalQuery`` run facet (job id, service);
- a job facet ``sql`` (``SQLJobFacet``) for a task whose ``lineage_sql_field`` names its SQL (DLI SQL);
- input and output datasets where ``lineage_datasets`` names them (CDM: the job definition's links).

While listener plugins are registered (OpenLineage's, when it emits), no task ends in the triggerer
(``end_from_trigger`` reads False): Airflow runs no listener there, so the task would send no event,
and its DAG bag refuses a task with ``end_from_trigger`` true while listeners are registered.

Nothing here reads a connection's secret: the facets hold ids, states and URLs only.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_jobstatus import __version__

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_jobstatus.core.states import JobStatus
    from airflow_jobstatus.wait.rules import Verdict

#: The run facet's name in an OpenLineage event's ``run.facets``.
RUN_FACET_NAME = "jobStatus"
#: The run facet's schema, named by this package and its version (the JSON schema itself is
#: docs/openlineage/JobStatusRunFacet.json in the source tree).
SCHEMA_URL = f"https://pypi.org/project/airflow-jobstatus/{__version__}/#/$defs/JobStatusRunFacet"
#: The SQL dialect of each service whose tasks run SQL (the ``SQLJobFacet``'s ``dialect``).
SQL_DIALECTS = {"dli": "spark"}


def listeners_registered() -> bool:
    """True when listener plugins (OpenLineage's, when it is configured to emit) are registered."""
    try:
        from airflow.listeners.listener import get_listener_manager as core_manager
    except ImportError:  # a worker with the task SDK only
        from airflow.sdk.listener import get_listener_manager as sdk_manager

        return bool(sdk_manager().has_listeners)
    return bool(core_manager().has_listeners)


@cache
def run_facet_class() -> type[Any]:
    """The ``JobStatusRunFacet`` class: a ``RunFacet`` of the OpenLineage client, built on first use."""
    import attr
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class JobStatusRunFacet(RunFacet):  # type: ignore[misc]
        """The external job a task waited on, as it last read it."""

        service: str
        jobId: str  # OpenLineage facets are camelCase
        state: str | None = attr.field(default=None)
        nativeState: str | None = attr.field(default=None)
        consoleUrl: str | None = attr.field(default=None)
        logsUrl: str | None = attr.field(default=None)

        @staticmethod
        def _get_schema() -> str:
            return SCHEMA_URL

    return JobStatusRunFacet


class JobLineageMixin:
    """``get_openlineage_facets_on_complete`` / ``_on_failure`` for the sensor and operator bases.

    It keeps the status a wait ended with (``finish``) for the listener, which asks after the end.
    """

    service: ClassVar[str]
    log: Any
    #: The attribute holding the SQL the task submitted (None: the task runs no SQL).
    lineage_sql_field: ClassVar[str | None] = None
    #: The status the wait ended with (set by ``finish``; None before, or after a timeout).
    final_status: JobStatus | None = None

    def finish(self, verdict: Verdict, status: JobStatus, context: Context) -> dict[str, Any]:
        self.final_status = status
        result: dict[str, Any] = super().finish(verdict, status, context)  # type: ignore[misc]
        return result

    @property
    def end_from_trigger(self) -> bool:
        """``end_from_trigger`` as asked, but False while listener plugins are registered.

        Airflow runs no listener for a task the triggerer ends (the task would send OpenLineage no
        event), and its DAG bag refuses a DAG with a task whose ``end_from_trigger`` is true while
        listeners are registered: the task then resumes on a worker, as with ``end_from_trigger=False``.
        """
        return bool(self.__dict__.get("_end_from_trigger_asked")) and not listeners_registered()

    @end_from_trigger.setter
    def end_from_trigger(self, value: bool) -> None:
        self.__dict__["_end_from_trigger_asked"] = bool(value)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The task's ``OperatorLineage`` (None when the OpenLineage provider is not installed)."""
        try:
            from airflow.providers.openlineage.extractors import OperatorLineage
        except ImportError:
            return None
        status = self.final_status
        try:
            job_id = self.job_ref().display_id  # type: ignore[attr-defined]
            console = self.console_url() or None  # type: ignore[attr-defined]
        except Exception:  # the task's fields no longer name the job (see below), or no job yet
            # dag.test() resumes a deferred task with the trigger's event only, without the deferral's
            # kwargs (Airflow itself passes both): the status the wait ended with still names the job.
            if status is None:
                return None  # no job: the start failed before the service named one
            job_id, console = status.job_id, None
        inputs, outputs = self._lineage_datasets(job_id)
        return OperatorLineage(
            inputs=inputs,
            outputs=outputs,
            run_facets=self.lineage_run_facets(job_id, console),
            job_facets=self.lineage_job_facets(),
        )

    def lineage_datasets(self) -> dict[str, list[tuple[str, str]]]:
        """What the job read (``from``) and wrote (``to``), as ``(namespace, name)`` pairs (CDM's links)."""
        return {}

    def _lineage_datasets(self, job_id: str) -> tuple[list[Any], list[Any]]:
        from openlineage.client.event_v2 import Dataset

        try:
            found = self.lineage_datasets()
        except Exception as err:  # lineage never fails a task: the job's own facets are still sent
            self.log.warning("OpenLineage: no datasets for %s job %s (%s)", self.service, job_id, err)
            return [], []
        return (
            [Dataset(namespace=ns, name=name) for ns, name in found.get("from", [])],
            [Dataset(namespace=ns, name=name) for ns, name in found.get("to", [])],
        )

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """The same facets for a failed job: which job failed, where its logs are."""
        return self.get_openlineage_facets_on_complete(task_instance)

    def lineage_run_facets(self, job_id: str, console_url: str | None) -> dict[str, Any]:
        from openlineage.client.facet_v2 import external_query_run

        status = self.final_status
        facet = run_facet_class()(
            service=self.service,
            jobId=job_id,
            state=status.state.value if status else None,
            nativeState=status.native_state if status else None,
            consoleUrl=console_url,
            logsUrl=status.logs_url if status else None,
        )
        query = external_query_run.ExternalQueryRunFacet(externalQueryId=job_id, source=self.service)
        return {RUN_FACET_NAME: facet, "externalQuery": query}

    def lineage_job_facets(self) -> dict[str, Any]:
        sql = getattr(self, self.lineage_sql_field, None) if self.lineage_sql_field else None
        if not isinstance(sql, str) or not sql.strip():
            return {}
        from openlineage.client.facet_v2 import sql_job

        return {"sql": sql_job.SQLJobFacet(query=sql, dialect=SQL_DIALECTS.get(self.service))}


__all__ = ["RUN_FACET_NAME", "SCHEMA_URL", "JobLineageMixin", "listeners_registered", "run_facet_class"]
