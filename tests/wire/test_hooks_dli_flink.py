"""The DLI Flink hook over the real wire (requests when sync, aiohttp when async) against the simulator:
every status, the status description and restart count, stop, the active list, every fault kind,
authentication and not-found, the DLI endpoint, and no secret in an error."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from airflow_jobstatus.core.exceptions import (
    AuthenticationError,
    BadRequestError,
    BadResponseError,
    JobNotFoundError,
    ServiceError,
    TransientServiceError,
)
from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.hooks import huawei_async
from airflow_jobstatus.hooks.base import make_hook
from airflow_jobstatus.hooks.dli_flink import DliFlinkJobHook
from airflow_jobstatus.hooks.huawei_config import CONFIGS
from airflow_jobstatus.services import dli_flink
from airflow_jobstatus.services.dli_flink import DliFlinkJobRef
from airflow_jobstatus.simulator import Simulator

PATHS = ("sync", "async")
WRONG_SK = "wrong-secret-key-1234"
SERVICE = "dli_flink"


@pytest.fixture(autouse=True)
def _fresh_config_cache() -> Iterator[None]:
    CONFIGS.clear()
    yield
    CONFIGS.clear()


@pytest_asyncio.fixture(autouse=True, loop_scope="function")
async def _close_sessions() -> AsyncIterator[None]:
    yield
    await huawei_async.aclose_sessions()


async def read(hook: DliFlinkJobHook, path: str, job: DliFlinkJobRef) -> JobStatus:
    return hook.get_status(job) if path == "sync" else await hook.aget_status(job)


async def stop(hook: DliFlinkJobHook, path: str, job: DliFlinkJobRef) -> None:
    if path == "sync":
        hook.cancel(job)
    else:
        await hook.acancel(job)


async def raises(path: str, hook: DliFlinkJobHook, job: DliFlinkJobRef) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        await read(hook, path, job)
    return info.value


def set_conn(monkeypatch: pytest.MonkeyPatch, sim: Simulator, conn_id: str, **changes: Any) -> str:
    conn = json.loads(json.dumps(sim.connections()["huaweicloud_default"]))
    for key, value in changes.items():
        target = conn if key in ("login", "password") else conn["extra"]
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("native", "expected"), sorted(dli_flink.STATES.table.items()))
async def test_every_status(sim: Simulator, path: str, native: str, expected: JobState) -> None:
    sim.add_job(SERVICE, "50320", [{"state": native}])
    status = await read(DliFlinkJobHook(), path, DliFlinkJobRef(50320))  # type: ignore[arg-type]
    assert (status.service, status.job_id, status.native_state, status.state) == (
        SERVICE,
        "50320",
        native,
        expected,
    )


@pytest.mark.parametrize("path", PATHS)
async def test_status_description_and_restart_count(sim: Simulator, path: str) -> None:
    sim.add_job(
        SERVICE,
        "7",
        [{"state": "job_running_exception", "status_desc": "TaskManager lost", "restart_times": 4}],
    )
    status = await read(DliFlinkJobHook(), path, DliFlinkJobRef("7"))
    assert (status.state, status.message, status.counters) == (
        JobState.FAILED,
        "TaskManager lost",
        {"restart_times": 4},
    )
    request = sim.last_request(SERVICE, "7")
    assert request is not None and request["method"] == "ShowFlinkJob"
    assert request["detail"]["path"] == f"/v1.0/{sim.core.project_id}/streaming/jobs/7"


def test_sync_and_async_read_the_same(sim: Simulator) -> None:
    sim.add_job(SERVICE, "8", [{"state": "job_running", "status_desc": "up", "restart_times": 1}])
    hook = DliFlinkJobHook()
    assert hook.get_status(DliFlinkJobRef("8")) == asyncio.run(hook.aget_status(DliFlinkJobRef("8")))
    assert type(make_hook(SERVICE)) is DliFlinkJobHook


@pytest.mark.parametrize("path", PATHS)
async def test_stop_is_the_batch_stop_with_one_job(sim: Simulator, path: str) -> None:
    sim.add_job(SERVICE, "9", [{"state": "job_running"}])
    hook = DliFlinkJobHook()
    await stop(hook, path, DliFlinkJobRef("9"))
    request = sim.last_request(SERVICE, "9")
    assert request is not None and request["method"] == "BatchStopFlinkJobs"
    assert request["detail"]["body"] == {"job_ids": [9], "trigger_savepoint": False}
    assert (await read(hook, path, DliFlinkJobRef("9"))).state is JobState.CANCELLING
    job = sim.get_job(SERVICE, "9")
    assert job is not None and job.actions == ["stop"]


@pytest.mark.parametrize("path", PATHS)
async def test_stop_of_an_ended_job_is_refused(sim: Simulator, path: str) -> None:
    sim.add_job(SERVICE, "10", [{"state": "job_finish"}])
    with pytest.raises(BadRequestError, match=r"did not stop Flink job '10'.*cannot be stopped"):
        await stop(DliFlinkJobHook(), path, DliFlinkJobRef("10"))
    job = sim.get_job(SERVICE, "10")
    assert job is not None and job.actions == []


def test_stop_job_is_cancel_under_dlis_name(sim: Simulator) -> None:
    sim.add_job(SERVICE, "11", [{"state": "job_running"}])
    hook = DliFlinkJobHook()
    hook.stop_job(DliFlinkJobRef("11"))
    asyncio.run(hook.astop_job(DliFlinkJobRef("11")))  # the job is stopping: DLI accepts it again
    assert sim.method_calls(SERVICE) == {"BatchStopFlinkJobs": 2}


def test_the_active_list_reads_every_page_of_the_listed_statuses(sim: Simulator) -> None:
    for i in range(1, 231):
        sim.add_job(SERVICE, str(i), [{"state": "job_running"}])
    for i in range(300, 305):
        sim.add_job(SERVICE, str(i), [{"state": "job_submitting"}])
    for i in range(400, 403):
        sim.add_job(SERVICE, str(i), [{"state": "job_finish"}])
    entries = asyncio.run(DliFlinkJobHook().alist_active(DliFlinkJobRef("1")))
    ids = sorted(int(dli_flink.list_entry_id(e)) for e in entries)
    assert ids == [*range(1, 231), *range(300, 305)]
    assert sim.method_calls(SERVICE) == {"ListFlinkJobs": 4}  # running: 3 pages; submitting: 1
    entry = next(e for e in entries if e["job_id"] == 300)
    assert dli_flink.parse_job(entry, DliFlinkJobRef("300")).state is JobState.PENDING


HTTP_FAULTS = [
    ("http_409", "DLI.0999"),
    ("http_429", "APIGW.0308"),
    ("http_500", "DLI.0999"),
    ("http_502", "APIGW.0202"),
    ("http_503", "DLI.0999"),
    ("http_504", "APIGW.0203"),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("fault", "code"), HTTP_FAULTS)
async def test_http_faults_are_transient(sim: Simulator, path: str, fault: str, code: str) -> None:
    sim.add_job(SERVICE, "12", [{"state": "job_running"}])
    sim.inject_fault(fault, service=SERVICE, job_id="12")
    hook = DliFlinkJobHook()
    err = await raises(path, hook, DliFlinkJobRef("12"))
    assert type(err) is TransientServiceError and err.retryable, err
    assert (err.service, err.job_id, err.code) == (SERVICE, "12", code)
    assert (await read(hook, path, DliFlinkJobRef("12"))).native_state == "job_running"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fault", ["malformed_body", "empty_body"])
async def test_a_garbled_answer_is_a_retryable_bad_response(sim: Simulator, path: str, fault: str) -> None:
    sim.add_job(SERVICE, "13", [{"state": "job_running"}])
    sim.inject_fault(fault, service=SERVICE)
    hook = DliFlinkJobHook()
    err = await raises(path, hook, DliFlinkJobRef("13"))
    assert type(err) is BadResponseError and err.retryable
    assert (await read(hook, path, DliFlinkJobRef("13"))).native_state == "job_running"


@pytest.mark.parametrize("path", PATHS)
async def test_a_dropped_connection_and_latency_are_transient(sim: Simulator, path: str) -> None:
    sim.add_job(SERVICE, "14", [{"state": "job_running"}])
    sim.inject_fault("drop_connection", count=1 if path == "sync" else 2, service=SERVICE)
    hook = DliFlinkJobHook(timeout=0.5)
    err = await raises(path, hook, DliFlinkJobRef("14"))
    assert type(err) is TransientServiceError and err.code == "connection", err
    sim.inject_fault("latency", service=SERVICE, seconds=3)
    err = await raises(path, hook, DliFlinkJobRef("14"))
    assert type(err) is TransientServiceError and err.code == "timeout", err
    sim.inject_fault("latency", service=SERVICE, seconds=0.05)
    assert (await read(hook, path, DliFlinkJobRef("14"))).native_state == "job_running"


@pytest.mark.parametrize("path", PATHS)
async def test_an_unknown_job_is_not_found_with_a_hint(sim: Simulator, path: str) -> None:
    err = await raises(path, DliFlinkJobHook(), DliFlinkJobRef("999"))
    assert isinstance(err, JobNotFoundError) and not err.retryable, err
    assert err.code == "DLI.0002" and "999" in str(err) and "DliJobStatusSensor" in str(err)


@pytest.mark.parametrize("path", PATHS)
async def test_a_wrong_secret_is_an_authentication_error_without_the_secret(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    sim.add_job(SERVICE, "15", [{"state": "job_running"}])
    conn_id = set_conn(monkeypatch, sim, "hw_flink_wrong_sk", password=WRONG_SK)
    with caplog.at_level(logging.DEBUG):
        err = await raises(path, DliFlinkJobHook(conn_id), DliFlinkJobRef("15"))
    assert isinstance(err, AuthenticationError) and err.code == "APIGW.0301", err
    assert err.__context__ is None and err.__cause__ is None
    for text in (str(err), repr(err), json.dumps(err.to_dict()), caplog.text):
        assert WRONG_SK not in text
    assert sim.calls(SERVICE) == 0  # refused at the gateway


@pytest.mark.parametrize("path", PATHS)
async def test_the_calls_go_to_the_dli_endpoint(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, path: str
) -> None:
    """No ``endpoint`` extra: ``dli_endpoint`` serves Flink jobs (there is no ``dli_flink_endpoint``)."""
    sim.add_job(SERVICE, "16", [{"state": "job_running"}])
    conn_id = set_conn(monkeypatch, sim, "hw_flink_dli_only", endpoint=None, dli_endpoint=sim.http_url)
    assert (await read(DliFlinkJobHook(conn_id), path, DliFlinkJobRef("16"))).state is JobState.RUNNING
    other = set_conn(monkeypatch, sim, "hw_flink_region", endpoint=None)
    assert DliFlinkJobHook(other).config.endpoint("dli") == "https://dli.cn-north-4.myhuaweicloud.com"
