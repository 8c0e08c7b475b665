"""The wait rules, shared by sensors (poke/reschedule), the trigger and the operators.

A ``JobWatch`` decides what a status means (success, failure, keep waiting), logs one progress
line per poll and a warning per change into a stuck state, and retries transient errors with
capped exponential backoff and equal jitter (honouring a server's Retry-After) until an error
budget of consecutive failures runs out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from airflow_jobstatus.core.exceptions import JobNotFoundError, ServiceError
from airflow_jobstatus.core.states import STUCK_STATES, JobState, JobStatus, resolve_state_sets
from airflow_jobstatus.wait import metrics

Verdict = Literal["success", "failure", "wait"]
T = TypeVar("T")


DEFAULT_ERROR_BUDGET = 300.0
HISTORY_LIMIT = 50
DEFAULT_MAX_BACKOFF = 60.0
#: How long a cancel is retried through transient errors before giving up (and saying so).
CANCEL_ERROR_BUDGET = 30.0


class WaitArgs(Protocol):
    """What a task or a trigger holds about its wait (the arguments a ``JobWatch`` is built from)."""

    success_states: Any
    failure_states: Any
    error_budget: float
    max_backoff: float
    not_found_grace: float


def decide(
    state: JobState, success_states: frozenset[JobState], failure_states: frozenset[JobState]
) -> Verdict:
    """What ``state`` means under these sets, with no side effect: success, failure or wait.

    Every terminal state ends the wait: one in neither set is a failure.
    """
    if state in success_states:
        return "success"
    if state in failure_states or state.is_terminal:
        return "failure"
    return "wait"


def check_seconds(name: str, value: Any, *, positive: bool = False) -> float:
    """``value`` as seconds: a finite number >= 0 (> 0 with ``positive``); a clear ValueError otherwise."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number of seconds {bound}, got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class RetryPolicy:
    """How long transient errors are ridden out, and how fast to retry."""

    error_budget: float = DEFAULT_ERROR_BUDGET
    initial_backoff: float = 1.0
    max_backoff: float = DEFAULT_MAX_BACKOFF
    not_found_grace: float = 0.0

    def __post_init__(self) -> None:
        check_seconds("error_budget", self.error_budget)
        check_seconds("not_found_grace", self.not_found_grace)
        check_seconds("initial_backoff", self.initial_backoff, positive=True)
        check_seconds("max_backoff", self.max_backoff, positive=True)  # 0 would be a retry storm

    @classmethod
    def for_wait(cls, args: WaitArgs) -> RetryPolicy:
        """The policy of a wait, from its task's or trigger's arguments: one shared (immutable) instance
        per distinct value, not one per wait (one garbage-collected object fewer per waiting trigger)."""
        key = (cls, float(args.error_budget), float(args.max_backoff), float(args.not_found_grace))
        policy = _POLICIES.get(key)
        if policy is None:
            policy = cls(
                args.error_budget, max_backoff=args.max_backoff, not_found_grace=args.not_found_grace
            )
            if len(_POLICIES) < _MAX_SHARED_POLICIES:
                _POLICIES[key] = policy
        return policy

    @classmethod
    def for_cancel(cls, budget: float = CANCEL_ERROR_BUDGET) -> RetryPolicy:
        """The policy of a cancel: retried through transient errors for ``budget`` seconds at most."""
        return cls(budget, max_backoff=5.0)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Capped exponential delay with equal jitter for the ``attempt``-th consecutive error (1-based).

        A server's ``retry_after`` is honoured, bounded by ``max_backoff``.
        """
        cap = min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1))
        delay = random.uniform(cap / 2, cap)
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, self.max_backoff))
        return delay


_POLICIES: dict[tuple[Any, ...], RetryPolicy] = {}
_MAX_SHARED_POLICIES = 256

#: One entry of ``JobWatch`` history: (at, state, progress, tasks done, tasks total). A tuple of
#: atomic values, which CPython stops tracking after one collection: a dict and a list per entry
#: would stay in every full collection's walk for the whole wait.
HistoryEntry = tuple[str, str, float | None, int, int]


def progress_line(status: JobStatus) -> str:
    """The line logged per poll: the status summary, without the counters that are zero.

    CDM reports all ten of its counters (files, bytes, rows, skipped, …) whatever the job moves;
    the zeros say nothing while it runs. The status itself (XComs, ``return_value``) keeps them all.
    """
    if status.counters and not all(status.counters.values()):
        status = dataclasses.replace(status, counters={k: v for k, v in status.counters.items() if v})
    return status.summary()


def _needs_attention(status: JobStatus) -> bool:
    """A native state or substate the service says will not progress by itself (e.g. a stale status)."""
    from airflow_jobstatus.services import REGISTRY

    spec = REGISTRY.get(status.service)
    return spec is not None and bool(spec.attention & {status.native_state, status.substate})


class JobWatch:
    """Per-wait state: the error streak, the last state seen, and the success/failure rules.

    Thousands of them live in one triggerer for the whole wait, so a watch holds as few
    garbage-collected objects as it can (``wait/gc.py``): slots, a shared ``RetryPolicy``, no list
    before there is something to keep, history entries as tuples.
    """

    __slots__ = (
        "_ended",
        "_error_since",
        "_history",
        "_last_key",
        "_seen_running_wall",
        "clock",
        "errors",
        "failure_states",
        "last_sub_jobs",
        "log",
        "on_status",
        "policy",
        "polls",
        "service",
        "started_at",
        "started_wall",
        "success_states",
    )

    @classmethod
    def for_wait(cls, args: WaitArgs, log: Any) -> JobWatch:
        """The watch of a wait, from its task's or trigger's arguments (its metrics by ``args.service``;
        a trigger's ``wait_started``, the wall-clock start of the task's wait, dates the wait)."""
        return cls(
            args.success_states,
            args.failure_states,
            RetryPolicy.for_wait(args),
            log=log,
            service=getattr(args, "service", None),
            started_wall=getattr(args, "wait_started", None),
        )

    @classmethod
    def for_cancel(cls, log: Any, budget: float = CANCEL_ERROR_BUDGET) -> JobWatch:
        """A watch that only retries a cancel (no states to decide)."""
        return cls(policy=RetryPolicy.for_cancel(budget), log=log)

    def __init__(
        self,
        success_states: Iterable[str | JobState] | None = None,
        failure_states: Iterable[str | JobState] | None = None,
        policy: RetryPolicy | None = None,
        log: logging.Logger | Any | None = None,
        clock: Callable[[], float] = time.monotonic,
        service: str | None = None,
        started_wall: float | None = None,
    ):
        self.success_states, self.failure_states = resolve_state_sets(success_states, failure_states)
        self.policy = policy or RetryPolicy()
        self.log = log or logging.getLogger(__name__)
        self.clock = clock
        self.started_at = clock()
        #: The service the metrics are tagged with; None: no metrics (a cancel, a record's re-read).
        self.service = service
        #: When the wait started (epoch seconds; the wait-duration metric), and when a read last saw
        #: the job not ended (the detection latency's bound when the service does not date the end).
        self.started_wall = time.time() if started_wall is None else float(started_wall)
        self._seen_running_wall: float | None = None
        self._ended = False
        #: Called with each status ``verdict`` reads (a worker's task sets it: its progress report).
        self.on_status: Callable[[JobStatus], Any] | None = None
        self.polls = 0
        self.errors = 0
        self._error_since: float | None = None
        self._last_key: tuple[str, str, str | None] | None = None
        #: The last non-empty subjob list (a finished DLI job stops listing them); () until then.
        self.last_sub_jobs: Sequence[dict[str, Any]] = ()
        #: One compact entry per change of state, progress or task counts, the last HISTORY_LIMIT kept
        #: (a list: a deque(maxlen=...) costs ~700 bytes per wait before its first entry).
        self._history: list[HistoryEntry] | None = None  # a list from the first entry on

    # -- deciding ------------------------------------------------------------------------------
    def verdict(self, status: JobStatus) -> Verdict:
        """What ``status`` means under this watch's rules; logs the poll's progress line."""
        self.polls += 1
        self.log.info("%s", progress_line(status))
        self._remember(status)
        key = (status.state.value, status.native_state, status.substate)
        if key != self._last_key:
            self._last_key = key
            if status.state in STUCK_STATES or _needs_attention(status):
                self.log.warning(
                    "%s job %s is %s (native %s%s) and may not progress by itself%s",
                    status.service,
                    status.job_id,
                    status.state.value,
                    status.native_state,
                    f"/{status.substate}" if status.substate else "",
                    f": {status.message}" if status.message else ".",
                )
        verdict = self.classify(status)
        if self.service is not None and metrics.active():
            self._measure(status, verdict)
        if self.on_status is not None:
            self.on_status(status)
        return verdict

    def _measure(self, status: JobStatus, verdict: Verdict) -> None:
        """The poll's metrics; a decisive verdict ends the wait's (once)."""
        metrics.poll(self.service or status.service, verdict)
        if verdict == "wait":
            self._seen_running_wall = time.time()
        elif not self._ended:
            self._ended = True
            ended_at = getattr(status, "ended_at", None)  # the service's end time, when it dates it
            metrics.wait_ended(
                self.service or status.service,
                verdict,
                self.started_wall,
                ended_at=ended_at if ended_at is not None else self._seen_running_wall,
            )

    def gave_up(self, err: BaseException) -> None:
        """The wait ends with ``err`` (a final error, or the budget spent): its metrics, once."""
        if self.service is not None and not self._ended:
            self._ended = True
            metrics.wait_ended(self.service, "error", self.started_wall, kind=metrics.error_kind(err))

    def classify(self, status: JobStatus) -> Verdict:
        """``verdict`` without its side effects (no progress line, no history, no poll counted)."""
        return decide(status.state, self.success_states, self.failure_states)

    def _remember(self, status: JobStatus) -> None:
        if status.sub_jobs:
            self.last_sub_jobs = [dict(s) for s in status.sub_jobs]
        done, total = status.task_counts()
        history = self._history
        if history is None or history[-1][1:] != (status.state.value, status.progress, done, total):
            entry = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), status.state.value, status.progress)
            if history is None:
                history = self._history = []
            history.append((*entry, done, total))
            if len(history) > HISTORY_LIMIT:
                del history[0]

    @property
    def history(self) -> list[dict[str, Any]]:
        """The progress history as JSON entries: ``at``, ``state``, ``progress``, ``tasks`` [done, total]."""
        return [
            {"at": at, "state": state, "progress": progress, "tasks": [done, total]}
            for at, state, progress, done, total in self._history or ()
        ]

    def snapshot(self) -> dict[str, Any]:
        """What the wait saw, as plain JSON: the last subjobs and the progress history."""
        return {"last_sub_jobs": list(self.last_sub_jobs), "progress_history": self.history}

    # -- errors --------------------------------------------------------------------------------
    def on_error(self, err: Exception) -> float:
        """The delay before retrying ``err``; re-raises it when it is final or the budget is spent."""
        now = self.clock()
        retryable = isinstance(err, ServiceError) and err.retryable
        if isinstance(err, JobNotFoundError) and now - self.started_at < self.policy.not_found_grace:
            retryable = True
        if not retryable:
            self.gave_up(err)
            raise err
        if self._error_since is None:
            self._error_since = now
        self.errors += 1
        streak = now - self._error_since
        if streak >= self.policy.error_budget:
            self.log.error(
                "Giving up after %.0f s of consecutive errors (error budget %.0f s): %s",
                streak,
                self.policy.error_budget,
                err,
            )
            self.gave_up(err)
            raise err
        retry_after = getattr(err, "retry_after", None)
        delay = min(self.policy.backoff(self.errors, retry_after), self.policy.error_budget - streak)
        self.log.warning("Transient error (%s); retrying in %.1f s.", err, delay)
        if self.service is not None:
            metrics.transient_error(self.service, metrics.error_kind(err))
        return max(delay, 0.0)

    def _ok(self) -> None:
        self._error_since = None
        self.errors = 0

    # -- one poll, with retries ---------------------------------------------------------------
    def read(self, fetch: Callable[[], T], sleep: Callable[[float], Any] = time.sleep) -> T:
        """Call ``fetch`` (a status read, a cancel), riding out transient errors within the budget."""
        while True:
            try:
                result = fetch()
            except Exception as err:
                sleep(self.on_error(err))
                continue
            self._ok()
            return result

    async def aread(self, fetch: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``read`` for a coroutine function (called with ``args``), sleeping without blocking the loop."""
        while True:
            try:
                result = await fetch(*args)
            except Exception as err:
                await asyncio.sleep(self.on_error(err))
                continue
            self._ok()
            return result

    def wait(
        self, fetch: Callable[[], JobStatus], poll_interval: float, timeout: float | None = None
    ) -> tuple[Verdict, JobStatus]:
        """Poll until a decisive verdict (the operators' non-deferrable path); TimeoutError past ``timeout``."""
        deadline = None if timeout is None else self.clock() + timeout
        while True:
            status = self.read(fetch)
            verdict = self.verdict(status)
            if verdict != "wait":
                return verdict, status
            if deadline is not None and self.clock() + poll_interval > deadline:
                raise TimeoutError(
                    f"{status.service} job {status.job_id} still {status.state.value} after {timeout} s."
                )
            time.sleep(poll_interval)
