"""Google hooks through the real SDK clients against the local simulator: states, errors, clients, secrets."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import sys
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc

from airflow_jobstatus.core.exceptions import (
    AuthenticationError,
    BadRequestError,
    BadResponseError,
    ConfigurationError,
    JobNotFoundError,
    ServiceError,
    TransientServiceError,
)
from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.hooks import gcp
from airflow_jobstatus.hooks.base import make_hook
from airflow_jobstatus.hooks.dataflow import DataflowJobHook
from airflow_jobstatus.hooks.dataproc import DataprocJobHook
from airflow_jobstatus.hooks.gcp import GoogleJobHook
from airflow_jobstatus.hooks.vertex_ai import VertexAIJobHook
from airflow_jobstatus.services import get_service
from airflow_jobstatus.services.base import JobRef
from airflow_jobstatus.services.dataflow import STATES as DATAFLOW_STATES
from airflow_jobstatus.services.dataproc import STATES as DATAPROC_STATES
from airflow_jobstatus.services.dataproc import DataprocJobRef
from airflow_jobstatus.services.vertex_ai import JOB_TYPES
from airflow_jobstatus.services.vertex_ai import STATES as VERTEX_AI_STATES

REGION = "europe-west1"
HOOKS: dict[str, type[GoogleJobHook]] = {
    "dataproc": DataprocJobHook,
    "dataflow": DataflowJobHook,
    "vertex_ai": VertexAIJobHook,
}
WHERE_KEY = {"dataproc": "region", "dataflow": "location", "vertex_ai": "location"}
VERTEX = pytest.mark.skipif(
    importlib.util.find_spec("google.cloud.aiplatform_v1") is None, reason="the vertex extra is not installed"
)
MODES = pytest.mark.parametrize("mode", ["sync", "async"])


@pytest.fixture(autouse=True)
def _fresh_connection_cache() -> Any:
    """Each test reads its connections afresh (the process cache would otherwise carry them over)."""
    gcp.CONNECTIONS.clear()
    yield
    gcp.CONNECTIONS.clear()


def running(service: str) -> str:
    """The service's native name for a running job."""
    return "RUNNING" if service == "dataproc" else "JOB_STATE_RUNNING"


def ref(service: str, job_id: str = "job-1", where: str = REGION, **extra: Any) -> JobRef:
    """The service's typed job reference."""
    return get_service(service).ref({"job_id": job_id, WHERE_KEY[service]: where, **extra})


async def read(hook: GoogleJobHook[Any], mode: str, job_ref: JobRef) -> JobStatus:
    """get_status or aget_status, as the test is parametrized."""
    return hook.get_status(job_ref) if mode == "sync" else await hook.aget_status(job_ref)


async def raises(hook: GoogleJobHook[Any], mode: str, job_ref: JobRef) -> ServiceError:
    """The error get_status or aget_status raises."""
    with pytest.raises(ServiceError) as info:
        await read(hook, mode, job_ref)
    return info.value


async def act(hook: GoogleJobHook[Any], mode: str, action: str, job_ref: JobRef) -> Any:
    """cancel/drain or their async twins."""
    if mode == "sync":
        return getattr(hook, action)(job_ref)
    return await getattr(hook, f"a{action}")(job_ref)


def _state_cases() -> list[Any]:
    cases = []
    for service, table in (("dataproc", DATAPROC_STATES), ("dataflow", DATAFLOW_STATES)):
        cases += [pytest.param(service, n, s, id=f"{service}-{n}") for n, s in table.table.items()]
    cases += [
        pytest.param("vertex_ai", n, s, id=f"vertex_ai-{n}", marks=VERTEX)
        for n, s in VERTEX_AI_STATES.table.items()
    ]
    return cases


# --- states -----------------------------------------------------------------------------------------


