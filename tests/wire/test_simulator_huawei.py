"""The simulator's CDM/DLI REST front through the real Huawei SDK clients, httpx and raw sockets (no mocks)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from huaweicloudsdkcdm.v1 import (
    CdmClient,
    CdmStartJobReq,
    ShowJobStatusRequest,
    ShowSubmissionsRequest,
    StartJobRequest,
    StopJobRequest,
)
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import (
    ClientRequestException,
    ConnectionException,
    ServerResponseException,
)
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkdli.v1 import (
    CancelSparkJobRequest,
    CancelSqlJobRequest,
    CreateSqlJobRequest,
    CreateSqlJobRequestBody,
    DliClient,
    ShowSparkJobStatusRequest,
    ShowSqlJobProgressRequest,
    ShowSqlJobStatusRequest,
)

from airflow_jobstatus.simulator import Simulator
from airflow_jobstatus.simulator.vocabulary import CDM_COUNTERS

CLUSTER = "sim-cluster"
COUNTERS = {key: 10 + i for i, key in enumerate(CDM_COUNTERS)}
SUB_JOB = {
    "id": 3,
    "name": "runJob at FileFormatWriter.scala:266",
    "description": "insert into t1",
    "submission_time": "Mon Jul 27 17:24:03 CST 2020",
    "completion_time": "Mon Jul 27 17:25:03 CST 2020",
    "stage_ids": [0, 1],
    "job_group": "grp",
    "status": "RUNNING",
    "num_tasks": 8,
    "num_active_tasks": 2,
    "num_completed_tasks": 5,
    "num_skipped_tasks": 1,
    "num_failed_tasks": 0,
    "num_killed_tasks": 0,
    "num_completed_indices": 5,
    "num_active_stages": 1,
    "num_completed_stages": 1,
    "num_skipped_stages": 0,
    "num_failed_stages": 0,
    "killed_tasks_summary": {"preempted": 1},
}


def _config(read_timeout: float = 5.0) -> HttpConfig:
    cfg = HttpConfig.get_default_config()
    cfg.ignore_ssl_verification = True
    cfg.timeout = (2, read_timeout)
    cfg.retry_times = 0
    return cfg


def cdm_client(sim: Simulator, sk: str | None = None, ak: str | None = None, **kw: Any) -> Any:
    creds = BasicCredentials(ak or sim.core.ak, sk or sim.core.sk, sim.core.project_id)
    builder = CdmClient.new_builder().with_credentials(creds).with_endpoints([sim.http_url])
    return builder.with_http_config(_config(**kw)).build()


def dli_client(sim: Simulator, sk: str | None = None, project_id: str | None = None, **kw: Any) -> Any:
    creds = BasicCredentials(sim.core.ak, sk or sim.core.sk, project_id or sim.core.project_id)
    builder = DliClient.new_builder().with_credentials(creds).with_endpoints([sim.http_url])
    return builder.with_http_config(_config(**kw)).build()


def signed(
    sim: Simulator, method: str, path: str, body: bytes = b"", sk: str | None = None
) -> dict[str, str]:
    """Headers for a request signed with the SDK's signer (what any non-SDK client must send)."""
    host = urlsplit(sim.http_url).netloc
    path_only, _, query = path.partition("?")
    params = [tuple(p.split("=", 1)) for p in query.split("&") if p]
    request = SdkRequest(
        method=method,
        schema="http",
        host=host,
        resource_path=path_only,
        query_params=params,
        header_params={"Content-Type": "application/json", "X-Project-Id": sim.core.project_id},
        body=body,
    )
    creds = BasicCredentials(sim.core.ak, sk or sim.core.sk, sim.core.project_id)
    Signer(creds).sign(request)
    return dict(request.header_params)


def cdm_status(client: Any, job: str, cluster: str = CLUSTER) -> Any:
    return client.show_job_status(ShowJobStatusRequest(cluster_id=cluster, job_name=job))


