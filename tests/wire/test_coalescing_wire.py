"""Coalesced polling through the real clients (gRPC to the simulator, signed REST for DLI): the same
outcomes as per-job polling, with list calls instead of most reads."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_jobstatus.hooks import gcp, huawei_async
from airflow_jobstatus.simulator import Simulator
from airflow_jobstatus.simulator.vertex_grpc import vertex_available
from airflow_jobstatus.triggers.coalescing import active_pollers
from airflow_jobstatus.triggers.job_status import JobStatusTrigger

POLL = 0.25
#: Per service: (success timeline, failure timeline, the list method, the read method, job ref fields).
CASES: dict[str, dict[str, Any]] = {
    "dataproc": {
        "ok": [
            {"state": "PENDING", "duration": 0.3},
            {"state": "RUNNING", "duration": 0.6},
            {"state": "DONE"},
        ],
        "bad": [{"state": "RUNNING", "duration": 0.7}, {"state": "ERROR", "details": "Driver exited 7"}],
        "list": "ListJobs",
        "read": "GetJob",
        "ref": {"region": "europe-west1"},
    },
    "dataflow": {
        "ok": [{"state": "JOB_STATE_RUNNING", "duration": 0.9}, {"state": "JOB_STATE_DONE"}],
        "bad": [{"state": "JOB_STATE_RUNNING", "duration": 0.7}, {"state": "JOB_STATE_FAILED"}],
        "list": "ListJobs",
        "read": "GetJob",
        "ref": {"location": "europe-west1"},
    },
    "vertex_ai": {
        "ok": [
            {"state": "JOB_STATE_PENDING", "duration": 0.3},
            {"state": "JOB_STATE_RUNNING", "duration": 0.6},
            {"state": "JOB_STATE_SUCCEEDED"},
        ],
        "bad": [
            {"state": "JOB_STATE_RUNNING", "duration": 0.7},
            {"state": "JOB_STATE_FAILED", "error": "OOM"},
        ],
        "list": "ListCustomJobs",
        "read": "GetCustomJob",
        "ref": {"location": "europe-west1"},
    },
    "dli": {
        "ok": [
            {"state": "LAUNCHING", "duration": 0.3},
            {"state": "RUNNING", "duration": 0.6, "progress": 0.5},
            {"state": "FINISHED", "progress": 1},
        ],
        "bad": [{"state": "RUNNING", "duration": 0.7}, {"state": "FAILED", "message": "DLI.0005: syntax"}],
        "list": "ListSqlJobs",
        "read": "ShowSqlJobProgress",
        "ref": {"job_type": "sql"},
    },
    "dli:spark": {
        "ok": [
            {"state": "starting", "duration": 0.3},
            {"state": "running", "duration": 0.6},
            {"state": "success"},
        ],
        "bad": [{"state": "running", "duration": 0.7}, {"state": "dead"}],
        "list": "ListSparkJobs",
        "read": "ShowSparkJobStatus",
        "ref": {"job_type": "spark"},
    },
}
SERVICES = [s for s in CASES if s != "vertex_ai" or vertex_available()]
JOBS = 6  # per mode: four succeed, two fail


def add_jobs(sim: Simulator, case_name: str, tag: str) -> list[str]:
    case = CASES[case_name]
    ids = [f"{tag}-{i}" for i in range(JOBS)]
    for i, job_id in enumerate(ids):
        timeline = [dict(p) for p in (case["bad"] if i % 3 == 2 else case["ok"])]
        timeline[0]["duration"] = timeline[0]["duration"] + 0.1 * i  # not all at once
        sim.add_job(case_name.split(":")[0], job_id, timeline, **where(case_name))
    return ids


def where(case_name: str) -> dict[str, str]:
    return {"job_type": "spark"} if case_name == "dli:spark" else {}


async def wait_all(case_name: str, ids: list[str], coalesce: bool) -> list[dict[str, Any]]:
    """One trigger per job on this loop, as a triggerer runs them; each one's first event."""
    service = case_name.split(":")[0]

    async def one(job_id: str) -> dict[str, Any]:
        ref = {"job_id": job_id, **CASES[case_name]["ref"]}
        trigger = JobStatusTrigger(service, ref, poll_interval=POLL, max_backoff=0.2, coalesce=coalesce)
        agen = trigger.run()
        try:
            return dict((await agen.__anext__()).payload)
        finally:
            await agen.aclose()

    try:
        return list(await asyncio.gather(*(one(j) for j in ids)))
    finally:
        assert active_pollers() == {}  # every trigger's end left its poller
        await gcp.aclose_shared_clients()
        await huawei_async.aclose_sessions()