@MODES
@pytest.mark.parametrize(("service", "native", "expected"), _state_cases())
async def test_every_native_state(sim, service: str, native: str, expected: JobState, mode: str) -> None:
    sim.add_job(service, "job-1", [{"state": native}])
    status = await read(make_hook(service), mode, ref(service))
    assert (status.service, status.job_id, status.native_state, status.state) == (
        service,
        "job-1",
        native,
        expected,
    )


@VERTEX
@MODES
@pytest.mark.parametrize("job_type", list(JOB_TYPES))
async def test_vertex_job_types(sim, job_type: str, mode: str) -> None:
    sim.add_job("vertex_ai", "v-1", [{"state": "JOB_STATE_RUNNING"}], job_type=job_type)
    status = await read(VertexAIJobHook(), mode, ref("vertex_ai", "v-1", job_type=job_type))
    assert status.state is JobState.RUNNING
    other = next(t for t in JOB_TYPES if t != job_type)
    with pytest.raises(JobNotFoundError, match=other):
        await read(VertexAIJobHook(), mode, ref("vertex_ai", "v-1", job_type=other))


@MODES
@pytest.mark.parametrize(
    ("substate", "expected_state", "expected_substate"),
    [
        (None, JobState.RUNNING, None),
        ("UNSPECIFIED", JobState.RUNNING, None),
        ("SUBMITTED", JobState.RUNNING, "SUBMITTED"),
        ("QUEUED", JobState.QUEUED, "QUEUED"),
        ("STALE_STATUS", JobState.RUNNING, "STALE_STATUS"),
    ],
)
async def test_dataproc_substates(sim, substate, expected_state, expected_substate, mode: str) -> None:
    phase = {"state": "RUNNING", "details": "Waiting for the cluster's memory"}
    if substate:
        phase["substate"] = substate
    sim.add_job("dataproc", "job-1", [phase])
    status = await read(DataprocJobHook(), mode, ref("dataproc"))
    assert (status.state, status.substate) == (expected_state, expected_substate)
    assert status.message == "Waiting for the cluster's memory"


@MODES
async def test_dataproc_error_details_become_the_message(sim, mode: str) -> None:
    sim.add_job("dataproc", "job-1", [{"state": "ERROR", "details": "Google Cloud Dataproc Agent: exit 1"}])
    status = await read(DataprocJobHook(), mode, ref("dataproc"))
    assert status.state is JobState.FAILED
    assert status.message == "Google Cloud Dataproc Agent: exit 1"


@VERTEX
@MODES
async def test_vertex_error_message(sim, mode: str) -> None:
    sim.add_job(
        "vertex_ai", "v-1", [{"state": "JOB_STATE_FAILED", "error": "Replica workerpool0-0 exited 1"}]
    )
    sim.add_job("vertex_ai", "v-2", [{"state": "JOB_STATE_SUCCEEDED"}])
    failed = await read(VertexAIJobHook(), mode, ref("vertex_ai", "v-1"))
    ok = await read(VertexAIJobHook(), mode, ref("vertex_ai", "v-2"))
    assert (failed.state, failed.message) == (JobState.FAILED, "Replica workerpool0-0 exited 1")
    assert (ok.state, ok.message) == (JobState.SUCCEEDED, None)


@MODES
@pytest.mark.parametrize(
    "service", ["dataproc", "dataflow", pytest.param("vertex_ai", marks=VERTEX)], ids=str
)
async def test_unknown_integer_state_is_unknown_and_warned_once(sim, service, mode, caplog) -> None:
    value = {"dataproc": 90, "dataflow": 91, "vertex_ai": 92}[service] + (0 if mode == "sync" else 5)
    sim.add_job(service, "job-1", [{"state": value}])
    hook = make_hook(service)
    with caplog.at_level(logging.WARNING, logger="airflow_jobstatus"):
        first = await read(hook, mode, ref(service))
        second = await read(hook, mode, ref(service))
    assert first.state is second.state is JobState.UNKNOWN
    assert first.native_state == str(value)
    assert sum(f"'{value}'" in r.getMessage() for r in caplog.records) == 1


# --- errors -----------------------------------------------------------------------------------------


