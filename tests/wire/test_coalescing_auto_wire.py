"""``coalesce="auto"`` (the default) through the real clients (gRPC to the simulator, signed REST for
DLI): one or two waits of a scope read their own jobs (no list call), six waits of a scope in one
event loop share list calls instead of most reads, scopes decide apart in one loop, DLI SQL jobs
(whose list lacks progress and subjobs: services/dli.py) are never listed; every payload is the one
per-job polling (``coalesce=False``) gives."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from airflow_jobstatus.simulator import Simulator
from airflow_jobstatus.simulator.vertex_grpc import vertex_available
from airflow_jobstatus.triggers.coalescing import AUTO_MIN_WAITS
from tests.wire import coalescing_cases
from tests.wire.coalescing_cases import CASES, run_waits, service_of, waits_of, where

FEW = 2  # below AUTO_MIN_WAITS: per-job reads
MANY = 6  # >= 2 x a Huawei list's first pages (DLI Spark: three states): auto coalesces every service here
#: The shared timelines twice as long: auto decides over several list rounds before the jobs end.
STRETCH = 2.0
LISTABLE = [s for s in CASES if s not in ("dli", "dli_flink") and (s != "vertex_ai" or vertex_available())]


def add_jobs(sim: Simulator, case_name: str, tag: str, count: int) -> list[str]:
    return coalescing_cases.add_jobs(sim, case_name, tag, count, stretch=STRETCH)


def warm_up(sim: Simulator, case_name: str) -> None:
    """One wait on a finished job first: the SDK's import and first channel (seconds for Vertex AI) do
    not fall into the per-job run's first poll, so both runs see the same phases."""
    sim.add_job(service_of(case_name), "warm", CASES[case_name]["ok"][-1:], **where(case_name))
    asyncio.run(run_waits([(case_name, "warm")], coalesce=False))


def comparable(payload: dict[str, Any], tag: str) -> dict[str, Any]:
    """The payload with the run's job-id tag taken out and the readings' times dropped (the two runs
    start at different times); verdict, job status, message, subjobs and readings stay."""
    out: dict[str, Any] = json.loads(json.dumps(payload).replace(f"{tag}-", "job-"))
    out["progress_history"] = [
        {k: v for k, v in reading.items() if k not in ("time", "at", "ts", "timestamp")}
        for reading in out.get("progress_history") or []
    ]
    return out


def calls_during(sim: Simulator, services: set[str], run: Any) -> tuple[Any, dict[str, dict[str, int]]]:
    """``run()``'s result and the requests each service received meanwhile, by method."""
    before = {s: sim.method_calls(s) for s in services}
    result = run()
    after = {s: sim.method_calls(s) for s in services}
    return result, {
        s: {m: n - before[s].get(m, 0) for m, n in after[s].items() if n - before[s].get(m, 0)}
        for s in services
    }


def per_job_reads(sim: Simulator, service: str, read_method: str, ids: list[str]) -> dict[str, int]:
    """Each job's own reads (the simulator's per-job request log)."""
    return {
        job_id: sum(1 for r in sim.requests(service, job_id) if r.get("method") == read_method)
        for job_id in ids
    }


@pytest.mark.parametrize("case_name", LISTABLE)
def test_auto_below_the_threshold_reads_each_job(sim: Simulator, case_name: str) -> None:
    """Two waits of one scope: no list call, each wait reads its own job every interval (as False)."""
    assert FEW < AUTO_MIN_WAITS
    service, case = service_of(case_name), CASES[case_name]
    warm_up(sim, case_name)
    per_job, _ = calls_during(
        sim,
        {service},
        lambda: asyncio.run(
            run_waits(waits_of(case_name, add_jobs(sim, case_name, "off", FEW)), coalesce=False)
        ),
    )
    ids = add_jobs(sim, case_name, "auto", FEW)
    auto, calls = calls_during(sim, {service}, lambda: asyncio.run(run_waits(waits_of(case_name, ids))))

    assert case["list"] not in calls[service], calls  # not one list call
    reads = per_job_reads(sim, service, case["read"], ids)
    assert sum(reads.values()) == calls[service][case["read"]], (reads, calls)  # every read its job's own
    assert all(n >= 3 for n in reads.values()), reads  # read while pending/running and at its end
    assert [comparable(p, "auto") for p in auto] == [comparable(p, "off") for p in per_job]


