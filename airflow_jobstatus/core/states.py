"""The normalized job-state model every layer speaks: states, the status record, native-state tables."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

log = logging.getLogger(__name__)


class JobState(str, Enum):
    """A job's state, the same vocabulary for every service."""

    UNKNOWN = "UNKNOWN"
    QUEUED = "QUEUED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"
    DRAINING = "DRAINING"
    SUCCEEDED = "SUCCEEDED"
    PARTIALLY_SUCCEEDED = "PARTIALLY_SUCCEEDED"
    DRAINED = "DRAINED"
    UPDATED = "UPDATED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        """True when the job will not change state any more."""
        return self in TERMINAL_STATES

    def __str__(self) -> str:
        return self.value


TERMINAL_STATES: frozenset[JobState] = frozenset(
    {
        JobState.SUCCEEDED,
        JobState.PARTIALLY_SUCCEEDED,
        JobState.DRAINED,
        JobState.UPDATED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.EXPIRED,
    }
)
DEFAULT_SUCCESS_STATES: frozenset[JobState] = frozenset(
    {JobState.SUCCEEDED, JobState.DRAINED, JobState.UPDATED}
)
DEFAULT_FAILURE_STATES: frozenset[JobState] = TERMINAL_STATES - DEFAULT_SUCCESS_STATES
#: Non-terminal states that will not progress by themselves: a sensor warns about them.
STUCK_STATES: frozenset[JobState] = frozenset({JobState.RETRYING, JobState.PAUSED, JobState.UNKNOWN})

VALID_STATE_NAMES = ", ".join(s.value for s in JobState)


def parse_state(name: str | JobState) -> JobState:
    """Return the JobState named ``name``; a clear ValueError listing the valid names otherwise."""
    if isinstance(name, JobState):
        return name
    try:
        return JobState(str(name).strip().upper())
    except ValueError:
        raise ValueError(f"Unknown job state {name!r}. Valid states: {VALID_STATE_NAMES}.") from None


def parse_states(names: Iterable[str | JobState] | str, *, arg_name: str = "states") -> frozenset[JobState]:
    """Parse a collection of state names (a single string is one name), failing on any invalid one."""
    if isinstance(names, str | JobState):
        names = [names]
    try:
        return frozenset(parse_state(n) for n in names)
    except ValueError as err:
        raise ValueError(f"{arg_name}: {err}") from None


_STATE_SETS: dict[frozenset[JobState], frozenset[JobState]] = {
    s: s for s in (DEFAULT_SUCCESS_STATES, DEFAULT_FAILURE_STATES, TERMINAL_STATES)
}


def resolve_state_sets(
    success_states: Iterable[str | JobState] | None, failure_states: Iterable[str | JobState] | None
) -> tuple[frozenset[JobState], frozenset[JobState]]:
    """Validate the user's success/failure sets; failure defaults to every other terminal state."""
    success = (
        DEFAULT_SUCCESS_STATES
        if success_states is None
        else parse_states(success_states, arg_name="success_states")
    )
    if not success:
        raise ValueError(f"success_states must name at least one state. Valid states: {VALID_STATE_NAMES}.")
    if failure_states is None:
        failure = DEFAULT_FAILURE_STATES if success == DEFAULT_SUCCESS_STATES else TERMINAL_STATES - success
    else:
        failure = parse_states(failure_states, arg_name="failure_states")
    # One shared frozenset per distinct set: thousands of waits with the same rules hold no copies.
    success, failure = _STATE_SETS.setdefault(success, success), _STATE_SETS.setdefault(failure, failure)
    both = success & failure
    if both:
        names = ", ".join(sorted(s.value for s in both))
        raise ValueError(f"State(s) {names} cannot be in both success_states and failure_states.")
    return success, failure


