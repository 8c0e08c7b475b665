"""Stdlib-only helpers shared by the benchmark runners in both venvs (ours and the anchor's)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import math
import os
import resource
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc), in bytes."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * PAGE_SIZE


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far, in bytes (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def release_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so an RSS baseline is not inflated."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100, nearest rank) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: Sequence[float]) -> dict[str, float | None]:
    """p50/p99/max/mean of ``values`` (None when empty)."""
    return {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": sum(values) / len(values) if values else None,
        "count": len(values),
    }


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (write then rename)."""
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    tmp.replace(path)


def wait_for_file(path: str | Path, timeout: float) -> Any:
    """Block until ``path`` holds JSON (written atomically by the other side) and return it."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout:.0f} s")
        time.sleep(0.05)
    return json.loads(Path(path).read_text(encoding="utf-8"))


@dataclass
class LoopSampler:
    """A ticker coroutine: event-loop lag per tick, and RSS samples over time."""

    tick: float = 0.05
    lags: list[float] = field(default_factory=list)
    #: (wall time, RSS bytes, process CPU seconds) every 10 ticks.
    samples: list[tuple[float, int, float]] = field(default_factory=list)

    #: Set by ``restart()``: the next tick re-anchors and drops what came before.
    _restart: bool = False

    def restart(self) -> None:
        """Measure from the next tick on: a stall before it (the harness's own set-up) is not counted."""
        self._restart = True

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        while not stop.is_set():
            n += 1
            expected = start + n * self.tick
            await asyncio.sleep(max(0.0, expected - loop.time()))
            now = loop.time()
            if self._restart:
                self._restart, self.lags, start, n = False, [], now, 0
                continue
            self.lags.append(max(0.0, now - expected))
            if n % 10 == 0:
                self.samples.append((time.time(), rss_bytes(), cpu_seconds()))
            if now - expected > self.tick:  # fell behind: re-anchor so one stall counts once
                start, n = now, 0


class GcPauses:
    """Garbage-collector pauses while installed (``gc.callbacks``): a full collection over tens of
    thousands of waiting triggers' objects stops the event loop."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._start))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for gen in (0, 1, 2):
            times = [t for g, t in self.pauses if g == gen]
            out[f"gen{gen}"] = {
                "count": len(times),
                "total_ms": sum(times) * 1000,
                "max_ms": max(times) * 1000 if times else 0.0,
            }
        return out


TriggerFactory = Callable[[dict[str, Any]], Any]


async def _drive(trigger: Any, job: dict[str, Any], out: dict[str, Any]) -> None:
    """Run one trigger the way the triggerer does: iterate run() until its first event."""
    out["start"] = time.time()
    agen: AsyncIterator[Any] = trigger.run()
    try:
        async for event in agen:
            out["event"] = time.time()
            payload = getattr(event, "payload", {}) or {}
            out["status"] = str(payload.get("status") or payload.get("job_state") or "event")
            out["message"] = str(payload.get("message") or "")[:300]
            break
    except Exception as err:  # a trigger that dies without an event: the triggerer logs and fails it
        out["event"] = time.time()
        out["status"] = "crashed"
        out["message"] = f"{type(err).__name__}: {err}"[:300]
    finally:
        await agen.aclose()  # type: ignore[attr-defined]


async def run_fleet(
    jobs: list[dict[str, Any]], make_trigger: TriggerFactory, poll: float, timeout: float
) -> dict[str, Any]:
    """Start one trigger per job at its ``offset`` seconds from now; wait for every first event."""
    sampler = LoopSampler()
    stop = asyncio.Event()
    ticker = asyncio.create_task(sampler.run(stop))
    await asyncio.sleep(0.5)  # settle, then measure the idle process (ticker, SDK threads) for 2 s
    idle_cpu0, idle_t0 = cpu_seconds(), time.monotonic()
    await asyncio.sleep(2.0)
    idle_rate = (cpu_seconds() - idle_cpu0) / (time.monotonic() - idle_t0)
    release_memory()  # warm-up garbage must not be freed after the baseline (negative per-trigger RSS)
    rss_base, cpu0, t0 = rss_bytes(), cpu_seconds(), time.time()
    results: dict[str, dict[str, Any]] = {job["key"]: {} for job in jobs}
    tasks: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    launch0 = loop.time()
    sampler.restart()  # from the first trigger on: the set-up above (release_memory) is the harness's
    gc_pauses = GcPauses().__enter__()
    for job in sorted(jobs, key=lambda j: j["offset"]):
        delay = launch0 + job["offset"] - loop.time()
        if delay > 0.005:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_drive(make_trigger(job), job, results[job["key"]])))
    launched = time.time()
    _, pending = await asyncio.wait(tasks, timeout=max(1.0, timeout - (launched - t0)))
    gc_pauses.__exit__()
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    cpu, t1 = cpu_seconds() - cpu0, time.time()
    stop.set()
    await ticker
    first_event = min((r["event"] for r in results.values() if "event" in r), default=t1)
    # Steady state: every trigger launched and past its first poll, no event yet.
    steady = [s for s in sampler.samples if launched + min(poll, 2.0) <= s[0] < first_event]
    waiting = [rss for _, rss, _ in steady]
    return {
        "n": len(jobs),
        "timed_out": len(pending),
        "cpu_seconds": cpu,
        "idle_cpu_per_second": idle_rate,
        "wall_seconds": t1 - t0,
        "rss_baseline": rss_base,
        "rss_waiting": max(waiting) if waiting else None,
        "rss_waiting_samples": len(waiting),
        "rss_peak": peak_rss_bytes(),
        "steady_window": [steady[0][0], steady[-1][0]] if len(steady) > 1 else None,
        "steady_cpu_seconds": steady[-1][2] - steady[0][2] if len(steady) > 1 else None,
        "loop_lag": summary(sampler.lags),
        "gc_pauses": gc_pauses.summary(),
        "jobs": results,
    }


def fleet_main(
    make_trigger: TriggerFactory,
    warm_up: Callable[[], Awaitable[None]],
    argv: Sequence[str],
    counters: Callable[[], dict[str, int]] | None = None,
) -> None:
    """Runner protocol: warm up, write ``ready``, wait for the ``plan`` file, run, write ``result``.

    Everything runs on one event loop, so clients the warm-up caches per loop are the fleet's too.
    ``counters``: the runner's own counts (e.g. connection reads); the result has their change over
    the fleet run as ``counters``.
    """
    ready, plan_path, result_path = argv

    async def main() -> dict[str, Any]:
        await warm_up()
        if os.environ.get("BENCH_GC_FREEZE"):  # run.py --gc-freeze: imports and warm-up out of full GCs
            gc.collect()
            gc.freeze()
        if os.environ.get("BENCH_GC_THRESHOLD"):  # run.py --gc-threshold: fewer, cheaper collections
            gc.set_threshold(*(int(x) for x in os.environ["BENCH_GC_THRESHOLD"].split(",")))
        write_json(ready, {"pid": os.getpid(), "rss": rss_bytes()})
        plan = await asyncio.to_thread(wait_for_file, plan_path, 600)
        before = counters() if counters else {}
        result = await run_fleet(plan["jobs"], make_trigger, plan["poll"], plan["timeout"])
        after = counters() if counters else {}
        result["counters"] = {k: v - before.get(k, 0) for k, v in after.items()}
        result["gc_frozen"] = gc.get_freeze_count()
        result["gc_threshold"] = list(gc.get_threshold())
        return result

    write_json(result_path, asyncio.run(main()))
    sys.stdout.flush()
