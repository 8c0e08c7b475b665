"""Cyclic garbage an ended trigger leaves behind (issue 27 item 3: what the triggerer's refreezes keep).

A freeze (airflow_jobstatus/wait/gc.py) keeps what is alive at that moment out of every collection
until the next release; if a frozen trigger, once ended, left objects in reference cycles, only that
release would free them. Per service, ``--n`` triggers on one event loop (as a triggerer runs them)
end in success, in failure, or are cancelled while waiting (the triggerer's cancel of a trigger it
no longer runs), with the collector off; then ``gc.collect()`` counts the objects in unreachable
cycles. The simulator runs in its own process, so its server-side garbage does not count.

Usage: ``.venv/bin/python benchmarks/gc_cycles.py [--n 200] [--services dataproc,cdm]``; prints one
line per (service, ending) and the objects in cycles per wait.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from plan import job_ref, timeline  # noqa: E402
from simctl import SimProcess  # noqa: E402

FAILED = {
    "dataproc": {"state": "ERROR", "details": "Driver exited 7"},
    "dataflow": {"state": "JOB_STATE_FAILED"},
    "vertex_ai": {"state": "JOB_STATE_FAILED", "error": "OOM"},
    "cdm": {"state": "FAILED", "message": "disk full"},
    "dli": {"state": "FAILED", "message": "DLI.0005: syntax"},
}
ENDINGS = ("success", "failure", "cancelled")


def jobs(service: str, tag: str, n: int, ending: str) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        job_id = str(int(8e6) + 1000 * ENDINGS.index(ending) + i) if service == "vertex_ai" else f"{tag}-{i}"
        steps = timeline(service, 1.0)
        if ending == "failure":
            steps[-1] = FAILED[service]
        elif ending == "cancelled":
            steps = steps[:-1]
            steps[-1] = {**steps[-1], "duration": 3600}
        out.append({"service": service, "job_id": job_id, "timeline": steps, "key": f"{service}:{job_id}"})
    return out


async def run(services: list[str], n: int) -> list[str]:
    from airflow_jobstatus.triggers.job_status import JobStatusTrigger

    async def one(service: str, job_id: str) -> Any:
        trigger = JobStatusTrigger(service, job_ref(service, job_id), poll_interval=0.3, coalesce=False)
        trigger.trigger_id = 1  # as in a triggerer
        async for event in trigger.run():
            return event.payload["status"]

    lines = []
    for service in services:
        warm = jobs(service, f"warm-{service}", 2, "success")
        sim.add_jobs(warm)
        await asyncio.gather(*(one(service, j["job_id"]) for j in warm))
        for ending in ENDINGS:
            batch = jobs(service, f"{ending}-{service}", n, ending)
            sim.add_jobs(batch)
            gc.collect()
            gc.disable()
            gc.set_debug(gc.DEBUG_SAVEALL)  # keep what a collection finds, to name it
            tasks = [asyncio.create_task(one(service, j["job_id"])) for j in batch]
            if ending == "cancelled":
                await asyncio.sleep(1.0)  # every wait has read its job once or more
                for task in tasks:
                    task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            outcome = Counter(r if isinstance(r, str) else type(r).__name__ for r in results)
            del results, tasks  # what the triggerer drops once a trigger is done
            await asyncio.sleep(0.5)
            found = gc.collect()
            kinds = Counter(type(o).__qualname__ for o in gc.garbage).most_common(6)
            gc.garbage.clear()
            gc.set_debug(0)
            gc.enable()
            lines.append(
                f"{service:10s} {ending:9s} {n} waits {dict(outcome)}: {found} objects in cycles, "
                f"{found / n:.1f} per wait {kinds}"
            )
            print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--services", default=",".join(FAILED))
    args = p.parse_args()
    with SimProcess(env={**os.environ, "PYTHONPATH": str(HERE.parent)}) as sim:
        os.environ.update(sim.env)
        asyncio.run(run(args.services.split(","), args.n))