def raw(sim: Simulator, data: bytes, half_close: bool = False) -> bytes:
    """Send raw bytes on a fresh socket and return everything that came back until the server closed.

    ``half_close`` shuts our sending side first: aiohttp then closes the connection unanswered.
    """
    parts = urlsplit(sim.http_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# ---- CDM -----------------------------------------------------------------------------------------


def test_cdm_status_every_documented_field_parsed(sim: Simulator) -> None:
    sim.add_job("cdm", "jdbc2hive", [{"state": "SUCCEEDED", "progress": 100, "counters": COUNTERS}])
    sub = cdm_status(cdm_client(sim), "jdbc2hive").submissions[0]
    assert (sub.job_name, sub.status, sub.progress, sub.creation_user) == (
        "jdbc2hive",
        "SUCCEEDED",
        100,
        "cdm",
    )
    assert isinstance(sub.submission_id, int) and isinstance(sub.creation_date, int)
    assert sub.is_incrementing is False and sub.is_execute_auto is False and sub.is_delete_job is False
    assert sub.last_update_user == "cdm" and sub.last_update_date >= sub.creation_date
    assert (sub.delete_rows, sub.update_rows, sub.write_rows) == (0, 0, COUNTERS["rows_written"])
    assert sub.execute_date and sub.external_id and sub.is_stoping_increment == ""
    counter = sub.counters.org_apache_sqoop_submission_counter_sqoop_counters
    assert {key: getattr(counter, key) for key in CDM_COUNTERS} == COUNTERS


def test_cdm_wire_keys_as_documented(sim: Simulator) -> None:
    sim.add_job("cdm", "job-w", [{"state": "SUCCEEDED", "counters": {"rows_read": 5}}])
    path = f"/v1.1/{sim.core.project_id}/clusters/{CLUSTER}/cdm/job/job-w/status"
    body = httpx.get(sim.http_url + path, headers=signed(sim, "GET", path)).json()
    sub = body["submissions"][0]
    for key in ("job-name", "creation-user", "creation-date", "submission-id", "isIncrementing"):
        assert key in sub
    assert {"isStopingIncrement", "is-execute-auto", "last-update-date", "last-udpate-user"} <= set(sub)
    assert {"delete_rows", "update_rows", "write_rows", "execute-date", "external-id", "isDeleteJob"} <= set(
        sub
    )
    wire = sub["counters"]["org.apache.sqoop.submission.counter.SqoopCounters"]
    assert set(wire) == {k.upper() for k in CDM_COUNTERS} and wire["ROWS_READ"] == 5


def test_cdm_running_progress_and_failure_details(sim: Simulator) -> None:
    timeline = [
        {"state": "RUNNING", "duration": 0.3, "progress": [0, 100]},
        {"state": "FAILED", "progress": -1, "error_summary": "boom", "error_details": "trace"},
    ]
    sim.add_job("cdm", "job-f", timeline)
    client = cdm_client(sim)
    running = cdm_status(client, "job-f").submissions[0]
    assert running.status == "RUNNING" and 0 <= running.progress < 100 and running.counters is None
    time.sleep(0.35)
    failed = cdm_status(client, "job-f").submissions[0]
    assert (failed.status, failed.progress, failed.error_summary, failed.error_details) == (
        "FAILED",
        -1,
        "boom",
        "trace",
    )


def test_cdm_never_started_job(sim: Simulator) -> None:
    sim.core.define_cdm_job("idle-job")
    subs = cdm_status(cdm_client(sim), "idle-job").submissions
    assert [(s.job_name, s.status, s.submission_id) for s in subs] == [("idle-job", "NEVER_EXECUTED", None)]


def test_cdm_start_stop_and_history(sim: Simulator) -> None:
    sim.core.define_cdm_job("job-s")
    client = cdm_client(sim)
    started = client.start_job(
        StartJobRequest(cluster_id=CLUSTER, job_name="job-s", body=CdmStartJobReq(variables={"day": "1"}))
    ).submissions[0]
    assert (started.job_name, started.status, started.progress) == ("job-s", "BOOTING", 0)
    assert isinstance(started.submission_id, int) and started.creation_user == "cdm"
    last = sim.last_request("cdm", f"{CLUSTER}/job-s")
    assert last is not None and last["method"] == "StartJob" and last["detail"]["variables"] == {"day": "1"}
    assert "authorization" not in last["headers"]
    with pytest.raises(ClientRequestException) as again:  # still running: refused
        client.start_job(StartJobRequest(cluster_id=CLUSTER, job_name="job-s", body=CdmStartJobReq()))
    assert again.value.status_code == 400 and "Cdm.0104" in again.value.error_msg
    stopped = client.stop_job(StopJobRequest(cluster_id=CLUSTER, job_name="job-s"))
    assert stopped.validation_result == []
    assert cdm_status(client, "job-s").submissions[0].status == "FAILED"
    second = client.start_job(StartJobRequest(cluster_id=CLUSTER, job_name="job-s", body=CdmStartJobReq()))
    history = client.show_submissions(ShowSubmissionsRequest(cluster_id=CLUSTER, jname="job-s"))
    assert history.total == 2
    assert [s.submission_id for s in history.submissions] == [
        second.submissions[0].submission_id,
        started.submission_id,
    ]
    assert [s.status for s in history.submissions] == ["BOOTING", "FAILED"]


def test_cdm_unknown_job_and_wrong_cluster_are_404(sim: Simulator) -> None:
    sim.add_job("cdm", "job-a", [{"state": "RUNNING"}])
    client = cdm_client(sim)
    for job, cluster in (("nope", CLUSTER), ("job-a", "other-cluster")):
        with pytest.raises(ClientRequestException) as info:
            cdm_status(client, job, cluster)
        assert info.value.status_code == 404
        assert info.value.error_code == "404"  # CDM's body is not parsed by the SDK
        assert json.loads(info.value.error_msg) == {
            "errCode": "Cdm.0100",
            "externalMessage": f"Job {job} not exist.",
        }


# ---- DLI ----------------------------------------------------------------------------------------


def test_dli_submit_progress_status_cancel(sim: Simulator) -> None:
    client = dli_client(sim)
    body = CreateSqlJobRequestBody(sql="SELECT 1", currentdb="db1", queue_name="q1", conf=["a=b"])
    created = client.create_sql_job(CreateSqlJobRequest(body=body))
    assert (created.is_success, created.message, created.job_type, created.job_mode) == (
        True,
        "",
        "QUERY",
        "async",
    )
    job_id = created.job_id
    assert sim.get_job("dli", job_id) is not None
    submitted = sim.last_request("dli", job_id)
    assert submitted is not None and submitted["detail"]["body"]["sql"] == "SELECT 1"
    progress = client.show_sql_job_progress(ShowSqlJobProgressRequest(job_id=job_id))
    assert (progress.is_success, progress.job_id, progress.status, progress.progress) == (
        True,
        job_id,
        "LAUNCHING",
        0,
    )
    status = client.show_sql_job_status(ShowSqlJobStatusRequest(job_id=job_id))
    assert (status.job_id, status.status, status.queue_name, status.database_name) == (
        job_id,
        "LAUNCHING",
        "q1",
        "db1",
    )
    assert (status.statement, status.job_type, status.job_mode, status.owner) == (
        "SELECT 1",
        "QUERY",
        "async",
        "sim-user",
    )
    assert status.is_success is True and isinstance(status.start_time, int) and status.duration >= 0
    cancelled = client.cancel_sql_job(CancelSqlJobRequest(job_id=job_id))
    assert (cancelled.is_success, cancelled.message) == (True, "")
    assert client.show_sql_job_status(ShowSqlJobStatusRequest(job_id=job_id)).status == "CANCELLED"
    with pytest.raises(ClientRequestException) as again:
        client.cancel_sql_job(CancelSqlJobRequest(job_id=job_id))
    assert (again.value.status_code, again.value.error_code) == (400, "DLI.0999")


def test_dli_progress_sub_jobs_every_field(sim: Simulator) -> None:
    sim.add_job("dli", "job-p", [{"state": "RUNNING", "progress": 0.625, "sub_jobs": [SUB_JOB]}])
    progress = dli_client(sim).show_sql_job_progress(ShowSqlJobProgressRequest(job_id="job-p"))
    assert (progress.status, progress.progress, progress.sub_job_id) == ("RUNNING", 0.625, 3)
    assert [s.to_dict() for s in progress.sub_jobs] == [SUB_JOB]


def test_dli_finished_job_has_no_running_sub_job(sim: Simulator) -> None:
    sim.add_job("dli", "job-d", [{"state": "FINISHED"}])
    progress = dli_client(sim).show_sql_job_progress(ShowSqlJobProgressRequest(job_id="job-d"))
    assert (progress.status, progress.progress, progress.sub_job_id, progress.sub_jobs) == (
        "FINISHED",
        1,
        None,
        [],
    )


def test_dli_spark_state_and_cancel(sim: Simulator) -> None:
    sim.add_job("dli", "batch-1", [{"state": "running"}], job_type="spark")
    client = dli_client(sim)
    state = client.show_spark_job_status(ShowSparkJobStatusRequest(batch_id="batch-1"))
    assert (state.id, state.state) == ("batch-1", "running")
    assert client.cancel_spark_job(CancelSparkJobRequest(batch_id="batch-1")).msg == "deleted"
    assert client.show_spark_job_status(ShowSparkJobStatusRequest(batch_id="batch-1")).state == "dead"


def test_dli_unknown_job_and_wrong_type_are_400_dli_0002(sim: Simulator) -> None:
    """Real DLI answers an unknown job id with 400 DLI.0002, not 404 (CDM keeps its 404)."""
    sim.add_job("dli", "batch-2", [{"state": "running"}], job_type="spark")
    client = dli_client(sim)
    calls = [
        lambda: client.show_sql_job_progress(ShowSqlJobProgressRequest(job_id="missing")),
        lambda: client.show_sql_job_status(ShowSqlJobStatusRequest(job_id="batch-2")),
        lambda: client.show_spark_job_status(ShowSparkJobStatusRequest(batch_id="missing")),
        lambda: client.cancel_sql_job(CancelSqlJobRequest(job_id="missing")),
        lambda: client.cancel_spark_job(CancelSparkJobRequest(batch_id="missing")),
    ]
    for call in calls:
        with pytest.raises(ClientRequestException) as info:
            call()
        assert (info.value.status_code, info.value.error_code) == (400, "DLI.0002")
        assert "does not exist" in info.value.error_msg


# ---- authentication ------------------------------------------------------------------------------


def test_wrong_secret_or_access_key_is_401(sim: Simulator) -> None:
    sim.add_job("cdm", "job-a", [{"state": "RUNNING"}])
    for client in (cdm_client(sim, sk="wrong-sk"), cdm_client(sim, ak="wrong-ak")):
        with pytest.raises(ClientRequestException) as info:
            cdm_status(client, "job-a")
        assert (info.value.status_code, info.value.error_code) == (401, "APIGW.0301")
    assert sim.calls("cdm") == 0


def test_unsigned_tampered_or_stale_requests_are_401(sim: Simulator) -> None:
    sim.add_job("dli", "j", [{"state": "RUNNING"}])
    path = f"/v1/{sim.core.project_id}/jobs/j/progress"
    url = sim.http_url + path
    assert httpx.get(url).status_code == 401
    headers = signed(sim, "GET", path)
    assert httpx.get(url, headers=headers).status_code == 200
    assert httpx.get(url + "?x=1", headers=headers).status_code == 401  # query not signed
    assert httpx.request("GET", url, headers=headers, content=b"{}").status_code == 401  # body changed
    stale = signed(sim, "GET", path) | {"X-Sdk-Date": "20200101T000000Z"}
    assert httpx.get(url, headers=stale).json()["error_code"] == "APIGW.0301"


def test_foreign_project_is_403(sim: Simulator) -> None:
    sim.add_job("dli", "j", [{"state": "RUNNING"}])
    with pytest.raises(ClientRequestException) as info:
        dli_client(sim, project_id="other-project").show_sql_job_progress(
            ShowSqlJobProgressRequest(job_id="j")
        )
    assert (info.value.status_code, info.value.error_code) == (403, "APIGW.0302")


def test_httpx_signed_with_sdk_signer_can_submit_and_poll(sim: Simulator) -> None:
    path = f"/v1.0/{sim.core.project_id}/jobs/submit-job"
    body = json.dumps({"sql": "insert into t select 1", "queue_name": "q"}).encode()
    created = httpx.post(sim.http_url + path, content=body, headers=signed(sim, "POST", path, body)).json()
    assert created["is_success"] is True and created["job_type"] == "INSERT"
    progress_path = f"/v1/{sim.core.project_id}/jobs/{created['job_id']}/progress"
    progress = httpx.get(sim.http_url + progress_path, headers=signed(sim, "GET", progress_path)).json()
    assert set(progress) >= {"is_success", "message", "job_id", "status", "progress", "sub_jobs"}
    sub_path = f"/v1.1/{sim.core.project_id}/clusters/{CLUSTER}/cdm/submissions?jname=nope"
    answer = httpx.get(sim.http_url + sub_path, headers=signed(sim, "GET", sub_path))
    assert answer.status_code == 404 and answer.json()["errCode"] == "Cdm.0100"


# ---- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "cdm_code", "dli_code"),
    [
        ("http_500", 500, "500", "DLI.0999"),
        ("http_502", 502, "APIGW.0202", "APIGW.0202"),
        ("http_503", 503, "503", "DLI.0999"),
        ("http_504", 504, "APIGW.0203", "APIGW.0203"),
    ],
)
def test_server_error_faults(sim: Simulator, kind: str, status: int, cdm_code: str, dli_code: str) -> None:
    sim.add_job("cdm", "job-a", [{"state": "RUNNING"}])
    sim.add_job("dli", "j", [{"state": "RUNNING"}])
    sim.inject_fault(kind, count=1, service="cdm", job_id=f"{CLUSTER}/job-a")
    sim.inject_fault(kind, count=1, service="dli", job_id="j")
    cdm, dli = cdm_client(sim), dli_client(sim)
    with pytest.raises(ServerResponseException) as cdm_err:
        cdm_status(cdm, "job-a")
    with pytest.raises(ServerResponseException) as dli_err:
        dli.show_sql_job_progress(ShowSqlJobProgressRequest(job_id="j"))
    assert (cdm_err.value.status_code, cdm_err.value.error_code) == (status, cdm_code)
    assert (dli_err.value.status_code, dli_err.value.error_code) == (status, dli_code)
    assert cdm_status(cdm, "job-a").submissions[0].status == "RUNNING"  # count=1: next call is fine


