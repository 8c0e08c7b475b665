"""CDM and DLI hooks over the real wire (requests when sync, aiohttp when async) against the simulator.

The response handler's rules for answers the simulator does not produce (yet) are unit tests in
``tests/test_huawei_transport.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

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
from airflow_jobstatus.hooks import huawei_async, huawei_signer
from airflow_jobstatus.hooks.base import make_hook
from airflow_jobstatus.hooks.cdm import CdmJobHook
from airflow_jobstatus.hooks.dli import DliJobHook
from airflow_jobstatus.hooks.huawei_config import CONFIGS, HuaweiConfig
from airflow_jobstatus.hooks.huaweicloud import HuaweiCloudHook
from airflow_jobstatus.services import cdm, dli
from airflow_jobstatus.services.cdm import CdmJobRef
from airflow_jobstatus.services.dli import DliJobRef
from airflow_jobstatus.simulator import Simulator

PATHS = ("sync", "async")
CLUSTER = "sim-cluster"
WRONG_SK = "wrong-secret-key-1234"
TOKEN = "temporary-security-token-5678"


@pytest.fixture(autouse=True)
def _fresh_config_cache() -> Iterator[None]:
    CONFIGS.clear()
    yield
    CONFIGS.clear()


@pytest_asyncio.fixture(autouse=True, loop_scope="function")
async def _close_sessions() -> AsyncIterator[None]:
    """Close the aiohttp sessions the test's loop made (they live as long as their loop otherwise)."""
    yield
    await huawei_async.aclose_sessions()


def ref(service: str, job_id: str, job_type: str = "sql") -> Any:
    return CdmJobRef(CLUSTER, job_id) if service == "cdm" else DliJobRef(job_id, job_type)


def hook_for(service: str, conn_id: str | None = None, **kwargs: Any) -> Any:
    return (CdmJobHook if service == "cdm" else DliJobHook)(conn_id, **kwargs)


async def read(hook: Any, path: str, job: Any) -> JobStatus:
    """One reading through the sync (requests) or the async (aiohttp) path."""
    status: JobStatus = hook.get_status(job) if path == "sync" else await hook.aget_status(job)
    return status


async def cancel(hook: Any, path: str, job: Any) -> None:
    if path == "sync":
        hook.cancel(job)
    else:
        await hook.acancel(job)


async def raises(path: str, hook: Any, job: Any) -> Any:
    """The error one reading raises."""
    with pytest.raises((ServiceError, ConfigurationError)) as info:
        await read(hook, path, job)
    return info.value


def set_conn(monkeypatch: pytest.MonkeyPatch, sim: Simulator, conn_id: str, **changes: Any) -> str:
    """Add connection ``conn_id``: the simulator's Huawei connection with fields/extras changed (None drops)."""
    conn = json.loads(json.dumps(sim.connections()["huaweicloud_default"]))
    extra = conn["extra"]
    for key, value in changes.items():
        target = conn if key in ("login", "password") else extra
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def error_chain(err: BaseException) -> list[BaseException]:
    """``err`` and every exception reachable through __context__/__cause__."""
    found: list[BaseException] = []
    stack: list[BaseException | None] = [err]
    while stack:
        current = stack.pop()
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        stack += [current.__context__, current.__cause__]
    return found


def texts_of(err: BaseException) -> str:
    parts = []
    for e in error_chain(err):
        parts += [str(e), repr(e), repr(e.args)]
        if isinstance(e, ServiceError):
            parts.append(json.dumps(e.to_dict()))
    return "\n".join(parts)


# ---- states: every native value, both paths ------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("native", "expected"), sorted(cdm.STATES.table.items()))
async def test_cdm_every_native_state(sim: Simulator, path: str, native: str, expected: JobState) -> None:
    sim.add_job("cdm", "job-a", [{"state": native, "progress": 40}])
    status = await read(CdmJobHook(), path, ref("cdm", "job-a"))
    assert (status.state, status.native_state) == (expected, native)
    assert (status.service, status.job_id) == ("cdm", f"{CLUSTER}/job-a")
    assert status.progress == pytest.approx(0.4)


@pytest.mark.parametrize("path", PATHS)
async def test_cdm_job_never_started_is_pending(sim: Simulator, path: str) -> None:
    sim.core.define_cdm_job("never-run", CLUSTER)  # served as one NEVER_EXECUTED entry
    status = await read(CdmJobHook(), path, ref("cdm", "never-run"))
    assert (status.state, status.native_state) == (JobState.PENDING, "NEVER_EXECUTED")


