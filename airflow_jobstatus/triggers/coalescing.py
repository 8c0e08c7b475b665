"""Coalesced polling: many waits of one scope, one list call per interval, when that is cheaper.

Waits of one service, connection, scope (the service's ``Coalescing.scope_fields``, e.g. project
and region) and poll interval, in one event loop, share a ``Poller``. While it coalesces it lists
the scope's active jobs (every page) once per interval. Each wait's per-poll read is a ``Waiter``:
its job's list entry parsed by the service's own parser, or, when the job is absent from the active
list (it ended, or was not listed yet) or its entry says terminal, the job's own ``aget_status``
read, so the final status, message, counters and subjobs are exactly the ones a non-coalesced wait
gets. A failed list call fails that poll's read of every waiter with the same error kind (the
trigger's ``JobWatch`` retries it as usual). The last waiter leaving stops the poller.

``coalesce``: ``True`` always coalesces (ConfigurationError where it cannot); ``False`` never;
``"auto"`` (the default) coalesces a scope only while a round costs at most half the reads of
per-job polling and the calls its rounds saved so far pay for the next one:

- per-job polling costs ``k`` reads per interval (``k``: the scope's waits in this loop); a
  coalesced round costs ``L + r``: ``L`` list requests (the first page of each listed status, plus
  one per further 100 entries: a list returns every active job of the scope, waited on here or
  not) and ``r`` own reads of waits whose job was missing from the list but still active;
- **on** when ``k >= AUTO_MIN_WAITS`` and ``L + r <= k / 2`` (``L`` of the last list, or before the
  first one the first-page requests), and the ledger covers a round;
- **off** when ``k < AUTO_KEEP_WAITS`` or ``L + r >= k`` (a list that pages more than the scope's
  waits turns it off after one round; it comes back only once ``k >= 2 (L + r)``), or when the
  ledger no longer covers a round;
- the ledger (``Poller.credit``): each wait keeps per-job polling's cadence (a read at its start and
  every interval after); a list entry standing in for one of those reads saves a call, a round costs
  its requests, an own read per-job polling would not have made costs one (a job's final read is
  made in both). After its first round a scope lists only while the savings pay for a whole round,
  so a round that finds every job ended leaves auto at or under per-job polling; only the first
  round is not covered (it costs ``L`` more when every job it serves has ended by then). It is made
  when the earliest wait reading on its own is due (with those due within one ``shared_sleep``
  tick), and waits joining then take it as their first reading, so it stands in for reads of two
  waits or more.

The gap between the two thresholds is the hysteresis: a fleet hovering around one of them does not
flap. A switch loses no poll and doubles no read: off→on, a wait takes the first list answer taken
after its own last read; on→off, the poller's next round time is when the waiting waits make their
own reads. Where auto cannot coalesce (a service with no list of active jobs, a ref the list does
not serve, a list whose entries carry less than a read: the service's ``Coalescing.unsupported``
and ``auto_unsupported``, e.g. DLI SQL jobs) the wait polls per job, logged once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from airflow_jobstatus.core.exceptions import ConfigurationError, ServiceError
from airflow_jobstatus.core.states import JobStatus
from airflow_jobstatus.hooks.base import JobStatusHook
from airflow_jobstatus.hooks.loop_cache import PerLoopCache
from airflow_jobstatus.services import get_service
from airflow_jobstatus.services.base import Coalescing, JobRef
from airflow_jobstatus.services.google import impersonation_chain
from airflow_jobstatus.wait.shared_sleep import TICK, shared_sleep

log = logging.getLogger(__name__)

#: A task's ``coalesce`` argument: always, never, or where it costs fewer calls (the default).
CoalesceMode = bool | Literal["auto"]
AUTO = "auto"
#: "auto" coalesces a scope once this many of its waits share an event loop. Measured
#: (benchmarks/coalesce.py --coalesce-sweep, K waits per Google scope, 2 s polls): coalesce=True costs
#: 1.11 calls per wait per poll at K=1 (more than per-job polling's 1.0), 0.65 at K=2, 0.51 at 3,
#: 0.39 at 4, 0.24 at 8, detection p99 within per-job polling's spread at every K. So it pays from 2:
#: on at 3, …
AUTO_MIN_WAITS = 3
#: … and off below 2 (at 2 it still pays): the gap is the hysteresis.
AUTO_KEEP_WAITS = 2
#: Entries per list page when a list request does not say (every service's lists use 100).
DEFAULT_PAGE_SIZE = 100

PollerKey = tuple[str, str, tuple[str, ...], tuple[Any, ...], float]
_POLLERS: PerLoopCache[PollerKey, Poller] = PerLoopCache()
_LOGGED: set[tuple[str, str]] = set()


def parse_coalesce(value: Any) -> CoalesceMode:
    """``coalesce`` as True, False or "auto"; ConfigurationError for anything else."""
    if isinstance(value, bool):
        return value
    text = value.lower() if isinstance(value, str) else None
    if text == "auto":
        return "auto"
    if text in ("true", "false"):
        return text == "true"
    raise ConfigurationError(f"coalesce must be True, False or 'auto', got {value!r}.")


def why_not_coalescing(service: str, ref: JobRef | Mapping[str, Any] | None = None) -> str | None:
    """Why ``service`` (or this ref of it) cannot coalesce; None when it can."""
    spec = get_service(service)
    if spec.coalescing is None:
        return f"{spec.title}: {spec.no_coalescing_reason or 'it has no list of active jobs.'}"
    if ref is not None:
        why = spec.coalescing.unsupported(spec.ref(ref))
        if why:
            return why
    return None


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


def auto_refusal(service: str, ref: JobRef | Mapping[str, Any] | None) -> str | None:
    """Why ``coalesce="auto"`` polls this wait per job (logged once per reason); None: it may coalesce."""
    why = why_not_coalescing(service, ref)
    spec = get_service(service)
    if why is None and ref is not None and spec.coalescing is not None:
        # The service's own word on whether its list carries all a read does (services/<name>.py).
        why = spec.coalescing.auto_unsupported(ref if isinstance(ref, JobRef) else spec.ref(ref))
    if why is not None and (service, why) not in _LOGGED:
        _LOGGED.add((service, why))
        log.info("coalesce='auto': %s waits poll per job (%s).", service, why)
    return why


def list_shape(coalescing: Coalescing, ref: JobRef) -> tuple[int, int]:
    """(requests of a list's first pages, entries per page) of one listing of ``ref``'s scope: Google
    sends one request (method, request dict), Huawei one operation per listed status."""
    try:
        call = coalescing.list_call("", ref)
    except Exception:  # a list call that needs more than the ref: assume one request
        return 1, DEFAULT_PAGE_SIZE
    if isinstance(call, tuple) and len(call) == 2 and isinstance(call[0], str):
        request = call[1] if isinstance(call[1], Mapping) else {}
        return 1, int(request.get("page_size") or DEFAULT_PAGE_SIZE)
    ops = tuple(call) if isinstance(call, tuple | list) else (call,)
    sizes = [int(v) for op in ops for k, v in getattr(op, "query", ()) if k in ("page-size", "size", "limit")]
    return max(1, len(ops)), (min(sizes) if sizes else DEFAULT_PAGE_SIZE)


def list_requests(first_pages: int, page_size: int, entries: int) -> int:
    """Requests a listing of ``entries`` active jobs took at most: exact with one listed status;
    with several, the entries' split between them adds at most one page each."""
    return first_pages - 1 + max(1, math.ceil(entries / page_size))


@dataclass(frozen=True)
class Snapshot:
    """One list call's outcome: the active jobs by id, or the error every waiter gets for that poll.

    ``taken``: loop time the list call started (its entries are at least that fresh). ``off``: not a
    list answer but the round at which the poller stopped coalescing (its waiters read their own jobs).
    """

    generation: int
    entries: Mapping[str, Any]
    error: Exception | None = None
    taken: float = 0.0
    off: bool = False


class Poller:
    """One scope's waits in one event loop; one list call per ``interval`` while it coalesces."""

    def __init__(self, key: PollerKey, hook: JobStatusHook[Any], ref: JobRef, coalescing: Coalescing):
        self.key, self.hook, self.ref, self.coalescing = key, hook, ref, coalescing
        self.interval = key[-1]
        self.waiters: weakref.WeakSet[Waiter] = weakref.WeakSet()
        self.latest: Snapshot | None = None
        self.list_calls = 0
        #: Whether the scope coalesces now (a ``coalesce=True`` waiter forces it).
        self.coalescing_now = False
        self.forced = 0
        self.first_pages, self.page_size = list_shape(coalescing, ref)
        #: Requests the last list took (before any: the first pages), and own reads of listed-but-missing
        #: active jobs since the last list answer.
        self.last_requests = self.first_pages
        self.misses = 0
        self.last_misses = 0
        self.switches = 0
        #: Calls this poller's list rounds saved so far against per-job polling of the same waits
        #: (``Waiter._covers``): plus 1 for each list entry that stands in for a read per-job polling
        #: would have made, minus a round's requests, minus 1 for an own read it would not have made.
        #: Auto makes a list round only while ``credit`` covers it (its first round excepted).
        self.credit = 0
        #: Whether this poller has made its first list round (the one its credit cannot cover).
        self.probed = False
        self._loop = asyncio.get_running_loop()
        self._next: asyncio.Future[Snapshot] = self._loop.create_future()
        self._task: asyncio.Task[None] | None = None

    # -- membership and the auto rule --------------------------------------------------------------
    def join(self, waiter: Waiter) -> None:
        self.waiters.add(waiter)
        if not waiter.auto:
            self.forced += 1
        if not self.coalescing_now and self.wants_on():
            self._switch(True)

    def leave(self, waiter: Waiter) -> None:
        """Forget ``waiter``; the last one leaving stops the list calls and unregisters the poller."""
        if waiter in self.waiters and not waiter.auto:
            self.forced -= 1
        self.waiters.discard(waiter)
        if not self.waiters:
            self.stop()

    def cost(self) -> int:
        """Calls of one coalesced round: the last list's requests and the misses' own reads."""
        return self.last_requests + self.last_misses

    def covered(self) -> bool:
        """Whether the calls saved so far pay for one more round (``credit``), or none was made yet."""
        return not self.probed or self.credit >= self.cost()

    def wants_on(self) -> bool:
        k = len(self.waiters)
        return self.forced > 0 or (k >= AUTO_MIN_WAITS and 2 * self.cost() <= k and self.covered())

    def wants_off(self) -> bool:
        k = len(self.waiters)
        return self.forced <= 0 and (k < AUTO_KEEP_WAITS or self.cost() >= k or not self.covered())

    def _switch(self, on: bool) -> None:
        """Start or stop coalescing (the caller publishes the round at which it stops)."""
        self.coalescing_now = on
        self.switches += 1
        log.info(
            "Coalesced polling %s for %s %s every %g s: %d waits, a round costs about %d calls.",
            "on" if on else "off",
            self.key[0],
            "/".join(map(str, self.key[3])) or self.key[1],
            self.interval,
            len(self.waiters),
            self.cost(),
        )
        if on and (self._task is None or self._task.done()):
            name = f"coalesced poll {self.key[:2]}"
            self._task = self._loop.create_task(self._run(self.first_round()), name=name)

    def first_round(self) -> float:
        """When auto's first list round after switching on is made: when the earliest of the waits
        reading on their own needs its next reading (or the last of those due within one
        ``shared_sleep`` tick of it, which per-job polling's sleeps round to anyway), so the round
        stands in for those reads as well as for the first readings of the waits still to make one
        (they wait for it); at once with a ``coalesce=True`` wait, or when no wait has read yet."""
        now = self._loop.time()
        if self.forced > 0:
            return now
        due = sorted(w._last + self.interval for w in self.waiters if w._own and w._last > -math.inf)
        if not due:
            return now
        return max(now, max(d for d in due if d <= due[0] + TICK))

    def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None
        self.coalescing_now = False
        registry = _POLLERS.values()
        if registry.get(self.key) is self:
            del registry[self.key]

    # -- the list rounds ---------------------------------------------------------------------------
    async def next_snapshot(self) -> Snapshot:
        """The next list call's outcome (shielded: one waiter cancelled does not cancel the others')."""
        return await asyncio.shield(self._next)

    async def _run(self, start: float | None = None) -> None:
        if start is not None and start > self._loop.time():
            await asyncio.sleep(start - self._loop.time())
        while self.waiters:
            started = self._loop.time()
            self.last_misses, self.misses = self.misses, 0
            self.forced = sum(1 for w in self.waiters if not w.auto)  # also after a waiter was dropped
            if self.wants_off():  # also when waits left while its first round was due
                # Now is when the waiting waits need their next reading: they make it themselves.
                self._task = None
                self._switch(False)
                self._publish(Snapshot(self._generation(), {}, taken=started, off=True))
                return
            self.probed = True
            snapshot = await self._list(started)
            if snapshot.error is None:
                self.last_requests = list_requests(self.first_pages, self.page_size, len(snapshot.entries))
            self.credit -= self.last_requests
            self._publish(snapshot)
            await asyncio.sleep(max(0.0, started + self.interval - self._loop.time()))
        self.stop()

    def _generation(self) -> int:
        return (self.latest.generation if self.latest else 0) + 1

    async def _list(self, started: float | None = None) -> Snapshot:
        started = self._loop.time() if started is None else started
        generation = self._generation()
        self.list_calls += 1
        try:
            listed = await self.hook.alist_active(self.ref)
            entries = {self.coalescing.entry_id(entry): entry for entry in listed}
        except Exception as err:  # every waiter gets it for this poll, classified as a read error
            return Snapshot(generation, {}, err, taken=started)
        return Snapshot(generation, entries, taken=started)

    def _publish(self, snapshot: Snapshot) -> None:
        self.latest = snapshot
        done, self._next = self._next, self._loop.create_future()
        if not done.done():
            done.set_result(snapshot)


class Waiter:
    """One wait's polls through its scope's poller: call it where ``hook.aget_status(ref)`` was, and
    ``await pause()`` where the wait slept one interval. While the scope coalesces, the pause ends
    when the next list call answers (a job leaving the list is seen within the interval plus the list
    call's duration); while it does not (``auto``), the call is the job's own read and the pause a
    sleep of one interval, as without coalescing."""

    __slots__ = (
        "__weakref__",
        "_last",
        "_origin",
        "_own",
        "_point",
        "_poller",
        "_seen",
        "auto",
        "hook",
        "interval",
        "job_key",
        "ref",
    )

    def __init__(self, hook: JobStatusHook[Any], ref: JobRef, interval: float, *, auto: bool = False):
        self.hook, self.ref, self.interval, self.auto = hook, ref, float(interval), auto
        self.job_key = str(getattr(ref, "job_id", ref.display_id))
        self._poller: Poller | None = None
        self._seen = 0
        self._last = -math.inf  # loop time of this wait's last reading (own read or list call start)
        self._own = False  # whether that reading was a per-job poll (its own cadence)
        #: Per-job polling of this wait would read at ``_origin + n * interval`` (n = 0, 1, …): the
        #: loop time of its first reading, and the last such n a reading of it stood in for.
        self._origin: float | None = None
        self._point = -1

    def _join(self) -> Poller:
        coalescing = coalescing_of(self.ref.service, self.ref)
        key = poller_key(self.hook, self.ref, coalescing, self.interval)
        registry = _POLLERS.values()
        poller = registry.get(key)
        if poller is None:
            poller = registry[key] = Poller(key, self.hook, self.ref, coalescing)
        if self._origin is None:  # per-job polling's first read would be now
            self._origin = asyncio.get_running_loop().time()
        poller.join(self)
        self._poller = poller
        return poller

    def _fresh(self, snapshot: Snapshot | None) -> bool:
        """A list answer this waiter has not used, taken since its own last reading."""
        return (
            snapshot is not None
            and not snapshot.off
            and snapshot.generation > self._seen
            and snapshot.taken >= self._last
        )

    async def pause(self, sleep: Callable[[float], Awaitable[None]] = shared_sleep) -> None:
        """Until this waiter's next reading is due: a list answer it has not used while the scope
        coalesces, ``sleep(interval)`` otherwise (the trigger passes its own)."""
        poller = self._poller or self._join()
        if poller.coalescing_now and not self._own:
            if not self._fresh(poller.latest):
                await poller.next_snapshot()  # a list answer, or the round the poller stopped at
            return
        # Per job, or the first pause after the scope started coalescing: one interval after its own
        # read, as per-job polling (then the latest list answer taken since, or the next one).
        await sleep(self.interval)

    def _covers(self, taken: float) -> bool:
        """Whether a reading of the job as it was at loop time ``taken`` stands in for a read per-job
        polling would have made (the last of its read times at or before ``taken`` that no earlier
        reading stood in for); False: per-job polling would have read the job once for both."""
        origin = taken if self._origin is None else self._origin
        point = math.floor((taken - origin) / self.interval + 1e-6)
        if point <= self._point:
            return False
        self._point = point
        return True

    def _own_read_done(self, poller: Poller, taken: float, status: JobStatus) -> None:
        """Book an own read: a final one is the read per-job polling ends with too; an active one
        per-job polling would not have made (two readings within one of its intervals) costs a call."""
        if not status.state.is_terminal and not self._covers(taken):
            poller.credit -= 1

    async def __call__(self) -> JobStatus:
        poller = self._poller or self._join()
        snapshot = poller.latest
        if not self._fresh(snapshot):
            snapshot = await poller.next_snapshot() if poller.coalescing_now else None
        if snapshot is None or snapshot.off:
            self._last, self._own = asyncio.get_running_loop().time(), True
            own = await self.hook.aget_status(self.ref)  # per-job polling
            self._own_read_done(poller, self._last, own)
            return own
        listed_before = self._seen > 0  # not its first list answer (a new job may not be listed yet)
        self._seen, self._last, self._own = snapshot.generation, snapshot.taken, False
        if snapshot.error is not None:
            raise waiter_error(snapshot.error, self.ref)
        entry = snapshot.entries.get(self.job_key)
        if entry is not None:
            try:
                status = poller.coalescing.parse_entry(entry, self.ref)
            except Exception:  # an entry we cannot read: the job's own read decides
                status = None
            if status is not None and not status.state.is_terminal:
                if self._covers(snapshot.taken):
                    poller.credit += 1  # a read per-job polling would have made, saved
                return status
        status = await self.hook.aget_status(self.ref)  # left the active list: the full final read
        if listed_before and not status.state.is_terminal:
            poller.misses += 1  # active but not listed: a cost of coalescing that per-job would not have
        self._own_read_done(poller, snapshot.taken, status)
        return status

    def close(self) -> None:
        """Leave the poller (the trigger's wait is over)."""
        if self._poller is not None:
            self._poller.leave(self)
            self._poller = None


def poller_key(hook: JobStatusHook[Any], ref: JobRef, coalescing: Coalescing, interval: float) -> PollerKey:
    """(service, connection, impersonation chain, scope values, interval): what one list call serves."""
    chain = impersonation_chain(getattr(hook, "impersonation_chain", None))
    scope = tuple(getattr(ref, name) for name in coalescing.scope_fields)
    return (ref.service, hook.conn_id, chain, scope, float(interval))


def waiter_error(err: Exception, ref: JobRef) -> Exception:
    """A fresh copy of a list call's error for one waiter, naming its job (same kind, same retry rule)."""
    if isinstance(err, ServiceError):
        return ServiceError.from_dict({**err.to_dict(), "job_id": ref.display_id})
    message = f"listing active jobs failed: {type(err).__name__}: {err}"
    return ServiceError(message, service=ref.service, job_id=ref.display_id)


def active_pollers() -> dict[PollerKey, Poller]:
    """The running loop's pollers (tests, benchmarks)."""
    return dict(_POLLERS.values())


def coalescing_pollers() -> dict[PollerKey, Poller]:
    """The running loop's pollers that list now (tests, benchmarks)."""
    return {key: p for key, p in _POLLERS.values().items() if p.coalescing_now}
