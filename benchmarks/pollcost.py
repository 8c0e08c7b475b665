"""CPU per poll, side by side: our Huawei and gRPC poll paths against floors (benchmarks/floors.py).

``run(sim, env, ...)`` (called by run.py) starts one fresh runner process per mode, rounds of every
mode in turn so the machine's noise hits them alike, and reports min/median CPU ms per poll and the
target ratios per round. A runner: N pollers, each polling its own running job every ``interval``
seconds (starts spread over one interval), CPU counted over a window after a warm-up (first polls,
connection reads and session set-up are not in it).

Usage (runner): pollcost.py MODE N INTERVAL WARM SECONDS RESULT [PROFILE]
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import cpu_seconds, write_json  # noqa: E402

REGION = "europe-west1"
#: mode → (service, what it is). Order: the order within a round.
MODES = {
    "cdm-ours": ("cdm", "CdmJobHook.aget_status (the project's signed REST path)"),
    "cdm-aiohttp-floor": ("cdm", "one aiohttp.ClientSession, hand signing, json.loads"),
    "cdm-streams-floor": ("cdm", "100 keep-alive HTTP/1.1 asyncio streams, hand signing, json.loads"),
    "cdm-httpx-floor": ("cdm", "one httpx.AsyncClient, hand signing, json.loads"),
    "dli-ours": ("dli", "DliJobHook.aget_status"),
    "dataproc-ours": ("dataproc", "DataprocJobHook.aget_status (the project's gRPC path)"),
    "dataproc-gapic-floor": ("dataproc", "one shared GAPIC async client, bare get_job"),
    "cdm-trigger": ("cdm", "JobStatusTrigger.run on CDM (hook + JobWatch + progress log line)"),
    "dataproc-trigger": ("dataproc", "JobStatusTrigger.run on Dataproc"),
}
DEFAULT_MODES = tuple(MODES)


def job_id(service: str, i: int) -> str:
    return f"pc-{service}-{i:05d}"


def long_jobs(services: set[str], n: int) -> list[dict[str, Any]]:
    """``n`` jobs per service that run for an hour."""
    from plan import job_ref

    running = {
        "dataproc": [{"state": "RUNNING", "duration": 3600}, {"state": "DONE"}],
        "cdm": [{"state": "RUNNING", "duration": 3600, "progress": [0, 100]}, {"state": "SUCCEEDED"}],
        "dli": [{"state": "RUNNING", "duration": 3600, "progress": [0, 1]}, {"state": "FINISHED"}],
    }
    return [
        {
            "key": f"{s}:{job_id(s, i)}",
            "service": s,
            "job_id": job_id(s, i),
            "timeline": running[s],
            "ref": job_ref(s, job_id(s, i)),
        }
        for s in sorted(services)
        for i in range(n)
    ]


# ---- the runner ------------------------------------------------------------------------------------

Poll = Callable[[int], Awaitable[Any]]


async def make_poll(mode: str) -> tuple[Poll, Callable[[], Awaitable[None]]]:
    """The poll function of ``mode`` (poller index → one poll) and its closer."""
    from plan import job_ref

    service = MODES[mode][0]

    async def nothing() -> None:
        return None

    if mode.endswith("-ours"):
        from airflow_jobstatus.hooks.base import make_hook
        from airflow_jobstatus.services import get_service

        spec = get_service(service)
        hooks: dict[int, Any] = {}
        refs: dict[int, Any] = {}

        async def ours(i: int) -> Any:
            hook = hooks.get(i)
            if hook is None:  # one hook per waiter, as one trigger has one
                hook = hooks[i] = make_hook(service)
                refs[i] = spec.ref(job_ref(service, job_id(service, i)))
            return await hook.aget_status(refs[i])

        return ours, nothing
    if mode.endswith("-trigger"):
        raise AssertionError("triggers are driven by drive_triggers")
    from floors import AiohttpFloor, GapicFloor, HandSigner, HttpxFloor, StreamsFloor

    if mode == "dataproc-gapic-floor":
        floor: Any = GapicFloor(os.environ["SIM_GRPC_TARGET"], os.environ["SIM_PROJECT"], REGION)
    else:
        conn = json.loads(os.environ["AIRFLOW_CONN_HUAWEICLOUD_DEFAULT"])
        endpoint = conn["extra"]["endpoint"]
        signer = HandSigner(endpoint, conn["login"], conn["password"], conn["extra"]["project_id"])
        kind = {"cdm-aiohttp-floor": AiohttpFloor, "cdm-httpx-floor": HttpxFloor}.get(mode, StreamsFloor)
        floor = kind(endpoint, signer)
    return (lambda i: floor.poll(job_id(service, i))), floor.close


async def drive_pollers(
    mode: str, n: int, interval: float, warm: float, seconds: float, profiler: Any = None
) -> dict[str, Any]:
    """N pollers on a fixed schedule; CPU and completed polls counted in [warm, warm + seconds)."""
    poll, close = await make_poll(mode)
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2
    window = (t0 + warm, t0 + warm + seconds)
    counts = {"polls": 0, "errors": 0}
    first_error: list[str] = []

    async def poller(i: int) -> None:
        k = 0
        while True:
            due = t0 + (i / n + k) * interval
            if due >= window[1]:
                return
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                await poll(i)
            except Exception as err:
                counts["errors"] += 1
                if not first_error:
                    first_error.append(f"{type(err).__name__}: {err}"[:300])
            now = loop.time()
            if window[0] <= now < window[1]:
                counts["polls"] += 1
            # A poll that overran its slot skips the slots it missed (no catching up in a burst).
            k = max(k + 1, math.ceil((now - t0) / interval - i / n))

    async def meter() -> tuple[float, float]:
        await asyncio.sleep(max(0.0, window[0] - loop.time()))
        if profiler is not None:
            profiler.enable()
        cpu0 = cpu_seconds()
        await asyncio.sleep(max(0.0, window[1] - loop.time()))
        cpu1 = cpu_seconds()
        if profiler is not None:
            profiler.disable()
        return cpu0, cpu1

    meter_task = asyncio.create_task(meter())
    await asyncio.gather(*(poller(i) for i in range(n)))
    cpu0, cpu1 = await meter_task
    await close()
    return {"cpu": cpu1 - cpu0, **counts, "first_error": first_error[0] if first_error else None}


async def drive_triggers(
    mode: str, n: int, interval: float, warm: float, seconds: float, profiler: Any = None
) -> dict[str, Any]:
    """N JobStatusTriggers (each its own task, as the triggerer runs them); CPU per poll from call counts."""
    from plan import job_ref

    from airflow_jobstatus.triggers.job_status import JobStatusTrigger

    service = MODES[mode][0]
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2
    polls = {"count": 0}
    tasks = []

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, t0 + i / n * interval - loop.time()))
        ref = job_ref(service, job_id(service, i))  # each poller reads its own job: per-job polling
        trigger = JobStatusTrigger(service, ref, poll_interval=interval, coalesce=False)
        hook_poll = trigger._hook  # count polls by wrapping the hook the trigger builds

        def counting_hook() -> Any:
            hook = hook_poll()
            read = hook.aget_status

            async def aget_status(ref: Any) -> Any:
                status = await read(ref)
                if window[0] <= loop.time() < window[1]:
                    polls["count"] += 1
                return status

            hook.aget_status = aget_status
            return hook

        trigger._hook = counting_hook  # type: ignore[method-assign]
        async for _event in trigger.run():
            break

    window = (t0 + warm, t0 + warm + seconds)
    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    await asyncio.sleep(max(0.0, window[0] - loop.time()))
    if profiler is not None:
        profiler.enable()
    cpu0 = cpu_seconds()
    await asyncio.sleep(max(0.0, window[1] - loop.time()))
    cpu1 = cpu_seconds()
    if profiler is not None:
        profiler.disable()
    done = sum(t.done() for t in tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"cpu": cpu1 - cpu0, "polls": polls["count"], "errors": done, "first_error": None}


def runner(argv: list[str]) -> None:
    mode, n, interval, warm, seconds, result = argv[:6]
    profile = argv[6] if len(argv) > 6 else None
    drive = drive_triggers if mode.endswith("-trigger") else drive_pollers
    profiler = None
    if profile:  # profiles the measured window only
        import cProfile

        profiler = cProfile.Profile()
    out = asyncio.run(drive(mode, int(n), float(interval), float(warm), float(seconds), profiler))
    if profiler is not None:
        profiler.dump_stats(profile)
    write_json(result, {"mode": mode, **out})


# ---- the orchestrator ------------------------------------------------------------------------------


def available_modes(modes: tuple[str, ...]) -> tuple[str, ...]:
    import importlib.util

    return tuple(m for m in modes if m != "cdm-httpx-floor" or importlib.util.find_spec("httpx"))


def run(
    sim: Any,
    env: dict[str, str],
    *,
    rounds: int,
    n: int,
    interval: float,
    warm: float,
    seconds: float,
    modes: tuple[str, ...] = DEFAULT_MODES,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every mode ``rounds`` times, interleaved (the order rotates per round); per mode min/median ms per
    poll; per round the ratios."""
    modes = available_modes(modes)
    sim.reset()
    sim.add_jobs(long_jobs({MODES[m][0] for m in modes}, n))
    per_round: list[dict[str, float | None]] = []
    raw: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="bench-pollcost-") as tmp:
        for r in range(rounds):
            row: dict[str, float | None] = {}
            # Each round starts with the next mode: no mode always runs first (or last) in a round.
            for mode in modes[r % len(modes) :] + modes[: r % len(modes)]:
                out = Path(tmp) / f"{mode}-{r}.json"
                cmd = [
                    sys.executable,
                    __file__,
                    mode,
                    str(n),
                    str(interval),
                    str(warm),
                    str(seconds),
                    str(out),
                ]
                done = subprocess.run(
                    cmd, env=env, capture_output=True, text=True, timeout=warm + seconds + 300
                )
                if done.returncode or not out.exists():
                    row[mode] = None
                    raw[mode].append({"failed": (done.stdout + done.stderr)[-1500:]})
                    log(f"  pollcost {mode} round {r + 1}: FAILED {(done.stdout + done.stderr)[-300:]}")
                    continue
                res = json.loads(out.read_text())
                ms = res["cpu"] / res["polls"] * 1000 if res["polls"] else None
                res["ms_per_poll"] = ms
                raw[mode].append(res)
                row[mode] = ms if not res["errors"] or mode.endswith("-trigger") else None
                log(
                    f"  pollcost {mode} round {r + 1}: {ms or float('nan'):.3f} ms/poll, {res['polls']} polls, "
                    f"{res['errors']} errors"
                )
            per_round.append(row)
    return summarize(per_round, raw, n=n, interval=interval, warm=warm, seconds=seconds, rounds=rounds)


