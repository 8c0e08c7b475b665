"""DLI task-identity tags over the wire: the project's signed REST hook and the official SDK against the
simulator (submit with tags, list by tag), and the simulator's ``hold_answer`` fault (a submit that
creates its job, then answers late: the client that gave up finds the job by its tag)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkdli.v1 import (
    CreateSqlJobRequest,
    CreateSqlJobRequestBody,
    DliClient,
    ListSqlJobsRequest,
    ShowSqlJobStatusRequest,
    Tag,
)

from airflow_jobstatus.core.exceptions import TransientServiceError
from airflow_jobstatus.hooks.dli import DliJobHook
from airflow_jobstatus.hooks.huawei_config import CONFIGS
from airflow_jobstatus.services import dli
from airflow_jobstatus.simulator import Simulator

IDENTITY = {"dag_id": "etl", "run_id": "manual__2026-12-07T00:28:47+00:00", "task_id": "agg", "map_index": -1}
FIRST = {"try_number": 1, "first_try": 1, "clear_number": 0}


@pytest.fixture(autouse=True)
def _fresh_config_cache() -> Iterator[None]:
    CONFIGS.clear()
    yield
    CONFIGS.clear()


def sdk_client(sim: Simulator) -> Any:
    config = HttpConfig.get_default_config()
    config.timeout = (2, 5)
    config.retry_times = 0
    creds = BasicCredentials(sim.core.ak, sim.core.sk, sim.core.project_id)
    builder = DliClient.new_builder().with_credentials(creds).with_endpoints([sim.http_url])
    return builder.with_http_config(config).build()


def test_the_hook_submits_with_the_tags_and_finds_the_newest_job_by_them(sim: Simulator) -> None:
    hook = DliJobHook()
    tags = dli.submit_tags(IDENTITY, FIRST)
    first = hook.submit_sql("SELECT 'a'", "default", tags=tags)
    other = hook.submit_sql(
        "SELECT 'b'", "default", tags=dli.submit_tags({**IDENTITY, "map_index": 0}, FIRST)
    )
    untagged = hook.submit_sql("SELECT 'c'", "default")
    assert sim.requests("dli", first)[0]["detail"]["body"]["tags"] == tags
    assert "tags" not in sim.requests("dli", untagged)[0]["detail"]["body"]
    found = hook.find_started(IDENTITY)
    list_call = sim.core.last_request("dli", "") or {}
    assert list_call["detail"]["query"]["tags"] == f"airflow-task={dli.task_tag_value(IDENTITY)}"
    assert found is not None and found["job_ref"] == {"job_id": first, "job_type": "sql"}
    assert (found["try_number"], found["first_try"], found["clear_number"]) == (1, 1, 0)
    assert found["submitted_at"].endswith("+00:00")
    time.sleep(0.01)  # the simulator orders by creation time (ms): the second try's job is newer
    second = hook.submit_sql(
        "SELECT 'a'", "default", tags=dli.submit_tags(IDENTITY, {**FIRST, "try_number": 2})
    )
    again = hook.find_started(IDENTITY)
    assert again is not None and again["ids"] == {"job_id": second} and again["try_number"] == 2
    assert hook.find_started({**IDENTITY, "map_index": 0})["ids"] == {"job_id": other}  # type: ignore[index]
    assert hook.find_started({**IDENTITY, "task_id": "nobody"}) is None


def test_the_sdk_submits_tags_and_lists_by_them(sim: Simulator) -> None:
    client = sdk_client(sim)
    value = dli.task_tag_value(IDENTITY)
    body = CreateSqlJobRequestBody(
        sql="SELECT 1", queue_name="default", tags=[Tag(key=dli.TASK_TAG_KEY, value=value)]
    )
    job_id = client.create_sql_job(CreateSqlJobRequest(body=body)).job_id
    client.create_sql_job(
        CreateSqlJobRequest(body=CreateSqlJobRequestBody(sql="SELECT 2", queue_name="default"))
    )
    listed = client.list_sql_jobs(ListSqlJobsRequest(tags=f"{dli.TASK_TAG_KEY}={value}", job_type="ALL"))
    assert listed.job_count == 1 and [j.job_id for j in listed.jobs] == [job_id]
    assert [(t.key, t.value) for t in listed.jobs[0].tags] == [(dli.TASK_TAG_KEY, value)]
    everything = client.list_sql_jobs(ListSqlJobsRequest(job_type="ALL"))
    assert everything.job_count == 2
    shown = client.show_sql_job_status(ShowSqlJobStatusRequest(job_id=job_id))
    assert [(t.key, t.value) for t in shown.tags] == [(dli.TASK_TAG_KEY, value)]
    # What the project's hook parses out of the same list answer.
    found = DliJobHook().find_started(IDENTITY)
    assert found is not None and found["ids"] == {"job_id": job_id}
    assert found["try_number"] is None  # the SDK's job has no airflow-try tag


def test_the_simulator_refuses_tags_dli_refuses(sim: Simulator) -> None:
    hook = DliJobHook()
    with pytest.raises(Exception, match=r"1\.\.128") as info:
        hook.send(
            dli.Operation(
                "submit",
                "POST",
                "/v1.0/{project_id}/jobs/submit-job",
                "(new job)",
                body={"sql": "SELECT 1", "queue_name": "q", "tags": [{"key": "k" * 129, "value": "v"}]},
            )
        )
    assert getattr(info.value, "code", None) == "DLI.0001"
    with pytest.raises(Exception, match="key=value") as bad:
        hook.send(
            dli.Operation(
                "list",
                "GET",
                "/v1.0/{project_id}/jobs",
                "(job list)",
                query=(("tags", "novalue"),),
                is_read=True,
            )
        )
    assert getattr(bad.value, "code", None) == "DLI.0001"


def test_hold_answer_creates_the_job_and_answers_late(sim: Simulator) -> None:
    """The lost worker in small: the client gives up before the answer; the job runs and is found."""
    sim.inject_fault("hold_answer", count=1, service="dli", seconds=2.0)
    impatient = DliJobHook(timeout=0.5)
    started = time.monotonic()
    with pytest.raises(TransientServiceError):
        impatient.submit_sql("SELECT 'held'", "default", tags=dli.submit_tags(IDENTITY, FIRST))
    assert time.monotonic() - started < 1.9  # gave up before the answer came
    assert sim.method_calls("dli") == {"CreateSqlJob": 1}
    jobs = sim.core.listed_jobs("dli", job_type="sql")
    assert len(jobs) == 1  # created at once, whatever happened to the answer
    found = DliJobHook().find_started(IDENTITY)
    assert found is not None and found["ids"] == {"job_id": jobs[0].job_id}
    assert sim.method_calls("dli") == {"CreateSqlJob": 1, "ListSqlJobs": 1}


def test_hold_answer_through_the_control_api(sim: Simulator) -> None:
    control = httpx.Client(base_url=sim.http_url + "/_sim", timeout=10)
    answer = control.post(
        "/faults", json={"kind": "hold_answer", "count": 1, "service": "dli", "seconds": 0.5}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["pending"][0]["kind"] == "hold_answer"
    started = time.monotonic()
    job_id = DliJobHook(timeout=5).submit_sql("SELECT 1", "default")
    assert time.monotonic() - started >= 0.5 and sim.get_job("dli", job_id) is not None
    refused = control.post("/faults", json={"kind": "hold_answer", "service": "dli", "seconds": -1})
    assert refused.status_code == 400 and "seconds" in refused.text
    sim.inject_fault("hold_answer", service="dli")
    assert sim.core.pending_faults()[0]["seconds"] == 30.0  # the default hold
    control.close()