def outcome(payload: dict[str, Any]) -> tuple[Any, ...]:
    job = payload.get("job_status") or {}
    return payload["status"], job.get("state"), job.get("native_state"), job.get("message")


@pytest.mark.parametrize("case_name", SERVICES)
def test_same_outcomes_with_list_calls(sim: Simulator, case_name: str) -> None:
    service = case_name.split(":")[0]
    per_job = asyncio.run(wait_all(case_name, add_jobs(sim, case_name, "solo"), coalesce=False))
    before = sim.method_calls(service)
    coalesced = asyncio.run(wait_all(case_name, add_jobs(sim, case_name, "team"), coalesce=True))
    after = sim.method_calls(service)
    calls = {m: after.get(m, 0) - before.get(m, 0) for m in after}

    assert [outcome(p) for p in coalesced] == [outcome(p) for p in per_job]
    assert [p["status"] for p in coalesced] == ["success", "success", "failure"] * 2
    list_method, read_method = CASES[case_name]["list"], CASES[case_name]["read"]
    assert calls.get(list_method, 0) >= 3  # the waits were served by list calls …
    assert calls.get(read_method, 0) == JOBS  # … and each job read once, when it left the active list
    assert before.get(read_method, 0) >= JOBS  # per-job polling: every job at every poll


@pytest.mark.parametrize("service", ["dataproc", "dli"])
def test_a_failed_list_call_is_retried_by_every_wait(sim: Simulator, service: str) -> None:
    ids = add_jobs(sim, service, "flaky")
    kind = "grpc_unavailable" if service == "dataproc" else "http_503"
    sim.inject_fault(kind, count=1, service=service)  # the first call is the first list call
    payloads = asyncio.run(wait_all(service, ids, coalesce=True))
    assert [p["status"] for p in payloads] == ["success", "success", "failure"] * 2
    assert sim.method_calls(service)[CASES[service]["list"]] >= 4


@pytest.mark.parametrize(
    ("case_name", "expected_calls"), [("dataproc", 3), ("dataflow", 3), ("dli", 5), ("dli:spark", 5)]
)
def test_the_list_reads_every_page_of_active_jobs_only(
    sim: Simulator, case_name: str, expected_calls: int
) -> None:
    """250 running jobs and 5 finished: three pages of 100 (DLI: plus one call per other active status)."""
    from airflow_jobstatus.hooks.base import make_hook
    from airflow_jobstatus.services import get_service

    service, case = case_name.split(":")[0], CASES[case_name]
    for i in range(250):
        sim.add_job(service, f"run-{i:03d}", case["ok"][-2:-1], **where(case_name))  # running, forever
    for i in range(5):
        sim.add_job(service, f"done-{i}", case["ok"][-1:], **where(case_name))
    ref = get_service(service).ref({"job_id": "run-000", **case["ref"]})
    coalescing = get_service(service).coalescing
    assert coalescing is not None

    async def listed() -> list[str]:
        try:
            return [coalescing.entry_id(e) for e in await make_hook(service).alist_active(ref)]
        finally:
            await gcp.aclose_shared_clients()
            await huawei_async.aclose_sessions()

    ids = asyncio.run(listed())
    assert sorted(ids) == [f"run-{i:03d}" for i in range(250)]
    assert sim.method_calls(service)[case["list"]] == expected_calls
