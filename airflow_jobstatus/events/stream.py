"""One list call per scope and interval, shared by every watcher of that scope (Airflow 3.3 shared
streams, ack mode), and the commit of each watcher's state once Airflow has persisted its events.

The producer (``JobListProducer``, one per shared-stream group) lists the scope's jobs every
``poll_interval`` (every page, transient errors ridden out by ``JobWatch`` as a sensor's reads are;
an authentication error or a refused request ends the group, and so every watcher of it, with that
error) and yields two raw events per poll: the ``ListSnapshot`` and a ``Flush`` marker right after
it. Each watcher's ``filter_shared_stream`` turns a snapshot into its own events and, pulling the
``Flush``, moves past the snapshot at once (so Airflow resolves the snapshot as soon as its events are
persisted, not one interval later). ``advance`` is called by Airflow only for snapshots every
subscriber has resolved, i.e. after each of their events is confirmed stored in the metadata DB:
there, and only there, each watcher writes what it reported to its asset state store (``commit``).

When a write is safe, and what a crash does:
- state written only after persistence confirmation: a crash before the event is stored leaves
  nothing recorded, and the restarted watcher reports the job again (no end is lost);
- a crash after the event is stored and before the state write lands (the next runner-supervisor
  state sync, about a second, plus one state-store call) reports that job once more on restart,
  with the same ``dedupe_key``: the one window no ordering closes, because a trigger cannot read
  asset events back; consumers that must never see a second run dedupe on the key;
- a snapshot that a subscriber did not resolve cleanly (ack timeout, overflow) commits nothing for
  anyone: those watchers keep the keys in memory (no refire while they run) and a restart reports
  them again.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_jobstatus.hooks.base import make_hook
from airflow_jobstatus.hooks.loop_cache import PerLoopCache
from airflow_jobstatus.services.base import Watched
from airflow_jobstatus.services.google import impersonation_chain
from airflow_jobstatus.wait.rules import JobWatch, RetryPolicy

log = logging.getLogger(__name__)

#: Poll ids, unique in the process (a new group after an old one never reuses one).
_POLL_IDS = itertools.count(1)


@dataclass(frozen=True)
class ListSnapshot:
    """One list call's answer: every listed job of the scope, and when it was listed (epoch seconds)."""

    poll_id: int
    listed_at: float
    jobs: Sequence[Watched]


@dataclass(frozen=True)
class Flush:
    """Follows each snapshot: pulling it moves a watcher past the snapshot (Airflow resolves it then)."""

    poll_id: int


#: The trigger arguments that name one list call (with the service, connection and interval).
def stream_key(kwargs: Mapping[str, Any], scope_fields: Sequence[str], conn_arg: str) -> tuple[Any, ...]:
    """(service, connection, impersonation chain, scope values, interval): what one list call serves."""
    chain = impersonation_chain(kwargs.get("impersonation_chain"))
    scope = tuple((name, kwargs.get(name)) for name in scope_fields)
    return (
        "airflow_jobstatus.watch",
        kwargs["service"],
        kwargs.get(conn_arg),
        chain,
        scope,
        float(kwargs["poll_interval"]),
    )


# -- list calls --------------------------------------------------------------------------------------

#: List calls made per stream key in this process (tests, benchmarks).
LIST_CALLS: dict[Hashable, int] = {}