RATIOS = {
    "cdm ours / aiohttp floor": ("cdm-ours", "cdm-aiohttp-floor"),
    "cdm ours / streams floor": ("cdm-ours", "cdm-streams-floor"),
    "cdm ours / dataproc ours (gRPC)": ("cdm-ours", "dataproc-ours"),
    "dli ours / aiohttp floor": ("dli-ours", "cdm-aiohttp-floor"),
    "aiohttp floor / streams floor": ("cdm-aiohttp-floor", "cdm-streams-floor"),
    "httpx floor / aiohttp floor": ("cdm-httpx-floor", "cdm-aiohttp-floor"),
    "dataproc ours / gapic floor": ("dataproc-ours", "dataproc-gapic-floor"),
    "cdm trigger / cdm ours": ("cdm-trigger", "cdm-ours"),
}


def _stats(values: list[float]) -> dict[str, float | None]:
    return {
        "min": min(values) if values else None,
        "median": statistics.median(values) if values else None,
        "max": max(values) if values else None,
    }


def summarize(
    per_round: list[dict[str, float | None]], raw: dict[str, list[dict[str, Any]]], **settings: Any
) -> dict[str, Any]:
    modes = {
        m: {
            "what": MODES[m][1],
            "ms_per_poll": _stats([v for r in per_round if (v := r.get(m)) is not None]),
            "polls": [x.get("polls") for x in raw[m]],
            "errors": [x.get("errors") for x in raw[m]],
            "first_error": next(
                (
                    x.get("first_error") or x.get("failed")
                    for x in raw[m]
                    if x.get("first_error") or x.get("failed")
                ),
                None,
            ),
        }
        for m in raw
    }
    ratios = {}
    for name, (a, b) in RATIOS.items():
        values = [r[a] / r[b] for r in per_round if r.get(a) and r.get(b)]  # type: ignore[operator]
        if values:
            ratios[name] = _stats(values)
    return {"settings": settings, "modes": modes, "ratios": ratios, "rounds": per_round}


if __name__ == "__main__":
    runner(sys.argv[1:])
