"""The per-process cache of parsed connections, shared by the Google and the Huawei hooks.

A triggerer holding thousands of waits on one connection reads it once per ``TTL_SECONDS``, not
once per trigger: ``ConnectionCache`` keeps each parsed connection ``ttl`` seconds for every thread
and event loop of the process, hooks of one loop that miss at the same moment share one read
(``aload``), and an authentication error forgets the connection (``drop``) so that a rotated key is
read at the next call. ``reads`` counts the reads it made: the one connection-read counter of the
package (benchmarks check "at most one read per connection per TTL" with it, tests the sharing).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

#: How long a connection read stays valid in this process (seconds).
TTL_SECONDS = 60.0

#: A cache key: a tuple whose first item is the connection id (see ``connection_key``).
K = TypeVar("K", bound=tuple[str, ...])
V = TypeVar("V")


class ConnectionCache(Generic[K, V]):
    """Parsed connections by key, each valid ``ttl`` seconds, with one read at a time per key and loop.

    ``load`` (sync) and ``aload`` (async) return the cached value or read it with the caller's
    reader; ``reads`` counts those reads.
    """

    def __init__(self, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        #: Reads made so far by this process (not reset by ``clear``).
        self.reads = 0
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()
        self._loads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[K, asyncio.Future[V]]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, key: K) -> V | None:
        """The value for ``key`` if it was read less than ``ttl`` seconds ago."""
        entry = self._entries.get(key)  # a dict read is atomic: no lock on the hit path (every poll)
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

    def _counted(self) -> None:
        with self._lock:
            self.reads += 1

    def load(self, key: K, read: Callable[[], V]) -> V:
        """The cached value, else ``read()``'s, cached (blocking: the sync path)."""
        value = self.get(key)
        if value is not None:
            return value
        self._counted()
        return self.put(key, read())

    async def aload(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        """The cached value, else ``await read()``'s, cached; callers in one loop that miss together
        share one read (a failed read fails each of them, and the next call reads again)."""
        value = self.get(key)
        if value is not None:
            return value
        loads = self._loads.setdefault(asyncio.get_running_loop(), {})
        future = loads.get(key)
        if future is None:

            async def run() -> V:
                self._counted()
                return self.put(key, await read())

            future = loads[key] = asyncio.ensure_future(run())
            future.add_done_callback(lambda done: loads.pop(key, None) if loads.get(key) is done else None)
        return await asyncio.shield(future)

    def drop(self, conn_id: str) -> None:
        """Forget every value of connection ``conn_id`` (after an authentication error)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == conn_id]:
                del self._entries[key]

    def clear(self) -> None:
        """Forget every value (tests; a changed connection is otherwise read again within the TTL)."""
        with self._lock:
            self._entries.clear()


_DIGESTS: dict[str, tuple[int, str]] = {}


def connection_key(conn_id: str) -> tuple[str, str]:
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
