"""The simulator's state, shared by its gRPC and HTTP fronts: jobs on timelines, faults, call records.

Pure Python, no SDK imports. Thread-safe: the servers' loop thread and the tests call it concurrently.
The services' vocabulary is in ``vocabulary``, the timeline engine in ``timeline``, the fault kinds in
``faults``.
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
from pathlib import Path
from typing import Any

from airflow_jobstatus.simulator.faults import FAULT_KINDS, PROTOCOLS, Fault, FaultRule, fault_rule
from airflow_jobstatus.simulator.timeline import SimJob, is_number, validate_timeline
from airflow_jobstatus.simulator.vocabulary import (
    ACTION_TIMELINES,
    BUILTIN_DEFAULTS,
    DEFAULT_CDM_CLUSTER,
    DEFAULT_GOOGLE_REGION,
    DLI_SQL_JOB_TYPES,
    JOB_TYPES,
    LABELLED,
    NAMED,
    NATIVE_JOB_TYPES,
    SERVICES,
    TAGGED,
    WHERE_DEFAULTS,
    Timeline,
    ids_match,
    timeline_key,
)

__all__ = ["FAULT_KINDS", "Fault", "SimJob", "SimulatorCore", "Timeline", "validate_timeline"]

MAX_REQUESTS_KEPT = 200  # per job; the call counter itself is unbounded
MAX_LIST_CALLS_KEPT = 100_000  # the list-call log (``list_calls``), oldest dropped first


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
            self._faults: list[FaultRule] = []
            self._calls: dict[str, dict[str, int]] = {s: {} for s in SERVICES}
            self._method_calls: dict[str, dict[str, int]] = {s: {} for s in SERVICES}
            self._requests: dict[str, dict[str, deque[dict[str, Any]]]] = {s: {} for s in SERVICES}
            self._total_calls = 0
            self._list_calls: deque[dict[str, Any]] = deque(maxlen=MAX_LIST_CALLS_KEPT)

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

    def add_job(
        self,
        service: str,
        job_id: str,
        timeline: Timeline,
        meta: Mapping[str, Any] | None = None,
        started_ago: float = 0.0,
        **where: Any,
    ) -> SimJob:
        """Add (or replace) a job following ``timeline`` from now (or from ``started_ago`` seconds
        ago); ``meta``: see ``SimJob.meta``. For CDM this adds a new submission."""
        if not job_id or not str(job_id).strip():
            raise ValueError(f"{service}: job_id must be a non-empty string.")
        if not is_number(started_ago) or started_ago < 0:
            raise ValueError(f"{service}: started_ago must be a number of seconds >= 0, got {started_ago!r}.")
        full = self._where(service, where, fill=True)
        phases = validate_timeline(timeline_key(service, full.get("job_type")), timeline)
        with self._lock:
            return self._store(service, str(job_id), phases, full, meta, float(started_ago))

    def _store(
        self,
        service: str,
        job_id: str,
        phases: Timeline,
        where: dict[str, str],
        meta: Mapping[str, Any] | None = None,
        started_ago: float = 0.0,
    ) -> SimJob:
        submission = None if service != "cdm" else next(self._ids)
        job = SimJob(service, job_id, phases, where, submission, dict(meta or {}), started_ago)
        if service == "cdm":
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

    def start_job(
        self,
        service: str,
        job_id: str | None = None,
        timeline: Timeline | None = None,
        started_ago: float = 0.0,
        **fields: Any,
    ) -> SimJob:
        """A job started outside any DAG (the control API's ``POST /_sim/jobs``): ``fields`` are
        where-keys and the job's ``labels`` (Google), ``tags`` (DLI SQL and Flink: ``{key: value}``
        or ``[{key, value}]``), ``name`` (Dataflow, Vertex AI, DLI Flink), ``type`` (the service's
        native job type, ``vocabulary.NATIVE_JOB_TYPES``), ``statement``, ``queue_name`` (DLI) and
        ``cluster_name`` (Dataproc). No ``job_id``: a fresh one; no ``timeline``: the default one."""
        meta = split_meta(service, fields)
        meta["origin"] = "control"
        job_id = str(job_id) if job_id else self.new_id(service)
        if timeline is None:
            full = self._where(service, fields, fill=True)
            timeline = self.default_timeline(timeline_key(service, full.get("job_type")))
        return self.add_job(service, job_id, timeline, meta=meta, started_ago=started_ago, **fields)

    def cdm_jobs(self, cluster_id: str) -> list[tuple[str, list[SimJob]]]:
        """The cluster's CDM jobs by name, each with its submissions (oldest first; none if never run)."""
        with self._lock:
            found = [
                (name, list(h)) for (cluster, name), h in self._cdm_history.items() if cluster == cluster_id
            ]
        return sorted(found, key=lambda nh: nh[0])

    def get_job(self, service: str, job_id: str, **where: Any) -> SimJob | None:
        """The job, or None when missing or a given where-value differs (None values are not checked)."""
        given = self._where(service, where, fill=False)
        with self._lock:
            job = self._jobs.get((service, str(job_id)))
        if job is None or any(job.where.get(k) != v for k, v in given.items()):
            return None
        return job

    def listed_jobs(self, service: str, **where: Any) -> list[SimJob]:
        """The service's jobs whose where-values equal the given ones, by id (the list calls' order)."""
        given = self._where(service, where, fill=False)
        with self._lock:
            found = [j for (s, _), j in self._jobs.items() if s == service]
        matching = [j for j in found if all(j.where.get(k) == v for k, v in given.items())]
        return sorted(matching, key=lambda j: j.job_id)

    def jobs(self, service: str | None = None) -> list[SimJob]:
        with self._lock:
            return [j for (s, _), j in self._jobs.items() if service is None or s == service]

    def create_job(
        self, service: str, job_id: str | None = None, meta: Mapping[str, Any] | None = None, **where: Any
    ) -> SimJob:
        """Start a job on the service's default timeline (a submit/start call); generates an id if None."""
        full = self._where(service, where, fill=True)
        with self._lock:
            phases = copy.deepcopy(self._defaults[timeline_key(service, full.get("job_type"))])
            return self._store(service, str(job_id) if job_id else self.new_id(service), phases, full, meta)

    def new_id(self, service: str) -> str:
        """A fresh job id as the service spells its own (Vertex AI and DLI Flink: digits; DLI: a UUID)."""
        if service == "dli_flink":
            return str(100000 + next(self._ids))
        return self._new_id(service)

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
        key = (timeline_key(service, job.where.get("job_type")), action)
        with self._lock:
            timeline = self.action_timelines.get(key)
            if timeline is None:
                raise ValueError(f"{service}: no timeline for action {action!r}.")
            job.override(timeline, action)
        return job

    def set_default_timeline(self, service: str, timeline: Timeline, job_type: str | None = None) -> None:
        """Change what create_job uses for ``service`` (``job_type="spark"`` or service ``"dli:spark"``)."""
        key = timeline_key(service, job_type) if ":" not in service else service
        if key not in BUILTIN_DEFAULTS:
            raise ValueError(f"Unknown service {service!r}. Valid services: {', '.join(SERVICES)}.")
        phases = validate_timeline(key, timeline)
        with self._lock:
            self._defaults[key] = phases

    def default_timeline(self, service: str, job_type: str | None = None) -> Timeline:
        key = timeline_key(service, job_type) if ":" not in service else service
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
            started_ago = where.pop("started_ago", 0.0)
            meta = split_meta(entry["service"], where)
            job = self.add_job(
                entry["service"],
                entry["job_id"],
                entry["timeline"],
                meta=meta,
                started_ago=started_ago,
                **where,
            )
            added.append(job)
        return added

    # ---- faults -----------------------------------------------------------------------------------

    def inject_fault(
        self,
        kind: str,
        count: int = 1,
        service: str | None = None,
        job_id: str | None = None,
        seconds: float | None = None,
        method: str | None = None,
    ) -> None:
        """Make the next ``count`` matching calls fail with ``kind`` (globally, per service or job;
        ``method``: only that method's calls, e.g. a submit while watchers list the same service).

        ``seconds``: the delay of ``latency`` (default 1 s) or the ``Retry-After`` of ``http_429``
        (none by default). Kinds and the protocols they hit: ``faults.FAULT_PROTOCOLS``.
        """
        if service is not None and service not in SERVICES:
            raise ValueError(f"Unknown service {service!r}. Valid services: {', '.join(SERVICES)}.")
        rule = fault_rule(kind, count, service, job_id, seconds, method)
        with self._lock:
            self._faults.append(rule)

    def take_fault(
        self, service: str, job_id: str | None, protocol: str, method: str | None = None
    ) -> Fault | None:
        """Consume and return the first fault that applies to this call (protocol "grpc" or "http")."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
        if not self._faults:  # fast path, no lock: the common case
            return None
        with self._lock:
            for rule in self._faults:
                if rule.applies(service, job_id, protocol, method):
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
        scope: str | None = None,
        page: str | None = None,
    ) -> None:
        """Count one request for (service, job_id) and keep its method, detail and headers.

        A list call gives its ``scope`` (the parent it lists: ``projects/P/regions/R``, the DLI
        project, the CDM cluster) and ``page`` (its page token or number; "" for the first page); it
        is also kept in the list-call log (``list_calls``).
        """
        key = "" if job_id is None else str(job_id)
        now = time.time()
        entry = {
            "method": method,
            "job_id": job_id,
            "detail": detail,
            "headers": dict(headers or {}),
            "time": now,
        }
        with self._lock:
            if scope is not None:
                first = not page or page in ("1", "0")
                self._list_calls.append(
                    {
                        "time": now,
                        "service": service,
                        "method": method,
                        "scope": scope,
                        "page": page or "",
                        "first_page": first,
                    }
                )
            calls = self._calls.setdefault(service, {})
            calls[key] = calls.get(key, 0) + 1
            by_method = self._method_calls.setdefault(service, {})
            by_method[method] = by_method.get(method, 0) + 1
            reqs = self._requests.setdefault(service, {})
            if key not in reqs:
                reqs[key] = deque(maxlen=MAX_REQUESTS_KEPT)
            reqs[key].append(entry)
            self._total_calls += 1

    def list_calls(
        self,
        service: str | None = None,
        method: str | None = None,
        scope: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[dict[str, Any]]:
        """List calls received (oldest first), each ``{time, service, method, scope, page,
        first_page}``; ``since``/``until`` bound ``time`` (unix seconds, ``since <= time < until``)."""
        with self._lock:
            log = list(self._list_calls)
        return [
            c
            for c in log
            if (service is None or c["service"] == service)
            and (method is None or c["method"] == method)
            and (scope is None or c["scope"] == scope)
            and (since is None or c["time"] >= since)
            and (until is None or c["time"] < until)
        ]

    def calls(self, service: str, job_id: str | None = None) -> int:
        """Requests received for that job (CDM: name or ``cluster/name``), or for the whole service."""
        with self._lock:
            calls = self._calls.get(service, {})
            if job_id is None:
                return sum(calls.values())
            return sum(n for k, n in calls.items() if ids_match(service, str(job_id), k))

    def method_calls(self, service: str) -> dict[str, int]:
        """Requests received by the service, by method (``ListJobs``, ``GetJob``, …)."""
        with self._lock:
            return dict(self._method_calls.get(service, {}))

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
                "calls_by_method": {s: dict(m) for s, m in self._method_calls.items()},
                "total_calls": self._total_calls,
                "list_calls": len(self._list_calls),
                "faults": self.pending_faults(),
            }


META_KEYS = frozenset({"labels", "tags", "name", "type", "statement", "queue_name", "cluster_name"})


def split_meta(service: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Move the ``META_KEYS`` out of ``fields`` (leaving where-keys) and check them (``job_meta``);
    a DLI Flink job's ``name`` stays a where-key too."""
    given = {k: fields.pop(k) for k in list(fields) if k in META_KEYS}
    spark = service == "dli" and fields.get("job_type") == "spark"
    meta = job_meta("dli:spark" if spark else service, given)
    if service == "dli_flink" and "name" in meta:
        fields.setdefault("name", meta["name"])
    return meta


