"""The job plan of one fleet run: which jobs, their timelines, and when each trigger starts."""

from __future__ import annotations

import random
from typing import Any

from airflow_jobstatus.services import SERVICES

REGION = "europe-west1"
ALL_SERVICES = SERVICES


def timeline(service: str, end_after: float) -> list[dict[str, Any]]:
    """A short pending phase, a running phase, then success at ``end_after`` seconds."""
    pending = min(2.0, end_after / 4)
    running = end_after - pending
    if service == "dataproc":
        return [
            {"state": "PENDING", "duration": pending},
            {"state": "RUNNING", "duration": running},
            {"state": "DONE"},
        ]
    if service == "dataflow":
        return [
            {"state": "JOB_STATE_PENDING", "duration": pending},
            {"state": "JOB_STATE_RUNNING", "duration": running},
            {"state": "JOB_STATE_DONE"},
        ]
    if service == "vertex_ai":
        return [
            {"state": "JOB_STATE_PENDING", "duration": pending},
            {"state": "JOB_STATE_RUNNING", "duration": running},
            {"state": "JOB_STATE_SUCCEEDED"},
        ]
    if service == "cdm":
        return [
            {"state": "BOOTING", "duration": pending, "progress": 0},
            {"state": "RUNNING", "duration": running, "progress": [0, 100]},
            {"state": "SUCCEEDED", "progress": 100, "counters": {"rows_read": 1000, "rows_written": 1000}},
        ]
    if service == "dli":
        return [
            {"state": "LAUNCHING", "duration": pending, "progress": 0},
            {"state": "RUNNING", "duration": running, "progress": [0, 1]},
            {"state": "FINISHED", "progress": 1},
        ]
    raise ValueError(f"unknown service {service!r}")


def job_ref(service: str, job_id: str) -> dict[str, Any]:
    """The trigger's job reference (the service's ``JobRef`` as a dict) for a simulator job."""
    if service == "dataproc":
        return {"job_id": job_id, "region": REGION}
    if service in ("dataflow", "vertex_ai"):
        return {"job_id": job_id, "location": REGION}
    if service == "cdm":
        return {"cluster_id": "sim-cluster", "job_name": job_id}
    return {"job_id": job_id, "job_type": "sql"}


def make_plan(
    n: int,
    services: tuple[str, ...],
    end_range: tuple[float, float],
    stagger: float,
    seed: int,
    tag: str,
) -> list[dict[str, Any]]:
    """``n`` jobs round-robin over ``services``: end times uniform in ``end_range`` seconds after they
    are added, triggers starting uniformly over ``stagger`` seconds (deferrals arrive over time)."""
    rng = random.Random(seed)
    jobs = []
    for i in range(n):
        service = services[i % len(services)]
        job_id = f"{tag}-{service.replace('_', '')}-{i:06d}"
        end_after = rng.uniform(*end_range)
        jobs.append(
            {
                "key": f"{service}:{job_id}",
                "service": service,
                "job_id": job_id,
                "timeline": timeline(service, end_after),
                "end_after": end_after,
                "offset": rng.uniform(0.0, stagger),
                "ref": job_ref(service, job_id),
            }
        )
    return jobs