@MODES
@pytest.mark.parametrize(
    ("fault", "expected", "code"),
    [
        ("grpc_unavailable", TransientServiceError, "UNAVAILABLE"),
        ("grpc_resource_exhausted", TransientServiceError, "RESOURCE_EXHAUSTED"),
        ("grpc_deadline_exceeded", TransientServiceError, "DEADLINE_EXCEEDED"),
        ("drop_connection", TransientServiceError, "UNAVAILABLE"),
        ("malformed_body", BadResponseError, None),
    ],
)
@pytest.mark.parametrize("service", ["dataproc", "dataflow", pytest.param("vertex_ai", marks=VERTEX)])
async def test_faults_are_classified(sim, service, fault, expected, code, mode) -> None:
    sim.add_job(service, "job-1", [{"state": running(service)}])
    sim.inject_fault(fault, count=1, service=service)
    hook = make_hook(service)
    with pytest.raises(expected) as info:
        await read(hook, mode, ref(service))
    err = info.value
    assert (err.service, err.job_id) == (service, "job-1")
    if code:  # the service's own code and message are kept
        assert err.code == code
    if fault == "grpc_resource_exhausted":
        assert "Quota exceeded" in str(err)
    # one call only (retry=None: the SDK's default retry would have retried UNAVAILABLE), then it works
    assert sim.calls(service, "job-1") == 1
    assert (await read(hook, mode, ref(service))).state is JobState.RUNNING


@MODES
async def test_timeout_is_passed_and_transient(sim, mode) -> None:
    sim.add_job("dataproc", "job-1", [{"state": "RUNNING"}])
    sim.inject_fault("latency", count=1, service="dataproc", seconds=3)
    with pytest.raises(TransientServiceError) as info:
        await read(DataprocJobHook(timeout=0.3), mode, ref("dataproc"))
    assert info.value.code == "DEADLINE_EXCEEDED"


@MODES
@pytest.mark.parametrize("service", ["dataproc", "dataflow", pytest.param("vertex_ai", marks=VERTEX)])
async def test_unknown_job_is_not_found_naming_job_and_place(sim, service, mode) -> None:
    with pytest.raises(JobNotFoundError) as info:
        await read(make_hook(service), mode, ref(service, "no-such-job"))
    text = str(info.value)
    assert "no-such-job" in text and "sim-project" in text and REGION in text
    assert info.value.code == "NOT_FOUND"
    assert info.value.job_id == "no-such-job"


@MODES
@pytest.mark.parametrize("service", ["dataproc", "dataflow", pytest.param("vertex_ai", marks=VERTEX)])
async def test_wrong_region_is_not_found_naming_the_region(sim, service, mode) -> None:
    sim.add_job(service, "job-1", [{"state": running(service)}])
    with pytest.raises(JobNotFoundError, match="us-east4"):
        await read(make_hook(service), mode, ref(service, where="us-east4"))


@MODES
async def test_project_id_argument_overrides_the_connection(sim, mode) -> None:
    sim.add_job("dataproc", "job-1", [{"state": "DONE"}], project_id="other-project")
    with pytest.raises(JobNotFoundError, match="sim-project"):
        await read(DataprocJobHook(), mode, ref("dataproc"))
    status = await read(DataprocJobHook(), mode, ref("dataproc", project_id="other-project"))
    assert status.state is JobState.SUCCEEDED


@MODES
async def test_bad_requests(sim, mode) -> None:
    sim.add_job("dataproc", "done", [{"state": "DONE"}])
    with pytest.raises(BadRequestError) as info:  # FAILED_PRECONDITION: a finished job cannot be cancelled
        await act(DataprocJobHook(), mode, "cancel", ref("dataproc", "done"))
    assert info.value.code == "FAILED_PRECONDITION"


@VERTEX
@MODES
async def test_vertex_invalid_argument_is_a_bad_request(sim, mode) -> None:
    with pytest.raises(BadRequestError) as info:  # a '/' in the id makes an invalid resource name
        await read(VertexAIJobHook(), mode, ref("vertex_ai", "a/b"))
    assert info.value.code == "INVALID_ARGUMENT"