@pytest.mark.parametrize("path", PATHS)
async def test_cdm_counters_progress_and_message(sim: Simulator, path: str) -> None:
    counters = {key: i * 10 + 1 for i, key in enumerate(cdm.COUNTER_KEYS)}
    sim.add_job("cdm", "ok", [{"state": "SUCCEEDED", "progress": 100, "counters": counters}])
    done = await read(CdmJobHook(), path, ref("cdm", "ok"))
    assert done.counters == counters
    assert done.progress == pytest.approx(1.0)

    failure = {
        "state": "FAILED",
        "progress": -1,
        "error_summary": "copy failed",
        "error_details": "table gone",
    }
    sim.add_job("cdm", "bad", [failure])
    failed = await read(CdmJobHook(), path, ref("cdm", "bad"))
    assert failed.state == JobState.FAILED
    assert failed.progress is None
    assert "copy failed" in (failed.message or "") and "table gone" in (failed.message or "")


@pytest.mark.parametrize("path", PATHS)
async def test_cdm_reads_the_latest_submission(sim: Simulator, path: str) -> None:
    sim.add_job("cdm", "again", [{"state": "FAILED", "progress": -1}])
    sim.add_job("cdm", "again", [{"state": "RUNNING", "progress": 25}])
    status = await read(CdmJobHook(), path, ref("cdm", "again"))
    assert status.native_state == "RUNNING"
    assert status.progress == pytest.approx(0.25)


@pytest.mark.parametrize("path", PATHS)
async def test_names_that_need_quoting_are_signed_and_routed(sim: Simulator, path: str) -> None:
    """A space and a slash in a job name stay one quoted path segment, and the signature still holds."""
    sim.add_job("cdm", "daily load/2026 #1", [{"state": "RUNNING", "progress": 10}])
    status = await read(CdmJobHook(), path, ref("cdm", "daily load/2026 #1"))
    assert (status.native_state, status.job_id) == ("RUNNING", f"{CLUSTER}/daily load/2026 #1")


SUB_JOB = {
    "id": 3,
    "name": "runJob at FileFormatWriter.scala:266",
    "description": "insert into t",
    "submission_time": "Mon Jul 27 17:24:03 CST 2020",
    "stage_ids": [4, 5],
    "job_group": "grp",
    "status": "RUNNING",
    "num_tasks": 10,
    "num_active_tasks": 2,
    "num_completed_tasks": 7,
    "num_skipped_tasks": 0,
    "num_failed_tasks": 1,
    "num_killed_tasks": 0,
    "num_completed_indices": 7,
    "num_active_stages": 1,
    "num_completed_stages": 1,
    "num_skipped_stages": 0,
    "num_failed_stages": 0,
    "killed_tasks_summary": {"stage cancelled": 2},
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("native", "expected"), sorted(dli.SQL_STATES.table.items()))
async def test_dli_sql_every_native_state(sim: Simulator, path: str, native: str, expected: JobState) -> None:
    sim.add_job("dli", "sql-1", [{"state": native, "progress": 0.5}])
    status = await read(DliJobHook(), path, ref("dli", "sql-1"))
    assert (status.state, status.native_state, status.job_id) == (expected, native, "sql-1")
    assert status.progress == pytest.approx(0.5)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("native", "expected"), sorted(dli.SPARK_STATES.table.items()))
async def test_dli_spark_every_native_state(
    sim: Simulator, path: str, native: str, expected: JobState
) -> None:
    sim.add_job("dli", "batch-1", [{"state": native}], job_type="spark")
    status = await read(DliJobHook(), path, ref("dli", "batch-1", "spark"))
    assert (status.state, status.native_state, status.job_id) == (expected, native, "batch-1")


@pytest.mark.parametrize("path", PATHS)
async def test_dli_sql_progress_sub_jobs_and_message(sim: Simulator, path: str) -> None:
    timeline = [{"state": "RUNNING", "progress": 0.7, "sub_jobs": [SUB_JOB], "message": "busy queue"}]
    sim.add_job("dli", "sql-2", timeline)
    status = await read(DliJobHook(), path, ref("dli", "sql-2"))
    assert status.progress == pytest.approx(0.7)
    assert status.message == "busy queue"
    assert status.sub_jobs == [SUB_JOB]
    json.dumps(status.to_dict())  # plain JSON types only


