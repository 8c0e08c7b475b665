"""Our fleet runner: N JobStatusTriggers on one event loop (run by run.py in a fresh process), with
``coalesce=False`` (each reads its own job, as the Google provider's triggers do; coalesce.py runs
the other modes through ``fleet_main`` with its own ``make_trigger``).

Usage: fleet.py SERVICES READY_FILE PLAN_FILE RESULT_FILE (SERVICES comma-separated).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fleet_main
from plan import job_ref

from airflow_jobstatus.triggers.job_status import JobStatusTrigger

_TRIGGER_IDS = itertools.count(1)


def make_trigger(job: dict[str, Any]) -> JobStatusTrigger:
    """The trigger a deferred sensor would hand the triggerer for this job, with the id the triggerer sets."""
    if CENSUS_PATH and not _census_started:
        _start_census()
    # Per-job polling, as the Google provider's triggers it is compared with (coalesce.py: the others).
    trigger = JobStatusTrigger(job["service"], job["ref"], poll_interval=job["poll"], coalesce=False)
    trigger.trigger_id = next(_TRIGGER_IDS)
    return trigger


#: ``BENCH_GC_CENSUS=<file>``: count the GC-tracked objects per waiting trigger (measure.census).
CENSUS_PATH = os.environ.get("BENCH_GC_CENSUS")
_census_started = False


def _tracked_by_type() -> Counter[str]:
    return Counter(type(o).__qualname__ for o in gc.get_objects())


def _start_census() -> None:
    """At the first trigger: the tracked objects by type; once every trigger is launched and has
    polled once, again; their difference per trigger goes to ``CENSUS_PATH`` (the census pauses the
    loop for a full walk twice: its runs are not timing runs)."""
    global _census_started
    _census_started = True
    plan = json.loads(Path(sys.argv[3]).read_text(encoding="utf-8"))
    last_offset = max(j["offset"] for j in plan["jobs"])
    gc.collect()
    before, t0 = _tracked_by_type(), time.monotonic()
    old = {id(o) for o in gc.get_objects()}

    async def later() -> None:
        await asyncio.sleep(max(0.0, t0 + last_offset + 1.5 * plan["poll"] - time.monotonic()))
        gc.collect()
        after = _tracked_by_type()
        gc.collect()
        young = [len(gc.get_objects(g)) for g in (0, 1, 2)]
        samples: dict[str, list[str]] = {}
        for obj in gc.get_objects():
            name = type(obj).__qualname__
            if id(obj) in old or len(samples.setdefault(name, [])) >= 3:
                continue
            holders = [type(r).__qualname__ for r in gc.get_referrers(obj) if r is not samples]
            samples[name].append(f"{_describe(obj)} <- {holders[:4]}")
        n = len(plan["jobs"])
        diff = {k: (after[k] - before.get(k, 0)) / n for k in after}
        top = dict(
            sorted(((k, round(v, 2)) for k, v in diff.items() if abs(v) >= 0.01), key=lambda kv: -kv[1])
        )
        Path(CENSUS_PATH or "").write_text(
            json.dumps(
                {
                    "n": n,
                    "tracked_before": sum(before.values()),
                    "tracked_after": sum(after.values()),
                    "per_wait": (sum(after.values()) - sum(before.values())) / n,
                    "by_type": top,
                    "samples": {k: samples.get(k, []) for k in list(top)[:16]},
                    "generations": young,
                    "frozen": gc.get_freeze_count(),
                },
                indent=1,
            ),
            encoding="utf-8",
        )

    _CENSUS_TASKS.append(asyncio.get_running_loop().create_task(later()))


def _describe(obj: Any) -> str:
    text = repr(obj) if not isinstance(obj, dict | list) else f"{type(obj).__name__}[{len(obj)}]"
    if isinstance(obj, dict):
        text += str(list(obj)[:5])
    elif isinstance(obj, list) and obj:
        text += type(obj[0]).__qualname__
    return text[:160]


_CENSUS_TASKS: list[asyncio.Task[None]] = []


def warm_up_for(services: list[str]):  # type: ignore[no-untyped-def]
    """A coroutine function running one trigger per service on an already-finished job."""

    async def warm_up() -> None:
        async def one(service: str) -> None:
            ref = job_ref(service, f"warm-{service}")
            trigger = JobStatusTrigger(service, ref, poll_interval=0.1, coalesce=False)
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
