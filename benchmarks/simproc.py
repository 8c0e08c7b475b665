"""The simulator in its own process, driven over stdin/stdout JSON lines (bulk jobs, bulk call counts).

Run by ``SimProcess`` (benchmarks/simctl.py); its CPU is not the measured process's.
Commands: ``{"op": "add_jobs", "jobs": [...]}``, ``{"op": "calls", "keys": [[service, job_id], ...]}``,
``{"op": "calls_between", "services": [...], "start": t0, "end": t1}``,
``{"op": "list_calls", "start": t0, "end": t1}``, ``{"op": "reset"}``, ``{"op": "stats"}``, ``{"op": "quit"}``. Each gets one JSON line back.
"""

from __future__ import annotations

import json
import resource
import sys
from typing import Any

from airflow_jobstatus.simulator import Simulator


def add_jobs(sim: Simulator, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Add every job; return each job's creation wall time (its timeline starts then)."""
    created = {}
    for job in jobs:
        added = sim.add_job(job["service"], job["job_id"], job["timeline"], **job.get("where", {}))
        created[job["key"]] = added.created_wall
    return {"created": created}


def calls(sim: Simulator, keys: list[list[str]]) -> dict[str, Any]:
    """Calls received per (service, job_id), read from one snapshot of the core's counters."""
    core = sim.core
    with core._lock:  # one O(jobs) snapshot instead of core.calls() per job (O(jobs²))
        snapshot = {s: dict(c) for s, c in core._calls.items()}
    by_job: dict[str, int] = {}
    for service, counts in snapshot.items():
        for key, n in counts.items():
            name = key.rpartition("/")[2] if service == "cdm" else key
            by_job[f"{service}:{name}"] = by_job.get(f"{service}:{name}", 0) + n
    return {"calls": [by_job.get(f"{s}:{j}", 0) for s, j in keys]}


def calls_between(sim: Simulator, services: list[str], start: float, end: float) -> dict[str, Any]:
    """Requests of ``services`` received with wall time in [start, end) (the last 200 kept per job)."""
    core = sim.core
    with core._lock:
        times = [r["time"] for s in services for q in core._requests.get(s, {}).values() for r in q]
    return {"count": sum(1 for t in times if start <= t < end)}


def stats(sim: Simulator) -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {**sim.stats(), "cpu_seconds": usage.ru_utime + usage.ru_stime}


def main() -> None:
    sim = Simulator().start()
    out = sys.stdout
    out.write(json.dumps({"grpc_target": sim.grpc_target, "http_url": sim.http_url, "env": sim.env()}) + "\n")
    out.flush()
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd.get("op")
        if op == "quit":
            break
        try:
            if op == "add_jobs":
                reply = add_jobs(sim, cmd["jobs"])
            elif op == "calls":
                reply = calls(sim, cmd["keys"])
            elif op == "calls_between":
                reply = calls_between(sim, cmd["services"], cmd["start"], cmd["end"])
            elif op == "list_calls":  # the core's list-call log (scope, page, first_page) in [start, end)
                reply = {"calls": sim.core.list_calls(since=cmd.get("start"), until=cmd.get("end"))}
            elif op == "reset":
                sim.reset()
                reply = {"reset": True}
            elif op == "stats":
                reply = stats(sim)
            else:
                reply = {"error": f"unknown op {op!r}"}
        except Exception as err:
            reply = {"error": f"{type(err).__name__}: {err}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    sim.stop()


if __name__ == "__main__":
    main()
