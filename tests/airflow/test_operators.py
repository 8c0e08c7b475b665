"""CDM and DLI operators over the wire: XComs in a real DAG run, cancel on kill, no duplicate submits.

The rules (XCom shapes, defer kwargs, timeout, soft_fail, on_kill bookkeeping) are tested in
tests/unit against a FakeHook; these count what the simulator actually received.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import pytest

from airflow_jobstatus.core.exceptions import JobFailedError
from tests.dag_harness import run_operator

CDM = ("airflow_jobstatus.operators.cdm", "CdmStartJobOperator")
DLI = ("airflow_jobstatus.operators.dli", "DliRunSqlJobOperator")
FAST = {"poll_interval": 0.2, "max_backoff": 0.2}

CDM_OK = [
    {"state": "BOOTING", "duration": 0.2, "progress": 0},
    {"state": "RUNNING", "duration": 0.4, "progress": [0, 100], "counters": {"rows_read": [0, 500]}},
    {
        "state": "SUCCEEDED",
        "progress": 100,
        "counters": {"rows_read": 500, "rows_written": 498, "rows_written_skipped": 2, "bytes_read": 4096},
    },
]


def sub_job(status: str, done: Any) -> dict[str, Any]:
    return {
        "id": 0,
        "name": "runJob at Writer.scala:266",
        "status": status,
        "num_tasks": 8,
        "num_completed_tasks": done,
    }


DLI_OK = [
    {"state": "LAUNCHING", "duration": 0.2, "progress": 0},
    # 2 s: under load the first read after deferring may come 1.5 s after the submit
    {"state": "RUNNING", "duration": 2.0, "progress": [0, 0.9], "sub_jobs": [sub_job("RUNNING", [0, 8])]},
    {"state": "FINISHED", "progress": 1},  # a finished job lists no subjobs any more
]


class FakeTI:
    """Stands in for the task instance in direct execute() calls: only xcom_push is used."""

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def test_cdm_run_pushes_counters(sim):
    sim.core.define_cdm_job("orders")
    sim.set_default_timeline("cdm", CDM_OK)
    kwargs = {"cluster_id": "sim-cluster", "job_name": "orders", "variables": {"day": "{{ ds }}"}, **FAST}
    result = run_operator(*CDM, {**kwargs, "deferrable": True}, name="cdm_ok")
    assert result.state == "success"
    x = result.xcoms
    assert x["status"] == "SUCCEEDED" and x["progress"] == 1.0
    assert x["counters"]["rows_written"] == 498 and x["counters"]["rows_written_skipped"] == 2
    assert x["return_value"]["state"] == "SUCCEEDED"
    assert str(x["submission_id"]) == str(sim.core.cdm_submissions("orders")[-1].submission_id)
    assert len(sim.core.cdm_submissions("orders")) == 1
    start = [r for r in sim.requests("cdm", "orders") if r["method"] == "StartJob"]
    assert len(start) == 1 and "day" in str(start[0]["detail"])


def test_dli_run_keeps_sub_jobs_and_history(sim):
    sim.set_default_timeline("dli", DLI_OK)
    kwargs = {
        "sql": "INSERT INTO t SELECT * FROM s",
        "queue_name": "default",
        **FAST,
        "deferrable": True,
    }
    result = run_operator(*DLI, kwargs, name="dli_ok")
    assert result.state == "success"
    x = result.xcoms
    assert x["status"] == "SUCCEEDED" and x["progress"] == 1.0
    assert x["sub_jobs"] and x["sub_jobs"][0]["num_tasks"] == 8  # kept from before the job finished
    history = x["progress_history"]
    assert len(history) >= 3 and history[-1]["state"] == "SUCCEEDED"
    assert all(set(h) == {"at", "state", "progress", "tasks"} for h in history)
    jobs = sim.core.jobs("dli")
    assert len(jobs) == 1 and x["job_id"] == jobs[0].job_id


def test_on_kill_cancels_the_job_it_started(sim):
    from airflow_jobstatus.operators.dli import DliRunSqlJobOperator

    sim.set_default_timeline("dli", [{"state": "RUNNING"}])
    op = DliRunSqlJobOperator(
        task_id="t", sql="SELECT 1", queue_name="q", deferrable=False, poll_interval=0.1
    )
    op.on_kill()  # nothing started yet: nothing to cancel
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            op.execute({"ti": FakeTI()})  # type: ignore[arg-type]
        except Exception as err:
            outcome["error"] = err

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 10
    while sim.calls("dli") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    op.on_kill()
    worker.join(timeout=10)
    methods = [r["method"] for r in sim.requests("dli", op.job_id)]
    assert methods.count("CancelSqlJob") == 1
    assert isinstance(outcome.get("error"), JobFailedError)
    assert "CANCELLED" in str(outcome["error"])


async def _first_event(trigger) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


def test_triggerer_restart_does_not_submit_twice(sim):
    from airflow_jobstatus.core.compat import TaskDeferred
    from airflow_jobstatus.operators.dli import DliRunSqlJobOperator
    from airflow_jobstatus.triggers.job_status import JobStatusTrigger

    sim.set_default_timeline("dli", DLI_OK)
    kwargs = {"task_id": "t", "sql": "SELECT 1", "queue_name": "q", "deferrable": True, **FAST}
    ti = FakeTI()
    with pytest.raises(TaskDeferred) as deferred:
        DliRunSqlJobOperator(**kwargs).execute({"ti": ti})  # type: ignore[arg-type]
    assert ti.xcoms["job_id"]  # persisted before deferring
    _, trigger_kwargs = deferred.value.trigger.serialize()

    async def restart_then_finish() -> dict[str, Any]:
        first = asyncio.ensure_future(_first_event(JobStatusTrigger(**trigger_kwargs)))
        await asyncio.sleep(0.3)  # it polls, then the triggerer dies
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        return await _first_event(JobStatusTrigger(**trigger_kwargs))  # rebuilt from its kwargs

    event = asyncio.run(restart_then_finish())
    resumed = DliRunSqlJobOperator(**kwargs)
    result = resumed.execute_complete({"ti": ti}, event=event, **deferred.value.kwargs)  # type: ignore[arg-type]
    assert result["state"] == "SUCCEEDED" and resumed.job_id == ti.xcoms["job_id"]
    assert len(sim.core.jobs("dli")) == 1
    submits = [r for r in sim.requests("dli", ti.xcoms["job_id"]) if r["method"] == "CreateSqlJob"]
    assert len(submits) == 1


@pytest.mark.parametrize("cancel_on_kill", [True, False])
def test_trigger_on_kill_cancels_only_a_started_job(sim, cancel_on_kill):
    from airflow_jobstatus.triggers.job_status import JobStatusTrigger

    sim.add_job("dli", "job-k", [{"state": "RUNNING"}])
    trigger = JobStatusTrigger("dli", {"job_id": "job-k", "job_type": "sql"}, cancel_on_kill=cancel_on_kill)
    asyncio.run(trigger.on_kill())
    methods = [r["method"] for r in sim.requests("dli", "job-k")]
    assert methods.count("CancelSqlJob") == (1 if cancel_on_kill else 0)
