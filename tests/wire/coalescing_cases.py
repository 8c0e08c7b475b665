"""The job timelines and the trigger runner the coalescing wire tests share: one success and one
failure timeline per listable job kind, stretched per test, and waits run on one event loop as a
triggerer runs them."""

from __future__ import annotations

import asyncio
from typing import Any

from airflow_jobstatus.hooks import gcp, huawei_async
from airflow_jobstatus.simulator import Simulator
from airflow_jobstatus.triggers.coalescing import active_pollers
from airflow_jobstatus.triggers.job_status import JobStatusTrigger

POLL = 0.25
#: Per case (``service`` or ``service:job type``): success and failure timelines (durations in s at
#: stretch 1), the list method, the read method, the job reference's fields besides the id.
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
    "dli_flink": {  # job ids are numbers: add_jobs' tag must be one
        "ok": [
            {"state": "job_submitting", "duration": 0.3},
            {"state": "job_running", "duration": 0.6, "restart_times": 1},
            {"state": "job_finish", "status_desc": "bounded source drained", "restart_times": 1},
        ],
        "bad": [
            {"state": "job_running", "duration": 0.7},
            {"state": "job_running_exception", "status_desc": "TaskManager lost", "restart_times": 3},
        ],
        "list": "ListFlinkJobs",
        "read": "ShowFlinkJob",
        "ref": {},
    },
}


def service_of(case_name: str) -> str:
    return case_name.split(":")[0]


def where(case_name: str) -> dict[str, str]:
    """The simulator's job fields beyond the timeline (DLI Spark's job type)."""
    return {"job_type": "spark"} if case_name == "dli:spark" else {}


def job_ids(case_name: str, tag: str, count: int) -> list[str]:
    """``tag-0``, ``tag-1``, …; DLI Flink's ids are numbers, so there ``tag`` is the first one."""
    if case_name == "dli_flink":
        return [str(int(tag) + i) for i in range(count)]
    return [f"{tag}-{i}" for i in range(count)]


def add_jobs(sim: Simulator, case_name: str, tag: str, count: int, stretch: float = 1.0) -> list[str]:
    """``count`` jobs, every third one failing, their first phase ``stretch`` times the table's and
    their ends 0.1 s apart (not all at once)."""
    case = CASES[case_name]
    ids = job_ids(case_name, tag, count)
    for i, job_id in enumerate(ids):
        timeline = [dict(p) for p in (case["bad"] if i % 3 == 2 else case["ok"])]
        for phase in timeline:
            if "duration" in phase:
                phase["duration"] *= stretch
        timeline[0]["duration"] += 0.1 * i
        sim.add_job(service_of(case_name), job_id, timeline, **where(case_name))
    return ids


def waits_of(case_name: str, ids: list[str]) -> list[tuple[str, str]]:
    return [(case_name, job_id) for job_id in ids]


async def run_waits(waits: list[tuple[str, str]], **kw: Any) -> list[dict[str, Any]]:
    """One trigger per (case, job id) on this loop, as a triggerer runs them; each one's first event.
    ``kw``: the trigger's arguments besides the job (no ``coalesce``: the default)."""

    async def one(case_name: str, job_id: str) -> dict[str, Any]:
        ref = {"job_id": job_id, **CASES[case_name]["ref"]}
        trigger = JobStatusTrigger(service_of(case_name), ref, poll_interval=POLL, max_backoff=0.2, **kw)
        agen = trigger.run()
        try:
            return dict((await agen.__anext__()).payload)
        finally:
            await agen.aclose()

    try:
        return list(await asyncio.gather(*(one(c, j) for c, j in waits)))
    finally:
        assert active_pollers() == {}  # every trigger's end left its poller
        await gcp.aclose_shared_clients()
        await huawei_async.aclose_sessions()


def outcome(payload: dict[str, Any]) -> tuple[Any, ...]:
    """What the two modes must agree on: verdict, normalized and native state, message, counters."""
    job = payload.get("job_status") or {}
    return (
        payload["status"],
        job.get("state"),
        job.get("native_state"),
        job.get("message"),
        job.get("counters"),
    )