def test_429_fault(sim: Simulator) -> None:
    sim.add_job("dli", "j", [{"state": "RUNNING"}])
    sim.inject_fault("http_429", service="dli")
    with pytest.raises(ClientRequestException) as info:
        dli_client(sim).show_sql_job_progress(ShowSqlJobProgressRequest(job_id="j"))
    assert info.value.status_code == 429
    path = f"/v1/{sim.core.project_id}/jobs/j/progress"
    sim.inject_fault("http_429", service="dli")
    answer = httpx.get(sim.http_url + path, headers=signed(sim, "GET", path))
    assert answer.status_code == 429 and answer.json()["error_code"] == "APIGW.0308"
    assert "Retry-After" not in answer.headers  # only when seconds is given


def test_429_fault_with_retry_after(sim: Simulator) -> None:
    """``seconds`` becomes Retry-After (whole seconds, rounded up); the gateway's body is unchanged."""
    sim.add_job("cdm", "job-a", [{"state": "RUNNING"}])
    path = f"/v1.1/{sim.core.project_id}/clusters/{CLUSTER}/cdm/job/job-a/status"
    sim.inject_fault("http_429", service="cdm", seconds=2)
    sim.inject_fault("http_429", service="cdm", seconds=0.5)
    for expected in ("2", "1"):
        answer = httpx.get(sim.http_url + path, headers=signed(sim, "GET", path))
        assert (answer.status_code, answer.headers["Retry-After"]) == (429, expected)
        assert answer.json()["error_code"] == "APIGW.0308" and "throttling" in answer.json()["error_msg"]
    control = {"kind": "http_429", "service": "cdm", "seconds": 3}
    assert httpx.post(sim.http_url + "/_sim/faults", json=control).status_code == 201
    assert httpx.get(sim.http_url + path, headers=signed(sim, "GET", path)).headers["Retry-After"] == "3"
    assert httpx.get(sim.http_url + path, headers=signed(sim, "GET", path)).status_code == 200


