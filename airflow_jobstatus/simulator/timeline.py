"""The timeline engine: a job's state at time t is a lookup in its list of phases.

A timeline is a list of phases ``{"state": ..., "duration": seconds, <payload>}``; every phase but the
last needs a duration, and the last holds forever. No thread or task runs per job, so thousands of
jobs cost nothing while idle.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any

from airflow_jobstatus.simulator.vocabulary import (
    DATAPROC_SUBSTATES,
    GOOGLE_STATES,
    SERVICES,
    Timeline,
    is_terminal_state,
    timeline_key,
)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_span(value: Any) -> bool:
    return isinstance(value, list | tuple) and len(value) == 2 and all(is_number(v) for v in value)


def _interpolate(value: Any, fraction: float, as_int: bool = False) -> Any:
    """``[from, to]`` → the value ``fraction`` of the way; anything else unchanged."""
    if not _is_span(value):
        return value
    start, end = value
    result = start + (end - start) * fraction
    return int(result) if as_int else result


def validate_timeline(key: str, timeline: Any) -> Timeline:
    """Check a timeline for timeline key ``key`` and return a deep copy; ValueError saying what is wrong.

    Google states must be the SDK's enum names (or an int); Huawei states are free strings and are
    served exactly as given (``"Success"`` stays ``"Success"``).
    """
    base = key.split(":", 1)[0]
    if base not in SERVICES:
        raise ValueError(f"Unknown service {key!r}. Valid services: {', '.join(SERVICES)}.")
    if not isinstance(timeline, list | tuple) or not timeline:
        raise ValueError(f"{key}: a timeline must be a non-empty list of phases, got {timeline!r}.")
    phases: Timeline = []
    for i, phase in enumerate(timeline):
        where = f"{key} timeline phase {i}"
        if not isinstance(phase, Mapping):
            raise ValueError(f"{where}: a phase must be a dict like {{'state': ..., 'duration': 1}}.")
        state = phase.get("state")
        if state is None or (isinstance(state, str) and not state.strip()):
            raise ValueError(f"{where}: missing 'state'.")
        known = GOOGLE_STATES.get(base)
        if known is not None and not isinstance(state, int) and state not in known:
            raise ValueError(f"{where}: unknown {base} state {state!r}. Valid: {', '.join(sorted(known))}.")
        duration = phase.get("duration")
        if duration is None:
            if i != len(timeline) - 1:
                raise ValueError(f"{where}: every phase but the last needs a positive 'duration' in seconds.")
        elif not is_number(duration) or duration <= 0:
            raise ValueError(f"{where}: needs a positive 'duration' in seconds, got {duration!r}.")
        substate = phase.get("substate")
        if base == "dataproc" and substate is not None and substate not in DATAPROC_SUBSTATES:
            raise ValueError(
                f"{where}: unknown dataproc substate {substate!r}. Valid: {', '.join(sorted(DATAPROC_SUBSTATES))}."
            )
        progress = phase.get("progress")
        if progress is not None and not is_number(progress) and not _is_span(progress):
            raise ValueError(f"{where}: 'progress' must be a number or [from, to], got {progress!r}.")
        phases.append(copy.deepcopy(dict(phase)))
    return phases


class SimJob:
    """One job (for CDM: one submission) following a timeline from its start."""

    def __init__(
        self,
        service: str,
        job_id: str,
        timeline: Timeline,
        where: dict[str, str],
        submission_id: int | None = None,
        meta: dict[str, Any] | None = None,
        started_ago: float = 0.0,
    ):
        self.service = service
        self.job_id = job_id
        self.where = where
        self.submission_id = submission_id
        #: What the job was submitted with, besides its where-keys: ``labels`` (Google), ``tags``
        #: (DLI, a list of ``{key, value}``), ``name``, ``type`` (the service's native job type),
        #: ``statement``, ``queue_name``, ``cluster_name``, ``origin`` (``"control"``: started outside
        #: any DAG through the control API).
        self.meta: dict[str, Any] = dict(meta or {})
        #: ``started_ago`` > 0: the job (and its timeline) started that many seconds before now.
        self.created_at = time.monotonic() - started_ago
        self.created_wall = time.time() - started_ago
        #: (timeline, monotonic start) swapped as one object so readers never see half an override.
        self._run: tuple[Timeline, float] = (timeline, self.created_at)
        #: Actions applied (``"cancel"``, ``"drain"``, ``"stop"``), in order; tests assert on it.
        self.actions: list[str] = []

    @property
    def key(self) -> str:
        """The timeline key (``"dli:spark"`` for a Spark batch, else the service)."""
        return timeline_key(self.service, self.where.get("job_type"))

    @property
    def timeline(self) -> Timeline:
        return self._run[0]

    @property
    def timeline_start(self) -> float:
        """Monotonic time the current timeline started (creation, or the last cancel/stop/drain)."""
        return self._run[1]

    @property
    def ref(self) -> str:
        """The id as JobStatus spells it (CDM: ``cluster/name``)."""
        return f"{self.where['cluster_id']}/{self.job_id}" if self.service == "cdm" else self.job_id

    @property
    def cancelled(self) -> bool:
        return bool(self.actions)

    def phase_at(self, now: float | None = None) -> tuple[dict[str, Any], float, float | None]:
        """The phase in force at monotonic ``now``, seconds spent in it, and its duration (None: last)."""
        timeline, start = self._run
        elapsed = max(0.0, (time.monotonic() if now is None else now) - start)
        for phase in timeline[:-1]:
            duration = float(phase["duration"])
            if elapsed < duration:
                return phase, elapsed, duration
            elapsed -= duration
        last = timeline[-1]
        return last, elapsed, (float(last["duration"]) if last.get("duration") else None)

    def state_started_wall(self, now: float | None = None) -> float:
        """Wall time the job entered its current state (``snapshot()["state_start_wall"]``)."""
        now = time.monotonic() if now is None else now
        elapsed = self.phase_at(now)[1]
        return self.created_wall + (now - elapsed - self.created_at)

    def ended_wall(self, now: float | None = None) -> float | None:
        """Wall time the job entered its terminal state, or None while it runs."""
        if not self.is_terminal(now):
            return None
        now = time.monotonic() if now is None else now
        elapsed = self.phase_at(now)[1]
        return self.created_wall + (now - elapsed - self.created_at)

    def state_at(self, now: float | None = None) -> Any:
        return self.phase_at(now)[0]["state"]

    def is_terminal(self, now: float | None = None) -> bool:
        return is_terminal_state(self.key, self.state_at(now))

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """The phase's payload with spans interpolated, plus ``state``, timing and identity fields.

        Interpolated: ``progress``, every ``counters`` value, and ``num_*`` keys of each ``sub_jobs``
        entry (``[from, to]`` over the phase; the last phase shows ``to``).
        """
        now = time.monotonic() if now is None else now
        phase, elapsed, duration = self.phase_at(now)
        fraction = min(1.0, elapsed / duration) if duration else 1.0
        snap = copy.deepcopy({k: v for k, v in phase.items() if k != "duration"})
        if "progress" in snap:
            snap["progress"] = _interpolate(snap["progress"], fraction)
        if isinstance(snap.get("counters"), dict):
            snap["counters"] = {k: _interpolate(v, fraction, True) for k, v in snap["counters"].items()}
        if isinstance(snap.get("sub_jobs"), list):
            snap["sub_jobs"] = [
                {k: (_interpolate(v, fraction, True) if k.startswith("num_") else v) for k, v in s.items()}
                if isinstance(s, dict)
                else s
                for s in snap["sub_jobs"]
            ]
        state_start_wall = self.created_wall + (now - elapsed - self.created_at)
        snap.update(
            service=self.service,
            job_id=self.job_id,
            where=dict(self.where),
            submission_id=self.submission_id,
            created_wall=self.created_wall,
            state_start_wall=state_start_wall,
            history=self._history(now),
        )
        return snap

    def _history(self, now: float) -> list[tuple[Any, float]]:
        """The (state, wall start time) of every earlier phase of the current timeline."""
        timeline, start = self._run
        wall0 = self.created_wall + (start - self.created_at)
        out: list[tuple[Any, float]] = []
        offset = 0.0
        for phase in timeline[:-1]:
            if start + offset + float(phase["duration"]) > now:
                break
            out.append((phase["state"], wall0 + offset))
            offset += float(phase["duration"])
        return out

    def override(self, timeline: Timeline, action: str = "cancel", now: float | None = None) -> None:
        """Switch to ``timeline`` from now on (cancel, stop, drain) and record ``action``."""
        phases = validate_timeline(self.key, timeline)
        self._run = (phases, time.monotonic() if now is None else now)
        self.actions.append(action)

    def __repr__(self) -> str:
        return f"SimJob({self.service!r}, {self.job_id!r}, where={self.where!r}, state={self.state_at()!r})"