@pytest.mark.parametrize(
    ("service", "timeline"),
    [
        ("cdm", [{"state": "RUNNING", "progress": 60, "counters": {"rows_read": 5}}]),
        ("dli", [{"state": "RUNNING", "progress": 0.3, "sub_jobs": [SUB_JOB]}]),
    ],
)
async def test_sync_and_async_give_the_same_status(sim: Simulator, service: str, timeline: list[Any]) -> None:
    sim.add_job(service, "p", timeline)
    hook = hook_for(service)
    assert (
        hook.get_status(ref(service, "p")).to_dict() == (await hook.aget_status(ref(service, "p"))).to_dict()
    )


def test_make_hook_builds_the_huawei_hooks(sim: Simulator) -> None:
    cdm_hook = make_hook("cdm", None, timeout=5)
    assert isinstance(cdm_hook, CdmJobHook) and cdm_hook.huaweicloud_conn_id == "huaweicloud_default"
    assert cdm_hook.timeout == 5
    assert isinstance(make_hook("dli", "huaweicloud_default"), DliJobHook)
    assert issubclass(CdmJobHook, HuaweiCloudHook) and HuaweiCloudHook.conn_type == "huaweicloud"
    assert cdm_hook.console_scope() == sim.huawei_region


# ---- actions ----------------------------------------------------------------------------------------


def test_cdm_start_and_stop_job(sim: Simulator) -> None:
    sim.core.define_cdm_job("copy", CLUSTER)
    hook, job = CdmJobHook(), ref("cdm", "copy")
    submission_id = hook.start_job(job, variables={"date": "2026-01-01"})
    sim_job = sim.get_job("cdm", "copy")
    assert sim_job is not None and str(sim_job.submission_id) == submission_id
    start = next(r for r in sim.requests("cdm", "copy") if r["method"] == "StartJob")
    assert start["detail"]["variables"] == {"date": "2026-01-01"}
    assert hook.get_status(job).state in (JobState.PENDING, JobState.RUNNING)
    hook.cancel(job)
    assert sim_job.actions == ["stop"]
    assert hook.get_status(job).state == JobState.FAILED


def test_cdm_start_while_running_is_a_bad_request(sim: Simulator) -> None:
    sim.add_job("cdm", "busy", [{"state": "RUNNING"}])
    with pytest.raises(BadRequestError) as info:
        CdmJobHook().start_job(ref("cdm", "busy"))
    assert info.value.code == "Cdm.0104" and "running" in str(info.value)


async def test_cdm_acancel(sim: Simulator) -> None:
    job = sim.add_job("cdm", "long", [{"state": "RUNNING", "progress": 5}])
    await CdmJobHook().acancel(ref("cdm", "long"))
    assert job.actions == ["stop"]


def test_cdm_stop_job_is_cancel_under_cdms_name(sim: Simulator) -> None:
    job = sim.add_job("cdm", "stopme", [{"state": "RUNNING"}])
    CdmJobHook().stop_job(ref("cdm", "stopme"))
    assert job.actions == ["stop"]


async def test_cdm_astop_job(sim: Simulator) -> None:
    job = sim.add_job("cdm", "astopme", [{"state": "RUNNING"}])
    await CdmJobHook().astop_job(ref("cdm", "astopme"))
    assert job.actions == ["stop"]


def test_dli_submit_sql_and_cancel(sim: Simulator) -> None:
    hook = DliJobHook()
    job_id = hook.submit_sql(
        "SELECT 1", "default", database_name="db1", conf={"spark.sql.shuffle.partitions": 4}
    )
    job = sim.get_job("dli", job_id)
    assert job is not None
    body = sim.requests("dli", job_id)[0]["detail"]["body"]
    assert body == {
        "sql": "SELECT 1",
        "queue_name": "default",
        "currentdb": "db1",
        "conf": ["spark.sql.shuffle.partitions=4"],
    }
    hook.cancel(ref("dli", job_id))
    assert job.actions == ["cancel"]
    assert hook.get_status(ref("dli", job_id)).state == JobState.CANCELLED


def test_dli_submit_refused_is_a_bad_request(sim: Simulator) -> None:
    with pytest.raises(BadRequestError) as info:
        DliJobHook().submit_sql(" ", "default")
    assert info.value.code == "DLI.0001"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("job_type", ["sql", "spark"])
async def test_dli_cancel(sim: Simulator, path: str, job_type: str) -> None:
    job = sim.add_job(
        "dli", "to-cancel", [{"state": "RUNNING" if job_type == "sql" else "running"}], job_type=job_type
    )
    await cancel(DliJobHook(), path, ref("dli", "to-cancel", job_type))
    assert job.actions == ["cancel"]


