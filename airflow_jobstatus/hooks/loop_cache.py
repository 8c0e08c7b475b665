"""Caches the hooks share across triggers.

``PerLoopCache``: objects that only work in the event loop that made them (grpc.aio channels, aiohttp
sessions), one value per (event loop, key), built once even when thousands of triggers ask at the
same moment; a loop's values go away with the loop. ``TtlCache``: parsed connections, per process
with a short TTL, so a triggerer reads a connection once per TTL instead of once per trigger.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class PerLoopCache(Generic[K, V]):
    """A per-event-loop cache with one build at a time per loop; ``built`` counts builds (tests check reuse)."""

    def __init__(self) -> None:
        self._values: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[K, V]] = (
            weakref.WeakKeyDictionary()
        )
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self.built = 0

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
                self.built += 1
        return value

    def pop_all(self) -> list[V]:
        """Forget the running loop's values and return them (for closing)."""
        return list(self._values.pop(asyncio.get_running_loop(), {}).values())


class TtlCache(Generic[K, V]):
    """Values by key, each valid ``ttl`` seconds, shared by every thread and event loop of the process.

    Keys are tuples whose first item is a connection id (``drop(conn_id)`` forgets them all). ``aload``
    lets hooks that miss at the same moment in one loop share one load instead of each doing it.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()
        self._loads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[K, asyncio.Future[V]]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, key: K) -> V | None:
        """The value for ``key`` if it was put less than ``ttl`` seconds ago."""
        entry = self._entries.get(key)  # a dict read is atomic: no lock on the hit path
        if entry is None:
            return None
        if self._clock() - entry[0] >= self.ttl:
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            return None
        return entry[1]

    def put(self, key: K, value: V) -> V:
        with self._lock:
            self._entries[key] = (self._clock(), value)
        return value

    def drop(self, conn_id: str) -> None:
        """Forget every value of connection ``conn_id`` (e.g. after an authentication error)."""
        with self._lock:
            for key in [k for k in self._entries if isinstance(k, tuple) and k and k[0] == conn_id]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    async def aload(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value, else ``load()``'s (put in the cache); concurrent callers in a loop share one load."""
        value = self.get(key)
        if value is not None:
            return value
        loads = self._loads.setdefault(asyncio.get_running_loop(), {})
        future = loads.get(key)
        if future is None:

            async def run() -> V:
                return self.put(key, await load())

            future = loads[key] = asyncio.ensure_future(run())
            future.add_done_callback(lambda done: loads.pop(key, None) if loads.get(key) is done else None)
        return await asyncio.shield(future)


_DIGESTS: dict[str, tuple[int, str]] = {}


def env_connection_key(conn_id: str) -> tuple[str, str]:
    """``(conn_id, digest of its AIRFLOW_CONN_* variable or "")``: changing the variable changes the key.

    The digest of the last value seen is kept per connection id (hashing it on every poll cost more
    than the rest of the cache lookup).
    """
    env = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}", "")
    if not env:
        return conn_id, ""
    last = _DIGESTS.get(conn_id)
    if last is None or last[0] != hash(env):  # hash(): no second copy of the (secret) value is kept
        last = _DIGESTS[conn_id] = (hash(env), hashlib.sha256(env.encode()).hexdigest())
    return conn_id, last[1]