def test_409_fault_is_the_services_try_again_conflict(sim: Simulator) -> None:
    sim.add_job("cdm", "job-a", [{"state": "RUNNING"}])
    sim.add_job("dli", "j", [{"state": "RUNNING"}])
    sim.inject_fault("http_409", service="cdm")
    sim.inject_fault("http_409", service="dli")
    with pytest.raises(ClientRequestException) as cdm_err:
        cdm_status(cdm_client(sim), "job-a")
    with pytest.raises(ClientRequestException) as dli_err:
        dli_client(sim).show_sql_job_progress(ShowSqlJobProgressRequest(job_id="j"))
    assert (cdm_err.value.status_code, cdm_err.value.error_code) == (409, "409")  # CDM's body: not parsed
    assert json.loads(cdm_err.value.error_msg)["errCode"] == "Cdm.0000"
    assert (dli_err.value.status_code, dli_err.value.error_code) == (409, "DLI.0999")
    assert "Try again" in dli_err.value.error_msg
    assert cdm_status(cdm_client(sim), "job-a").submissions[0].status == "RUNNING"


def test_empty_body_fault(sim: Simulator) -> None:
    """A 200 with no body: the SDK does not raise, it returns an empty model (callers must check)."""
    sim.add_job("cdm", "job-a", [{"state": "RUNNING"}])
    sim.add_job("dli", "j", [{"state": "RUNNING"}])
    sim.inject_fault("empty_body", service="cdm")
    sim.inject_fault("empty_body", service="dli")
    cdm = cdm_status(cdm_client(sim), "job-a")
    assert (cdm.status_code, cdm.raw_content, cdm.submissions) == (200, b"", None)
    dli = dli_client(sim).show_sql_job_progress(ShowSqlJobProgressRequest(job_id="j"))
    assert (dli.status_code, dli.raw_content, dli.status, dli.job_id) == (200, b"", None, None)
    path = f"/v1/{sim.core.project_id}/jobs/j/progress"
    sim.inject_fault("empty_body", service="dli", job_id="j")
    answer = httpx.get(sim.http_url + path, headers=signed(sim, "GET", path))
    assert (answer.status_code, answer.content, answer.headers["Content-Length"]) == (200, b"", "0")
    assert answer.headers["Content-Type"].startswith("application/json")
    assert sim.calls("dli", "j") == 2  # each still counts as a call


