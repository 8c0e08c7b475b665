"""Event watchers' list calls through the real clients (gRPC to the simulator, signed REST for DLI):
every listed job read as a ``Watched`` (state, end time), and watchers sharing one list call per
interval through Airflow's real ``SharedStreamManager``. Labels and tags are tested client-side in
the unit layer (tests/unit/test_job_events.py) until the simulator carries them on every kind."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_jobstatus.hooks import gcp, huawei_async
from airflow_jobstatus.hooks.base import make_hook
from airflow_jobstatus.simulator import Simulator
from airflow_jobstatus.simulator.vertex_grpc import vertex_available
from airflow_jobstatus.triggers.job_events import JobEventTrigger
from tests.unit.fakes_watch import FakeAssetStore, Runner

#: Per service: (scope, a running timeline, a success, a failure, the list method).
CASES: dict[str, dict[str, Any]] = {
    "dataproc": {
        "scope": {"region": "europe-west1"},
        "run": [{"state": "RUNNING"}],
        "ok": [{"state": "RUNNING", "duration": 0.2}, {"state": "DONE"}],
        "bad": [{"state": "RUNNING", "duration": 0.2}, {"state": "ERROR"}],
        "list": "ListJobs",
    },
    "dataflow": {
        "scope": {"location": "europe-west1"},
        "run": [{"state": "JOB_STATE_RUNNING"}],
        "ok": [{"state": "JOB_STATE_RUNNING", "duration": 0.2}, {"state": "JOB_STATE_DONE"}],
        "bad": [{"state": "JOB_STATE_RUNNING", "duration": 0.2}, {"state": "JOB_STATE_FAILED"}],
        "list": "ListJobs",
    },
    "vertex_ai": {
        "scope": {"location": "europe-west1"},
        "run": [{"state": "JOB_STATE_RUNNING"}],
        "ok": [{"state": "JOB_STATE_RUNNING", "duration": 0.2}, {"state": "JOB_STATE_SUCCEEDED"}],
        "bad": [{"state": "JOB_STATE_RUNNING", "duration": 0.2}, {"state": "JOB_STATE_FAILED"}],
        "list": "ListCustomJobs",
    },
    "dli": {
        "scope": {"job_type": "sql"},
        "run": [{"state": "RUNNING"}],
        "ok": [{"state": "RUNNING", "duration": 0.2}, {"state": "FINISHED"}],
        "bad": [{"state": "RUNNING", "duration": 0.2}, {"state": "FAILED"}],
        "list": "ListSqlJobs",
    },
    "dli:spark": {
        "scope": {"job_type": "spark"},
        "run": [{"state": "running"}],
        "ok": [{"state": "running", "duration": 0.2}, {"state": "success"}],
        "bad": [{"state": "running", "duration": 0.2}, {"state": "dead"}],
        "list": "ListSparkJobs",
    },
    "dataproc_batch": {
        "scope": {"region": "europe-west1"},
        "run": [{"state": "RUNNING"}],
        "ok": [{"state": "RUNNING", "duration": 0.2}, {"state": "SUCCEEDED"}],
        "bad": [{"state": "RUNNING", "duration": 0.2}, {"state": "FAILED"}],
        "list": "ListBatches",
    },
    "vertex_pipeline": {
        "scope": {"location": "europe-west1"},
        "run": [{"state": "PIPELINE_STATE_RUNNING"}],
        "ok": [{"state": "PIPELINE_STATE_RUNNING", "duration": 0.2}, {"state": "PIPELINE_STATE_SUCCEEDED"}],
        "bad": [{"state": "PIPELINE_STATE_RUNNING", "duration": 0.2}, {"state": "PIPELINE_STATE_FAILED"}],
        "list": "ListPipelineJobs",
    },
    "dli_flink": {
        "scope": {},
        "run": [{"state": "job_running"}],
        "ok": [{"state": "job_running", "duration": 0.2}, {"state": "job_finish"}],
        "bad": [{"state": "job_running", "duration": 0.2}, {"state": "job_running_exception"}],
        "list": "ListFlinkJobs",
        "ids": {"w-run": "901", "w-ok": "902", "w-bad": "903"},
    },
    "cdm": {
        "scope": {"cluster_id": "c1"},
        "run": [{"state": "RUNNING"}],
        "ok": [{"state": "RUNNING", "duration": 0.2}, {"state": "SUCCEEDED"}],
        "bad": [{"state": "RUNNING", "duration": 0.2}, {"state": "FAILED"}],
        "list": "ShowJobs",
        "where": {"cluster_id": "c1"},  # a job is named in its cluster; listed as cluster/name
        "shown": {"w-run": "c1/w-run", "w-ok": "c1/w-ok", "w-bad": "c1/w-bad"},
    },
}
SERVICES = [s for s in CASES if not s.startswith("vertex") or vertex_available()]


def add(sim: Simulator, case_name: str, job_id: str, which: str) -> None:
    extra = {"job_type": "spark"} if case_name == "dli:spark" else dict(CASES[case_name].get("where", {}))
    job_id = CASES[case_name].get("ids", {}).get(job_id, job_id)
    sim.add_job(case_name.split(":")[0], job_id, [dict(p) for p in CASES[case_name][which]], **extra)


async def closing(coro: Any) -> Any:
    try:
        return await coro
    finally:
        await gcp.aclose_shared_clients()
        await huawei_async.aclose_sessions()


@pytest.mark.parametrize("case_name", SERVICES)
def test_every_listed_job_reads_as_watched(sim: Simulator, case_name: str) -> None:
    service, case = case_name.split(":")[0], CASES[case_name]
    add(sim, case_name, "w-run", "run")
    add(sim, case_name, "w-ok", "ok")
    add(sim, case_name, "w-bad", "bad")
    time.sleep(0.6)  # both ended
    listed = asyncio.run(closing(make_hook(service).alist_jobs(case["scope"])))
    names = {v: k for k, v in case.get("shown", case.get("ids", {})).items()}
    by_id = {names.get(w.status.job_id, w.status.job_id): w for w in listed}
    assert {"w-run", "w-ok", "w-bad"} <= set(by_id)
    assert by_id["w-run"].status.state.value == "RUNNING"
    assert by_id["w-ok"].status.state.value == "SUCCEEDED"
    assert by_id["w-bad"].status.state.value == "FAILED"
    for job_id in ("w-ok", "w-bad"):  # an ended job's end is dated: a restart does not miss it
        assert by_id[job_id].changed_at is not None
        assert abs(by_id[job_id].changed_at - time.time()) < 120
    assert sim.method_calls(service).get(case["list"], 0) == 1


def test_three_watchers_one_list_call_per_interval_each_end_once(sim: Simulator) -> None:
    interval = 0.3
    for i in range(4):
        add(sim, "dataflow", f"before-{i}", "ok")
    time.sleep(0.5)  # these ended before the watchers started: not reported

    async def scenario() -> tuple[Runner, int, int]:
        runner = Runner()
        kwargs = {"service": "dataflow", "location": "europe-west1", "poll_interval": interval}
        watchers = [
            JobEventTrigger(**kwargs),
            JobEventTrigger(**kwargs, states=["FAILED"]),
            JobEventTrigger(**kwargs, job_id_prefix="after-1"),
        ]
        for i, w in enumerate(watchers):
            w.asset_state_store = FakeAssetStore()  # type: ignore[assignment]
            runner.start(i, w)
        await asyncio.sleep(interval)
        for i in range(6):
            add(sim, "dataflow", f"after-{i}", "bad" if i % 3 == 0 else "ok")
        deadline = time.monotonic() + 15
        while len(runner.all_events()) < 6 + 2 + 1 and time.monotonic() < deadline:
            runner.persist()
            await asyncio.sleep(0.05)
        calls_before = sim.method_calls("dataflow").get("ListJobs", 0)
        await asyncio.sleep(3 * interval)  # a few more polls: nothing more fires
        calls = sim.method_calls("dataflow").get("ListJobs", 0)
        await runner.kill()
        return runner, calls_before, calls

    runner, calls_before, calls = asyncio.run(closing(scenario()))
    keys = [[e["dedupe_key"] for e in runner.events[i]] for i in range(3)]
    assert sorted(keys[0]) == sorted(
        f"dataflow:after-{i}:{'FAILED' if i % 3 == 0 else 'SUCCEEDED'}" for i in range(6)
    )
    assert sorted(keys[1]) == ["dataflow:after-0:FAILED", "dataflow:after-3:FAILED"]
    assert keys[2] == ["dataflow:after-1:SUCCEEDED"]
    assert 2 <= calls - calls_before <= 5  # ~3 intervals: one list call each, not three