def _aio_error(code: grpc.StatusCode, details: str) -> grpc.RpcError:
    """A raw gRPC error, as grpc.aio raises it before google.api_core wraps it."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


@pytest.mark.parametrize(
    ("error", "expected", "code"),
    [
        (gexc.ServiceUnavailable("down"), TransientServiceError, "UNAVAILABLE"),
        (gexc.TooManyRequests("slow down"), TransientServiceError, 429),
        (gexc.ResourceExhausted("quota"), TransientServiceError, "RESOURCE_EXHAUSTED"),
        (gexc.DeadlineExceeded("late"), TransientServiceError, "DEADLINE_EXCEEDED"),
        (gexc.InternalServerError("oops"), TransientServiceError, "INTERNAL"),
        (gexc.BadGateway("bad gateway"), TransientServiceError, 502),
        (gexc.GatewayTimeout("gateway timeout"), TransientServiceError, 504),
        (gexc.Unauthenticated("who are you"), AuthenticationError, "UNAUTHENTICATED"),
        (gexc.PermissionDenied("no"), AuthenticationError, "PERMISSION_DENIED"),
        (gexc.NotFound("gone"), JobNotFoundError, "NOT_FOUND"),
        (gexc.InvalidArgument("bad"), BadRequestError, "INVALID_ARGUMENT"),
        (gexc.FailedPrecondition("state"), BadRequestError, "FAILED_PRECONDITION"),
        (gexc.Conflict("conflict"), BadRequestError, 409),  # 409 without ABORTED: e.g. already exists
        (gexc.Aborted("aborted, retry"), TransientServiceError, "ABORTED"),
        (_aio_error(grpc.StatusCode.ABORTED, "try again"), TransientServiceError, "ABORTED"),
        (_aio_error(grpc.StatusCode.UNAVAILABLE, "down"), TransientServiceError, "UNAVAILABLE"),
        (_aio_error(grpc.StatusCode.UNAUTHENTICATED, "token"), AuthenticationError, "UNAUTHENTICATED"),
        (_aio_error(grpc.StatusCode.PERMISSION_DENIED, "iam"), AuthenticationError, "PERMISSION_DENIED"),
        (_aio_error(grpc.StatusCode.NOT_FOUND, "gone"), JobNotFoundError, "NOT_FOUND"),
        (_aio_error(grpc.StatusCode.INVALID_ARGUMENT, "bad"), BadRequestError, "INVALID_ARGUMENT"),
        (
            _aio_error(grpc.StatusCode.INTERNAL, "Exception deserializing response!"),
            BadResponseError,
            "INTERNAL",
        ),
        (ConnectionResetError("Connection reset by peer"), TransientServiceError, None),
        (TimeoutError("timed out"), TransientServiceError, None),
        (RuntimeError("surprise"), ServiceError, None),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_error_classification(error, expected, code) -> None:
    """Kinds the simulator cannot produce over the wire (auth, other 4xx/5xx), api_core and raw gRPC."""
    err = gcp.to_service_error(error, service="dataproc", job_id="j", where="project 'p', region 'r'")
    assert type(err) is expected
    assert (err.service, err.job_id, err.code) == ("dataproc", "j", code)
    assert "project 'p', region 'r'" in err.message


# --- cancel, drain, submit --------------------------------------------------------------------------


@MODES
async def test_dataproc_cancel(sim, mode) -> None:
    sim.add_job("dataproc", "job-1", [{"state": "RUNNING"}])
    await act(DataprocJobHook(), mode, "cancel", ref("dataproc"))
    assert sim.get_job("dataproc", "job-1").actions == ["cancel"]
    assert (await read(DataprocJobHook(), mode, ref("dataproc"))).state is JobState.CANCELLING


@MODES
@pytest.mark.parametrize(("action", "state"), [("cancel", JobState.CANCELLING), ("drain", JobState.DRAINING)])
async def test_dataflow_cancel_and_drain(sim, action, state, mode) -> None:
    sim.add_job("dataflow", "job-1", [{"state": "JOB_STATE_RUNNING"}])
    await act(DataflowJobHook(), mode, action, ref("dataflow"))
    assert sim.get_job("dataflow", "job-1").actions == [action]
    assert (await read(DataflowJobHook(), mode, ref("dataflow"))).state is state


@VERTEX
@MODES
async def test_vertex_cancel(sim, mode) -> None:
    sim.add_job("vertex_ai", "v-1", [{"state": "JOB_STATE_RUNNING"}], job_type="batch_prediction_job")
    job_ref = ref("vertex_ai", "v-1", job_type="batch_prediction_job")
    await act(VertexAIJobHook(), mode, "cancel", job_ref)
    assert sim.get_job("vertex_ai", "v-1", job_type="batch_prediction_job").actions == ["cancel"]
    assert (await read(VertexAIJobHook(), mode, job_ref)).state is JobState.CANCELLING


def test_dataproc_submit_job(sim) -> None:
    hook = DataprocJobHook()
    job = {"placement": {"cluster_name": "c"}, "pyspark_job": {"main_python_file_uri": "gs://b/main.py"}}
    job_id = hook.submit_job(job, region=REGION)
    assert sim.get_job("dataproc", job_id, region=REGION) is not None
    assert hook.get_status(DataprocJobRef(job_id, REGION)).job_id == job_id


# --- clients ----------------------------------------------------------------------------------------


def counting(monkeypatch, name: str) -> list[Any]:
    """Each call of ``gcp.<name>`` (a client or channel builder), recorded; the builder still runs."""
    calls: list[Any] = []
    original = getattr(gcp, name)

    def spy(*args: Any) -> Any:
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(gcp, name, spy)
    return calls


def test_sync_client_built_once_per_hook(sim, monkeypatch) -> None:
    sim.add_job("dataproc", "job-1", [{"state": "RUNNING"}])
    built = counting(monkeypatch, "_new_sync_client")
    hook = DataprocJobHook()
    for _ in range(5):
        hook.get_status(ref("dataproc"))
    assert len(built) == 1
    assert sim.calls("dataproc", "job-1") == 5
    hook.close()
    assert hook._sync_clients is None


def test_a_hook_used_as_a_context_manager_closes_its_clients(sim) -> None:
    sim.add_job("dataproc", "job-1", [{"state": "RUNNING"}])
    with DataprocJobHook() as hook:
        hook.get_status(ref("dataproc"))
        assert hook._sync_clients
    assert hook._sync_clients is None


async def test_async_clients_shared_one_channel_per_loop(sim, monkeypatch) -> None:
    channels = counting(monkeypatch, "_new_async_channel")
    for service in HOOKS:
        sim.add_job(service, "job-1", [{"state": running(service)}])
    services = ["dataproc", "dataflow"] + (
        ["vertex_ai"] if importlib.util.find_spec("google.cloud.aiplatform_v1") else []
    )

    async def poll_many() -> dict[str, int]:
        hooks = [make_hook(s) for s in services for _ in range(10)]
        for _ in range(3):
            statuses = await asyncio.gather(*(h.aget_status(ref(h.service)) for h in hooks))
            assert {s.state for s in statuses} == {JobState.RUNNING}
        return {"channels": len(gcp._CHANNELS.values()), "clients": len(gcp._CLIENTS.values())}

    info = await poll_many()
    assert len(channels) == 1
    assert (info["channels"], info["clients"]) == (1, len(services))

    # another event loop (another thread) gets its own channel: grpc.aio channels are loop-bound
    other = await asyncio.to_thread(asyncio.run, poll_many())
    assert (other["channels"], other["clients"]) == (1, len(services))
    assert len(channels) == 2
    # ours is kept: polling again in this loop builds nothing new
    assert (await poll_many())["channels"] == 1
    assert len(channels) == 2
    await gcp.aclose_shared_clients()
    assert (len(gcp._CHANNELS.values()), len(gcp._CLIENTS.values())) == (0, 0)


async def test_async_path_reads_the_connection_once_without_blocking(sim, monkeypatch) -> None:
    sim.add_job("dataproc", "job-1", [{"state": "RUNNING"}])
    fetched = []
    original = DataprocJobHook.aget_connection

    async def counting(conn_id: str):
        fetched.append(conn_id)
        return await original(conn_id)

    def blocking(conn_id: str):
        raise AssertionError("the sync get_connection was called on the async path")

    monkeypatch.setattr(DataprocJobHook, "aget_connection", staticmethod(counting))
    monkeypatch.setattr(DataprocJobHook, "get_connection", staticmethod(blocking))
    hook = DataprocJobHook()
    for _ in range(3):
        await hook.aget_status(ref("dataproc"))
    assert fetched == ["google_cloud_default"]


def test_connection_read_once_per_process_for_many_sync_hooks(sim) -> None:
    sim.add_job("dataproc", "job-1", [{"state": "RUNNING"}])
    before = gcp.CONNECTIONS.reads
    for _ in range(5):
        hook = DataprocJobHook()
        hook.get_status(ref("dataproc"))
        hook.console_scope()
        hook.close()
    assert gcp.CONNECTIONS.reads == before + 1


async def test_connection_read_once_for_many_concurrent_async_hooks(sim, monkeypatch) -> None:
    """Like thousands of triggers on one connection starting together: one read, shared."""
    fetched = []
    original = DataprocJobHook.aget_connection

    async def counting(conn_id: str):
        fetched.append(conn_id)
        await asyncio.sleep(0.05)  # a read takes a while (an IPC round trip in a triggerer)
        return await original(conn_id)

    monkeypatch.setattr(DataprocJobHook, "aget_connection", staticmethod(counting))
    services = ["dataproc", "dataflow"]
    for service in services:
        sim.add_job(service, "job-1", [{"state": running(service)}])
    hooks = [HOOKS[s]() for s in services for _ in range(50)]
    statuses = await asyncio.gather(*(h.aget_status(ref(h.service)) for h in hooks))
    assert {s.state for s in statuses} == {JobState.RUNNING}
    assert fetched == ["google_cloud_default"]
    await DataflowJobHook().aget_status(ref("dataflow"))
    assert fetched == ["google_cloud_default"]
    await gcp.aclose_shared_clients()


@MODES
async def test_connection_reread_after_the_ttl(sim, monkeypatch, mode) -> None:
    sim.add_job("dataproc", "job-1", [{"state": "RUNNING"}])
    monkeypatch.setattr(gcp.CONNECTIONS, "ttl", 0.0)
    before = gcp.CONNECTIONS.reads
    hook = DataprocJobHook()
    for _ in range(3):
        await read(hook, mode, ref("dataproc"))
    assert gcp.CONNECTIONS.reads == before + 3
    if mode == "async":
        await gcp.aclose_shared_clients()


@MODES
async def test_a_changed_environment_connection_is_read_again(sim, monkeypatch, mode) -> None:
    sim.add_job("dataproc", "job-1", [{"state": "RUNNING"}])
    conn = json.loads(sim.env()["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"])
    hook = DataprocJobHook()
    await read(hook, mode, ref("dataproc"))
    before = gcp.CONNECTIONS.reads
    conn["extra"]["project"] = "another-project"
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(conn))
    assert isinstance(await raises(hook, mode, ref("dataproc")), JobNotFoundError)  # not in that project
    assert gcp.CONNECTIONS.reads == before + 1
    if mode == "async":
        await gcp.aclose_shared_clients()


@MODES
async def test_authentication_error_drops_the_cached_connection(sim, monkeypatch, mode) -> None:
    from google.cloud.dataproc_v1.services.job_controller import JobControllerAsyncClient, JobControllerClient

    sim.add_job("dataproc", "job-1", [{"state": "RUNNING"}])
    hook = DataprocJobHook()
    await read(hook, mode, ref("dataproc"))
    before = gcp.CONNECTIONS.reads

    def denied(*args: Any, **kwargs: Any) -> Any:
        raise gexc.PermissionDenied("the caller does not have permission")

    async def adenied(*args: Any, **kwargs: Any) -> Any:
        denied()

    with monkeypatch.context() as patch:
        patch.setattr(JobControllerClient, "get_job", denied)
        patch.setattr(JobControllerAsyncClient, "get_job", adenied)
        assert isinstance(await raises(hook, mode, ref("dataproc")), AuthenticationError)
    assert gcp.CONNECTIONS.reads == before  # the failing call used the cached connection
    await read(hook, mode, ref("dataproc"))
    assert gcp.CONNECTIONS.reads == before + 1  # … and the next one read it again
    if mode == "async":
        await gcp.aclose_shared_clients()


# --- configuration ----------------------------------------------------------------------------------


def _set_conn(monkeypatch, conn_id: str, extra: dict[str, Any]) -> None:
    payload = {"conn_type": "google_cloud_platform", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(payload))


def test_hook_contract() -> None:
    hook = make_hook("dataproc", "my_gcp", timeout=5)
    assert isinstance(hook, DataprocJobHook)
    assert (hook.gcp_conn_id, hook.timeout) == ("my_gcp", 5.0)
    for cls, service in (
        (DataprocJobHook, "dataproc"),
        (DataflowJobHook, "dataflow"),
        (VertexAIJobHook, "vertex_ai"),
    ):
        assert (cls.service, cls.conn_name_attr, cls.default_conn_name, cls.conn_type) == (
            service,
            "gcp_conn_id",
            "google_cloud_default",
            "google_cloud_platform",
        )
        assert cls().conn_id == "google_cloud_default"


def test_no_project_anywhere_is_a_configuration_error(monkeypatch) -> None:
    _set_conn(monkeypatch, "gcp_noproject", {"api_endpoint": "http://127.0.0.1:1"})
    with pytest.raises(ConfigurationError, match="project"):
        DataprocJobHook("gcp_noproject").get_status(ref("dataproc", "j"))


def test_missing_connection_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="gcp_not_defined"):
        DataflowJobHook("gcp_not_defined").get_status(ref("dataflow", "j"))


async def test_bad_vertex_job_type_lists_the_valid_ones(sim) -> None:
    with pytest.raises(
        ConfigurationError, match="custom_job, batch_prediction_job, hyperparameter_tuning_job"
    ):
        await VertexAIJobHook().aget_status(ref("vertex_ai", "v", job_type="pipeline_job"))


def test_vertex_extra_missing(sim, monkeypatch) -> None:
    # google-cloud-aiplatform is installed in this venv and cannot be uninstalled for one test, so hiding
    # it from the import system (a None entry in sys.modules makes ``import`` raise ImportError) is the
    # only way to exercise the "extra not installed" branch.
    for name in ("google.cloud.aiplatform_v1", "google.cloud.aiplatform_v1.services.job_service"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ConfigurationError, match=r"pip install 'airflow-jobstatus\[vertex\]'"):
        VertexAIJobHook().get_status(ref("vertex_ai", "v"))


@pytest.mark.parametrize(
    ("value", "target", "plaintext"),
    [
        (None, "europe-west1-dataproc.googleapis.com:443", False),
        ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
        ("127.0.0.1:8443", "127.0.0.1:8443", False),
        ("https://private.googleapis.com", "private.googleapis.com:443", False),
    ],
)
def test_endpoint_resolution(value, target, plaintext) -> None:
    endpoint = gcp.resolve_endpoint(value, "europe-west1-dataproc.googleapis.com:443")
    assert (endpoint.target, endpoint.plaintext) == (target, plaintext)


def test_connection_extras_plain_and_prefixed() -> None:
    prefixed = {
        "extra__google_cloud_platform__project": "p1",
        "extra__google_cloud_platform__scope": "https://a, https://b",
        "extra__google_cloud_platform__impersonation_chain": "a@x.iam, b@x.iam",
        "extra__google_cloud_platform__key_path": "/keys/k.json",
    }
    conn = gcp.parse_connection("c", "google_cloud_platform", prefixed)
    assert (conn.project_id, conn.scopes, conn.impersonation_chain, conn.key_path) == (
        "p1",
        ("https://a", "https://b"),
        ("a@x.iam", "b@x.iam"),
        "/keys/k.json",
    )
    plain = gcp.parse_connection("c", None, {"project": "p2", "impersonation_chain": ["a@x.iam"]})
    assert (plain.project_id, plain.scopes, plain.impersonation_chain) == (
        "p2",
        (gcp.CLOUD_PLATFORM_SCOPE,),
        ("a@x.iam",),
    )
    assert plain.project("override") == "override"
    assert plain.credentials_id != conn.credentials_id


# --- secrets ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service_account_info() -> dict[str, str]:
    """A fake service-account key with a freshly generated RSA key (never sent anywhere)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "keyed-project",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem,
        "client_email": "airflow@keyed-project.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def _key_body(info: dict[str, str]) -> str:
    """A line from the middle of the private key: what must never show up anywhere."""
    return info["private_key"].splitlines()[5]


