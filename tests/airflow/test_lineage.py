"""OpenLineage facets in a real DAG run (dag.test() against the simulator), read the way the
OpenLineage listener reads them, and the job's logs link in the log of a failed wait.

``Probe`` is a task-instance listener registered with the task runner's listener manager: when a task
ends, it calls the OpenLineage provider's ``ExtractorManager.extract_metadata`` with the dag run, the
task and the task instance, as the provider's own listener does before it emits an event (the
emission itself, a forked process per event, is the provider's business and is left out).
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow.listeners import hookimpl  # the same pluggy marker ("airflow") on 3.1, 3.2 and 3.3
from airflow.utils.state import TaskInstanceState

from airflow_jobstatus.tasks.lineage import RUN_FACET_NAME, SCHEMA_URL
from tests.airflow_versions import get_listener_manager
from tests.dag_harness import run_operator

DLI = ("airflow_jobstatus.operators.dli", "DliRunSqlJobOperator")
DATAPROC = ("airflow_jobstatus.sensors.dataproc", "DataprocJobStatusSensor")
FAST = {"poll_interval": 0.2, "max_backoff": 0.2}
SQL = "INSERT INTO dw.orders SELECT * FROM raw.orders WHERE ds = '{{ ds }}'"


class Probe:
    """What the OpenLineage listener would put in each ended task's event, by task id."""

    def __init__(self) -> None:
        self.lineage: dict[str, Any] = {}

    def _extract(self, task_instance: Any, state: TaskInstanceState) -> None:
        from airflow.providers.openlineage.extractors.manager import ExtractorManager
        from airflow.providers.openlineage.utils.utils import get_dag_run_dag_and_task_from_ti

        dagrun, _dag, task = get_dag_run_dag_and_task_from_ti(task_instance)
        self.lineage[task_instance.task_id] = ExtractorManager().extract_metadata(
            dagrun=dagrun, task=task, task_instance_state=state, task_instance=task_instance
        )

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self._extract(task_instance, TaskInstanceState.SUCCESS)

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        self._extract(task_instance, TaskInstanceState.FAILED)


@pytest.fixture
def probe():
    """The probe, registered as a listener plugin would be: with the task runner's listener manager
    (which calls it) and Airflow core's (which the DAG bag asks: tasks then never end in the triggerer)."""
    from airflow.listeners.listener import get_listener_manager as core_manager

    # One manager on Airflow 3.1 (the task SDK re-exports core's), two on 3.2+: each registered once.
    managers = list({id(m): m for m in (get_listener_manager(), core_manager())}.values())
    listener = Probe()
    for manager in managers:
        manager.add_listener(listener)
    yield listener
    for manager in managers:
        manager.pm.unregister(listener)


@pytest.mark.parametrize("deferrable", [False, True])
def test_dli_sql_run_reports_its_job_and_sql(sim, probe, deferrable):
    sim.set_default_timeline("dli", [{"state": "RUNNING", "duration": 0.3}, {"state": "FINISHED"}])
    kwargs = {"sql": SQL, "queue_name": "default", "deferrable": deferrable, **FAST}
    result = run_operator(*DLI, kwargs, name="dli_lineage")
    assert result.state == "success"
    lineage = probe.lineage["wait"]
    facet = lineage.run_facets[RUN_FACET_NAME]
    job_id = result.xcoms["job_id"]
    assert (facet.service, facet.jobId, facet.state, facet.nativeState) == (
        "dli",
        job_id,
        "SUCCEEDED",
        "FINISHED",
    )
    if not deferrable:  # dag.test() resumes a deferred task without its deferral's kwargs (the job ref)
        assert facet.consoleUrl.endswith(f"/main/jobsManagement/sqlJob?jobId={job_id}")
    assert facet._schemaURL == SCHEMA_URL
    assert lineage.run_facets["externalQuery"].externalQueryId == job_id
    sql = lineage.job_facets["sql"]
    (submit,) = [r for r in sim.requests("dli", job_id) if r["method"] == "CreateSqlJob"]
    assert (sql.query, sql.dialect) == (submit["detail"]["body"]["sql"], "spark")  # as submitted
    assert sql.query.startswith("INSERT INTO dw.orders") and "{{" not in sql.query  # rendered


def test_failed_dataproc_wait_reports_the_job_and_logs_its_driver_output(sim, probe, capfd):
    sim.add_job("dataproc", "dp-9", [{"state": "ERROR", "details": "Driver exited with code 7"}])
    kwargs = {"job_id": "dp-9", "region": "europe-west1", "poke_interval": 0.2, "deferrable": False}
    result = run_operator(*DATAPROC, kwargs, name="dataproc_lineage")
    assert result.state == "failed"
    logs = "gs://sim-dataproc-staging/google-cloud-dataproc-metainfo/sim-cluster/jobs/dp-9/driveroutput"
    out = capfd.readouterr().out
    assert f"Driver exited with code 7 (job logs: {logs})" in out  # the service's error and its logs
    facet = probe.lineage["wait"].run_facets[RUN_FACET_NAME]
    assert (facet.jobId, facet.state, facet.nativeState, facet.logsUrl) == ("dp-9", "FAILED", "ERROR", logs)


def test_cdm_run_reports_the_tables_its_links_read_and_write(sim, probe):
    sim.core.define_cdm_job("orders")
    sim.set_default_timeline("cdm", [{"state": "RUNNING", "duration": 0.3}, {"state": "SUCCEEDED"}])
    kwargs = {"cluster_id": "sim-cluster", "job_name": "orders", "deferrable": False, **FAST}
    result = run_operator(
        "airflow_jobstatus.operators.cdm", "CdmStartJobOperator", kwargs, name="cdm_lineage"
    )
    assert result.state == "success"
    lineage = probe.lineage["wait"]
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("cdm://sim-cluster/sim-mysql-link", "sim_src.orders")
    ]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        ("cdm://sim-cluster/sim-dws-link", "sim_dw.orders")
    ]
    facet = lineage.run_facets[RUN_FACET_NAME]
    assert (facet.service, facet.jobId, facet.nativeState) == ("cdm", "sim-cluster/orders", "SUCCEEDED")