@pytest.mark.parametrize("case_name", LISTABLE)
def test_auto_above_the_threshold_lists_instead_of_reading(sim: Simulator, case_name: str) -> None:
    """Six waits of one scope in one loop: list calls replace most reads; the same payloads."""
    service, case = service_of(case_name), CASES[case_name]
    warm_up(sim, case_name)
    off_ids = add_jobs(sim, case_name, "off", MANY)
    per_job, off_calls = calls_during(
        sim, {service}, lambda: asyncio.run(run_waits(waits_of(case_name, off_ids), coalesce=False))
    )
    ids = add_jobs(sim, case_name, "auto", MANY)
    auto, calls = calls_during(sim, {service}, lambda: asyncio.run(run_waits(waits_of(case_name, ids))))

    assert [comparable(p, "auto") for p in auto] == [comparable(p, "off") for p in per_job]
    assert [p["status"] for p in auto] == ["success", "success", "failure"] * 2
    assert case["list"] not in off_calls[service]  # False: reads only
    reads, off_reads = calls[service][case["read"]], off_calls[service][case["read"]]
    assert calls[service].get(case["list"], 0) >= 2, calls  # the waits were served by list calls …
    # … so far fewer reads: each job's final read, the first reads of the waits that joined before the
    # scope turned on, and the per-job reads of the last few once too few are left to pay for a list.
    assert reads <= off_reads / 2, (reads, off_reads)
    assert sum(calls[service].values()) < off_reads, (calls, off_reads)  # fewer calls in all


def test_auto_decides_per_scope_in_one_loop(sim: Simulator) -> None:
    """Six Dataproc waits and two Dataflow waits on one loop: Dataproc lists, Dataflow reads per job."""
    many = add_jobs(sim, "dataproc", "auto", MANY)
    few = add_jobs(sim, "dataflow", "auto", FEW)
    payloads, calls = calls_during(
        sim,
        {"dataproc", "dataflow"},
        lambda: asyncio.run(run_waits(waits_of("dataproc", many) + waits_of("dataflow", few))),
    )
    assert [p["status"] for p in payloads] == ["success", "success", "failure"] * 2 + ["success"] * 2
    assert calls["dataproc"].get("ListJobs", 0) >= 2 and calls["dataproc"]["GetJob"] <= MANY * 2, calls
    assert "ListJobs" not in calls["dataflow"], calls
    assert all(n >= 3 for n in per_job_reads(sim, "dataflow", "GetJob", few).values())


def test_auto_reads_dli_sql_jobs_on_their_own(sim: Simulator) -> None:
    """DLI SQL's list carries no progress and no subjobs: auto never lists it, even for six waits, and
    the payloads (progress readings included) are per-job polling's."""
    warm_up(sim, "dli")
    off_ids = add_jobs(sim, "dli", "off", MANY)
    per_job, _ = calls_during(
        sim, {"dli"}, lambda: asyncio.run(run_waits(waits_of("dli", off_ids), coalesce=False))
    )
    ids = add_jobs(sim, "dli", "auto", MANY)
    auto, calls = calls_during(sim, {"dli"}, lambda: asyncio.run(run_waits(waits_of("dli", ids))))

    assert "ListSqlJobs" not in calls["dli"], calls
    assert all(n >= 3 for n in per_job_reads(sim, "dli", "ShowSqlJobProgress", ids).values())
    assert [comparable(p, "auto") for p in auto] == [comparable(p, "off") for p in per_job]
    assert any(r.get("progress") == 0.5 for p in auto for r in p["progress_history"])  # a read's progress