def job_meta(service: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """Checked ``SimJob.meta`` for ``service``; ValueError saying which field is wrong and why."""
    from airflow_jobstatus.simulator.huawei_bodies import dli_tags_problem

    meta: dict[str, Any] = {}
    for key, value in given.items():
        if value is None:
            continue
        if key == "labels":
            if service not in LABELLED:
                raise ValueError(f"{service}: jobs have no labels (Google services only; DLI has tags).")
            if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
                raise ValueError(f"{service}: labels must be an object of string values, got {value!r}.")
            if len(value) > 64:
                raise ValueError(f"{service}: at most 64 labels, got {len(value)}.")
            meta["labels"] = {str(k): v for k, v in value.items()}
        elif key == "tags":
            if service not in TAGGED:  # "dli:spark": batches carry no tags
                raise ValueError(f"{service}: jobs have no tags (DLI SQL and Flink only; Google has labels).")
            tags = [{"key": k, "value": v} for k, v in value.items()] if isinstance(value, Mapping) else value
            problem = dli_tags_problem(tags)
            if problem is not None:
                raise ValueError(f"{service}: {problem}")
            meta["tags"] = [{"key": t["key"], "value": t["value"]} for t in tags]
        elif key == "name":
            if service not in NAMED:
                raise ValueError(f"{service}: jobs have no name besides their id.")
            meta["name"] = str(value)
        elif key == "type":
            valid = NATIVE_JOB_TYPES.get(service)
            if service == "dli:spark":
                raise ValueError("dli: a Spark batch has no job type besides job_type 'spark'.")
            if valid is None or value not in valid:
                raise ValueError(
                    f"{service}: unknown job type {value!r}; valid: {', '.join(valid or ('none',))}."
                )
            meta["type"] = value
        else:
            meta[key] = str(value)
    if service == "dli" and "type" not in meta and "statement" in meta:
        meta["type"] = DLI_SQL_JOB_TYPES.get((meta["statement"].split() or [""])[0].upper(), "DDL")
    return meta