def test_empty_body_on_submit_still_creates_the_job(sim: Simulator) -> None:
    """The operation happens, only its answer is lost (what a retried submit must cope with)."""
    sim.inject_fault("empty_body", service="dli")
    response = dli_client(sim).create_sql_job(
        CreateSqlJobRequest(body=CreateSqlJobRequestBody(sql="SELECT 1"))
    )
    assert response.job_id is None
    assert sim.core.stats()["jobs"]["dli"] == 1


def test_spark_states_are_served_as_spelled(sim: Simulator) -> None:
    """DLI's documentation shows capitalized Spark states ("Success"): served as given, and final."""
    sim.add_job(
        "dli", "batch-c", [{"state": "Running", "duration": 60}, {"state": "Success"}], job_type="spark"
    )
    sim.add_job("dli", "batch-d", [{"state": "Success"}], job_type="spark")
    client = dli_client(sim)
    assert client.show_spark_job_status(ShowSparkJobStatusRequest(batch_id="batch-c")).state == "Running"
    assert client.show_spark_job_status(ShowSparkJobStatusRequest(batch_id="batch-d")).state == "Success"
    assert client.cancel_spark_job(CancelSparkJobRequest(batch_id="batch-d")).msg == "deleted"
    assert client.show_spark_job_status(ShowSparkJobStatusRequest(batch_id="batch-d")).state == "Success"
    client.cancel_spark_job(CancelSparkJobRequest(batch_id="batch-c"))
    assert client.show_spark_job_status(ShowSparkJobStatusRequest(batch_id="batch-c")).state == "dead"


