"""Our fleet runner: N JobStatusTriggers on one event loop (run by run.py in a fresh process).

Usage: fleet.py SERVICES READY_FILE PLAN_FILE RESULT_FILE (SERVICES comma-separated).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fleet_main
from plan import job_ref

from airflow_jobstatus.triggers.job_status import JobStatusTrigger

_TRIGGER_IDS = itertools.count(1)


def make_trigger(job: dict[str, Any]) -> JobStatusTrigger:
    """The trigger a deferred sensor would hand the triggerer for this job, with the id the triggerer sets."""
    trigger = JobStatusTrigger(job["service"], job["ref"], poll_interval=job["poll"])
    trigger.trigger_id = next(_TRIGGER_IDS)
    return trigger


def warm_up_for(services: list[str]):  # type: ignore[no-untyped-def]
    """A coroutine function running one trigger per service on an already-finished job."""

    async def warm_up() -> None:
        async def one(service: str) -> None:
            trigger = JobStatusTrigger(service, job_ref(service, f"warm-{service}"), poll_interval=0.1)
            async for event in trigger.run():
                if event.payload.get("status") != "success":
                    raise RuntimeError(f"warm-up of {service} failed: {event.payload}")
                break

        await asyncio.gather(*(one(s) for s in services))

    return warm_up


def counters() -> dict[str, int]:
    """Connection reads of this process so far (the fleet should add at most one per connection per TTL)."""
    from airflow_jobstatus.hooks import gcp, huawei_config

    return {
        "google_connection_reads": gcp.CONNECTIONS.reads,
        "huawei_connection_reads": huawei_config.CONFIGS.reads,
    }


if __name__ == "__main__":
    fleet_main(make_trigger, warm_up_for(sys.argv[1].split(",")), sys.argv[2:], counters)