@pytest.mark.parametrize("path", PATHS)
async def test_dli_cancel_of_an_ended_job_is_refused(sim: Simulator, path: str) -> None:
    sim.add_job("dli", "ended", [{"state": "FINISHED"}])
    with pytest.raises(BadRequestError) as info:
        await cancel(DliJobHook(), path, ref("dli", "ended"))
    assert "no longer be cancelled" in str(info.value)


# ---- errors, both paths ---------------------------------------------------------------------------

HTTP_FAULTS = [
    ("http_429", "APIGW.0308"),
    ("http_500", None),
    ("http_502", "APIGW.0202"),
    ("http_503", None),
    ("http_504", "APIGW.0203"),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("fault", "gateway_code"), HTTP_FAULTS)
@pytest.mark.parametrize("service", ["cdm", "dli"])
async def test_http_faults_are_transient_with_the_service_code(
    sim: Simulator, path: str, fault: str, gateway_code: str | None, service: str
) -> None:
    sim.add_job(service, "f", [{"state": "RUNNING"}])
    hook = hook_for(service)
    sim.inject_fault(fault, service=service)
    err = await raises(path, hook, ref(service, "f"))
    assert type(err) is TransientServiceError and err.retryable, err
    assert (err.service, err.job_id) == (service, ref(service, "f").display_id)
    assert f"HTTP {fault[5:]}" in str(err)
    expected_code = gateway_code or ("Cdm.0000" if service == "cdm" else "DLI.0999")
    assert err.code == expected_code
    assert sim.calls(service, "f") == 1  # no retry inside the hook
    assert (await read(hook, path, ref(service, "f"))).native_state == "RUNNING"  # the fault was used up


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("service", ["cdm", "dli"])
async def test_malformed_body_is_a_retryable_bad_response(sim: Simulator, path: str, service: str) -> None:
    sim.add_job(service, "m", [{"state": "RUNNING"}])
    sim.inject_fault("malformed_body", service=service)
    hook = hook_for(service)
    err = await raises(path, hook, ref(service, "m"))
    assert type(err) is BadResponseError and err.retryable
    assert "unparseable" in str(err)
    assert (await read(hook, path, ref(service, "m"))).native_state == "RUNNING"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("service", ["cdm", "dli"])
async def test_dropped_connection_is_transient(sim: Simulator, path: str, service: str) -> None:
    """aiohttp resends an idempotent request once when the server closed the connection (RFC 9112
    §9.3.1, a stale keep-alive), so the async path needs two drops in a row to fail."""
    sim.add_job(service, "d", [{"state": "RUNNING"}])
    sim.inject_fault("drop_connection", count=1 if path == "sync" else 2, service=service)
    hook = hook_for(service)
    err = await raises(path, hook, ref(service, "d"))
    assert type(err) is TransientServiceError and err.code == "connection", err
    assert error_chain(err) == [err]
    assert (await read(hook, path, ref(service, "d"))).native_state == "RUNNING"


@pytest.mark.parametrize("path", PATHS)
async def test_latency_beyond_the_timeout_is_transient(sim: Simulator, path: str) -> None:
    sim.add_job("dli", "slow", [{"state": "RUNNING"}])
    sim.inject_fault("latency", service="dli", seconds=6)
    started = time.monotonic()
    err = await raises(path, DliJobHook(timeout=0.3), ref("dli", "slow"))
    assert type(err) is TransientServiceError and err.code == "timeout", err
    assert "0.3 s" in str(err)
    assert time.monotonic() - started < 5  # the hook gave up: it did not wait for the 6 s answer


@pytest.mark.parametrize("path", PATHS)
async def test_connection_refused_is_transient(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, path: str
) -> None:
    conn_id = set_conn(monkeypatch, sim, "hw_closed", endpoint="http://127.0.0.1:9")
    err = await raises(path, DliJobHook(conn_id, timeout=5), ref("dli", "x"))
    assert type(err) is TransientServiceError and err.code == "connection", err
    assert error_chain(err) == [err]