def test_fault_only_hits_its_job(sim: Simulator) -> None:
    sim.add_job("cdm", "job-a", [{"state": "RUNNING"}])
    sim.add_job("cdm", "job-b", [{"state": "RUNNING"}])
    sim.inject_fault("http_503", count=2, service="cdm", job_id="job-b")
    client = cdm_client(sim)
    assert cdm_status(client, "job-a").submissions[0].status == "RUNNING"
    for _ in range(2):
        with pytest.raises(ServerResponseException):
            cdm_status(client, "job-b")
    assert cdm_status(client, "job-b").submissions[0].status == "RUNNING"


def test_drop_connection_fault(sim: Simulator) -> None:
    sim.add_job("cdm", "job-a", [{"state": "RUNNING"}])
    sim.inject_fault("drop_connection", service="cdm")
    client = cdm_client(sim)
    with pytest.raises(ConnectionException):
        cdm_status(client, "job-a")
    assert cdm_status(client, "job-a").submissions[0].status == "RUNNING"


def test_latency_fault(sim: Simulator) -> None:
    sim.add_job("dli", "j", [{"state": "RUNNING"}])
    client = dli_client(sim, read_timeout=0.5)
    sim.inject_fault("latency", service="dli", seconds=0.2)
    began = time.monotonic()
    assert client.show_sql_job_progress(ShowSqlJobProgressRequest(job_id="j")).status == "RUNNING"
    assert time.monotonic() - began >= 0.2
    sim.inject_fault("latency", service="dli", seconds=1.0)
    with pytest.raises(ConnectionException):  # the SDK reports a read timeout as a connection error
        client.show_sql_job_progress(ShowSqlJobProgressRequest(job_id="j"))


