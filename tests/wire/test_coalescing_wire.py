"""Coalesced polling through the real clients (gRPC to the simulator, signed REST for DLI): the same
outcomes as per-job polling, with list calls instead of most reads."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_jobstatus.hooks import gcp, huawei_async
from airflow_jobstatus.simulator import Simulator
from airflow_jobstatus.simulator.vertex_grpc import vertex_available
from tests.wire.coalescing_cases import (
    CASES,
    add_jobs,
    outcome,
    run_waits,
    service_of,
    waits_of,
    where,
)

SERVICES = [s for s in CASES if s != "dli_flink" and (s != "vertex_ai" or vertex_available())]
JOBS = 6  # per mode: four succeed, two fail


def wait_all(case_name: str, ids: list[str], coalesce: bool) -> list[dict[str, Any]]:
    return asyncio.run(run_waits(waits_of(case_name, ids), coalesce=coalesce))


@pytest.mark.parametrize("case_name", SERVICES)
def test_same_outcomes_with_list_calls(sim: Simulator, case_name: str) -> None:
    service = service_of(case_name)
    per_job = wait_all(case_name, add_jobs(sim, case_name, "solo", JOBS), coalesce=False)
    before = sim.method_calls(service)
    coalesced = wait_all(case_name, add_jobs(sim, case_name, "team", JOBS), coalesce=True)
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
    ids = add_jobs(sim, service, "flaky", JOBS)
    kind = "grpc_unavailable" if service == "dataproc" else "http_503"
    sim.inject_fault(kind, count=1, service=service)  # the first call is the first list call
    payloads = wait_all(service, ids, coalesce=True)
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

    service, case = service_of(case_name), CASES[case_name]
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
