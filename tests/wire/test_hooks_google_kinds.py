"""Dataproc Serverless batches and Vertex AI pipeline jobs through the real SDK clients against the
simulator: every native state, unknown values, every gRPC fault kind, not-found, cancel, the list call
of coalesced polling, and what each answer carries (message, counters, tasks)."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import subprocess
import sys
import time
from typing import Any

import pytest

from airflow_jobstatus.core.exceptions import (
    BadRequestError,
    BadResponseError,
    JobNotFoundError,
    ServiceError,
    TransientServiceError,
)
from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.hooks import gcp
from airflow_jobstatus.hooks.base import make_hook
from airflow_jobstatus.services import get_service
from airflow_jobstatus.services.base import JobRef
from airflow_jobstatus.services.dataproc_batch import STATES as BATCH_STATES
from airflow_jobstatus.services.vertex_pipeline import STATES as PIPELINE_STATES

REGION = "europe-west1"
VERTEX = pytest.mark.skipif(
    importlib.util.find_spec("google.cloud.aiplatform_v1") is None, reason="the vertex extra is not installed"
)
MODES = pytest.mark.parametrize("mode", ["sync", "async"])


@pytest.fixture(autouse=True)
def _fresh_connection_cache() -> Any:
    gcp.CONNECTIONS.clear()
    yield
    gcp.CONNECTIONS.clear()


#: Per kind: the ref's id and where fields, its running and terminal native names, the state table.
KINDS: dict[str, dict[str, Any]] = {
    "dataproc_batch": {
        "id": "batch_id",
        "where": "region",
        "running": "RUNNING",
        "done": "SUCCEEDED",
        "table": BATCH_STATES,
        "read": "GetBatch",
        "list": "ListBatches",
        "cancel": "CancelOperation",
    },
    "vertex_pipeline": {
        "id": "pipeline_job_id",
        "where": "location",
        "running": "PIPELINE_STATE_RUNNING",
        "done": "PIPELINE_STATE_SUCCEEDED",
        "table": PIPELINE_STATES,
        "read": "GetPipelineJob",
        "list": "ListPipelineJobs",
        "cancel": "CancelPipelineJob",
    },
}


def kinds() -> list[Any]:
    return [pytest.param(k, marks=VERTEX if k == "vertex_pipeline" else ()) for k in KINDS]


def ref(kind: str, job_id: str = "job-1", where: str = REGION, **extra: Any) -> JobRef:
    spec = KINDS[kind]
    return get_service(kind).ref({spec["id"]: job_id, spec["where"]: where, **extra})


async def read(hook: Any, mode: str, job_ref: JobRef) -> JobStatus:
    return hook.get_status(job_ref) if mode == "sync" else await hook.aget_status(job_ref)


async def cancel(hook: Any, mode: str, job_ref: JobRef) -> None:
    if mode == "sync":
        hook.cancel(job_ref)
    else:
        await hook.acancel(job_ref)


def _state_cases() -> list[Any]:
    return [
        pytest.param(
            kind, native, state, id=f"{kind}-{native}", marks=VERTEX if kind == "vertex_pipeline" else ()
        )
        for kind, spec in KINDS.items()
        for native, state in spec["table"].table.items()
    ]


# --- states -----------------------------------------------------------------------------------------


@MODES
@pytest.mark.parametrize(("kind", "native", "expected"), _state_cases())
async def test_every_native_state(sim, kind: str, native: str, expected: JobState, mode: str) -> None:
    sim.add_job(kind, "job-1", [{"state": native}])
    status = await read(make_hook(kind), mode, ref(kind))
    assert (status.service, status.job_id, status.native_state, status.state) == (
        kind,
        "job-1",
        native,
        expected,
    )


@MODES
@pytest.mark.parametrize("kind", kinds())
async def test_unknown_integer_state_is_unknown_and_warned_once(sim, kind, mode, caplog) -> None:
    value = {"dataproc_batch": 80, "vertex_pipeline": 81}[kind] + (0 if mode == "sync" else 5)
    sim.add_job(kind, "job-1", [{"state": value}])
    hook = make_hook(kind)
    with caplog.at_level(logging.WARNING, logger="airflow_jobstatus"):
        first = await read(hook, mode, ref(kind))
        second = await read(hook, mode, ref(kind))
    assert first.state is second.state is JobState.UNKNOWN
    assert first.native_state == str(value)
    assert sum(f"'{value}'" in r.getMessage() for r in caplog.records) == 1


# --- errors -----------------------------------------------------------------------------------------

FAULTS = [
    ("grpc_unavailable", TransientServiceError, "UNAVAILABLE"),
    ("grpc_resource_exhausted", TransientServiceError, "RESOURCE_EXHAUSTED"),
    ("grpc_deadline_exceeded", TransientServiceError, "DEADLINE_EXCEEDED"),
    ("grpc_aborted", TransientServiceError, "ABORTED"),
    ("drop_connection", TransientServiceError, "UNAVAILABLE"),
    ("malformed_body", BadResponseError, None),
    ("grpc_undecodable", BadResponseError, None),
]


@MODES
@pytest.mark.parametrize(("fault", "expected", "code"), FAULTS)
@pytest.mark.parametrize("kind", kinds())
async def test_every_fault_kind_is_classified(sim, kind, fault, expected, code, mode) -> None:
    sim.add_job(kind, "job-1", [{"state": KINDS[kind]["running"]}])
    sim.inject_fault(fault, count=1, service=kind)
    hook = make_hook(kind)
    with pytest.raises(expected) as info:
        await read(hook, mode, ref(kind))
    err = info.value
    assert (err.service, err.job_id) == (kind, "job-1")
    if code:
        assert err.code == code
    assert sim.calls(kind, "job-1") == 1  # retry=None: one call, then it works
    assert (await read(hook, mode, ref(kind))).state is JobState.RUNNING


@MODES
@pytest.mark.parametrize("kind", kinds())
async def test_latency_beyond_the_timeout_is_transient(sim, kind, mode) -> None:
    sim.add_job(kind, "job-1", [{"state": KINDS[kind]["running"]}])
    sim.inject_fault("latency", count=1, service=kind, seconds=2)
    with pytest.raises(TransientServiceError) as info:
        await read(make_hook(kind, timeout=0.3), mode, ref(kind))
    assert info.value.code == "DEADLINE_EXCEEDED"


@MODES
@pytest.mark.parametrize("kind", kinds())
async def test_unknown_job_and_wrong_place_are_not_found(sim, kind, mode) -> None:
    with pytest.raises(JobNotFoundError) as info:
        await read(make_hook(kind), mode, ref(kind, "no-such-job"))
    text = str(info.value)
    assert "no-such-job" in text and "sim-project" in text and REGION in text
    assert (info.value.code, info.value.job_id) == ("NOT_FOUND", "no-such-job")
    sim.add_job(kind, "job-1", [{"state": KINDS[kind]["running"]}])
    with pytest.raises(JobNotFoundError, match="us-east4"):
        await read(make_hook(kind), mode, ref(kind, where="us-east4"))
    with pytest.raises(JobNotFoundError):
        await read(make_hook(kind), mode, ref(kind, project_id="other-project"))


# --- cancel -----------------------------------------------------------------------------------------


@MODES
@pytest.mark.parametrize("kind", kinds())
async def test_cancel(sim, kind, mode) -> None:
    sim.add_job(kind, "job-1", [{"state": KINDS[kind]["running"]}])
    hook = make_hook(kind)
    await cancel(hook, mode, ref(kind))
    assert sim.get_job(kind, "job-1").actions == ["cancel"]
    assert sim.method_calls(kind).get(KINDS[kind]["cancel"]) == 1
    assert (await read(hook, mode, ref(kind))).state is JobState.CANCELLING


@MODES
@pytest.mark.parametrize("kind", kinds())
async def test_cancelling_a_finished_job_is_a_bad_request(sim, kind, mode) -> None:
    sim.add_job(kind, "done", [{"state": KINDS[kind]["done"]}])
    with pytest.raises(BadRequestError) as info:
        await cancel(make_hook(kind), mode, ref(kind, "done"))
    assert info.value.code == "FAILED_PRECONDITION"
    assert sim.get_job(kind, "done").actions == []


@MODES
@pytest.mark.parametrize("kind", kinds())
async def test_a_fault_on_the_cancel_is_transient_and_cancels_nothing(sim, kind, mode) -> None:
    sim.add_job(kind, "job-1", [{"state": KINDS[kind]["running"]}])
    sim.inject_fault("grpc_unavailable", count=1, service=kind)
    with pytest.raises(TransientServiceError):
        await cancel(make_hook(kind), mode, ref(kind))
    assert sim.get_job(kind, "job-1").actions == []
    with pytest.raises(JobNotFoundError):
        await cancel(make_hook(kind), mode, ref(kind, "no-such-job"))


# --- the list call (coalesced polling) --------------------------------------------------------------


@pytest.mark.parametrize("kind", kinds())
async def test_the_active_list_names_only_jobs_that_are_not_terminal(sim, kind) -> None:
    spec, coalescing = KINDS[kind], get_service(kind).coalescing
    assert coalescing is not None
    terminal = [n for n, s in spec["table"].table.items() if s.is_terminal]
    active = [n for n, s in spec["table"].table.items() if not s.is_terminal and s is not JobState.UNKNOWN]
    for i, native in enumerate(active + terminal):
        sim.add_job(kind, f"j-{i:02d}-{native.lower()}", [{"state": native}])
    sim.add_job(kind, "elsewhere", [{"state": spec["running"]}], **{spec["where"]: "us-east4"})
    hook = make_hook(kind)
    entries = await hook.alist_active(ref(kind, "j-00"))
    listed = [coalescing.entry_id(e) for e in entries]
    # The list's order is the service's (pipeline jobs list newest first): compare as sets of ids.
    assert sorted(listed) == sorted(f"j-{i:02d}-{n.lower()}" for i, n in enumerate(active))
    statuses = [coalescing.parse_entry(e, ref(kind, i)) for e, i in zip(entries, listed, strict=True)]
    assert sorted(s.native_state for s in statuses) == sorted(active)
    assert sim.method_calls(kind) == {spec["list"]: 1}
    await gcp.aclose_shared_clients()


@pytest.mark.parametrize("kind", kinds())
async def test_a_fault_on_the_list_call_is_classified(sim, kind) -> None:
    sim.inject_fault("grpc_resource_exhausted", count=1, service=kind)
    with pytest.raises(TransientServiceError) as info:
        await make_hook(kind).alist_active(ref(kind))
    assert (info.value.code, info.value.job_id) == ("RESOURCE_EXHAUSTED", gcp.LIST_JOB_ID)
    assert await make_hook(kind).alist_active(ref(kind)) == []
    await gcp.aclose_shared_clients()


# --- what a Dataproc batch's answer carries -------------------------------------------------------


@MODES
async def test_batch_state_message_and_usage(sim, mode) -> None:
    usage = {"milli_dcu_seconds": 7_200_000, "shuffle_storage_gb_seconds": 1_234}
    sim.add_job(
        "dataproc_batch",
        "b-1",
        [
            {"state": "PENDING", "duration": 0.05},
            {"state": "RUNNING", "duration": 0.05},
            {"state": "FAILED", "state_message": "Driver exited 3", "approximate_usage": usage},
        ],
    )
    sim.add_job("dataproc_batch", "b-2", [{"state": "RUNNING"}])
    await asyncio.sleep(0.15)
    hook = make_hook("dataproc_batch")
    failed = await read(hook, mode, ref("dataproc_batch", "b-1"))
    assert (failed.state, failed.message, failed.counters) == (JobState.FAILED, "Driver exited 3", usage)
    running = await read(hook, mode, ref("dataproc_batch", "b-2"))
    assert (running.message, running.counters) == (None, {})


def test_the_batch_read_serves_the_sdk_message(sim) -> None:
    """What the servicer answers, read with the SDK: operation name, state history, output URI."""
    from google.cloud.dataproc_v1 import Batch

    sim.add_job(
        "dataproc_batch",
        "b-1",
        [{"state": "PENDING", "duration": 0.01}, {"state": "RUNNING", "output_uri": "gs://b/out"}],
    )
    time.sleep(0.05)
    hook = make_hook("dataproc_batch")
    target = hook._target(hook.google_connection(), ref("dataproc_batch", "b-1"))
    batch = hook.call(target, "get_batch", {"name": f"projects/sim-project/locations/{REGION}/batches/b-1"})
    assert isinstance(batch, Batch)
    assert batch.operation.startswith(f"projects/sim-project/regions/{REGION}/operations/")
    assert [h.state.name for h in batch.state_history] == ["PENDING"]
    assert batch.runtime_info.output_uri == "gs://b/out"
    hook.close()


# --- what a Vertex AI pipeline job's answer carries -----------------------------------------------

TASKS = [
    {"task_name": "my-pipeline", "task_id": 1, "state": "RUNNING"},  # the root: parent of the others
    {"task_name": "prepare", "task_id": 2, "parent_task_id": 1, "state": "SUCCEEDED"},
    {"task_name": "skipped-branch", "task_id": 3, "parent_task_id": 1, "state": "SKIPPED"},
    {"task_name": "train", "task_id": 4, "parent_task_id": 1, "state": "RUNNING"},
    {"task_name": "evaluate", "task_id": 5, "parent_task_id": 1, "state": "PENDING"},
]


@VERTEX
@MODES
async def test_pipeline_tasks_are_sub_jobs_and_progress(sim, mode) -> None:
    sim.add_job("vertex_pipeline", "p-1", [{"state": "PIPELINE_STATE_RUNNING", "task_details": TASKS}])
    status = await read(make_hook("vertex_pipeline"), mode, ref("vertex_pipeline", "p-1"))
    assert [(s["id"], s["status"]) for s in status.sub_jobs] == [
        ("prepare", "SUCCEEDED"),
        ("skipped-branch", "SKIPPED"),
        ("train", "RUNNING"),
        ("evaluate", "PENDING"),
    ]
    assert status.progress == 0.5  # 2 of the 4 leaf tasks will not run any more
    assert status.task_counts() == (2, 4)
    prepare, _, train, evaluate = status.sub_jobs
    assert prepare["start_time"] and prepare["end_time"]
    assert train["start_time"] and train["end_time"] is None
    assert evaluate["start_time"] is None
    assert "subjob train 0/1 tasks" in status.summary()


@VERTEX
@MODES
async def test_pipeline_error_message_and_no_tasks(sim, mode) -> None:
    sim.add_job("vertex_pipeline", "p-1", [{"state": "PIPELINE_STATE_FAILED", "error": "Task train failed"}])
    sim.add_job("vertex_pipeline", "p-2", [{"state": "PIPELINE_STATE_PENDING"}])
    failed = await read(make_hook("vertex_pipeline"), mode, ref("vertex_pipeline", "p-1"))
    pending = await read(make_hook("vertex_pipeline"), mode, ref("vertex_pipeline", "p-2"))
    assert (failed.state, failed.message) == (JobState.FAILED, "Task train failed")
    assert (pending.state, pending.message, pending.progress, pending.sub_jobs) == (
        JobState.PENDING,
        None,
        None,
        [],
    )


@VERTEX
async def test_a_cancelling_pipeline_can_still_succeed(sim) -> None:
    """CANCELLING is not terminal: the job's tasks may end first and the pipeline SUCCEEDS."""
    timeline = [
        {"state": "PIPELINE_STATE_CANCELLING", "duration": 0.2},
        {"state": "PIPELINE_STATE_SUCCEEDED"},
    ]
    sim.add_job("vertex_pipeline", "p-1", timeline)
    hook = make_hook("vertex_pipeline")
    first = hook.get_status(ref("vertex_pipeline", "p-1"))
    assert first.state is JobState.CANCELLING and not first.state.is_terminal
    time.sleep(0.3)
    assert hook.get_status(ref("vertex_pipeline", "p-1")).state is JobState.SUCCEEDED
    hook.close()


