"""Coalesced polling of DLI Flink jobs over signed REST: the same outcomes as per-job polling, with
ListFlinkJobs calls (one per listed status) instead of most ShowFlinkJob reads; cancel on kill."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_jobstatus.core.exceptions import BadRequestError
from airflow_jobstatus.hooks import huawei_async
from airflow_jobstatus.simulator import Simulator
from airflow_jobstatus.triggers.job_status import JobStatusTrigger
from tests.wire.coalescing_cases import POLL, add_jobs, outcome, run_waits, waits_of

SERVICE = "dli_flink"
JOBS = 6  # four succeed, two fail


def wait_all(ids: list[str], coalesce: bool, **kw: Any) -> list[dict[str, Any]]:
    return asyncio.run(run_waits(waits_of(SERVICE, ids), coalesce=coalesce, **kw))


def test_same_outcomes_with_list_calls(sim: Simulator) -> None:
    per_job = wait_all(add_jobs(sim, SERVICE, "100", JOBS), coalesce=False)
    before = sim.method_calls(SERVICE)
    coalesced = wait_all(add_jobs(sim, SERVICE, "200", JOBS), coalesce=True)
    after = sim.method_calls(SERVICE)
    calls = {m: after.get(m, 0) - before.get(m, 0) for m in after}

    assert [outcome(p) for p in coalesced] == [outcome(p) for p in per_job]
    assert [p["status"] for p in coalesced] == ["success", "success", "failure"] * 2
    assert coalesced[2]["job_status"]["message"] == "TaskManager lost"
    assert coalesced[0]["job_status"]["counters"] == {"restart_times": 1}
    assert calls.get("ListFlinkJobs", 0) >= 4  # two statuses per list round …
    assert calls.get("ShowFlinkJob", 0) == JOBS  # … and each job read once, when it left the list
    assert before.get("ShowFlinkJob", 0) >= 2 * JOBS  # per-job polling: every job at every poll


def test_waiting_for_running_is_answered_from_the_list(sim: Simulator) -> None:
    """success_states={"RUNNING"}: a streaming job that is up ends the wait from its list entry."""
    ids = [str(300 + i) for i in range(4)]
    for i, job_id in enumerate(ids):
        sim.add_job(
            SERVICE,
            job_id,
            [{"state": "job_submitting", "duration": 0.2 + 0.1 * i}, {"state": "job_running"}],
        )
    payloads = wait_all(ids, coalesce=True, success_states=["RUNNING"])
    assert [(p["status"], p["job_status"]["native_state"]) for p in payloads] == [
        ("success", "job_running")
    ] * 4
    assert sim.method_calls(SERVICE).get("ShowFlinkJob", 0) == 0


def test_a_failed_list_call_is_retried_by_every_wait(sim: Simulator) -> None:
    ids = add_jobs(sim, SERVICE, "400", JOBS)
    sim.inject_fault("http_503", count=1, service=SERVICE)  # the first call is the first list call
    payloads = wait_all(ids, coalesce=True)
    assert [p["status"] for p in payloads] == ["success", "success", "failure"] * 2


def test_cancel_on_kill_stops_the_job_once(sim: Simulator) -> None:
    sim.add_job(SERVICE, "500", [{"state": "job_running"}])
    trigger = JobStatusTrigger(SERVICE, {"job_id": "500"}, poll_interval=POLL, cancel_on_kill=True)

    async def kill() -> None:
        try:
            await trigger.on_kill()
        finally:
            await huawei_async.aclose_sessions()

    asyncio.run(kill())
    job = sim.get_job(SERVICE, "500")
    assert job is not None and job.actions == ["stop"]
    assert sim.method_calls(SERVICE) == {"BatchStopFlinkJobs": 1}
    sim.add_job(SERVICE, "501", [{"state": "job_finish"}])
    ended = JobStatusTrigger(SERVICE, {"job_id": "501"}, poll_interval=POLL, cancel_on_kill=True)
    with pytest.raises(BadRequestError, match="did not stop"):
        asyncio.run(ended.on_kill())
