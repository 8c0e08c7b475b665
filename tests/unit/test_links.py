"""Console links: each service's URL, the scope the hook gives (Google project, Huawei region), get_link."""

from __future__ import annotations

import json

import pytest

from airflow_jobstatus.core.exceptions import ConfigurationError
from airflow_jobstatus.hooks.base import make_hook
from airflow_jobstatus.links import (
    CdmJobLink,
    ConsoleLink,
    DataflowJobLink,
    DataprocBatchLink,
    DataprocJobLink,
    DliFlinkJobLink,
    DliJobLink,
    VertexAIJobLink,
    VertexAIPipelineJobLink,
)
from airflow_jobstatus.operators.cdm import CdmStartJobOperator
from airflow_jobstatus.operators.dli import DliRunSqlJobOperator
from airflow_jobstatus.services import REGISTRY, SERVICES
from tests.unit.fakes import FakeHook, make_sensor

GOOGLE = "https://console.cloud.google.com"
HUAWEI = "https://console.huaweicloud.com"
LINKS = {
    "dataproc": DataprocJobLink,
    "dataflow": DataflowJobLink,
    "vertex_ai": VertexAIJobLink,
    "cdm": CdmJobLink,
    "dli": DliJobLink,
    "dli_flink": DliFlinkJobLink,
    "dataproc_batch": DataprocBatchLink,
    "vertex_pipeline": VertexAIPipelineJobLink,
}
#: service → (scope the hook gives, the URL of make_sensor's job-1 with that scope)
EXPECTED = {
    "dataproc": ("proj-c", f"{GOOGLE}/dataproc/jobs/job-1?region=europe-west1&project=proj-c"),
    "dataflow": ("proj-c", f"{GOOGLE}/dataflow/jobs/europe-west1/job-1?project=proj-c"),
    "vertex_ai": (
        "proj-c",
        f"{GOOGLE}/vertex-ai/locations/europe-west1/batch-predictions/job-1?project=proj-c",
    ),
    "cdm": (
        "cn-north-4",
        f"{HUAWEI}/cdm/?region=cn-north-4#/cdm/clusterDetail/c-1/jobManagement?jobName=job-1",
    ),
    "dli": ("cn-north-4", f"{HUAWEI}/dli/?region=cn-north-4#/main/jobsManagement/sqlJob?jobId=job-1"),
    "dli_flink": (
        "cn-north-4",
        f"{HUAWEI}/dli/?region=cn-north-4#/main/jobsManagement/flinkJob/detail?jobId=1",
    ),
    "dataproc_batch": ("proj-c", f"{GOOGLE}/dataproc/batches/europe-west1/job-1?project=proj-c"),
    "vertex_pipeline": (
        "proj-c",
        f"{GOOGLE}/vertex-ai/locations/europe-west1/pipelines/runs/job-1?project=proj-c",
    ),
}


def test_one_link_class_per_service_named_in_the_registry():
    assert set(LINKS) == set(SERVICES)
    for service, cls in LINKS.items():
        assert cls.name == REGISTRY[service].link_name
        assert REGISTRY[service].link == f"{cls.__module__}.{cls.__qualname__}"
        assert issubclass(cls, ConsoleLink)


@pytest.mark.parametrize("service", SERVICES)
def test_get_link_builds_the_console_url_with_the_hooks_scope(service, inject):
    scope, url = EXPECTED[service]
    sensor = make_sensor(service)
    hook = FakeHook(service=service, scope=scope)
    inject(sensor, hook)
    assert LINKS[service]().get_link(sensor, ti_key=None) == url
    assert hook.names() == ["console_scope"]


@pytest.mark.parametrize(
    "service", ["dataproc", "dataflow", "vertex_ai", "dataproc_batch", "vertex_pipeline"]
)
def test_the_tasks_project_wins_over_the_connections(service, inject):
    sensor = make_sensor(service, project_id="proj-task")
    inject(sensor, FakeHook(service=service, scope="proj-c"))
    url = LINKS[service]().get_link(sensor, ti_key=None)
    assert "project=proj-task" in url and "proj-c" not in url


