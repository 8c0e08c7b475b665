"""Live status reads for the board: through the hooks, cached, one read per job per poll interval.

Every viewer's request asks the same ``LiveReader`` (one per API-server process). A job is read again
only when its last read *started* at least its task's poll interval ago, whatever the number of
viewers: concurrent requests for the same job share the read in flight. A terminal reading is kept
(the job will not change). Errors are kept like readings (so a failing service is not hammered) and
carry only the provider's own error text, which never holds a secret.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_jobstatus.core.states import JobStatus
from airflow_jobstatus.services.base import JobRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveRequest:
    """One job to read: where it is, and how often its task itself reads it."""

    service: str
    ref: JobRef
    interval: float
    conn_id: str | None = None  # server-side only: never part of a response
    impersonation_chain: Any = None  # likewise

    @property
    def key(self) -> str:
        return json.dumps(
            [self.service, self.ref.to_dict(), self.conn_id, self.impersonation_chain],
            sort_keys=True,
            default=str,
        )


@dataclass
class Reading:
    """The outcome of one read: a status, or the error's text."""

    status: JobStatus | None
    error: str | None
    read_at: datetime  # wall clock (shown as "last polled")
    started: float  # monotonic clock at the start of the read (the rate limit counts from here)

    @property
    def final(self) -> bool:
        return self.status is not None and self.status.state.is_terminal


def error_text(err: BaseException) -> str:
    """What a viewer may see of a failed read: the provider's errors say no secret; others only their type."""
    from airflow_jobstatus.core.exceptions import JobStatusError

    if isinstance(err, JobStatusError):
        return f"{type(err).__name__}: {err}"[:500]
    return type(err).__name__


async def read_with_hook(
    service: str, ref: JobRef, conn_id: str | None, impersonation_chain: Any, timeout: float
) -> JobStatus:
    """One read through the service's hook, on its async path (clients shared per event loop)."""
    from airflow_jobstatus.hooks.base import make_hook

    extra = {"impersonation_chain": impersonation_chain} if impersonation_chain else {}
    hook = make_hook(service, conn_id, timeout=timeout, **extra)
    return await hook.aget_status(ref)


@dataclass
class LiveReader:
    """The per-process cache and rate limiter of live reads (see the module docstring)."""

    reader: Callable[..., Any] = read_with_hook
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    call_timeout: float = 10.0
    concurrency: int = 8
    max_entries: int = 4096
    readings: OrderedDict[str, Reading] = field(default_factory=OrderedDict)
    _inflight: dict[str, asyncio.Task[Reading]] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _semaphore: asyncio.Semaphore | None = None
    reads_started: int = 0

    def cached(self, request: LiveRequest) -> Reading | None:
        return self.readings.get(request.key)

    def _due(self, request: LiveRequest, now: float) -> bool:
        last = self.readings.get(request.key)
        if last is None:
            return True
        if last.final:
            return False
        return now - last.started >= request.interval

    def _bind_loop(self) -> None:
        """Tasks and the semaphore belong to one event loop; start afresh if it changed."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._inflight = {}
            self._semaphore = asyncio.Semaphore(self.concurrency)

    async def _read(self, request: LiveRequest, started: float) -> Reading:
        assert self._semaphore is not None
        async with self._semaphore:
            try:
                status = await asyncio.wait_for(
                    self.reader(
                        request.service,
                        request.ref,
                        request.conn_id,
                        request.impersonation_chain,
                        self.call_timeout,
                    ),
                    self.call_timeout + 1.0,
                )
                reading = Reading(status, None, self.wall_clock(), started)
            except Exception as err:
                log.warning(
                    "Cloud jobs board: live read of %s job %s failed (%s)",
                    request.service,
                    request.ref.display_id,
                    type(err).__name__,
                )
                reading = Reading(None, error_text(err), self.wall_clock(), started)
        self._store(request.key, reading)
        return reading

    def _store(self, key: str, reading: Reading) -> None:
        self.readings[key] = reading
        self.readings.move_to_end(key)
        while len(self.readings) > self.max_entries:
            self.readings.popitem(last=False)

    def _forget(self, key: str, _task: asyncio.Task[Reading]) -> None:
        self._inflight.pop(key, None)

    def _start(self, request: LiveRequest) -> asyncio.Task[Reading]:
        key = request.key
        task = self._inflight.get(key)
        if task is not None:
            return task
        now = self.clock()
        # Claim the slot before the read runs: a second viewer arriving now must not start another.
        previous = self.readings.get(key)
        if previous is not None:
            self._store(key, Reading(previous.status, previous.error, previous.read_at, now))
        self.reads_started += 1
        task = asyncio.ensure_future(self._read(request, now))
        self._inflight[key] = task
        task.add_done_callback(functools.partial(self._forget, key))
        return task

    async def read_many(self, requests: Iterable[LiveRequest], wait: float) -> dict[str, Reading]:
        """The freshest reading of each job, reading the ones that are due (waiting at most ``wait`` s).

        A read still running after ``wait`` goes on in the background; its job shows its previous
        reading (or none) until the next request.
        """
        self._bind_loop()
        now = self.clock()
        pending: list[asyncio.Task[Reading]] = []
        wanted = {r.key: r for r in requests}
        for key, request in wanted.items():
            if key in self._inflight:
                pending.append(self._inflight[key])
            elif self._due(request, now):
                pending.append(self._start(request))
        if pending:
            await asyncio.wait([asyncio.shield(t) for t in pending], timeout=wait)
        result: dict[str, Reading] = {}
        for key in wanted:
            reading = self.readings.get(key)
            if reading is not None and (reading.status is not None or reading.error is not None):
                result[key] = reading
        return result
