"""What one watcher reports: its filters, the transitions it fires on, and the state that makes it
fire once per job end across restarts.

Pure Python (no Airflow, no SDK): the trigger, the shared stream and the tests use it alike.

Transitions, never conditions: a job is reported once per normalized state it *enters* (the
dedupe key ``service:job_id:STATE``), when that state counts (``states``) and the job passes every
filter. A job whose list entry dates its change (``Watched.changed_at``: the end time of an ended
job) counts when that date is at or after the watcher's floor (its first start, less ``look_back``)
and not older than the kept window behind the high-water mark; one the list does not date counts
only when this watcher saw it in another state first (in memory: such an end while the watcher is
down is missed, see the README). ``TrackerState`` is what survives a restart: the first start,
the high-water mark of reported change dates and the keys reported within ``KEEP_WINDOW`` of it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_jobstatus.core.exceptions import ConfigurationError
from airflow_jobstatus.core.states import TERMINAL_STATES, JobState, parse_state
from airflow_jobstatus.services.base import WATCH_FILTERS, Watched

#: Seconds of reported keys kept behind the high-water mark: a job listed late (an eventually
#: consistent list) with an end this much older than the newest reported end is still not refired.
KEEP_WINDOW = 3600.0
#: The most keys kept (the newest by change date): bounds the stored state of a very busy scope.
MAX_KEPT_KEYS = 5000
#: The state-store version this module writes (a different one is read as "no state").
STATE_VERSION = 1


def dedupe_key(service: str, job_id: str, state: JobState | str) -> str:
    """``service:job_id:STATE``: one event per job per state it enters (a job that runs again under
    its id, a CDM job, is ``job_id@run``: one event per run)."""
    return f"{service}:{job_id}:{JobState(state).value}"


def parse_states(states: Iterable[str] | str | None) -> frozenset[JobState]:
    """The normalized states that count (default: every terminal state); ConfigurationError naming
    an unknown one and the valid names."""
    if states is None:
        return frozenset(TERMINAL_STATES)
    items = [states] if isinstance(states, str) else list(states)
    if not items:
        raise ConfigurationError(
            "states must name at least one normalized state (default: every terminal one)."
        )
    out = set()
    for item in items:
        try:
            out.add(parse_state(str(item)))
        except (ValueError, KeyError):
            valid = ", ".join(s.value for s in JobState)
            raise ConfigurationError(f"Unknown state {item!r} in states. Valid states: {valid}.") from None
    return frozenset(out)


def _pairs(value: Mapping[str, Any] | None, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
        raise ConfigurationError(f"{what} must be a mapping of non-empty string keys to values.")
    return {str(k): str(v) for k, v in value.items()}


@dataclass(frozen=True)
class WatchFilter:
    """A watcher's filters, validated once (ConfigurationError), applied to every listed job."""

    states: frozenset[JobState]
    labels: Mapping[str, str] = field(default_factory=dict)
    name_prefix: str | None = None
    name_pattern: re.Pattern[str] | None = None
    job_id_prefix: str | None = None
    job_type: str | None = None

    @classmethod
    def build(
        cls,
        *,
        service: str,
        servable: frozenset[str],
        states: Iterable[str] | str | None = None,
        labels: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        name_prefix: str | None = None,
        name_pattern: str | None = None,
        job_id_prefix: str | None = None,
        job_type: str | None = None,
    ) -> WatchFilter:
        """The filters, refusing one the service cannot serve (``servable``: its ``Watching.filters``)."""
        asked = {
            "labels": bool(labels),
            "tags": bool(tags),
            "name": name_prefix is not None or name_pattern is not None,
            "job_id": job_id_prefix is not None,
            "job_type": job_type is not None,
        }
        assert set(asked) == set(WATCH_FILTERS)
        for name, used in asked.items():
            if used and name not in servable:
                can = ", ".join(sorted(servable)) or "none"
                raise ConfigurationError(
                    f"{service} jobs cannot be filtered by {name} (this service's lists serve: {can})."
                )
        pattern = None
        if name_pattern is not None:
            try:
                pattern = re.compile(str(name_pattern))
            except re.error as err:
                raise ConfigurationError(
                    f"name_pattern {name_pattern!r} is not a valid regex: {err}."
                ) from None
        return cls(
            states=parse_states(states),
            labels={**_pairs(labels, "labels"), **_pairs(tags, "tags")},
            name_prefix=None if name_prefix is None else str(name_prefix),
            name_pattern=pattern,
            job_id_prefix=None if job_id_prefix is None else str(job_id_prefix),
            job_type=None if job_type is None else str(job_type),
        )

    def matches(self, job: Watched) -> bool:
        """Whether ``job`` passes every filter except ``states`` (see ``counts``)."""
        if self.labels and any(job.labels.get(k) != v for k, v in self.labels.items()):
            return False
        if self.name_prefix is not None and not job.name.startswith(self.name_prefix):
            return False
        if self.name_pattern is not None and not self.name_pattern.search(job.name):
            return False
        if self.job_id_prefix is not None and not job.status.job_id.startswith(self.job_id_prefix):
            return False
        return self.job_type is None or job.job_type.lower() == self.job_type.lower()

    def counts(self, job: Watched) -> bool:
        """Whether ``job``'s current state counts and it passes every filter."""
        return job.status.state in self.states and self.matches(job)


