"""The simulator's DLI Flink routes through the real huaweicloudsdkdli client (ShowFlinkJob,
ListFlinkJobs, BatchStopFlinkJobs) and signed httpx: bodies, filters, paging, stop, signature, faults."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException, ServerResponseException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkdli.v1 import (
    BatchStopFlinkJobsRequest,
    DliClient,
    ListFlinkJobsRequest,
    ShowFlinkJobRequest,
    StopFlinkJobsRequestBody,
)

from airflow_jobstatus.simulator import Simulator
from airflow_jobstatus.simulator.faults import FAULT_PROTOCOLS

SERVICE = "dli_flink"


def client(sim: Simulator, sk: str | None = None, read_timeout: float = 5.0) -> DliClient:
    config = HttpConfig.get_default_config()
    config.timeout, config.retry_times = (2, read_timeout), 0
    creds = BasicCredentials(sim.core.ak, sk or sim.core.sk, sim.core.project_id)
    return (
        DliClient.new_builder()
        .with_credentials(creds)
        .with_endpoints([sim.http_url])
        .with_http_config(config)
        .build()
    )


def signed(
    sim: Simulator, method: str, path: str, body: bytes = b"", project: str | None = None
) -> dict[str, str]:
    path_only, _, query = path.partition("?")
    request = SdkRequest(
        method=method,
        schema="http",
        host=urlsplit(sim.http_url).netloc,
        resource_path=path_only,
        query_params=[tuple(p.split("=", 1)) for p in query.split("&") if p],
        header_params={"Content-Type": "application/json", "X-Project-Id": project or sim.core.project_id},
        body=body,
    )
    Signer(BasicCredentials(sim.core.ak, sim.core.sk, sim.core.project_id)).sign(request)
    return dict(request.header_params)


def test_show_parses_into_the_sdk_model(sim: Simulator) -> None:
    sim.add_job(
        SERVICE,
        "50320",
        [
            {"state": "job_submitting", "duration": 0.2, "status_desc": "submitting"},
            {"state": "job_running", "status_desc": "running fine", "restart_times": 2},
        ],
        name="orders-stream",
    )
    first = client(sim).show_flink_job(ShowFlinkJobRequest(job_id=50320))
    assert (first.is_success, first.job_detail.job_id, first.job_detail.status) == (
        "true",
        50320,
        "job_submitting",
    )
    time.sleep(0.25)
    job = client(sim).show_flink_job(ShowFlinkJobRequest(job_id=50320)).job_detail
    assert (job.status, job.status_desc, job.restart_times, job.name) == (
        "job_running",
        "running fine",
        2,
        "orders-stream",
    )
    assert job.project_id == sim.core.project_id and job.queue_name and job.create_time > 0


def test_list_filters_by_status_and_name_and_pages_by_offset(sim: Simulator) -> None:
    for i in range(1, 26):
        sim.add_job(SERVICE, str(i), [{"state": "job_running" if i % 5 else "job_finish"}], name=f"n{i % 2}")
    dli = client(sim)
    default = dli.list_flink_jobs(ListFlinkJobsRequest()).job_list
    assert default.total_count == 25 and [j.job_id for j in default.jobs] == list(
        range(25, 15, -1)
    )  # 10, desc
    running = dli.list_flink_jobs(ListFlinkJobsRequest(status="job_running", limit=100)).job_list
    assert running.total_count == 20 and {j.status for j in running.jobs} == {"job_running"}
    page = dli.list_flink_jobs(
        ListFlinkJobsRequest(status="job_running", offset=15, limit=10, order="asc")
    ).job_list
    assert [j.job_id for j in page.jobs] == [19, 21, 22, 23, 24]
    named = dli.list_flink_jobs(ListFlinkJobsRequest(name="n0", limit=100)).job_list
    assert sorted(j.job_id for j in named.jobs) == list(range(2, 26, 2))
    with pytest.raises(ClientRequestException) as info:
        dli.list_flink_jobs(ListFlinkJobsRequest(limit=101))
    assert (info.value.status_code, info.value.error_code) == (400, "DLI.0001")
    assert sim.method_calls(SERVICE) == {"ListFlinkJobs": 4}  # the refused one is not recorded


def test_batch_stop_answers_one_result_per_job(sim: Simulator) -> None:
    sim.add_job(SERVICE, "1", [{"state": "job_running"}])
    sim.add_job(SERVICE, "2", [{"state": "job_cancel_success"}])
    body = StopFlinkJobsRequestBody(job_ids=[1, 2, 3], trigger_savepoint=False)
    answer = client(sim).batch_stop_flink_jobs(BatchStopFlinkJobsRequest(body=body))
    results = [(r.is_success, r.message) for r in answer.body]
    assert [ok for ok, _ in results] == ["true", "false", "false"]
    assert "cannot be stopped" in results[1][1] and "does not exist" in results[2][1]
    shown = client(sim).show_flink_job(ShowFlinkJobRequest(job_id=1)).job_detail
    assert shown.status == "job_canceling"
    time.sleep(0.35)
    assert client(sim).show_flink_job(ShowFlinkJobRequest(job_id=1)).job_detail.status == "job_cancel_success"


def test_an_unknown_or_non_integer_job_is_refused(sim: Simulator) -> None:
    with pytest.raises(ClientRequestException) as info:
        client(sim).show_flink_job(ShowFlinkJobRequest(job_id=404))
    assert (info.value.status_code, info.value.error_code) == (400, "DLI.0002")
    path = f"/v1.0/{sim.core.project_id}/streaming/jobs/abc"
    answer = httpx.get(sim.http_url + path, headers=signed(sim, "GET", path))
    assert answer.status_code == 400 and answer.json()["error_code"] == "DLI.0001"
    stop = f"/v1.0/{sim.core.project_id}/streaming/jobs/stop"
    body = json.dumps({"job_ids": ["1"]}).encode()
    answer = httpx.post(sim.http_url + stop, content=body, headers=signed(sim, "POST", stop, body))
    assert answer.status_code == 400


def test_the_signature_and_the_project_are_checked(sim: Simulator) -> None:
    sim.add_job(SERVICE, "1", [{"state": "job_running"}])
    with pytest.raises(ClientRequestException) as info:
        client(sim, sk="wrong-sk").show_flink_job(ShowFlinkJobRequest(job_id=1))
    assert (info.value.status_code, info.value.error_code) == (401, "APIGW.0301")
    path = f"/v1.0/{sim.core.project_id}/streaming/jobs/1"
    assert httpx.get(sim.http_url + path).status_code == 401
    assert httpx.get(sim.http_url + path + "?x=1", headers=signed(sim, "GET", path)).status_code == 401
    other = "/v1.0/other-project/streaming/jobs/1"
    answer = httpx.get(sim.http_url + other, headers=signed(sim, "GET", other, project="other-project"))
    assert answer.status_code == 403 and answer.json()["error_code"] == "APIGW.0302"
    assert sim.calls(SERVICE) == 0


@pytest.mark.parametrize("kind", [k for k, protocols in FAULT_PROTOCOLS.items() if "http" in protocols])
def test_every_http_fault_kind_reaches_the_flink_routes(sim: Simulator, kind: str) -> None:
    """The routes share ``HuaweiApi._serve``: every HTTP fault kind applies to them, per job too."""
    sim.add_job(SERVICE, "5", [{"state": "job_running"}])
    path = f"/v1.0/{sim.core.project_id}/streaming/jobs/5"
    timed = kind in ("latency", "hold_answer")  # answer after ``seconds``
    sim.inject_fault(kind, service=SERVICE, job_id="5", **({"seconds": 0.2} if timed else {}))
    started = time.monotonic()
    try:
        answer = httpx.get(sim.http_url + path, headers=signed(sim, "GET", path), timeout=5)
    except httpx.TransportError:
        assert kind == "drop_connection"
    else:
        assert kind != "drop_connection"
        if kind.startswith("http_"):
            assert answer.status_code == int(kind[5:])
        elif kind == "empty_body":
            assert (answer.status_code, answer.content) == (200, b"")
        elif kind == "malformed_body":
            assert answer.status_code == 200
            with pytest.raises(ValueError):
                json.loads(answer.content)
        else:
            assert timed and time.monotonic() - started >= 0.2
            assert answer.json()["job_detail"]["status"] == "job_running"
    assert sim.core.pending_faults() == []  # the Flink route took it
    assert httpx.get(sim.http_url + path, headers=signed(sim, "GET", path)).status_code == 200


def test_a_server_fault_through_the_sdk(sim: Simulator) -> None:
    sim.add_job(SERVICE, "6", [{"state": "job_running"}])
    sim.inject_fault("http_503", service=SERVICE)
    with pytest.raises(ServerResponseException) as info:
        client(sim).show_flink_job(ShowFlinkJobRequest(job_id=6))
    assert (info.value.status_code, info.value.error_code) == (503, "DLI.0999")
