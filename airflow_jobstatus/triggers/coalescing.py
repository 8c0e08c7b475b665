"""Coalesced polling (opt-in ``coalesce=True``): many waits, one list call per interval.

Waits of one service, connection, scope (the service's ``Coalescing.scope_fields``, e.g. project
and region) and poll interval, in one event loop, share a ``Poller``: while it has waiters it lists
the scope's active jobs (every page) once per interval. Each wait's per-poll read becomes a
``Waiter``: its job's list entry parsed by the service's own parser, or, when the job is absent from
the active list (it ended, or was not listed yet) or its entry says terminal, the job's own
``aget_status`` read, so the final status, message, counters and subjobs are exactly the ones a
non-coalesced wait gets. A failed list call fails that poll's read of every waiter with the same
error kind (the trigger's ``JobWatch`` retries it as usual). The last waiter leaving stops the poller.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_jobstatus.core.exceptions import ConfigurationError, ServiceError
from airflow_jobstatus.core.states import JobStatus
from airflow_jobstatus.hooks.base import JobStatusHook
from airflow_jobstatus.hooks.loop_cache import PerLoopCache
from airflow_jobstatus.services import get_service
from airflow_jobstatus.services.base import Coalescing, JobRef
from airflow_jobstatus.services.google import impersonation_chain

PollerKey = tuple[str, str, tuple[str, ...], tuple[Any, ...], float]
_POLLERS: PerLoopCache[PollerKey, Poller] = PerLoopCache()


def coalescing_of(service: str, ref: JobRef | Mapping[str, Any] | None = None) -> Coalescing:
    """The service's ``Coalescing``; ConfigurationError saying why when it (or this ref) cannot coalesce."""
    spec = get_service(service)
    if spec.coalescing is None:
        reason = spec.no_coalescing_reason or "it has no list of active jobs."
        raise ConfigurationError(f"coalesce=True is not supported for {spec.title}: {reason}")
    if ref is not None:
        why = spec.coalescing.unsupported(spec.ref(ref))
        if why:
            raise ConfigurationError(f"coalesce=True is not supported here: {why}")
    return spec.coalescing


@dataclass(frozen=True)
class Snapshot:
    """One list call's outcome: the active jobs by id, or the error every waiter gets for that poll."""

    generation: int
    entries: Mapping[str, Any]
    error: Exception | None = None


class Poller:
    """One list call per ``interval`` for its waiters, in one event loop; stops when the last leaves."""

    def __init__(self, key: PollerKey, hook: JobStatusHook[Any], ref: JobRef, coalescing: Coalescing):
        self.key, self.hook, self.ref, self.coalescing = key, hook, ref, coalescing
        self.interval = key[-1]
        self.waiters: weakref.WeakSet[Waiter] = weakref.WeakSet()
        self.latest: Snapshot | None = None
        self.list_calls = 0
        self._loop = asyncio.get_running_loop()
        self._next: asyncio.Future[Snapshot] = self._loop.create_future()
        self._task: asyncio.Task[None] | None = None

    def join(self, waiter: Waiter) -> None:
        self.waiters.add(waiter)
        if self._task is None:
            self._task = self._loop.create_task(self._run(), name=f"coalesced poll {self.key[:2]}")

    def leave(self, waiter: Waiter) -> None:
        """Forget ``waiter``; the last one leaving stops the list calls and unregisters the poller."""
        self.waiters.discard(waiter)
        if not self.waiters:
            self.stop()

    def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None
        registry = _POLLERS.values()
        if registry.get(self.key) is self:
            del registry[self.key]

    async def next_snapshot(self) -> Snapshot:
        """The next list call's outcome (shielded: one waiter cancelled does not cancel the others')."""
        return await asyncio.shield(self._next)

    async def _run(self) -> None:
        while self.waiters:
            started = self._loop.time()
            self._publish(await self._list())
            await asyncio.sleep(max(0.0, started + self.interval - self._loop.time()))
        self.stop()

    async def _list(self) -> Snapshot:
        generation = (self.latest.generation if self.latest else 0) + 1
        self.list_calls += 1
        try:
            listed = await self.hook.alist_active(self.ref)
            entries = {self.coalescing.entry_id(entry): entry for entry in listed}
        except Exception as err:  # every waiter gets it for this poll, classified as a read error
            return Snapshot(generation, {}, err)
        return Snapshot(generation, entries)

    def _publish(self, snapshot: Snapshot) -> None:
        self.latest = snapshot
        done, self._next = self._next, self._loop.create_future()
        if not done.done():
            done.set_result(snapshot)