# --- imports ----------------------------------------------------------------------------------------


def test_the_new_sensors_import_no_sdk() -> None:
    code = (
        "import sys, airflow_jobstatus.sensors, airflow_jobstatus.links;"
        "heavy = [m for m in sys.modules if m.startswith(('google.cloud.dataproc', 'google.cloud.aiplatform',"
        " 'grpc'))]; assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_errors_name_the_service(sim) -> None:
    with pytest.raises(ServiceError) as info:
        make_hook("dataproc_batch").get_status(ref("dataproc_batch", "nope"))
    assert info.value.service == "dataproc_batch"
    assert "batch_id" not in str(info.value)  # the id is said once, as the job


# --- the trigger over the wire ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", kinds())
async def test_a_killed_trigger_cancels_the_job_once_through_a_transient_error(
    sim, kind, monkeypatch
) -> None:
    from airflow_jobstatus.triggers.job_status import JobStatusTrigger

    sim.add_job(kind, "job-1", [{"state": KINDS[kind]["running"]}])
    sim.inject_fault("grpc_unavailable", count=1, service=kind)
    trigger = JobStatusTrigger(
        kind, ref(kind).to_dict(), poll_interval=1, max_backoff=0.1, cancel_on_kill=True
    )

    async def killed() -> str:
        return "failed"  # the user marked the deferred task failed

    monkeypatch.setattr(trigger, "task_state", killed)
    await trigger.on_kill()
    assert sim.get_job(kind, "job-1").actions == ["cancel"]  # applied once, after the retried error
    assert sim.calls(kind, "job-1") == (3 if kind == "dataproc_batch" else 2)  # batch: read + cancel
    await gcp.aclose_shared_clients()


@pytest.mark.parametrize("kind", kinds())
async def test_the_trigger_waits_to_the_end_and_coalesces(sim, kind) -> None:
    from airflow_jobstatus.triggers.coalescing import active_pollers
    from airflow_jobstatus.triggers.job_status import JobStatusTrigger

    spec = KINDS[kind]
    timeline = [{"state": spec["running"], "duration": 0.4}, {"state": spec["done"]}]
    for i in range(3):
        sim.add_job(kind, f"job-{i}", timeline)

    async def one(job_id: str) -> dict[str, Any]:
        trigger = JobStatusTrigger(kind, ref(kind, job_id).to_dict(), poll_interval=0.1, coalesce=True)
        agen = trigger.run()
        try:
            return dict((await agen.__anext__()).payload)
        finally:
            await agen.aclose()

    events = await asyncio.gather(*(one(f"job-{i}") for i in range(3)))
    assert [e["job_status"]["state"] for e in events] == ["SUCCEEDED"] * 3
    assert active_pollers() == {}
    calls = sim.method_calls(kind)
    assert calls[spec["list"]] >= 1
    assert calls.get(spec["read"], 0) >= 3  # each job's final status comes from its own read
    await gcp.aclose_shared_clients()