@pytest.mark.parametrize(
    "service", ["dataproc", "dataflow", "vertex_ai", "dataproc_batch", "vertex_pipeline"]
)
def test_google_link_without_any_project_has_no_project_parameter(service, inject):
    sensor = make_sensor(service)
    inject(sensor, FakeHook(service=service, scope=None))
    url = LINKS[service]().get_link(sensor, ti_key=None)
    assert url.startswith(GOOGLE) and "project=" not in url


@pytest.mark.parametrize("service", ["cdm", "dli"])
def test_huawei_link_without_a_region_is_empty(service, inject):
    sensor = make_sensor(service)
    inject(sensor, FakeHook(service=service, scope=None))
    assert LINKS[service]().get_link(sensor, ti_key=None) == ""


def test_a_failing_scope_lookup_never_fails_the_link(inject, monkeypatch):
    sensor = make_sensor("dataproc")
    hook = FakeHook()
    log = inject(sensor, hook)

    def undefined() -> str:
        raise ConfigurationError("Connection 'google_cloud_default' is not defined")

    monkeypatch.setattr(hook, "console_scope", undefined)
    assert (
        DataprocJobLink().get_link(sensor, ti_key=None) == f"{GOOGLE}/dataproc/jobs/job-1?region=europe-west1"
    )
    assert any("No console link" in m for m in log.messages("warning"))


def test_an_unrendered_or_unknown_job_has_no_link(inject):
    sensor = make_sensor("dataproc")
    inject(sensor, FakeHook(scope="p"))
    sensor.job_id = ""  # e.g. rendered empty
    assert DataprocJobLink().get_link(sensor, ti_key=None) == ""
    assert ConsoleLink.get_link(DataprocJobLink(), object(), ti_key=None) == ""  # not one of ours


def test_operator_links(inject):
    cdm = CdmStartJobOperator(task_id="m", cluster_id="c-1", job_name="orders")
    inject(cdm, FakeHook(service="cdm", scope="cn-north-4"))
    assert "clusterDetail/c-1/jobManagement?jobName=orders" in CdmJobLink().get_link(cdm, ti_key=None)
    dli = DliRunSqlJobOperator(task_id="q", sql="SELECT 1", queue_name="q")
    inject(dli, FakeHook(service="dli", scope="cn-north-4"))
    assert DliJobLink().get_link(dli, ti_key=None) == ""  # not submitted yet
    dli.job_id = "dli-job-7"  # submitted (or restored after deferral)
    assert DliJobLink().get_link(dli, ti_key=None).endswith("sqlJob?jobId=dli-job-7")


# -- the real hooks' scope, from the connection (no network) ----------------------------------------


def test_google_scope_is_the_connections_project(monkeypatch):
    conn = {"conn_type": "google_cloud_platform", "extra": {"project": "proj-from-conn"}}
    monkeypatch.setenv("AIRFLOW_CONN_UNIT_LINK_GCP", json.dumps(conn))
    sensor = make_sensor("dataproc", gcp_conn_id="unit_link_gcp")
    assert sensor.hook.console_scope() == "proj-from-conn"
    assert "project=proj-from-conn" in DataprocJobLink().get_link(sensor, ti_key=None)


def test_huawei_scope_is_the_connections_region(monkeypatch):
    conn = {
        "conn_type": "huaweicloud",
        "login": "AK",
        "password": "SK",
        "extra": {"region": "ap-southeast-3", "project_id": "0123456789abcdef"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_UNIT_LINK_HW", json.dumps(conn))
    assert make_hook("dli", "unit_link_hw").console_scope() == "ap-southeast-3"
    sensor = make_sensor("cdm", huaweicloud_conn_id="unit_link_hw")
    assert "?region=ap-southeast-3#" in CdmJobLink().get_link(sensor, ti_key=None)
