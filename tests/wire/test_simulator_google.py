"""The simulator's gRPC front through the real Google SDK clients (no mocks): fields, errors, faults."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud import dataflow_v1beta3, dataproc_v1
from google.cloud.dataflow_v1beta3.services.jobs_v1_beta3.transports import JobsV1Beta3GrpcTransport
from google.cloud.dataproc_v1.services.job_controller.transports import (
    JobControllerGrpcAsyncIOTransport,
    JobControllerGrpcTransport,
)

from airflow_jobstatus.simulator import Simulator

P, R = "sim-project", "europe-west1"
NO_RETRY = {"retry": None, "timeout": 5}


@pytest.fixture(scope="module")
def dataproc(simulator: Simulator) -> Iterator[dataproc_v1.JobControllerClient]:
    channel = grpc.insecure_channel(simulator.grpc_target)
    yield dataproc_v1.JobControllerClient(transport=JobControllerGrpcTransport(channel=channel))
    channel.close()


@pytest.fixture(scope="module")
def dataflow(simulator: Simulator) -> Iterator[dataflow_v1beta3.JobsV1Beta3Client]:
    channel = grpc.insecure_channel(simulator.grpc_target)
    yield dataflow_v1beta3.JobsV1Beta3Client(transport=JobsV1Beta3GrpcTransport(channel=channel))
    channel.close()


@pytest.fixture(scope="module")
def vertex(simulator: Simulator) -> Iterator[object]:
    pytest.importorskip("google.cloud.aiplatform_v1")
    from google.cloud.aiplatform_v1.services.job_service import JobServiceClient
    from google.cloud.aiplatform_v1.services.job_service.transports import JobServiceGrpcTransport

    channel = grpc.insecure_channel(simulator.grpc_target)
    yield JobServiceClient(transport=JobServiceGrpcTransport(channel=channel))
    channel.close()


# ---- Dataproc ------------------------------------------------------------------------------------


def test_dataproc_get_job_fields_parsed_by_the_sdk(sim: Simulator, dataproc) -> None:
    sim.add_job(
        "dataproc",
        "job-1",
        [
            {"state": "PENDING", "duration": 0.2},
            {"state": "RUNNING", "duration": 30, "substate": "STALE_STATUS", "details": "agent silent"},
            {"state": "DONE"},
        ],
    )
    job = dataproc.get_job(project_id=P, region=R, job_id="job-1", **NO_RETRY)
    assert job.status.state == dataproc_v1.JobStatus.State.PENDING
    assert job.reference.job_id == "job-1" and job.reference.project_id == P
    assert not job.done
    time.sleep(0.25)
    job = dataproc.get_job(project_id=P, region=R, job_id="job-1", **NO_RETRY)
    assert job.status.state == dataproc_v1.JobStatus.State.RUNNING
    assert job.status.substate == dataproc_v1.JobStatus.Substate.STALE_STATUS
    assert job.status.details == "agent silent"
    assert job.status.state_start_time.timestamp() == pytest.approx(time.time() - 0.05, abs=1)
    assert [h.state for h in job.status_history] == [dataproc_v1.JobStatus.State.PENDING]
    assert sim.calls("dataproc", "job-1") == 2
    last = sim.last_request("dataproc", "job-1")
    assert last is not None and last["method"] == "GetJob"
    assert last["detail"]["region"] == R
    assert "region=europe-west1" in last["headers"]["x-goog-request-params"]


def test_dataproc_attempt_failure_carries_details(sim: Simulator, dataproc) -> None:
    sim.add_job("dataproc", "flaky", [{"state": "ATTEMPT_FAILURE", "details": "OOM on attempt 1"}])
    job = dataproc.get_job(project_id=P, region=R, job_id="flaky", **NO_RETRY)
    assert job.status.state == dataproc_v1.JobStatus.State.ATTEMPT_FAILURE
    assert job.status.details == "OOM on attempt 1"


def test_dataproc_unknown_job_or_wrong_region_is_not_found(sim: Simulator, dataproc) -> None:
    sim.add_job("dataproc", "job-1", [{"state": "RUNNING"}])
    with pytest.raises(
        gexc.NotFound, match="Not found: Job projects/sim-project/regions/us-east1/jobs/job-1"
    ):
        dataproc.get_job(project_id=P, region="us-east1", job_id="job-1", **NO_RETRY)
    with pytest.raises(gexc.NotFound, match="jobs/missing"):
        dataproc.get_job(project_id=P, region=R, job_id="missing", **NO_RETRY)
    assert sim.calls("dataproc", "missing") == 1


def test_dataproc_cancel_then_cancelled(sim: Simulator, dataproc) -> None:
    job = sim.add_job("dataproc", "long", [{"state": "RUNNING"}])
    answer = dataproc.cancel_job(project_id=P, region=R, job_id="long", **NO_RETRY)
    assert answer.status.state == dataproc_v1.JobStatus.State.CANCEL_PENDING
    assert job.actions == ["cancel"]
    time.sleep(0.35)
    got = dataproc.get_job(project_id=P, region=R, job_id="long", **NO_RETRY)
    assert got.status.state == dataproc_v1.JobStatus.State.CANCELLED and got.done
    with pytest.raises(gexc.FailedPrecondition):
        dataproc.cancel_job(project_id=P, region=R, job_id="long", **NO_RETRY)


def test_dataproc_submit_follows_default_timeline(sim: Simulator, dataproc) -> None:
    sim.set_default_timeline("dataproc", [{"state": "SETUP_DONE", "duration": 5}, {"state": "DONE"}])
    request_job = dataproc_v1.Job(
        placement=dataproc_v1.JobPlacement(cluster_name="c"),
        reference=dataproc_v1.JobReference(job_id="submitted-1"),
        pyspark_job=dataproc_v1.PySparkJob(main_python_file_uri="gs://b/main.py"),
    )
    job = dataproc.submit_job(project_id=P, region=R, job=request_job, **NO_RETRY)
    assert job.reference.job_id == "submitted-1"
    assert job.status.state == dataproc_v1.JobStatus.State.SETUP_DONE
    assert sim.core.get_job("dataproc", "submitted-1", region=R) is not None
    with pytest.raises(gexc.AlreadyExists):
        dataproc.submit_job(project_id=P, region=R, job=request_job, **NO_RETRY)
    generated = dataproc.submit_job(project_id=P, region=R, job=dataproc_v1.Job(), **NO_RETRY)
    assert generated.reference.job_id.startswith("sim-")


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("grpc_unavailable", gexc.ServiceUnavailable),
        ("grpc_resource_exhausted", gexc.ResourceExhausted),
        ("grpc_deadline_exceeded", gexc.DeadlineExceeded),
        ("drop_connection", gexc.ServiceUnavailable),
        ("malformed_body", gexc.InternalServerError),
        ("grpc_aborted", gexc.Aborted),
        ("grpc_undecodable", gexc.InternalServerError),
    ],
)
def test_faults_surface_as_the_real_exception_classes(sim: Simulator, dataproc, kind: str, error) -> None:
    sim.add_job("dataproc", "job-1", [{"state": "RUNNING"}])
    sim.inject_fault(kind, count=2, service="dataproc", job_id="job-1")
    for _ in range(2):
        with pytest.raises(error):
            dataproc.get_job(project_id=P, region=R, job_id="job-1", **NO_RETRY)
    job = dataproc.get_job(project_id=P, region=R, job_id="job-1", **NO_RETRY)  # faults used up
    assert job.status.state == dataproc_v1.JobStatus.State.RUNNING
    assert sim.calls("dataproc", "job-1") == 3


def test_http_faults_do_not_apply_to_grpc(sim: Simulator, dataproc) -> None:
    sim.add_job("dataproc", "job-1", [{"state": "RUNNING"}])
    sim.inject_fault("http_503", count=1)
    sim.inject_fault("empty_body", count=1)
    sim.inject_fault("http_409", count=1)
    dataproc.get_job(project_id=P, region=R, job_id="job-1", **NO_RETRY)
    assert [f["kind"] for f in sim.core.pending_faults()] == ["http_503", "empty_body", "http_409"]


def test_undecodable_and_aborted_answers(sim: Simulator, dataflow) -> None:
    """What the GAPIC client sees: a deserialization failure (INTERNAL), and ABORTED with its message."""
    sim.add_job("dataflow", "df-u", [{"state": "JOB_STATE_RUNNING"}])
    sim.inject_fault("grpc_undecodable", service="dataflow", job_id="df-u")
    with pytest.raises(gexc.InternalServerError, match="deserializ"):
        _df_get(dataflow, "df-u")
    sim.inject_fault("grpc_aborted", service="dataflow")
    with pytest.raises(gexc.Aborted, match="retry the request") as info:
        _df_get(dataflow, "df-u")
    assert info.value.grpc_status_code == grpc.StatusCode.ABORTED
    assert _df_get(dataflow, "df-u").current_state.name == "JOB_STATE_RUNNING"
    assert sim.calls("dataflow", "df-u") == 3


def test_latency_fault_delays_and_can_hit_the_client_deadline(sim: Simulator, dataproc) -> None:
    sim.add_job("dataproc", "job-1", [{"state": "RUNNING"}])
    sim.inject_fault("latency", seconds=0.3, service="dataproc")
    started = time.monotonic()
    dataproc.get_job(project_id=P, region=R, job_id="job-1", **NO_RETRY)
    assert time.monotonic() - started >= 0.3
    sim.inject_fault("latency", seconds=1.0, service="dataproc")
    with pytest.raises(gexc.DeadlineExceeded):
        dataproc.get_job(project_id=P, region=R, job_id="job-1", retry=None, timeout=0.2)


async def test_dataproc_async_client(sim: Simulator) -> None:
    sim.add_job("dataproc", "job-a", [{"state": "RUNNING", "substate": "QUEUED"}])
    channel = grpc.aio.insecure_channel(sim.grpc_target)
    try:
        client = dataproc_v1.JobControllerAsyncClient(
            transport=JobControllerGrpcAsyncIOTransport(channel=channel)
        )
        job = await client.get_job(project_id=P, region=R, job_id="job-a", **NO_RETRY)
        assert job.status.substate == dataproc_v1.JobStatus.Substate.QUEUED
        sim.inject_fault("grpc_unavailable", service="dataproc")
        with pytest.raises(gexc.ServiceUnavailable):
            await client.get_job(project_id=P, region=R, job_id="job-a", **NO_RETRY)
        with pytest.raises(gexc.NotFound):
            await client.get_job(project_id=P, region="asia-east1", job_id="job-a", **NO_RETRY)
    finally:
        await channel.close()


# ---- Dataflow ------------------------------------------------------------------------------------


def _df_get(client, job_id: str, location: str = R):
    return client.get_job(request={"project_id": P, "job_id": job_id, "location": location}, **NO_RETRY)


def test_dataflow_get_and_not_found(sim: Simulator, dataflow) -> None:
    sim.add_job("dataflow", "df-1", [{"state": "JOB_STATE_RUNNING"}])
    job = _df_get(dataflow, "df-1")
    assert job.current_state == dataflow_v1beta3.JobState.JOB_STATE_RUNNING
    assert (job.id, job.project_id, job.location) == ("df-1", P, R)
    assert job.current_state_time.timestamp() > 0
    with pytest.raises(gexc.NotFound, match="df-1"):
        _df_get(dataflow, "df-1", location="us-central1")


@pytest.mark.parametrize(
    ("requested", "transient", "final"),
    [
        ("JOB_STATE_CANCELLED", "JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"),
        ("JOB_STATE_DRAINED", "JOB_STATE_DRAINING", "JOB_STATE_DRAINED"),
    ],
)
def test_dataflow_cancel_and_drain(
    sim: Simulator, dataflow, requested: str, transient: str, final: str
) -> None:
    job = sim.add_job("dataflow", "df-2", [{"state": "JOB_STATE_RUNNING"}])
    request = {"project_id": P, "location": R, "job_id": "df-2", "job": {"requested_state": requested}}
    answer = dataflow.update_job(request=request, **NO_RETRY)
    assert answer.current_state.name == transient
    assert answer.requested_state.name == requested
    assert job.actions == [{"JOB_STATE_CANCELLED": "cancel", "JOB_STATE_DRAINED": "drain"}[requested]]
    time.sleep(0.35)
    assert _df_get(dataflow, "df-2").current_state.name == final
    with pytest.raises(gexc.FailedPrecondition):
        dataflow.update_job(request=request, **NO_RETRY)


# ---- Vertex AI -----------------------------------------------------------------------------------


def test_vertex_jobs_by_type_with_error_message(sim: Simulator, vertex) -> None:
    sim.add_job("vertex_ai", "111", [{"state": "JOB_STATE_RUNNING"}])
    sim.add_job(
        "vertex_ai",
        "222",
        [{"state": "JOB_STATE_FAILED", "error": "Replica workerpool0-0 exited with code 1"}],
        job_type="batch_prediction_job",
    )
    sim.add_job("vertex_ai", "333", [{"state": "JOB_STATE_EXPIRED"}], job_type="hyperparameter_tuning_job")
    base = f"projects/{P}/locations/{R}"
    custom = vertex.get_custom_job(name=f"{base}/customJobs/111", **NO_RETRY)
    assert custom.state.name == "JOB_STATE_RUNNING" and custom.name.endswith("/customJobs/111")
    batch = vertex.get_batch_prediction_job(name=f"{base}/batchPredictionJobs/222", **NO_RETRY)
    assert batch.state.name == "JOB_STATE_FAILED"
    assert batch.error.message == "Replica workerpool0-0 exited with code 1"
    hpt = vertex.get_hyperparameter_tuning_job(name=f"{base}/hyperparameterTuningJobs/333", **NO_RETRY)
    assert hpt.state.name == "JOB_STATE_EXPIRED" and hpt.end_time.timestamp() > 0
    with pytest.raises(gexc.NotFound):  # right id, wrong collection
        vertex.get_custom_job(name=f"{base}/customJobs/222", **NO_RETRY)
    with pytest.raises(gexc.NotFound):
        vertex.get_custom_job(name=f"projects/{P}/locations/us-central1/customJobs/111", **NO_RETRY)
    assert sim.calls("vertex_ai", "111") == 2  # the wrong-location request counts too


def test_vertex_cancel(sim: Simulator, vertex) -> None:
    job = sim.add_job("vertex_ai", "444", [{"state": "JOB_STATE_RUNNING"}])
    name = f"projects/{P}/locations/{R}/customJobs/444"
    vertex.cancel_custom_job(name=name, **NO_RETRY)
    assert job.actions == ["cancel"]
    assert vertex.get_custom_job(name=name, **NO_RETRY).state.name == "JOB_STATE_CANCELLING"
    sim.inject_fault("grpc_resource_exhausted", service="vertex_ai", job_id="444")
    with pytest.raises(gexc.ResourceExhausted):
        vertex.get_custom_job(name=name, **NO_RETRY)


# ---- the runner ----------------------------------------------------------------------------------


def test_connections_and_env_point_at_the_simulator(sim: Simulator) -> None:
    conns = sim.connections()
    google = conns["google_cloud_default"]
    assert google == {
        "conn_type": "google_cloud_platform",
        "extra": {"project": "sim-project", "api_endpoint": f"http://{sim.grpc_target}"},
    }
    huawei = conns["huaweicloud_default"]
    assert (huawei["conn_type"], huawei["login"], huawei["password"]) == ("huaweicloud", "sim-ak", "sim-sk")
    assert huawei["extra"] == {"region": "cn-north-4", "project_id": "sim-project", "endpoint": sim.http_url}
    assert sim.http_url.startswith("http://127.0.0.1:")
    env = sim.env()
    assert json.loads(env["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"]) == google
    assert json.loads(env["AIRFLOW_CONN_HUAWEICLOUD_DEFAULT"]) == huawei


def test_start_stop_leaves_no_thread_and_frees_the_port() -> None:
    before = {t.ident for t in threading.enumerate()}
    with Simulator(project_id="other", scenarios=[]) as sim:
        target = sim.grpc_target
        sim.add_job("dataproc", "x", [{"state": "DONE"}])
        channel = grpc.insecure_channel(target)
        client = dataproc_v1.JobControllerClient(transport=JobControllerGrpcTransport(channel=channel))
        assert client.get_job(project_id="other", region=R, job_id="x", **NO_RETRY).done
        channel.close()
    assert not sim.running
    leftover = [
        t for t in threading.enumerate() if t.ident not in before and t.name == "airflow-jobstatus-simulator"
    ]
    assert leftover == []
    with pytest.raises(RuntimeError, match="not running"):
        _ = sim.grpc_target


def test_first_vertex_reads_at_once_get_answers_not_an_import_deadlock() -> None:
    """A fresh simulator's Vertex AI job and pipeline servicers import aiplatform's types on their
    first calls, in worker threads; at the same moment they deadlocked on Python's module locks and
    answered UNKNOWN "Unexpected <class '_DeadlockError'>" (8 of 8 fresh simulators in a repro).
    In a fresh process (nothing imported yet) both first reads must be ordinary NOT_FOUNDs."""
    import subprocess
    import sys

    code = """
import threading, grpc
from airflow_jobstatus.simulator import Simulator
with Simulator() as sim:
    ch = grpc.insecure_channel(sim.grpc_target)
    calls = {
        "job": "/google.cloud.aiplatform.v1.JobService/GetBatchPredictionJob",
        "pipeline": "/google.cloud.aiplatform.v1.PipelineService/GetPipelineJob",
    }
    codes = {}
    def read(kind):
        try:
            ch.unary_unary(calls[kind])(b"", timeout=60)
        except grpc.RpcError as err:
            codes[kind] = (err.code().name, err.details()[:120])
    threads = [threading.Thread(target=read, args=(k,)) for k in calls]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print(sorted(codes.items()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    assert "UNKNOWN" not in last and "Unexpected" not in last, last
    assert last.count("'INVALID_ARGUMENT'") + last.count("'NOT_FOUND'") == 2, last