@pytest.mark.parametrize("path", PATHS)
async def test_unknown_jobs_are_not_found_naming_job_and_place(sim: Simulator, path: str) -> None:
    cdm_err = await raises(path, CdmJobHook(), CdmJobRef("other-cluster", "ghost"))
    assert isinstance(cdm_err, JobNotFoundError)
    assert cdm_err.job_id == "other-cluster/ghost" and cdm_err.code == "Cdm.0100"
    assert "other-cluster/ghost" in str(cdm_err) and "sim-project" in str(cdm_err)
    assert "{" not in cdm_err.message, "the JSON error body should have been parsed"

    # DLI answers 404 or 400 DLI.0002 for an unknown job: both are a not-found on a read.
    for job in (ref("dli", "ghost-sql"), ref("dli", "ghost-batch", "spark")):
        dli_err = await raises(path, DliJobHook(), job)
        assert isinstance(dli_err, JobNotFoundError), dli_err
        assert dli_err.code == dli.UNKNOWN_JOB_CODE
        assert job.job_id in str(dli_err) and "sim-project" in str(dli_err)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("job_type", "other"), [("sql", "spark"), ("spark", "sql")])
async def test_dli_job_read_under_the_other_type_hints_at_it(
    sim: Simulator, path: str, job_type: str, other: str
) -> None:
    """A Spark batch id read as a SQL job (or the reverse) is DLI's bare not-found: the error says to try the other type."""
    native = {"sql": "RUNNING", "spark": "running"}
    sim.add_job("dli", "typed", [{"state": native[other]}], job_type=other)
    err = await raises(path, DliJobHook(), ref("dli", "typed", job_type))
    assert isinstance(err, JobNotFoundError) and err.code == dli.UNKNOWN_JOB_CODE
    assert f"read it with job_type {other!r}" in str(err), err
    assert (await read(DliJobHook(), path, ref("dli", "typed", other))).state == JobState.RUNNING