class NativeStateTable:
    """A service's native → normalized table; an unmapped value is UNKNOWN, warned about once."""

    def __init__(self, service: str, table: Mapping[str, JobState]):
        self.service = service
        self.table = dict(table)
        self._warned: set[str] = set()

    def normalize(self, native: str) -> JobState:
        state = self.table.get(native)
        if state is None:
            if native not in self._warned:
                self._warned.add(native)
                log.warning(
                    "%s reported state %r, which this provider does not know; treating it as UNKNOWN.",
                    self.service,
                    native,
                )
            return JobState.UNKNOWN
        return state


@dataclass(frozen=True)
class JobStatus:
    """One reading of a job's state, normalized, with what the service said about it."""

    service: str
    job_id: str
    state: JobState
    native_state: str
    substate: str | None = None
    message: str | None = None
    progress: float | None = None
    counters: dict[str, int] = field(default_factory=dict)
    sub_jobs: list[dict[str, Any]] = field(default_factory=list)
    #: Where the job's own logs are, when the service names a place (the service module fills it).
    logs_url: str | None = None
    #: When the job ended (epoch seconds), where the service dates a terminal state: for the
    #: detection-latency metric only (not in ``to_dict``, not compared, not shown).
    ended_at: float | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (state as its name); ``from_dict`` reads it back."""
        return {
            "service": self.service,
            "job_id": self.job_id,
            "state": self.state.value,
            "native_state": self.native_state,
            "substate": self.substate,
            "message": self.message,
            "progress": self.progress,
            "counters": dict(self.counters),
            "sub_jobs": [dict(s) for s in self.sub_jobs],
            "logs_url": self.logs_url,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobStatus:
        return cls(
            service=data["service"],
            job_id=data["job_id"],
            state=parse_state(data["state"]),
            native_state=data["native_state"],
            substate=data.get("substate"),
            message=data.get("message"),
            progress=data.get("progress"),
            counters=dict(data.get("counters") or {}),
            sub_jobs=[dict(s) for s in data.get("sub_jobs") or []],
            logs_url=data.get("logs_url"),
        )

    def task_counts(self) -> tuple[int, int]:
        """(completed, total) tasks over all subjobs (DLI); (0, 0) when the service reports none."""
        return (
            sum(int(s.get("num_completed_tasks") or 0) for s in self.sub_jobs),
            sum(int(s.get("num_tasks") or 0) for s in self.sub_jobs),
        )

    def running_sub_job(self) -> dict[str, Any] | None:
        """The DLI subjob currently running, else the last one listed."""
        for sub in self.sub_jobs:
            if str(sub.get("status", "")).upper() == "RUNNING":
                return sub
        return self.sub_jobs[-1] if self.sub_jobs else None

    def summary(self) -> str:
        """One human line: state, native state, progress and the running subjob's task counts."""
        parts = [f"{self.service} job {self.job_id}: {self.state.value} (native {self.native_state}"]
        if self.substate:
            parts.append(f"/{self.substate}")
        parts.append(")")
        if self.progress is not None:
            parts.append(f", {self.progress * 100:.0f}%")
        sub = self.running_sub_job()
        if sub is not None:
            parts.append(f", subjob {sub_job_text(sub)}")
        if self.counters:
            parts.append(", " + ", ".join(f"{k} {v:,}" for k, v in self.counters.items()))
        return "".join(parts)


def sub_job_tasks(sub: Mapping[str, Any]) -> str:
    """``<done>/<total> tasks`` for one subjob of ``JobStatus.sub_jobs``."""
    return f"{sub.get('num_completed_tasks', 0)}/{sub.get('num_tasks', 0)} tasks"


def sub_job_text(sub: Mapping[str, Any]) -> str:
    """``<id> <done>/<total> tasks`` for one subjob of ``JobStatus.sub_jobs``."""
    return f"{sub.get('id')} {sub_job_tasks(sub)}"


__all__ = [
    "DEFAULT_FAILURE_STATES",
    "DEFAULT_SUCCESS_STATES",
    "STUCK_STATES",
    "TERMINAL_STATES",
    "VALID_STATE_NAMES",
    "JobState",
    "JobStatus",
    "NativeStateTable",
    "parse_state",
    "parse_states",
    "resolve_state_sets",
    "sub_job_tasks",
    "sub_job_text",
]
