"""OpenLineage facets (tasks/lineage.py) and the job's own logs at the end of a failed wait.

The facets are built with the OpenLineage provider's own classes (the ``openlineage`` extra, installed
by the ``test`` extra); without the provider the facets method returns None.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airflow_jobstatus.core.exceptions import JobFailedError
from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.services import dataflow, dataproc
from airflow_jobstatus.services.dataflow import DataflowJobRef
from airflow_jobstatus.services.dataproc import DataprocJobRef
from airflow_jobstatus.tasks.lineage import RUN_FACET_NAME, SCHEMA_URL
from tests.unit.fakes import FakeHook, fake_hook_for, make_sensor, status

LOGS = "gs://staging/google-cloud-dataproc-metainfo/c-1/jobs/job-1/driveroutput"


# -- the job's logs ----------------------------------------------------------------------------------


def test_dataproc_parse_reads_the_driver_output_uri():
    from google.cloud import dataproc_v1

    ref = DataprocJobRef("job-1", "europe-west1")
    job = dataproc_v1.Job(status=dataproc_v1.JobStatus(state="ERROR"), driver_output_resource_uri=LOGS)
    assert dataproc.parse(job, ref).logs_url == LOGS
    pending = dataproc_v1.Job(status=dataproc_v1.JobStatus(state="PENDING"))
    assert dataproc.parse(pending, ref).logs_url is None  # not set yet: no link rather than an empty one


def test_dataflow_parse_links_the_jobs_cloud_logging_query():
    from google.cloud import dataflow_v1beta3

    job = dataflow_v1beta3.Job(id="2026-12-07_01", project_id="p-1", current_state="JOB_STATE_FAILED")
    url = dataflow.parse(job, DataflowJobRef("2026-12-07_01", "europe-west1")).logs_url
    assert url == (
        "https://console.cloud.google.com/logs/query;query=resource.type%3D%22dataflow_step%22%0A"
        "resource.labels.job_id%3D%222026-12-07_01%22?project=p-1"
    )
    # The task's project wins over the answer's (they are the same job's project anyway).
    other = dataflow.parse(job, DataflowJobRef("2026-12-07_01", "europe-west1", project_id="p-2"))
    assert other.logs_url is not None and other.logs_url.endswith("?project=p-2")


def test_logs_url_survives_the_trigger_event():
    reading = status(JobState.FAILED, native="ERROR", message="exit 7", logs_url=LOGS)
    assert JobStatus.from_dict(json.loads(json.dumps(reading.to_dict()))) == reading


def test_failed_wait_names_the_services_error_and_the_logs(inject):
    sensor = make_sensor("dataproc")
    reading = status(JobState.FAILED, native="ERROR", message="Driver exited with code 7", logs_url=LOGS)
    inject(sensor, FakeHook(reading, service="dataproc"))
    with pytest.raises(JobFailedError) as raised:
        sensor.poke({})
    assert str(raised.value) == (
        f"dataproc job job-1 ended in FAILED (native state ERROR): Driver exited with code 7 (job logs: {LOGS})"
    )


def test_failed_wait_without_logs_says_nothing_about_them(inject):
    sensor = make_sensor("cdm")
    inject(sensor, FakeHook(status(JobState.FAILED, service="cdm", message="boom"), service="cdm"))
    with pytest.raises(JobFailedError) as raised:
        sensor.poke({})
    assert "job logs" not in str(raised.value) and str(raised.value).endswith(": boom")


# -- OpenLineage facets --------------------------------------------------------------------------------


def test_sensor_facets_name_the_job_and_its_final_state(inject):
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.facet_v2 import external_query_run
    from openlineage.client.serde import Serde

    sensor = make_sensor("dataproc")
    reading = status(JobState.FAILED, native="ERROR", message="exit 7", logs_url=LOGS)
    inject(sensor, FakeHook(reading, service="dataproc"))
    with pytest.raises(JobFailedError):
        sensor.poke({})
    lineage = sensor.get_openlineage_facets_on_failure(None)
    assert isinstance(lineage, OperatorLineage)
    assert lineage.inputs == [] and lineage.outputs == [] and lineage.job_facets == {}
    facet = lineage.run_facets[RUN_FACET_NAME]
    assert json.loads(Serde.to_json(facet)) == {
        "_producer": facet._producer,
        "_schemaURL": SCHEMA_URL,
        "service": "dataproc",
        "jobId": "job-1",
        "state": "FAILED",
        "nativeState": "ERROR",
        "consoleUrl": "https://console.cloud.google.com/dataproc/jobs/job-1?region=europe-west1",
        "logsUrl": LOGS,
    }
    query = lineage.run_facets["externalQuery"]
    assert isinstance(query, external_query_run.ExternalQueryRunFacet)
    assert (query.externalQueryId, query.source) == ("job-1", "dataproc")


def test_dli_sql_operator_adds_the_sql_job_facet(inject):
    from openlineage.client.facet_v2 import sql_job

    from airflow_jobstatus.operators.dli import DliRunSqlJobOperator

    op = DliRunSqlJobOperator(
        task_id="t", sql="INSERT INTO dw.orders SELECT * FROM raw.orders", queue_name="q", deferrable=False
    )
    assert op.get_openlineage_facets_on_complete(None) is None  # nothing submitted: no job to name
    op.job_id = "dli-job-7"  # what start() sets from DLI's answer
    inject(op, FakeHook(service="dli"))
    op.finish("success", status(JobState.SUCCEEDED, service="dli", job_id="dli-job-7", native="FINISHED"), {})
    lineage = op.get_openlineage_facets_on_complete(None)
    sql = lineage.job_facets["sql"]
    assert isinstance(sql, sql_job.SQLJobFacet)
    assert (sql.query, sql.dialect) == ("INSERT INTO dw.orders SELECT * FROM raw.orders", "spark")
    facet = lineage.run_facets[RUN_FACET_NAME]
    assert (facet.service, facet.jobId, facet.state, facet.nativeState) == (
        "dli",
        "dli-job-7",
        "SUCCEEDED",
        "FINISHED",
    )


def test_without_the_provider_the_facets_method_returns_none(inject, monkeypatch):
    # The provider is installed in the test venv (the test extra): a None entry in sys.modules makes
    # its import raise ImportError, as on an installation without the ``openlineage`` extra.
    for name in [m for m in sys.modules if m.startswith(("airflow.providers.openlineage", "openlineage"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage", None)
    monkeypatch.setitem(sys.modules, "openlineage", None)
    sensor = make_sensor("dataflow")
    inject(sensor, FakeHook(status(JobState.SUCCEEDED, service="dataflow"), service="dataflow"))
    assert sensor.poke({}).is_done  # the wait itself does not need the provider
    assert sensor.get_openlineage_facets_on_complete(None) is None
    assert sensor.get_openlineage_facets_on_failure(None) is None


def test_importing_the_tasks_imports_no_openlineage():
    # DAG parse: importing sensors and operators loads no more of OpenLineage than Airflow itself does
    # (its provider discovery imports the provider's package and provider info, nothing else).
    code = (
        "import sys, airflow\n"
        "before = {m for m in sys.modules if 'openlineage' in m}\n"
        "import airflow_jobstatus.sensors.dataproc, airflow_jobstatus.operators.dli, "
        "airflow_jobstatus.operators.cdm\n"
        "print(sorted({m for m in sys.modules if 'openlineage' in m} - before))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


class _Listener:
    """A task-instance listener, as a listener plugin (OpenLineage's, when it emits) registers one."""

    from airflow.listeners import hookimpl  # the same pluggy marker ("airflow") on 3.1, 3.2 and 3.3

    @hookimpl
    def on_task_instance_success(self, previous_state, task_instance):
        pass


@pytest.fixture
def listener_registered():
    from airflow.listeners.listener import get_listener_manager

    manager, listener = get_listener_manager(), _Listener()
    manager.add_listener(listener)
    yield
    manager.pm.unregister(listener)


def test_while_listeners_are_registered_no_task_ends_in_the_triggerer(listener_registered):
    from airflow_jobstatus.operators.dli import DliRunSqlJobOperator

    sensor = make_sensor("dataproc", deferrable=True)
    op = DliRunSqlJobOperator(task_id="t", sql="SELECT 1", queue_name="q", deferrable=True)
    # Airflow runs no listener for a task the triggerer ends, and its DAG bag refuses a task whose
    # end_from_trigger is true while listeners are registered: both read False, and resume on a worker.
    assert sensor.end_from_trigger is False and op.end_from_trigger is False
    assert sensor.end_from_trigger_states() == [] and op.end_from_trigger_states() == []
    assert sensor.trigger_kwargs(5.0)["end_from_trigger"] == []


def test_without_listeners_tasks_still_end_in_the_triggerer():
    sensor = make_sensor("dataproc", deferrable=True)
    assert sensor.end_from_trigger is True
    assert sensor.end_from_trigger_states() == ["failed", "skipped", "success"]
    assert make_sensor("dataproc", deferrable=True, end_from_trigger=False).end_from_trigger is False


def test_cdm_datasets_from_the_job_definition():
    from airflow_jobstatus.services.cdm import CdmJobRef, datasets

    def side(prefix: str, **inputs: str) -> dict:
        items = [{"name": f"{prefix}.{k}", "value": v} for k, v in inputs.items()]
        return {"configs": [{"name": prefix, "inputs": items}]}

    job = {
        "from-link-name": "mysql",
        "from-config-values": side("fromJobConfig", schemaName="shop", tableName="orders"),
        "to-link-name": "obs",
        "to-config-values": side("toJobConfig", outputDirectory="/lake/orders/"),
    }
    ref = CdmJobRef("c-1", "orders")
    assert datasets({"jobs": [job]}, ref) == {
        "from": [("cdm://c-1/mysql", "shop.orders")],
        "to": [("cdm://c-1/obs", "/lake/orders/")],
    }
    # A side whose config names no table or path (or no link) is left out, never guessed.
    bare = {**job, "to-config-values": side("toJobConfig", writeMode="append"), "from-link-name": None}
    assert datasets({"jobs": [bare]}, ref) == {"from": [], "to": []}
    assert datasets({}, ref) == {"from": [], "to": []}


def test_a_failed_dataset_read_still_reports_the_job(inject):
    from airflow_jobstatus.core.exceptions import TransientServiceError
    from airflow_jobstatus.hooks.cdm import CdmJobHook
    from airflow_jobstatus.operators.cdm import CdmStartJobOperator

    class Unreadable(fake_hook_for(CdmJobHook)):  # type: ignore[misc]
        def get_job(self, ref):
            raise TransientServiceError("503", service="cdm")

    op = CdmStartJobOperator(task_id="t", cluster_id="c-1", job_name="orders", deferrable=False)
    log = inject(op, Unreadable(service="cdm"))
    op.finish("success", status(JobState.SUCCEEDED, service="cdm", job_id="c-1/orders"), {})
    lineage = op.get_openlineage_facets_on_complete(None)
    assert (lineage.inputs, lineage.outputs) == ([], [])
    assert lineage.run_facets[RUN_FACET_NAME].jobId == "c-1/orders"
    assert log.messages("warning") == ["OpenLineage: no datasets for cdm job c-1/orders (cdm: 503)"]