def test_submit_and_start_log_the_new_ids(
    sim: Simulator, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No "submit SQL for (new job) done.": the hooks log the job id / submission id they got."""
    sim.core.define_cdm_job("logged", CLUSTER)
    dli_hook, cdm_hook = DliJobHook(), CdmJobHook()
    plain = logging.getLogger("tests.huawei_hooks")  # Airflow's hook loggers do not reach caplog
    monkeypatch.setattr(HuaweiCloudHook, "log", property(lambda self: plain))
    with caplog.at_level(logging.INFO, logger=plain.name):
        job_id = dli_hook.submit_sql("SELECT 1", "default")
        submission_id = cdm_hook.start_job(ref("cdm", "logged"))
        dli_hook.cancel(ref("dli", job_id))
    messages = [r.getMessage() for r in caplog.records]
    assert f"DLI: submitted SQL job {job_id} to queue default." in messages
    assert f"CDM: started job {CLUSTER}/logged: submission {submission_id}." in messages
    assert not [m for m in messages if "(new job)" in m or "start job for" in m], messages
    assert f"DLI: cancel job for {job_id} done." in messages  # other actions still log their end


@pytest.mark.parametrize("path", PATHS)
async def test_wrong_sk_is_an_authentication_error_sent_once(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, path: str
) -> None:
    signed: list[str] = []
    original = huawei_signer.sign

    def counting_sign(op: Any, config: Any, endpoint: str) -> Any:
        signed.append(op.job_id)
        return original(op, config, endpoint)

    monkeypatch.setattr(huawei_signer, "sign", counting_sign)
    conn_id = set_conn(monkeypatch, sim, "hw_wrong_sk", password=WRONG_SK)
    for service in ("cdm", "dli"):
        sim.add_job(service, "j", [{"state": "RUNNING"}])
        err = await raises(path, hook_for(service, conn_id), ref(service, "j"))
        assert isinstance(err, AuthenticationError) and not err.retryable, err
        assert err.code == "APIGW.0301" and "HTTP 401" in str(err)
    assert signed == [f"{CLUSTER}/j", "j"]  # one request each: no retry inside the hook
    assert sim.core.stats()["total_calls"] == 0  # refused at the gateway, before the services


@pytest.mark.parametrize("path", PATHS)
async def test_project_mismatch_is_an_authentication_error(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, path: str
) -> None:
    conn_id = set_conn(monkeypatch, sim, "hw_other_project", project_id="someone-elses-project")
    sim.add_job("dli", "j", [{"state": "RUNNING"}])
    err = await raises(path, DliJobHook(conn_id), ref("dli", "j"))
    assert isinstance(err, AuthenticationError), err
    assert err.code == "APIGW.0302" and "HTTP 403" in str(err)


@pytest.mark.parametrize("path", PATHS)
async def test_no_secret_is_reachable_from_an_error(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    conn_id = set_conn(monkeypatch, sim, "hw_secret", password=WRONG_SK, security_token=TOKEN)
    refused = set_conn(
        monkeypatch,
        sim,
        "hw_proxy_secret",
        endpoint="http://127.0.0.1:9",
        proxy="http://u:proxy-pass-42@127.0.0.1:9",
    )
    sim.add_job("dli", "j", [{"state": "RUNNING"}])
    with caplog.at_level(logging.DEBUG):
        auth = await raises(path, DliJobHook(conn_id), ref("dli", "j"))
        auth_cdm = await raises(path, CdmJobHook(conn_id), ref("cdm", "j"))
        transport = await raises(path, DliJobHook(refused, timeout=5), ref("dli", "j"))
    assert isinstance(auth, AuthenticationError) and isinstance(auth_cdm, AuthenticationError)
    assert isinstance(transport, TransientServiceError)
    for err in (auth, auth_cdm, transport):
        assert error_chain(err) == [err], "no exception may hide behind the error"
        text = texts_of(err)
        for secret in (WRONG_SK, TOKEN, "proxy-pass-42"):
            assert secret not in text
    hook = DliJobHook(conn_id)
    for text in (repr(hook), repr(hook.config), caplog.text):
        for secret in (WRONG_SK, TOKEN, "proxy-pass-42"):
            assert secret not in text


@pytest.mark.parametrize("path", PATHS)
async def test_secret_never_logged(sim: Simulator, path: str, caplog: pytest.LogCaptureFixture) -> None:
    secret = sim.core.sk
    sim.add_job("dli", "s", [{"state": "RUNNING"}])
    sim.inject_fault("http_503", service="dli")
    hook = DliJobHook()
    with caplog.at_level(logging.DEBUG):
        err = await raises(path, hook, ref("dli", "s"))
        status = await read(hook, path, ref("dli", "s"))
        await cancel(hook, path, ref("dli", "s"))
    assert secret not in texts_of(err) and secret not in repr(hook) and secret not in repr(hook.config)
    assert secret not in caplog.text and secret not in str(status.to_dict())


# ---- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"project_id": None}, "project_id"),
        ({"login": None}, "access key"),
        ({"password": None}, "secret key"),
        ({"endpoint": None, "region": None}, "region"),
        ({"proxy": "socks5://127.0.0.1:1080"}, "proxy"),
    ],
)
async def test_connection_validation(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, path: str, changes: dict[str, Any], needle: str
) -> None:
    conn_id = set_conn(monkeypatch, sim, "hw_partial", **changes)
    err = await raises(path, CdmJobHook(conn_id), ref("cdm", "x"))
    assert isinstance(err, ConfigurationError)
    assert needle in str(err).lower() and conn_id in str(err)


@pytest.mark.parametrize("path", PATHS)
async def test_undefined_connection_says_how_to_define_it(sim: Simulator, path: str) -> None:
    err = await raises(path, DliJobHook("hw_nowhere"), ref("dli", "x"))
    assert isinstance(err, ConfigurationError) and "AIRFLOW_CONN_HW_NOWHERE" in str(err)


def _config(**extra: Any) -> HuaweiConfig:
    from airflow.sdk import Connection

    conn = Connection(
        conn_id="c", conn_type="huaweicloud", login="ak", password="sk-secret", extra=json.dumps(extra)
    )
    return HuaweiConfig.from_connection(conn)


def test_endpoint_resolution_verify_ssl_and_proxy() -> None:
    cfg = _config(project_id="p", region="cn-north-4", dli_endpoint="dli.example.com/", verify_ssl="false")
    assert cfg.endpoint("dli") == "https://dli.example.com"
    assert cfg.endpoint("cdm") == "https://cdm.cn-north-4.myhuaweicloud.com"
    assert cfg.verify_ssl is False and cfg.proxy is None
    every = _config(project_id="p", endpoint="http://127.0.0.1:1", cdm_endpoint="https://x", verify_ssl=True)
    assert every.endpoint("cdm") == every.endpoint("dli") == "http://127.0.0.1:1"
    assert every.verify_ssl is True
    legacy = _config(extra__huaweicloud__project_id="p", extra__huaweicloud__region="r")
    assert (legacy.project_id, legacy.region) == ("p", "r")
    proxied = _config(project_id="p", region="r", proxy="http://user:pw-secret@proxy.local:3128/")
    assert proxied.proxy == "http://user:pw-secret@proxy.local:3128"
    assert proxied.proxy_for("https://dli.r.myhuaweicloud.com") == proxied.proxy
    assert "pw-secret" not in proxied.scrub(f"cannot reach {proxied.proxy}")
    shown = repr(_config(project_id="p", security_token="tok-secret-1")) + repr(cfg) + repr(proxied)
    assert "sk-secret" not in shown and "tok-secret-1" not in shown and "pw-secret" not in shown


@pytest.mark.parametrize("path", PATHS)
async def test_security_token_is_sent(monkeypatch: pytest.MonkeyPatch, sim: Simulator, path: str) -> None:
    conn_id = set_conn(monkeypatch, sim, "hw_token", security_token=TOKEN)
    sim.add_job("dli", "t", [{"state": "RUNNING"}])
    assert (await read(DliJobHook(conn_id), path, ref("dli", "t"))).state == JobState.RUNNING
    last = sim.last_request("dli", "t")
    assert last is not None
    headers = {k.lower(): v for k, v in last["headers"].items()}
    assert headers["x-security-token"] == TOKEN
    assert headers["x-project-id"] == sim.core.project_id
    assert headers["user-agent"] == huawei_signer.USER_AGENT


@pytest.mark.parametrize("path", PATHS)
async def test_proxy_extra_is_used_by_both_paths(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, path: str
) -> None:
    """The endpoint refuses connections; only through the proxy (the simulator, which serves absolute-form
    targets as a forward proxy passes them) can the reading succeed."""
    conn_id = set_conn(monkeypatch, sim, "hw_proxied", endpoint="http://127.0.0.1:9", proxy=sim.http_url)
    sim.add_job("dli", "p", [{"state": "RUNNING"}])
    assert (await read(DliJobHook(conn_id, timeout=5), path, ref("dli", "p"))).native_state == "RUNNING"
    assert sim.calls("dli", "p") == 1


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("bypass", [False, True])
async def test_environment_proxy_and_no_proxy_apply_to_both_paths(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, path: str, bypass: bool
) -> None:
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", sim.http_url)
    monkeypatch.delenv("http_proxy", raising=False)
    if bypass:
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    conn_id = set_conn(monkeypatch, sim, "hw_env_proxy", endpoint="http://127.0.0.1:9")
    sim.add_job("dli", "e", [{"state": "RUNNING"}])
    hook = DliJobHook(conn_id, timeout=5)
    if bypass:
        assert isinstance(await raises(path, hook, ref("dli", "e")), TransientServiceError)
    else:
        assert (await read(hook, path, ref("dli", "e"))).native_state == "RUNNING"


# ---- sessions: created once, shared ----------------------------------------------------------------


def counting_sessions(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every ``requests.Session`` the hooks open from now on, closed ones included."""
    import requests

    opened: list[Any] = []

    class Session(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self.closed = False
            opened.append(self)

        def close(self) -> None:
            self.closed = True
            super().close()

    monkeypatch.setattr(requests, "Session", Session)
    return opened


def test_sync_session_built_once_per_hook(monkeypatch: pytest.MonkeyPatch, sim: Simulator) -> None:
    sim.add_job("cdm", "c", [{"state": "RUNNING"}])
    opened = counting_sessions(monkeypatch)
    hook = CdmJobHook()
    for _ in range(3):
        hook.get_status(ref("cdm", "c"))
    hook.cancel(ref("cdm", "c"))
    assert len(opened) == 1
    assert hook.get_conn() is hook.session
    hook.close()
    assert opened[0].closed and hook._session is None


def test_the_hook_closes_its_session(monkeypatch: pytest.MonkeyPatch, sim: Simulator) -> None:
    """As a context manager, by close(), and when a hook nobody closed is collected: no leaked session."""
    import gc

    sim.add_job("dli", "s", [{"state": "RUNNING"}])
    opened = counting_sessions(monkeypatch)
    with DliJobHook() as hook:
        hook.get_status(ref("dli", "s"))
        assert not opened[0].closed
    assert opened[0].closed
    assert hook.get_status(ref("dli", "s")).native_state == "RUNNING"  # a closed hook opens a new one
    assert len(opened) == 2
    hook.close()
    hook.close()  # twice is harmless
    assert opened[1].closed

    forgotten = DliJobHook()
    forgotten.get_status(ref("dli", "s"))
    del forgotten
    gc.collect()
    assert opened[2].closed
    CdmJobHook().close()  # a hook that never opened a session has nothing to close
    assert len(opened) == 3


async def test_async_session_shared_by_hooks_and_services(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator
) -> None:
    sim.add_job("cdm", "c", [{"state": "RUNNING"}])
    sim.add_job("dli", "d", [{"state": "RUNNING"}])

    def sessions() -> int:
        return len(huawei_async.SESSIONS.values())

    before = sessions()
    for _ in range(3):
        for hook in (CdmJobHook(), CdmJobHook(timeout=5)):
            await hook.aget_status(ref("cdm", "c"))
        await DliJobHook().aget_status(ref("dli", "d"))
    await DliJobHook().acancel(ref("dli", "d"))
    # The simulator serves CDM and DLI at one origin: one session for all of them.
    assert sessions() == before + 1
    # Another verify_ssl (or proxy) is another pool.
    insecure = set_conn(monkeypatch, sim, "hw_insecure", verify_ssl=False)
    await CdmJobHook(insecure).aget_status(ref("cdm", "c"))
    assert sessions() == before + 2


# ---- the connection is read once per process (within the TTL) -------------------------------------


def reads() -> int:
    return CONFIGS.reads


def test_connection_read_once_for_many_sync_hooks(sim: Simulator) -> None:
    sim.add_job("dli", "r", [{"state": "RUNNING"}])
    before = reads()
    for _ in range(5):
        hook = DliJobHook()
        hook.get_status(ref("dli", "r"))
        hook.console_scope()
    assert reads() == before + 1


async def test_connection_read_once_for_many_concurrent_async_hooks(sim: Simulator) -> None:
    """Like 10,000 triggers on one connection starting together: one read, in a worker thread."""
    sim.add_job("dli", "r", [{"state": "RUNNING"}])
    before = reads()
    statuses = await asyncio.gather(*(DliJobHook().aget_status(ref("dli", "r")) for _ in range(100)))
    assert {s.native_state for s in statuses} == {"RUNNING"}
    assert reads() == before + 1
    await DliJobHook().aget_status(ref("dli", "r"))
    assert reads() == before + 1


@pytest.mark.parametrize("path", PATHS)
async def test_connection_reread_after_the_ttl(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, path: str
) -> None:
    sim.add_job("dli", "r", [{"state": "RUNNING"}])
    monkeypatch.setattr(CONFIGS, "ttl", 0.0)
    before = reads()
    for _ in range(3):
        await read(DliJobHook(), path, ref("dli", "r"))
    assert reads() == before + 3


@pytest.mark.parametrize("path", PATHS)
async def test_authentication_error_drops_the_cached_connection(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, path: str
) -> None:
    conn_id = set_conn(monkeypatch, sim, "hw_rotated", password=WRONG_SK)
    sim.add_job("dli", "r", [{"state": "RUNNING"}])
    before = reads()
    for _ in range(2):
        assert isinstance(await raises(path, DliJobHook(conn_id), ref("dli", "r")), AuthenticationError)
    assert reads() == before + 2  # each failure forgot the connection


@pytest.mark.parametrize("path", PATHS)
async def test_a_changed_environment_connection_is_read_again(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, path: str
) -> None:
    conn_id = set_conn(monkeypatch, sim, "hw_changing", password=WRONG_SK)
    sim.add_job("dli", "r", [{"state": "RUNNING"}])
    assert isinstance(await raises(path, DliJobHook(conn_id), ref("dli", "r")), AuthenticationError)
    set_conn(monkeypatch, sim, conn_id)  # the right key now
    assert (await read(DliJobHook(conn_id), path, ref("dli", "r"))).native_state == "RUNNING"


# ---- the async path never blocks the event loop -----------------------------------------------------


async def test_concurrent_reads_do_not_block_the_loop(sim: Simulator) -> None:
    """50 readings held 0.5 s each by the server: 25 s one after the other, well under 10 s together."""
    for i in range(50):
        sim.add_job("dli", f"load-{i}", [{"state": "RUNNING", "progress": 0.5}])
    sim.inject_fault("latency", count=50, service="dli", seconds=0.5)
    started = time.monotonic()
    results = await asyncio.gather(*(DliJobHook().aget_status(ref("dli", f"load-{i}")) for i in range(50)))
    assert time.monotonic() - started < 10
    assert {r.state for r in results} == {JobState.RUNNING}


async def test_the_connection_is_read_off_the_loop(monkeypatch: pytest.MonkeyPatch, sim: Simulator) -> None:
    threads: list[int] = []
    original = HuaweiCloudHook.fetch_connection

    def spy(self: Any) -> Any:
        threads.append(threading.get_ident())
        return original(self)

    monkeypatch.setattr(HuaweiCloudHook, "fetch_connection", spy)
    sim.add_job("dli", "o", [{"state": "RUNNING"}])
    await DliJobHook().aget_status(ref("dli", "o"))
    assert threads and threading.get_ident() not in threads
