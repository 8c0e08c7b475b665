"""The job's own logs over the wire: Dataproc's ``driver_output_resource_uri`` and Dataflow's logs query,
read by the real SDK clients from the simulator, and named in the failure of a wait."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_jobstatus.core.exceptions import JobFailedError
from airflow_jobstatus.core.states import JobState
from airflow_jobstatus.hooks import gcp
from airflow_jobstatus.hooks.dataflow import DataflowJobHook
from airflow_jobstatus.hooks.dataproc import DataprocJobHook
from airflow_jobstatus.services.dataflow import DataflowJobRef
from airflow_jobstatus.services.dataproc import DataprocJobRef, parse

REGION = "europe-west1"


@pytest.fixture(autouse=True)
def _fresh_connection_cache() -> Any:
    gcp.CONNECTIONS.clear()
    yield
    gcp.CONNECTIONS.clear()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_dataproc_failure_names_the_driver_output(sim, mode: str) -> None:
    sim.add_job("dataproc", "job-7", [{"state": "ERROR", "details": "Driver exited with code 7"}])
    hook, ref = DataprocJobHook(), DataprocJobRef("job-7", REGION)
    status = hook.get_status(ref) if mode == "sync" else await hook.aget_status(ref)
    logs = "gs://sim-dataproc-staging/google-cloud-dataproc-metainfo/sim-cluster/jobs/job-7/driveroutput"
    assert (status.state, status.logs_url) == (JobState.FAILED, logs)
    assert str(JobFailedError(status)).endswith(f": Driver exited with code 7 (job logs: {logs})")


def test_dataproc_listed_jobs_carry_the_driver_output_too(sim) -> None:
    # Coalesced waits read the job from ListJobs: the same parse, the same link.
    sim.add_job("dataproc", "job-8", [{"state": "RUNNING"}])
    hook, ref = DataprocJobHook(), DataprocJobRef("job-8", REGION)
    (status,) = [parse(job, ref) for job in asyncio.run(hook.alist_active(ref))]
    assert status.logs_url is not None and status.logs_url.endswith("/jobs/job-8/driveroutput")


def test_dataflow_status_links_the_jobs_logs(sim) -> None:
    sim.add_job("dataflow", "df-1", [{"state": "JOB_STATE_FAILED"}])
    status = DataflowJobHook().get_status(DataflowJobRef("df-1", REGION))
    assert status.logs_url is not None
    assert "resource.labels.job_id%3D%22df-1%22" in status.logs_url
    assert status.logs_url.endswith(f"?project={sim.core.project_id}")


def test_cdm_job_definition_names_its_tables(sim) -> None:
    from airflow_jobstatus.hooks.cdm import CdmJobHook
    from airflow_jobstatus.services.cdm import CdmJobRef, datasets

    sim.core.define_cdm_job("orders")
    ref = CdmJobRef("sim-cluster", "orders")
    definition = CdmJobHook().get_job(ref)
    assert definition["jobs"][0]["name"] == "orders"
    assert datasets(definition, ref) == {
        "from": [("cdm://sim-cluster/sim-mysql-link", "sim_src.orders")],
        "to": [("cdm://sim-cluster/sim-dws-link", "sim_dw.orders")],
    }
    assert [r["method"] for r in sim.requests("cdm", "sim-cluster/orders")] == ["ShowJob"]
