"""``shared_sleep(seconds)``: ``asyncio.sleep`` for thousands of waits on one loop, one timer per tick.

Why: each ``asyncio.sleep`` allocates a coroutine, a future, a timer handle, its argument tuple and a
copy of the context. A trigger holds them for its whole poll interval, so they outlive two young
collections, and at 10,000 waiting triggers that promotion is what sets off the full collections that
stop a triggerer's event loop for hundreds of milliseconds (benchmarks/results/notes.md). Here a wait
costs one future, and the waits that end within the same ``TICK`` share one timer.
"""

from __future__ import annotations

import asyncio
import math
import weakref

#: Wake-up granularity in seconds: a sleep ends at most this much later than asked.
TICK = 0.05


class _Timers:
    """One loop's pending ticks: tick number → the futures to resolve then (no reference to the loop,
    which keys it weakly)."""

    def __init__(self) -> None:
        self.ticks: dict[int, list[asyncio.Future[None]]] = {}

    def sleep(self, loop: asyncio.AbstractEventLoop, seconds: float) -> asyncio.Future[None]:
        future: asyncio.Future[None] = loop.create_future()
        tick = math.ceil((loop.time() + seconds) / TICK)
        waiters = self.ticks.get(tick)
        if waiters is None:
            waiters = self.ticks[tick] = []
            loop.call_at(tick * TICK, self._wake, tick)
        waiters.append(future)
        return future

    def _wake(self, tick: int) -> None:
        for future in self.ticks.pop(tick, ()):
            if not future.done():  # a cancelled sleeper's future is done already
                future.set_result(None)


_TIMERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Timers] = weakref.WeakKeyDictionary()


def shared_sleep(seconds: float) -> asyncio.Future[None]:
    """An awaitable that completes ``seconds`` (to the next ``TICK``) from now on the running loop.

    Cancelling the awaiting task cancels only its own future; the others sharing the tick still wake.
    """
    loop = asyncio.get_running_loop()
    timers = _TIMERS.get(loop)
    if timers is None:
        timers = _TIMERS[loop] = _Timers()
    return timers.sleep(loop, max(0.0, seconds))


def pending_timers() -> int:
    """How many timers the running loop holds for shared sleeps (one per tick with sleepers)."""
    timers = _TIMERS.get(asyncio.get_running_loop())
    return 0 if timers is None else len(timers.ticks)
