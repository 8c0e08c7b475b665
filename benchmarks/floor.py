"""The memory floor: N bare waiters polling one shared GAPIC async client (run by run.py in a fresh process).

What a Dataproc wait cannot do with less: a task per wait, a ``get_job`` every interval on one shared
``JobControllerAsyncClient``, an event when the job is done. No hook, no trigger, no wait rules, no
logging. Our ``JobStatusTrigger``'s RSS per waiting trigger is compared with this one's.

Usage: floor.py SERVICES READY_FILE PLAN_FILE RESULT_FILE (SERVICES must be ``dataproc``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fleet_main
from floors import GapicFloor

REGION = "europe-west1"
_FLOOR: list[GapicFloor] = []
#: google.cloud.dataproc_v1.JobStatus.State: DONE, ERROR, CANCELLED.
_FINAL = {5: "success", 6: "failure", 4: "failure"}


class Event:
    def __init__(self, payload: dict[str, Any]):
        self.payload = payload


class FloorWaiter:
    """One wait: poll, sleep, repeat, until the job's state is final."""

    def __init__(self, job_id: str, poll: float):
        self.job_id, self.poll = job_id, poll

    async def run(self) -> AsyncIterator[Event]:
        import asyncio

        while True:
            job = await _FLOOR[0].poll(self.job_id)
            outcome = _FINAL.get(int(job.status.state))
            if outcome is not None:
                yield Event({"status": outcome})
                return
            await asyncio.sleep(self.poll)


def make_trigger(job: dict[str, Any]) -> FloorWaiter:
    return FloorWaiter(job["job_id"], job["poll"])


async def warm_up() -> None:
    _FLOOR.append(GapicFloor(os.environ["SIM_GRPC_TARGET"], os.environ["SIM_PROJECT"], REGION))
    async for event in FloorWaiter("warm-dataproc", 0.1).run():
        if event.payload["status"] != "success":
            raise RuntimeError(f"floor warm-up failed: {event.payload}")


if __name__ == "__main__":
    if sys.argv[1] != "dataproc":
        raise SystemExit("the floor runner waits on dataproc jobs only")
    fleet_main(make_trigger, warm_up, sys.argv[2:])
