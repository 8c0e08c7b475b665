"""The simulator's state, shared by its gRPC and HTTP fronts: jobs on timelines, faults, call records.

Pure Python, no SDK imports. A job's state at time t is computed from its timeline (a lookup, no
thread or task per job), so thousands of jobs cost nothing while idle. Thread-safe: the servers'
loop thread and the tests call it concurrently.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICES = ("dataproc", "dataflow", "vertex_ai", "cdm", "dli")

DEFAULT_GOOGLE_REGION = "europe-west1"
DEFAULT_CDM_CLUSTER = "sim-cluster"

#: Where-keys per service (besides the job id) and their defaults; project_id and the Google region
#: default to the core's ``project_id`` and ``region``.
WHERE_DEFAULTS: dict[str, dict[str, str | None]] = {
    "dataproc": {"project_id": None, "region": DEFAULT_GOOGLE_REGION},
    "dataflow": {"project_id": None, "location": DEFAULT_GOOGLE_REGION},
    "vertex_ai": {"project_id": None, "location": DEFAULT_GOOGLE_REGION, "job_type": "custom_job"},
    "cdm": {"cluster_id": DEFAULT_CDM_CLUSTER},
    "dli": {"job_type": "sql"},
}
JOB_TYPES = {
    "vertex_ai": ("custom_job", "batch_prediction_job", "hyperparameter_tuning_job"),
    "dli": ("sql", "spark"),
}

#: Native enum names of the Google services (as the SDKs spell them); checked when a timeline is added
#: because a misspelt name could not be put on the wire. An int is accepted too (an unknown enum value).
GOOGLE_STATES: dict[str, frozenset[str]] = {
    "dataproc": frozenset(
        [
            "STATE_UNSPECIFIED",
            "PENDING",
            "SETUP_DONE",
            "RUNNING",
            "CANCEL_PENDING",
            "CANCEL_STARTED",
            "CANCELLED",
            "DONE",
            "ERROR",
            "ATTEMPT_FAILURE",
        ]
    ),
    "dataflow": frozenset(
        "JOB_STATE_" + s
        for s in [
            "UNKNOWN",
            "STOPPED",
            "RUNNING",
            "DONE",
            "FAILED",
            "CANCELLED",
            "UPDATED",
            "DRAINING",
            "DRAINED",
            "PENDING",
            "CANCELLING",
            "QUEUED",
            "RESOURCE_CLEANING_UP",
            "PAUSING",
            "PAUSED",
        ]
    ),
    "vertex_ai": frozenset(
        "JOB_STATE_" + s
        for s in [
            "UNSPECIFIED",
            "QUEUED",
            "PENDING",
            "RUNNING",
            "SUCCEEDED",
            "FAILED",
            "CANCELLING",
            "CANCELLED",
            "PAUSED",
            "EXPIRED",
            "UPDATING",
            "PARTIALLY_SUCCEEDED",
        ]
    ),
}
DATAPROC_SUBSTATES = frozenset({"UNSPECIFIED", "SUBMITTED", "QUEUED", "STALE_STATUS"})

#: Native states after which a job no longer changes (cancel on them is refused by the real services).
TERMINAL_NATIVE: dict[str, frozenset[str]] = {
    "dataproc": frozenset({"DONE", "ERROR", "CANCELLED"}),
    "dataflow": frozenset(
        {
            "JOB_STATE_DONE",
            "JOB_STATE_FAILED",
            "JOB_STATE_CANCELLED",
            "JOB_STATE_UPDATED",
            "JOB_STATE_DRAINED",
        }
    ),
    "vertex_ai": frozenset(
        {
            "JOB_STATE_SUCCEEDED",
            "JOB_STATE_FAILED",
            "JOB_STATE_CANCELLED",
            "JOB_STATE_EXPIRED",
            "JOB_STATE_PARTIALLY_SUCCEEDED",
        }
    ),
    "cdm": frozenset({"SUCCEEDED", "FAILED", "FAILURE_ON_SUBMIT", "NEVER_EXECUTED"}),
    "dli": frozenset({"FINISHED", "FAILED", "CANCELLED", "dead", "success"}),
}

Timeline = list[dict[str, Any]]

#: Built-in default timelines (used by create_job until set_default_timeline changes them). Key "dli"
#: is DLI SQL; "dli:spark" is a DLI Spark batch.
BUILTIN_DEFAULTS: dict[str, Timeline] = {
    "dataproc": [
        {"state": "PENDING", "duration": 1},
        {"state": "RUNNING", "duration": 2},
        {"state": "DONE"},
    ],
    "dataflow": [
        {"state": "JOB_STATE_PENDING", "duration": 1},
        {"state": "JOB_STATE_RUNNING", "duration": 2},
        {"state": "JOB_STATE_DONE"},
    ],
    "vertex_ai": [
        {"state": "JOB_STATE_PENDING", "duration": 1},
        {"state": "JOB_STATE_RUNNING", "duration": 2},
        {"state": "JOB_STATE_SUCCEEDED"},
    ],
    "cdm": [
        {"state": "BOOTING", "duration": 1, "progress": 0},
        {"state": "RUNNING", "duration": 2, "progress": [0, 100]},
        {"state": "SUCCEEDED", "progress": 100, "counters": {"rows_read": 1000, "rows_written": 1000}},
    ],
    "dli": [
        {"state": "LAUNCHING", "duration": 1, "progress": 0},
        {"state": "RUNNING", "duration": 2, "progress": [0, 1]},
        {"state": "FINISHED", "progress": 1},
    ],
    "dli:spark": [
        {"state": "starting", "duration": 1},
        {"state": "running", "duration": 2},
        {"state": "success"},
    ],
}

#: What cancel/stop/drain switch a job to, per (service, action). The core copies this per instance
#: (``SimulatorCore.action_timelines``) so a test can change it.
ACTION_TIMELINES: dict[tuple[str, str], Timeline] = {
    ("dataproc", "cancel"): [
        {"state": "CANCEL_PENDING", "duration": 0.2},
        {"state": "CANCEL_STARTED", "duration": 0.1},
        {"state": "CANCELLED", "details": "Job cancelled by user."},
    ],
    ("dataflow", "cancel"): [
        {"state": "JOB_STATE_CANCELLING", "duration": 0.3},
        {"state": "JOB_STATE_CANCELLED"},
    ],
    ("dataflow", "drain"): [
        {"state": "JOB_STATE_DRAINING", "duration": 0.3},
        {"state": "JOB_STATE_DRAINED"},
    ],
    ("vertex_ai", "cancel"): [
        {"state": "JOB_STATE_CANCELLING", "duration": 0.3},
        {"state": "JOB_STATE_CANCELLED", "error": "CANCELED"},
    ],
    ("cdm", "stop"): [
        {
            "state": "FAILED",
            "progress": -1,
            "error_summary": "stopped by user",
            "error_details": "The job was stopped by the user.",
        }
    ],
    ("dli", "cancel"): [{"state": "CANCELLED", "message": "The job was cancelled by the user."}],
    ("dli:spark", "cancel"): [{"state": "dead"}],
}

FAULT_KINDS = (
    "http_429",
    "http_500",
    "http_502",
    "http_503",
    "http_504",
    "grpc_unavailable",
    "grpc_resource_exhausted",
    "grpc_deadline_exceeded",
    "latency",
    "drop_connection",
    "malformed_body",
)
PROTOCOLS = ("grpc", "http")
DEFAULT_LATENCY_SECONDS = 1.0
MAX_REQUESTS_KEPT = 200  # per job; the call counter itself is unbounded


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _timeline_key(service: str, job_type: str | None = None) -> str:
    return "dli:spark" if service == "dli" and job_type == "spark" else service


def validate_timeline(service: str, timeline: Any) -> Timeline:
    """Check a timeline and return a deep copy; ValueError saying what is wrong otherwise."""
    base = service.split(":", 1)[0]
    if base not in SERVICES:
        raise ValueError(f"Unknown service {service!r}. Valid services: {', '.join(SERVICES)}.")
    if not isinstance(timeline, list | tuple) or not timeline:
        raise ValueError(f"{service}: a timeline must be a non-empty list of phases, got {timeline!r}.")
    phases: Timeline = []
    for i, phase in enumerate(timeline):
        where = f"{service} timeline phase {i}"
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
        elif not _is_number(duration) or duration <= 0:
            raise ValueError(f"{where}: needs a positive 'duration' in seconds, got {duration!r}.")
        substate = phase.get("substate")
        if base == "dataproc" and substate is not None and substate not in DATAPROC_SUBSTATES:
            raise ValueError(
                f"{where}: unknown dataproc substate {substate!r}. Valid: {', '.join(sorted(DATAPROC_SUBSTATES))}."
            )
        progress = phase.get("progress")
        if progress is not None and not _is_number(progress) and not _is_span(progress):
            raise ValueError(f"{where}: 'progress' must be a number or [from, to], got {progress!r}.")
        phases.append(copy.deepcopy(dict(phase)))
    return phases


def _is_span(value: Any) -> bool:
    return isinstance(value, list | tuple) and len(value) == 2 and all(_is_number(v) for v in value)


def _interpolate(value: Any, fraction: float, as_int: bool = False) -> Any:
    """``[from, to]`` → the value ``fraction`` of the way; anything else unchanged."""
    if not _is_span(value):
        return value
    start, end = value
    result = start + (end - start) * fraction
    return int(result) if as_int else result


@dataclass(frozen=True)
class Fault:
    """One injected fault as handed to a server: what to do for this call."""

    kind: str
    seconds: float | None = None
    service: str | None = None
    job_id: str | None = None

    @property
    def http_status(self) -> int | None:
        """The HTTP status for an ``http_NNN`` fault, else None."""
        return int(self.kind[5:]) if self.kind.startswith("http_") else None


@dataclass
class _FaultRule:
    kind: str
    count: int
    service: str | None
    job_id: str | None
    seconds: float | None

    def applies(self, service: str, job_id: str | None, protocol: str) -> bool:
        if self.kind.startswith("http_") and protocol != "http":
            return False
        if self.kind.startswith("grpc_") and protocol != "grpc":
            return False
        if self.service is not None and self.service != service:
            return False
        return self.job_id is None or (job_id is not None and ids_match(service, self.job_id, job_id))


def ids_match(service: str, a: str, b: str) -> bool:
    """Equal ids; for CDM a bare job name also matches ``cluster/name``."""
    if a == b:
        return True
    if service == "cdm" and ("/" in a) != ("/" in b):
        return a.rpartition("/")[2] == b.rpartition("/")[2]
    return False


class SimJob:
    """One job (for CDM: one submission) following a timeline from its start."""

    def __init__(
        self,
        service: str,
        job_id: str,
        timeline: Timeline,
        where: dict[str, str],
        submission_id: int | None = None,
    ):
        self.service = service
        self.job_id = job_id
        self.where = where
        self.submission_id = submission_id
        self.created_at = time.monotonic()
        self.created_wall = time.time()
        #: (timeline, monotonic start) swapped as one object so readers never see half an override.
        self._run: tuple[Timeline, float] = (timeline, self.created_at)
        #: Actions applied (``"cancel"``, ``"drain"``, ``"stop"``), in order; tests assert on it.
        self.actions: list[str] = []

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

    def state_at(self, now: float | None = None) -> Any:
        return self.phase_at(now)[0]["state"]

    def is_terminal(self, now: float | None = None) -> bool:
        key = "dli" if self.service == "dli" else self.service
        return self.state_at(now) in TERMINAL_NATIVE[key]

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
        phases = validate_timeline(_timeline_key(self.service, self.where.get("job_type")), timeline)
        self._run = (phases, time.monotonic() if now is None else now)
        self.actions.append(action)

    def __repr__(self) -> str:
        return f"SimJob({self.service!r}, {self.job_id!r}, where={self.where!r}, state={self.state_at()!r})"


class SimulatorCore:
    """Jobs, default timelines, faults and call records for the five simulated services."""

    def __init__(
        self,
        ak: str = "sim-ak",
        sk: str = "sim-sk",
        project_id: str = "sim-project",
        region: str = DEFAULT_GOOGLE_REGION,
    ):
        self.ak = ak
        self.sk = sk
        self.project_id = project_id
        #: Default Google region/location of jobs added without one.
        self.region = region
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self.started_at = time.monotonic()
        self.reset()

    # ---- jobs -------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget jobs (scenario ones too), faults, counters and changed default/action timelines."""
        with self._lock:
            self._jobs: dict[tuple[str, str], SimJob] = {}
            self._cdm_history: dict[tuple[str, str], list[SimJob]] = {}
            self._defaults: dict[str, Timeline] = copy.deepcopy(BUILTIN_DEFAULTS)
            self.action_timelines: dict[tuple[str, str], Timeline] = copy.deepcopy(ACTION_TIMELINES)
            self._faults: list[_FaultRule] = []
            self._calls: dict[str, dict[str, int]] = {s: {} for s in SERVICES}
            self._requests: dict[str, dict[str, deque[dict[str, Any]]]] = {s: {} for s in SERVICES}
            self._total_calls = 0

    def _where(self, service: str, where: Mapping[str, Any], fill: bool) -> dict[str, str]:
        """Validate where-keys; with ``fill``, add the defaults for missing ones."""
        if service not in SERVICES:
            raise ValueError(f"Unknown service {service!r}. Valid services: {', '.join(SERVICES)}.")
        allowed = WHERE_DEFAULTS[service]
        unknown = set(where) - set(allowed)
        if unknown:
            raise ValueError(
                f"{service}: unknown where-key(s) {', '.join(sorted(unknown))}; "
                f"valid: {', '.join(allowed) or 'none'}."
            )
        out = {k: str(v) for k, v in where.items() if v is not None}
        if fill:
            fills = {"project_id": self.project_id, "region": self.region, "location": self.region}
            for key, default in allowed.items():
                out.setdefault(key, fills.get(key, default) or "")
        job_type = out.get("job_type")
        if job_type is not None and service in JOB_TYPES and job_type not in JOB_TYPES[service]:
            raise ValueError(
                f"{service}: unknown job_type {job_type!r}; valid: {', '.join(JOB_TYPES[service])}."
            )
        return out

    def add_job(self, service: str, job_id: str, timeline: Timeline, **where: Any) -> SimJob:
        """Add (or replace) a job following ``timeline`` from now. For CDM this adds a new submission."""
        if not job_id or not str(job_id).strip():
            raise ValueError(f"{service}: job_id must be a non-empty string.")
        full = self._where(service, where, fill=True)
        phases = validate_timeline(_timeline_key(service, full.get("job_type")), timeline)
        with self._lock:
            return self._store(service, str(job_id), phases, full)

    def _store(self, service: str, job_id: str, phases: Timeline, where: dict[str, str]) -> SimJob:
        if service != "cdm":
            job = SimJob(service, job_id, phases, where)
        else:
            job = SimJob(service, job_id, phases, where, submission_id=next(self._ids))
            key = (where["cluster_id"], job_id)
            old = self._jobs.get((service, job_id))
            history = self._cdm_history.get(key, [])
            if old is not None and old.where != where:
                self._cdm_history.pop((old.where["cluster_id"], job_id), None)
            self._cdm_history[key] = [*history, job]
        self._jobs[(service, job_id)] = job
        return job

    def define_cdm_job(self, job_name: str, cluster_id: str = DEFAULT_CDM_CLUSTER) -> None:
        """Declare a CDM job that exists but was never started (its status lists no submission)."""
        with self._lock:
            self._cdm_history.setdefault((cluster_id, job_name), [])

    def cdm_submissions(self, job_name: str, cluster_id: str = DEFAULT_CDM_CLUSTER) -> list[SimJob] | None:
        """A CDM job's submissions, oldest first; None when no such job on that cluster."""
        with self._lock:
            history = self._cdm_history.get((cluster_id, job_name))
            return None if history is None else list(history)

    def get_job(self, service: str, job_id: str, **where: Any) -> SimJob | None:
        """The job, or None when missing or a given where-value differs (None values are not checked)."""
        given = self._where(service, where, fill=False)
        with self._lock:
            job = self._jobs.get((service, str(job_id)))
        if job is None or any(job.where.get(k) != v for k, v in given.items()):
            return None
        return job

    def jobs(self, service: str | None = None) -> list[SimJob]:
        with self._lock:
            return [j for (s, _), j in self._jobs.items() if service is None or s == service]

    def create_job(self, service: str, job_id: str | None = None, **where: Any) -> SimJob:
        """Start a job on the service's default timeline (a submit/start call); generates an id if None."""
        full = self._where(service, where, fill=True)
        with self._lock:
            phases = copy.deepcopy(self._defaults[_timeline_key(service, full.get("job_type"))])
            return self._store(service, str(job_id) if job_id else self._new_id(service), phases, full)

    def _new_id(self, service: str) -> str:
        if service == "vertex_ai":
            return str(1000000000000000000 + next(self._ids))
        if service == "dli":
            return str(uuid.uuid4())
        return f"sim-{uuid.uuid4().hex[:12]}"

    def cancel_job(self, service: str, job_id: str, action: str = "cancel", **where: Any) -> SimJob | None:
        """Apply ``action`` (cancel, drain, stop) to a running job; None if not found.

        A job already in a terminal state is left alone (and the action not recorded); callers check
        ``job.is_terminal()`` first when the real service refuses such a request.
        """
        job = self.get_job(service, job_id, **where)
        if job is None or job.is_terminal():
            return job
        key = (_timeline_key(service, job.where.get("job_type")), action)
        with self._lock:
            timeline = self.action_timelines.get(key)
            if timeline is None:
                raise ValueError(f"{service}: no timeline for action {action!r}.")
            job.override(timeline, action)
        return job

    def set_default_timeline(self, service: str, timeline: Timeline, job_type: str | None = None) -> None:
        """Change what create_job uses for ``service`` (``job_type="spark"`` or service ``"dli:spark"``)."""
        key = _timeline_key(service, job_type) if ":" not in service else service
        if key not in BUILTIN_DEFAULTS:
            raise ValueError(f"Unknown service {service!r}. Valid services: {', '.join(SERVICES)}.")
        phases = validate_timeline(key, timeline)
        with self._lock:
            self._defaults[key] = phases

    def default_timeline(self, service: str, job_type: str | None = None) -> Timeline:
        key = _timeline_key(service, job_type) if ":" not in service else service
        with self._lock:
            if key not in self._defaults:
                raise ValueError(f"Unknown service {service!r}. Valid services: {', '.join(SERVICES)}.")
            return copy.deepcopy(self._defaults[key])

    def load_scenarios(self, source: str | Path | Iterable[Any] | Mapping[str, Any]) -> list[SimJob]:
        """Load jobs (and ``defaults``) from a JSON file path, a list of job dicts, or a dict.

        File/dict form: ``{"defaults": {service: timeline}, "jobs": [...]}`` or just the list of
        ``{"service", "job_id", "timeline", <where-keys>}``; a CDM entry with ``"timeline": null``
        declares a job that was never started.
        """
        data: Any = source
        if isinstance(source, str | Path):
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        if isinstance(data, Mapping):
            for service, timeline in (data.get("defaults") or {}).items():
                self.set_default_timeline(service, timeline)
            entries = list(data.get("jobs") or [])
        else:
            entries = list(data)
        added = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping) or not {"service", "job_id", "timeline"} <= set(entry):
                raise ValueError(f"Scenario entry {i} needs 'service', 'job_id' and 'timeline': {entry!r}.")
            where = {k: v for k, v in entry.items() if k not in ("service", "job_id", "timeline")}
            if entry["service"] == "cdm" and entry["timeline"] is None:
                # A CDM job that exists but was never started: DAGs start it with StartJob.
                self.define_cdm_job(entry["job_id"], **where)
                continue
            added.append(self.add_job(entry["service"], entry["job_id"], entry["timeline"], **where))
        return added

    # ---- faults -----------------------------------------------------------------------------------

    def inject_fault(
        self,
        kind: str,
        count: int = 1,
        service: str | None = None,
        job_id: str | None = None,
        seconds: float | None = None,
    ) -> None:
        """Make the next ``count`` matching calls fail with ``kind`` (globally, per service or job)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"Unknown fault kind {kind!r}. Valid: {', '.join(FAULT_KINDS)}.")
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer, got {count!r}.")
        if service is not None and service not in SERVICES:
            raise ValueError(f"Unknown service {service!r}. Valid services: {', '.join(SERVICES)}.")
        if kind == "latency":
            seconds = DEFAULT_LATENCY_SECONDS if seconds is None else seconds
            if not _is_number(seconds) or seconds < 0:
                raise ValueError(f"latency needs seconds >= 0, got {seconds!r}.")
        with self._lock:
            self._faults.append(_FaultRule(kind, count, service, job_id, seconds))

    def take_fault(self, service: str, job_id: str | None, protocol: str) -> Fault | None:
        """Consume and return the first fault that applies to this call (protocol "grpc" or "http")."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
        if not self._faults:  # fast path, no lock: the common case
            return None
        with self._lock:
            for rule in self._faults:
                if rule.applies(service, job_id, protocol):
                    rule.count -= 1
                    if rule.count <= 0:
                        self._faults.remove(rule)
                    return Fault(rule.kind, rule.seconds, rule.service, rule.job_id)
        return None

    def pending_faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(vars(r)) for r in self._faults]

    # ---- call records -----------------------------------------------------------------------------

    def record_call(
        self,
        service: str,
        job_id: str | None,
        method: str,
        detail: Any = None,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        """Count one request for (service, job_id) and keep its method, detail and headers."""
        key = "" if job_id is None else str(job_id)
        entry = {
            "method": method,
            "job_id": job_id,
            "detail": detail,
            "headers": dict(headers or {}),
            "time": time.time(),
        }
        with self._lock:
            calls = self._calls.setdefault(service, {})
            calls[key] = calls.get(key, 0) + 1
            reqs = self._requests.setdefault(service, {})
            if key not in reqs:
                reqs[key] = deque(maxlen=MAX_REQUESTS_KEPT)
            reqs[key].append(entry)
            self._total_calls += 1

    def calls(self, service: str, job_id: str | None = None) -> int:
        """Requests received for that job (CDM: name or ``cluster/name``), or for the whole service."""
        with self._lock:
            calls = self._calls.get(service, {})
            if job_id is None:
                return sum(calls.values())
            return sum(n for k, n in calls.items() if ids_match(service, str(job_id), k))

    def requests(self, service: str, job_id: str) -> list[dict[str, Any]]:
        """The recorded requests for that job, oldest first (the last MAX_REQUESTS_KEPT per id)."""
        with self._lock:
            reqs = self._requests.get(service, {})
            found = [r for k, q in reqs.items() if ids_match(service, str(job_id), k) for r in q]
        return sorted(found, key=lambda r: r["time"])

    def last_request(self, service: str, job_id: str) -> dict[str, Any] | None:
        found = self.requests(service, job_id)
        return found[-1] if found else None

    def stats(self) -> dict[str, Any]:
        """A JSON-friendly summary for the control endpoint."""
        with self._lock:
            jobs: dict[str, int] = dict.fromkeys(SERVICES, 0)
            for service, _ in self._jobs:
                jobs[service] += 1
            return {
                "project_id": self.project_id,
                "uptime_seconds": round(time.monotonic() - self.started_at, 3),
                "jobs": jobs,
                "calls": {s: sum(c.values()) for s, c in self._calls.items()},
                "total_calls": self._total_calls,
                "faults": self.pending_faults(),
            }
