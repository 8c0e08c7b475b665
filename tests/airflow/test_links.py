"""Console links through a real task run: the link XCom Airflow stores when the task finishes."""

from __future__ import annotations

import json

import pytest

from airflow_jobstatus.simulator import Simulator
from tests.dag_harness import run_operator

FAST = {"poke_interval": 0.2, "timeout": 30, "deferrable": False}
REGION = "europe-west1"


def test_cdm_link_carries_the_connections_region(sim: Simulator) -> None:
    sim.add_job("cdm", "orders", [{"state": "SUCCEEDED", "progress": 100}])
    kwargs = {"cluster_id": "sim-cluster", "job_name": "orders", **FAST}
    result = run_operator("airflow_jobstatus.sensors.cdm", "CdmJobStatusSensor", kwargs, name="link_cdm")
    assert result.state == "success"
    link = result.xcoms["_link_CdmJobLink"]
    assert link.startswith("https://console.huaweicloud.com/cdm/?region=")
    assert f"region={sim.huawei_region}" in link and "sim-cluster" in link and "orders" in link


def test_dli_link_carries_the_connections_region(sim: Simulator) -> None:
    sim.add_job("dli", "q-link", [{"state": "FINISHED"}])
    kwargs = {"job_id": "q-link", **FAST}
    result = run_operator("airflow_jobstatus.sensors.dli", "DliJobStatusSensor", kwargs, name="link_dli")
    assert result.xcoms["_link_DliJobLink"].endswith(
        f"region={sim.huawei_region}#/main/jobsManagement/sqlJob?jobId=q-link"
    )


@pytest.mark.parametrize("project_id", [None, "other-project"])
def test_google_link_has_the_project_from_the_connection_or_the_task(sim: Simulator, project_id) -> None:
    sim.add_job(
        "dataproc", "dp-link", [{"state": "DONE"}], region=REGION, project_id=project_id or "sim-project"
    )
    kwargs = {"job_id": "dp-link", "region": REGION, "project_id": project_id, **FAST}
    result = run_operator(
        "airflow_jobstatus.sensors.dataproc", "DataprocJobStatusSensor", kwargs, name="link_dp"
    )
    assert result.state == "success"
    link = result.xcoms["_link_DataprocJobLink"]
    assert link.startswith("https://console.cloud.google.com/dataproc/jobs/dp-link?")
    assert (
        f"project={project_id or json.loads(sim.env()['AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT'])['extra']['project']}"
        in link
    )


def test_templated_connection_id_is_the_one_used(sim: Simulator, monkeypatch) -> None:
    """``huaweicloud_conn_id`` is templated: the rendered id reaches the hook (it kept the raw template)."""
    monkeypatch.setenv("AIRFLOW_CONN_SIM_HUAWEI", sim.env()["AIRFLOW_CONN_HUAWEICLOUD_DEFAULT"])
    monkeypatch.delenv("AIRFLOW_CONN_HUAWEICLOUD_DEFAULT")
    sim.add_job("dli", "q-conn", [{"state": "FINISHED"}])
    kwargs = {"job_id": "q-conn", "huaweicloud_conn_id": "{{ 'sim_' + 'huawei' }}", **FAST}
    result = run_operator("airflow_jobstatus.sensors.dli", "DliJobStatusSensor", kwargs, name="conn_tpl")
    assert result.state == "success"
    assert result.return_value["state"] == "SUCCEEDED"