def test_malformed_body_fault(sim: Simulator) -> None:
    """The SDK does not raise on an unparseable 200 body: it returns an empty model (callers must check)."""
    sim.add_job("cdm", "job-a", [{"state": "RUNNING"}])
    sim.inject_fault("malformed_body", service="cdm")
    response = cdm_status(cdm_client(sim), "job-a")
    assert response.submissions is None and response.status_code == 200
    with pytest.raises(ValueError):
        json.loads(response.raw_content)


# ---- control API and HTTP robustness ---------------------------------------------------------------


def test_control_api(sim: Simulator) -> None:
    base = sim.http_url + "/_sim"
    assert httpx.get(base + "/health").json() == {"status": "ok"}
    job = {"service": "dli", "job_id": "ctl", "timeline": [{"state": "RUNNING"}], "job_type": "sql"}
    assert httpx.post(base + "/jobs", json=job).status_code == 201
    assert (
        httpx.post(base + "/jobs", json={"service": "cdm", "job_id": "idle", "timeline": None}).status_code
        == 201
    )
    bad = httpx.post(base + "/jobs", json={"service": "nope", "job_id": "x", "timeline": []})
    assert bad.status_code == 400
    fault = {"kind": "http_503", "count": 1, "service": "dli", "job_id": "ctl"}
    assert httpx.post(base + "/faults", json=fault).status_code == 201
    with pytest.raises(ServerResponseException):
        dli_client(sim).show_sql_job_progress(ShowSqlJobProgressRequest(job_id="ctl"))
    calls = httpx.get(base + "/calls", params={"service": "dli", "job_id": "ctl"}).json()
    assert calls["count"] == 1 and calls["last"]["method"] == "ShowSqlJobProgress"
    assert calls["last"]["headers"]["x-project-id"] == sim.core.project_id
    stats = httpx.get(base + "/stats").json()
    assert stats["jobs"]["dli"] == 1 and stats["calls"]["dli"] == 1
    assert cdm_status(cdm_client(sim), "idle").submissions[0].status == "NEVER_EXECUTED"
    assert httpx.post(base + "/reset").status_code == 200
    assert httpx.get(base + "/stats").json()["total_calls"] == 0


