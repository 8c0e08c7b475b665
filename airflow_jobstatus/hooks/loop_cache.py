"""Objects that only work in the event loop that made them (grpc.aio channels, aiohttp sessions), shared.

``PerLoopCache`` keeps one value per (event loop, key), built once even when thousands of triggers
ask at the same moment; a loop's values go away with the loop. Parsed connections, which every
loop and thread may share, are in ``connection_cache``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class PerLoopCache(Generic[K, V]):
    """A per-event-loop cache with one build at a time per loop."""

    def __init__(self) -> None:
        self._values: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[K, V]] = (
            weakref.WeakKeyDictionary()
        )
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def values(self) -> dict[K, V]:
        """The running loop's values."""
        return self._values.setdefault(asyncio.get_running_loop(), {})

    async def get(
        self, key: K, build: Callable[[], Awaitable[V]], usable: Callable[[V], bool] | None = None
    ) -> V:
        """The running loop's value for ``key``, built with ``build()`` on first use (or when not ``usable``)."""
        values = self.values()
        value = values.get(key)
        if value is not None and (usable is None or usable(value)):
            return value
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:  # concurrent first callers wait for one build instead of racing
            value = values.get(key)
            if value is None or (usable is not None and not usable(value)):
                value = values[key] = await build()
        return value

    def pop_all(self) -> list[V]:
        """Forget the running loop's values and return them (for closing)."""
        return list(self._values.pop(asyncio.get_running_loop(), {}).values())