@MODES
async def test_private_key_never_in_errors_reprs_or_logs(
    monkeypatch, caplog, service_account_info, mode
) -> None:
    from airflow.sdk.log import redact

    # TLS to a closed local port: the key is loaded and signs a self-signed JWT locally, no network call
    extra = {"keyfile_dict": json.dumps(service_account_info), "project": "p", "api_endpoint": "127.0.0.1:1"}
    _set_conn(monkeypatch, "gcp_keyed", extra)
    hook = DataprocJobHook("gcp_keyed", timeout=5)
    secret = _key_body(service_account_info)
    with caplog.at_level(logging.DEBUG), pytest.raises(TransientServiceError) as info:
        await read(hook, mode, ref("dataproc"))
    conn = hook._conn
    assert conn is not None and conn.keyfile_dict is not None
    seen = [
        str(info.value),
        repr(info.value),
        json.dumps(info.value.to_dict()),
        repr(hook),
        repr(conn),
        caplog.text,
    ]
    assert not [text for text in seen if secret in text or "PRIVATE KEY" in text]
    assert redact(service_account_info["private_key"]) == "***"  # registered with the secrets masker
    if mode == "async":
        await gcp.aclose_shared_clients()


def test_bad_keys_never_quoted(monkeypatch, service_account_info) -> None:
    secret = _key_body(service_account_info)
    broken_json = json.dumps(service_account_info)[:-10]
    _set_conn(monkeypatch, "gcp_broken", {"keyfile_dict": broken_json, "project": "p"})
    with pytest.raises(ConfigurationError) as info:
        DataprocJobHook("gcp_broken").get_status(ref("dataproc", "j"))
    assert secret not in str(info.value) and "keyfile_dict" in str(info.value)

    bad_key = {**service_account_info, "private_key": service_account_info["private_key"].replace("M", "#")}
    _set_conn(
        monkeypatch, "gcp_badkey", {"keyfile_dict": bad_key, "project": "p", "api_endpoint": "127.0.0.1:1"}
    )
    with pytest.raises(ConfigurationError) as info:
        DataprocJobHook("gcp_badkey").get_status(ref("dataproc", "j"))
    assert _key_body(bad_key) not in str(info.value)


def test_impersonation_chain_wraps_the_key(service_account_info) -> None:
    from google.auth import impersonated_credentials

    extra = {"keyfile_dict": service_account_info, "impersonation_chain": "mid@x.iam, target@x.iam"}
    creds = gcp.build_credentials(gcp.parse_connection("c", None, extra))
    assert isinstance(creds, impersonated_credentials.Credentials)
    assert creds.service_account_email == "target@x.iam"