def test_garbage_and_unsupported_requests(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp's parser answers a malformed request 400 and closes; the simulator keeps serving."""
    malformed = [
        b"\x00\xffnot http at all\r\n\r\n",
        b"GET /_sim/health HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /_sim/health HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n",
        b"POST /_sim/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n",
        b"GET /_sim/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /_sim/health HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
    ]
    for request in malformed:
        answer = raw(sim, request)
        assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), (request[:40], answer[:80])
    # Logged as one warning line each, without a traceback (aiohttp logs non-HTTP bytes at debug level).
    parser_logs = [r for r in caplog.records if "Error handling request" in r.getMessage()]
    assert len(parser_logs) == len(malformed) - 1
    assert {(r.levelname, r.exc_info) for r in parser_logs} == {("WARNING", None)}
    # A chunked body is read (the old server refused it with 411), then refused as not JSON.
    chunked = b"5\r\nhello\r\n0\r\n\r\n"
    head = b"POST /_sim/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = raw(sim, head + chunked)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"request body is not valid JSON" in answer
    assert raw(sim, b"GET /_sim/health HTTP/1.1\r\nHost: x\r\n", half_close=True) == b""  # half a head
    assert raw(sim, b"", half_close=True) == b""  # connect and close: nothing to answer
    assert httpx.post(sim.http_url + "/_sim/jobs", content=b"{not json").json()["error_code"] == "SIM.400"
    not_allowed = httpx.delete(sim.http_url + "/_sim/health")
    assert not_allowed.status_code == 405 and "GET" in not_allowed.headers["Allow"]
    assert not_allowed.json()["error_code"] == "SIM.405"
    assert httpx.get(sim.http_url + "/_sim/nope").json() == {
        "error_code": "SIM.404",
        "error_msg": "no route for /_sim/nope",
    }
    assert httpx.get(sim.http_url + "/_sim/health").status_code == 200  # still serving


def test_keep_alive_and_pipelining(sim: Simulator) -> None:
    request = b"GET /_sim/health HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = raw(sim, request * 3 + b"GET /_sim/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 OK") == 4 and answer.rstrip().endswith(b'{"status": "ok"}')
    assert answer.count(b"X-Request-Id: ") == 4
    with httpx.Client(base_url=sim.http_url) as client:
        for _ in range(20):
            assert client.get("/_sim/health").status_code == 200


async def test_many_concurrent_keep_alive_connections(sim: Simulator) -> None:
    parts = urlsplit(sim.http_url)
    request = b"GET /_sim/health HTTP/1.1\r\nHost: x\r\n\r\n"

    async def one() -> int:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        ok = 0
        for _ in range(2):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            ok += head.startswith(b"HTTP/1.1 200 ")
        writer.close()
        await writer.wait_closed()
        return ok

    results = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(500))), 30)
    assert sum(results) == 1000