@dataclass
class TrackerState:
    """What a watcher keeps across restarts (the asset state store's JSON value).

    ``started_at``: the watcher's first start, less its look-back (epoch seconds): the floor of the
    change dates it reports. ``hwm``: the newest reported change date. ``keys``: dedupe key →
    change date of what was reported within ``KEEP_WINDOW`` of ``hwm``.
    """

    started_at: float
    hwm: float | None = None
    keys: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"v": STATE_VERSION, "started_at": self.started_at, "hwm": self.hwm, "keys": dict(self.keys)}

    @classmethod
    def from_json(cls, data: Any) -> TrackerState | None:
        """The stored state; None for nothing stored or another version (the watcher starts anew)."""
        if not isinstance(data, Mapping) or data.get("v") != STATE_VERSION:
            return None
        try:
            keys = {str(k): float(v) for k, v in (data.get("keys") or {}).items()}
            hwm = data.get("hwm")
            return cls(float(data["started_at"]), None if hwm is None else float(hwm), keys)
        except (KeyError, TypeError, ValueError):
            return None

    def add(self, reported: Mapping[str, float]) -> None:
        """Record reported keys (key → change date), move the high-water mark, prune the old ones."""
        self.keys.update(reported)
        if reported:
            newest = max(reported.values())
            self.hwm = newest if self.hwm is None else max(self.hwm, newest)
        if self.hwm is not None:
            edge = self.hwm - KEEP_WINDOW
            self.keys = {k: t for k, t in self.keys.items() if t >= edge}
        if len(self.keys) > MAX_KEPT_KEYS:
            newest_first = sorted(self.keys.items(), key=lambda kv: kv[1], reverse=True)
            self.keys = dict(newest_first[:MAX_KEPT_KEYS])


@dataclass(frozen=True)
class Report:
    """One job to report: the listed job, its dedupe key and the date kept for it."""

    job: Watched
    key: str
    changed_at: float


class Tracker:
    """One watcher's transition detection: which listed jobs are new events, in order.

    ``state`` is what was confirmed reported (stored); ``emitted`` adds what this instance has
    fired and not yet had confirmed (never fired twice while the instance lives).
    """

    def __init__(self, service: str, flt: WatchFilter, state: TrackerState):
        self.service, self.filter, self.state = service, flt, state
        self.emitted: dict[str, float] = {}
        #: Jobs this instance saw in a state that does not count (their next state is a transition).
        self._seen_other: set[str] = set()

    @classmethod
    def fresh(cls, service: str, flt: WatchFilter, look_back: float, now: float | None = None) -> Tracker:
        return cls(service, flt, TrackerState(started_at=(time.time() if now is None else now) - look_back))

    def _reported(self, key: str) -> bool:
        return key in self.emitted or key in self.state.keys

    def decide(self, jobs: Sequence[Watched], listed_at: float) -> list[Report]:
        """The listed jobs that are new events, oldest change first (ties by job id); marks them emitted."""
        floor = self.state.started_at
        edge = None if self.state.hwm is None else self.state.hwm - KEEP_WINDOW
        out: list[Report] = []
        for job in jobs:
            job_id = job.status.job_id
            if not self.filter.counts(job):
                if self.filter.matches(job):
                    self._seen_other.add(job_id)
                continue
            key = dedupe_key(self.service, f"{job_id}@{job.run}" if job.run else job_id, job.status.state)
            if self._reported(key):
                continue
            when = job.changed_at
            if when is None:  # undated: a transition only when this instance saw it in another state
                if job_id not in self._seen_other:
                    continue
                when = listed_at
            elif when < floor or (edge is not None and when < edge):
                continue
            self._seen_other.discard(job_id)
            out.append(Report(job, key, when))
        out.sort(key=lambda r: (r.changed_at, r.job.status.job_id))
        for report in out:
            self.emitted[report.key] = report.changed_at
        return out

    def confirmed(self, keys: Iterable[str]) -> bool:
        """Move confirmed keys into ``state``; True when it changed (the caller stores it)."""
        reported = {k: self.emitted[k] for k in keys if k in self.emitted and k not in self.state.keys}
        if not reported:
            return False
        self.state.add(reported)
        for key in reported:
            self.emitted.pop(key, None)
        return True