async def poll_scope(
    kwargs: Mapping[str, Any],
    scope: Mapping[str, Any],
    key: Hashable,
    pushed: Mapping[str, Any] | None = None,
    *,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> AsyncIterator[ListSnapshot]:
    """Snapshots of one scope's job list, one per ``poll_interval``, forever (or until a final error)."""
    extra = (
        {"impersonation_chain": kwargs["impersonation_chain"]} if kwargs.get("impersonation_chain") else {}
    )
    hook = make_hook(kwargs["service"], kwargs.get("conn_id"), timeout=float(kwargs["call_timeout"]), **extra)
    policy = RetryPolicy(float(kwargs["error_budget"]), max_backoff=float(kwargs["max_backoff"]))
    watch = JobWatch(policy=policy, log=log)
    interval = float(kwargs["poll_interval"])
    loop = asyncio.get_running_loop()

    async def one_list() -> list[Watched]:
        LIST_CALLS[key] = LIST_CALLS.get(key, 0) + 1
        return await hook.alist_jobs(scope, pushed)

    while True:
        started = loop.time()
        jobs = await watch.aread(one_list)
        yield ListSnapshot(next(_POLL_IDS), time.time(), jobs)
        await sleep(max(0.0, started + interval - loop.time()))


# -- commits after persistence -----------------------------------------------------------------------


@dataclass(eq=False)
class Subscriber:
    """One watcher in a stream: the keys it fired per snapshot, written once Airflow confirms them."""

    commit_keys: Callable[[list[str]], Awaitable[None]]
    pending: dict[int, list[str]] = field(default_factory=dict)

    def fired(self, poll_id: int, key: str) -> None:
        self.pending.setdefault(poll_id, []).append(key)

    async def commit(self, poll_id: int) -> None:
        keys = self.pending.pop(poll_id, None)
        if keys:
            await self.commit_keys(keys)

    def abandon(self, poll_id: int) -> None:
        """Keys of a snapshot that did not resolve cleanly: never written (a restart reports them again)."""
        self.pending.pop(poll_id, None)


_SUBSCRIBERS: PerLoopCache[Hashable, set[Subscriber]] = PerLoopCache()


def join(key: Hashable, subscriber: Subscriber) -> None:
    _SUBSCRIBERS.values().setdefault(key, set()).add(subscriber)


def leave(key: Hashable, subscriber: Subscriber) -> None:
    members = _SUBSCRIBERS.values().get(key)
    if members is not None:
        members.discard(subscriber)
        if not members:
            del _SUBSCRIBERS.values()[key]


async def advance(key: Hashable, poll_id: int, clean: bool) -> None:
    """Airflow has resolved snapshot ``poll_id`` of stream ``key``: commit (``clean``) or abandon it.

    Never raises: a raising advance would end the whole group; a failed state write is logged and the
    keys stay in the watcher's memory (no refire while it runs; a restart reports them again).
    """
    for subscriber in list(_SUBSCRIBERS.values().get(key, ())):
        if not clean:
            subscriber.abandon(poll_id)
            continue
        try:
            await subscriber.commit(poll_id)
        except Exception as err:
            log.warning("Could not record reported job events in the asset state store: %s", err)


def _producer_class() -> type[Any]:
    """``JobListProducer``, defined on first use (``SharedStreamProducer`` exists on Airflow >= 3.3 only)."""
    global _PRODUCER
    if _PRODUCER is None:
        from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

        class JobListProducer(SharedStreamProducer):
            """The ack-mode producer of one scope's shared list: a snapshot and a flush per poll;
            ``advance`` commits each watcher's reports of the resolved snapshots."""

            def __init__(self, kwargs: Mapping[str, Any], scope: Mapping[str, Any], key: Hashable):
                self.kwargs, self.scope, self.key = kwargs, scope, key

            async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
                async for snapshot in poll_scope(self.kwargs, self.scope, self.key):
                    yield snapshot, snapshot.poll_id
                    yield Flush(snapshot.poll_id), None

            async def advance(self, batch: Sequence[AdvanceItem]) -> None:
                for item in batch:
                    if item.broker_payload is not None:
                        outcome = item.outcome
                        await advance(
                            self.key, item.broker_payload, outcome.failed == 0 and outcome.rejected == 0
                        )

        _PRODUCER = JobListProducer
    return _PRODUCER


_PRODUCER: type[Any] | None = None


def producer(kwargs: Mapping[str, Any], scope: Mapping[str, Any], key: Hashable) -> Any:
    """The shared stream's ack-mode producer for the group of ``key``."""
    return _producer_class()(kwargs, scope, key)


def state_key(kwargs: Mapping[str, Any], ignore: Sequence[str]) -> str:
    """The asset-state-store key of one watcher: a digest of what it watches (not how often), so two
    watchers of one asset keep apart and a new interval keeps the state."""
    kept = {k: v for k, v in sorted(kwargs.items()) if k not in ignore}
    digest = hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"airflow_jobstatus.watch.{digest}"