class Waiter:
    """One wait's polls through its scope's poller: call it where ``hook.aget_status(ref)`` was, and
    ``await pause()`` where the wait slept one interval (it wakes when the next list call answers, so
    a job leaving the list is seen within the interval plus the list call's duration)."""

    __slots__ = ("__weakref__", "_poller", "_seen", "hook", "interval", "job_key", "ref")

    def __init__(self, hook: JobStatusHook[Any], ref: JobRef, interval: float):
        self.hook, self.ref, self.interval = hook, ref, float(interval)
        self.job_key = str(getattr(ref, "job_id", ref.display_id))
        self._poller: Poller | None = None
        self._seen = 0

    def _join(self) -> Poller:
        coalescing = coalescing_of(self.hook.service, self.ref)
        key = poller_key(self.hook, self.ref, coalescing, self.interval)
        registry = _POLLERS.values()
        poller = registry.get(key)
        if poller is None:
            poller = registry[key] = Poller(key, self.hook, self.ref, coalescing)
        poller.join(self)
        self._poller = poller
        return poller

    async def pause(self) -> None:
        """Until the poller has a list answer this waiter has not seen (instead of sleeping an interval)."""
        poller = self._poller or self._join()
        if poller.latest is None or poller.latest.generation <= self._seen:
            await poller.next_snapshot()

    async def __call__(self) -> JobStatus:
        poller = self._poller or self._join()
        snapshot = poller.latest
        if snapshot is None or snapshot.generation <= self._seen:
            snapshot = await poller.next_snapshot()
        self._seen = snapshot.generation
        if snapshot.error is not None:
            raise waiter_error(snapshot.error, self.ref)
        entry = snapshot.entries.get(self.job_key)
        if entry is not None:
            try:
                status = poller.coalescing.parse_entry(entry, self.ref)
            except Exception:  # an entry we cannot read: the job's own read decides
                status = None
            if status is not None and not status.state.is_terminal:
                return status
        return await self.hook.aget_status(self.ref)  # left the active list: the full final read

    def close(self) -> None:
        """Leave the poller (the trigger's wait is over)."""
        if self._poller is not None:
            self._poller.leave(self)
            self._poller = None


def poller_key(hook: JobStatusHook[Any], ref: JobRef, coalescing: Coalescing, interval: float) -> PollerKey:
    """(service, connection, impersonation chain, scope values, interval): what one list call serves."""
    chain = impersonation_chain(getattr(hook, "impersonation_chain", None))
    scope = tuple(getattr(ref, name) for name in coalescing.scope_fields)
    return (hook.service, hook.conn_id, chain, scope, float(interval))


def waiter_error(err: Exception, ref: JobRef) -> Exception:
    """A fresh copy of a list call's error for one waiter, naming its job (same kind, same retry rule)."""
    if isinstance(err, ServiceError):
        return ServiceError.from_dict({**err.to_dict(), "job_id": ref.display_id})
    message = f"listing active jobs failed: {type(err).__name__}: {err}"
    return ServiceError(message, service=ref.service, job_id=ref.display_id)


def active_pollers() -> dict[PollerKey, Poller]:
    """The running loop's pollers (tests, benchmarks)."""
    return dict(_POLLERS.values())
