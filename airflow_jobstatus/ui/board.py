"""The board's rows, from Airflow's metadata: the provider's task instances, their XComs, trigger kwargs.

Synchronous (SQLAlchemy); the API server runs it in a worker thread. Everything about services comes
from the registry (``airflow_jobstatus.services``) and the provider's own classes, so a new service
appears here without a change. What leaves this module for a response (``make_row``) is a whitelist:
job reference, JobStatus fields, the task instance's identity and times, the console link. Connection
ids and impersonation chains stay on ``TaskJob`` for the server's live reads and are never serialized.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_jobstatus.services import REGISTRY, ServiceSpec
from airflow_jobstatus.services.base import JobRef
from airflow_jobstatus.states import (
    DEFAULT_SUCCESS_STATES,
    STUCK_STATES,
    JobState,
    JobStatus,
    sub_job_text,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from airflow_jobstatus.ui.live import Reading

#: The XCom holding a task's return value (the final ``JobStatus.to_dict()``).
RETURN_KEY = "return_value"
#: The operators' XCom with the normalized state name (pushed even when the job failed).
STATE_XCOM_KEY = "status"
#: Most rows one response carries (most recent first).
MAX_ROWS = 500

JOB_STATUS_FIELDS = tuple(f.name for f in dataclasses.fields(JobStatus))


# -- what the provider's classes say --------------------------------------------------------------------
@dataclass(frozen=True)
class Catalog:
    """How to recognise the provider's tasks and their service, read from the registry and the classes."""

    task_types: Mapping[str, str]  # operator class name -> service
    link_keys: Mapping[str, str]  # console-link XCom key -> service
    trigger_classpaths: frozenset[str]
    conn_args: Mapping[str, str]  # cloud -> the tasks' connection-id argument
    ref_fields: frozenset[str]  # every field name of every service's JobRef

    @property
    def xcom_keys(self) -> frozenset[str]:
        """The XComs the board reads (no other XCom is ever loaded)."""
        return frozenset({RETURN_KEY, STATE_XCOM_KEY, *self.link_keys, *JOB_STATUS_FIELDS, *self.ref_fields})


def _import(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    """Built once per process, on the first request (imports the sensor, operator and link classes)."""
    from airflow.triggers.base import BaseTrigger

    from airflow_jobstatus.get_provider_info import get_provider_info
    from airflow_jobstatus.job_wait import CONN_ID_ARGS, JobWaitMixin

    modules = {spec.sensor.rpartition(".")[0] for spec in REGISTRY.values()}
    for group in get_provider_info().get("operators", []):
        modules.update(group.get("python-modules", []))
    task_types: dict[str, str] = {}
    for module_name in sorted(modules):
        for _, cls in inspect.getmembers(importlib.import_module(module_name), inspect.isclass):
            service = getattr(cls, "service", None)
            if issubclass(cls, JobWaitMixin) and service in REGISTRY:
                task_types[cls.__name__] = service
    link_keys = {_import(spec.link)().xcom_key: name for name, spec in REGISTRY.items()}
    triggers = set()
    for group in get_provider_info().get("triggers", []):
        for module_name in group.get("python-modules", []):
            module = importlib.import_module(module_name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, BaseTrigger) and cls.__module__ == module.__name__:
                    triggers.add(f"{cls.__module__}.{cls.__qualname__}")
    ref_fields = frozenset(f.name for spec in REGISTRY.values() for f in dataclasses.fields(spec.ref_type))
    return Catalog(
        task_types=task_types,
        link_keys=link_keys,
        trigger_classpaths=frozenset(triggers),
        conn_args=dict(CONN_ID_ARGS),
        ref_fields=ref_fields,
    )


def state_kind(state: JobState | None) -> str:
    """How a state is shown: success, failure, attention (will not progress by itself), active, none."""
    if state is None:
        return "none"
    if state in DEFAULT_SUCCESS_STATES:
        return "success"
    if state.is_terminal:
        return "failure"
    if state in STUCK_STATES:
        return "attention"
    return "active"


def vocabulary() -> dict[str, Any]:
    """The services and states the page offers as filters (from the registry and the state model)."""
    return {
        "services": [{"name": name, "title": spec.title} for name, spec in REGISTRY.items()],
        "states": [{"name": s.value, "kind": state_kind(s)} for s in JobState],
    }


# -- one task instance's job -----------------------------------------------------------------------------
@dataclass
class TaskJob:
    """A task instance of the provider and what the metadata says of the job it waits on."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    task_state: str | None
    active: bool
    start_date: datetime | None
    end_date: datetime | None
    service: str
    ref: JobRef | None = None
    job_id: str | None = None
    poll_interval: float | None = None
    final: JobStatus | None = None
    final_at: datetime | None = None
    event_status: JobStatus | None = None
    partial: dict[str, Any] = field(default_factory=dict)
    link: str | None = None
    # Server-side only (the live read's connection): never part of a row.
    conn_id: str | None = field(default=None, repr=False)
    impersonation_chain: Any = field(default=None, repr=False)

    @property
    def spec(self) -> ServiceSpec:
        return REGISTRY[self.service]

    @property
    def row_id(self) -> str:
        return json.dumps([self.dag_id, self.run_id, self.task_id, self.map_index])

    def wants_live(self) -> bool:
        """Worth a live read: its final status is not in the metadata, and the job can be named."""
        return self.ref is not None and self.final is None


ACTIVE_STATES = ("running", "deferred", "up_for_reschedule", "restarting")
RESUMING_STATES = ("scheduled", "queued")  # with next_method set: resuming after its trigger fired


def _plain(value: Any) -> Any:
    """An XCom or rendered-field value as plain JSON data (a JSON string is decoded)."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _xcom_value(xcom: Any) -> Any:
    from airflow.models.xcom import XComModel

    try:
        return _plain(XComModel.deserialize_value(xcom))
    except Exception:
        return None


def _status(data: Any) -> JobStatus | None:
    if not isinstance(data, Mapping) or data.get("service") not in REGISTRY:
        return None
    try:
        return JobStatus.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None


def _ref(spec: ServiceSpec, sources: Iterable[Mapping[str, Any]]) -> JobRef | None:
    """The job reference from the first-to-last sources (later ones win), its fields only."""
    names = {f.name for f in dataclasses.fields(spec.ref_type)}
    fields: dict[str, Any] = {}
    for source in sources:
        for name in names:
            value = source.get(name)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
                fields[name] = value
    try:
        return spec.ref(fields)
    except Exception:  # a missing or invalid field: the job cannot be named
        return None


def _key(obj: Any) -> tuple[str, str, str, int]:
    return (obj.dag_id, obj.run_id, obj.task_id, obj.map_index)


def collect(
    session: Session,
    dag_ids: Iterable[str],
    since: datetime,
    *,
    dag_id: str | None = None,
    limit: int = MAX_ROWS,
) -> list[TaskJob]:
    """The provider's task instances in ``dag_ids`` that wait now or ended after ``since``."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from sqlalchemy import and_, exists, func, or_, select

    cat = catalog()
    permitted = set(dag_ids)
    if dag_id is not None:
        permitted &= {dag_id}
    if not permitted:
        return []

    ours = or_(
        TI.operator.in_(list(cat.task_types)),
        TI.trigger_id.in_(select(Trigger.id).where(Trigger.classpath.in_(list(cat.trigger_classpaths)))),
        exists().where(
            XComModel.dag_id == TI.dag_id,
            XComModel.run_id == TI.run_id,
            XComModel.task_id == TI.task_id,
            XComModel.map_index == TI.map_index,
            XComModel.key.in_(list(cat.link_keys)),
        ),
    )
    recent = or_(
        TI.state.in_(ACTIVE_STATES),
        and_(TI.state.in_(RESUMING_STATES), TI.next_method.is_not(None)),
        TI.end_date >= since,
    )
    stmt = (
        select(TI)
        .where(TI.dag_id.in_(permitted), recent, ours)
        .order_by(func.coalesce(TI.end_date, TI.start_date).desc())
        .limit(limit)
    )
    tis = list(session.scalars(stmt))
    if not tis:
        return []

    dags = {ti.dag_id for ti in tis}
    runs = {ti.run_id for ti in tis}
    tasks = {ti.task_id for ti in tis}
    wanted = {_key(ti) for ti in tis}

    triggers: dict[int, dict[str, Any]] = {}
    trigger_ids = [ti.trigger_id for ti in tis if ti.trigger_id is not None]
    if trigger_ids:
        for trigger in session.scalars(
            select(Trigger).where(
                Trigger.id.in_(trigger_ids), Trigger.classpath.in_(list(cat.trigger_classpaths))
            )
        ):
            try:
                triggers[trigger.id] = dict(trigger.kwargs)
            except Exception:  # kwargs this process cannot decrypt or read
                continue

    xcoms: dict[tuple[str, str, str, int], dict[str, tuple[Any, datetime]]] = {}
    for xcom in session.scalars(
        select(XComModel).where(
            XComModel.dag_id.in_(dags),
            XComModel.run_id.in_(runs),
            XComModel.task_id.in_(tasks),
            XComModel.key.in_(list(cat.xcom_keys)),
        )
    ):
        if _key(xcom) in wanted:
            xcoms.setdefault(_key(xcom), {})[xcom.key] = (_xcom_value(xcom), xcom.timestamp)

    rendered: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for rtif in session.scalars(
        select(RTIF).where(RTIF.dag_id.in_(dags), RTIF.run_id.in_(runs), RTIF.task_id.in_(tasks))
    ):
        if _key(rtif) in wanted and isinstance(rtif.rendered_fields, Mapping):
            rendered[_key(rtif)] = {k: _plain(v) for k, v in rtif.rendered_fields.items()}

    definitions = Definitions(session)
    jobs = []
    for ti in tis:
        job = _task_job(
            ti,
            cat,
            triggers.get(ti.trigger_id) if ti.trigger_id is not None else None,
            xcoms.get(_key(ti), {}),
            rendered.get(_key(ti), {}),
            definitions,
        )
        if job is not None:
            jobs.append(job)
    return jobs


def _unwrap(value: Any) -> dict[str, Any]:
    """A serialized dict (``{"__type": "dict", "__var": {...}}``) or a plain one, as a plain dict."""
    if (
        isinstance(value, Mapping)
        and value.get("__type") == "dict"
        and isinstance(value.get("__var"), Mapping)
    ):
        value = value["__var"]
    return dict(value) if isinstance(value, Mapping) else {}


def is_template(value: Any) -> bool:
    return isinstance(value, str) and any(mark in value for mark in ("{{", "{%", "{#"))


@lru_cache(maxsize=1)
def _template_env() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class Definitions:
    """What the DAG itself says of a task: its serialized arguments, and the run's params.

    The job reference of a task that never ran on a worker (a sensor started in the triggerer) is in
    no run record once its trigger is gone: it is read from the serialized task, and its templates
    are rendered here with the run's ``params`` only, in a sandbox (anything else leaves it unknown).
    """

    _dags: OrderedDict[Any, Any] = OrderedDict()  # dag_version_id -> SerializedDAG, shared, bounded
    _lock = threading.Lock()

    def __init__(self, session: Session):
        self.session = session
        self._params: dict[tuple[Any, str], dict[str, Any]] = {}

    def _dag(self, version_id: Any) -> Any:
        from airflow.models.serialized_dag import SerializedDagModel
        from sqlalchemy import select

        if version_id is None:
            return None
        with self._lock:
            if version_id in self._dags:
                return self._dags[version_id]
        model = self.session.scalar(
            select(SerializedDagModel).where(SerializedDagModel.dag_version_id == version_id)
        )
        dag = model.dag if model is not None else None
        with self._lock:
            self._dags[version_id] = dag
            while len(self._dags) > 32:
                self._dags.popitem(last=False)
        return dag

    def task_values(self, ti: Any) -> dict[str, Any]:
        """The task's template-field values, then its start-in-triggerer kwargs (they name every field)."""
        try:
            task = self._dag(ti.dag_version_id).get_task(ti.task_id)
        except Exception:
            return {}
        values = {name: getattr(task, name, None) for name in getattr(task, "template_fields", ())}
        start = getattr(task, "start_trigger_args", None)
        return values | _unwrap(getattr(start, "trigger_kwargs", None))

    def params(self, ti: Any) -> dict[str, Any]:
        key = (ti.dag_version_id, ti.run_id)
        if key not in self._params:
            from airflow.models.dagrun import DagRun
            from sqlalchemy import select

            params: dict[str, Any] = {}
            try:
                params.update(self._dag(ti.dag_version_id).params.dump())
                conf = self.session.scalar(
                    select(DagRun.conf).where(DagRun.dag_id == ti.dag_id, DagRun.run_id == ti.run_id)
                )
                params.update(conf if isinstance(conf, Mapping) else {})
            except Exception:
                params = {}
            self._params[key] = params
        return self._params[key]

    def render(self, ti: Any, value: Any) -> Any:
        """``value`` with its template rendered from the run's params; None when that is not enough."""
        if not is_template(value):
            return value
        try:
            return _template_env().from_string(value).render(params=self.params(ti))
        except Exception:
            return None


_SCOPE_TTL = 300.0
_scopes: dict[tuple[str, str | None], tuple[float, str | None]] = {}
_scopes_lock = threading.Lock()


def console_scope(service: str, conn_id: str | None) -> str | None:
    """The connection's project (Google) or region (Huawei) for console links; cached, None if unreadable."""
    key, now = (service, conn_id), time.monotonic()
    with _scopes_lock:
        hit = _scopes.get(key)
    if hit is not None and now - hit[0] < _SCOPE_TTL:
        return hit[1]
    try:
        from airflow_jobstatus.hooks.base import make_hook

        scope = make_hook(service, conn_id).console_scope()
    except Exception:
        scope = None
    with _scopes_lock:
        _scopes[key] = (now, scope)
    return scope


def _task_job(
    ti: Any,
    cat: Catalog,
    trigger: Mapping[str, Any] | None,
    xcoms: Mapping[str, tuple[Any, datetime]],
    rendered: Mapping[str, Any],
    definitions: Definitions,
) -> TaskJob | None:
    values = {key: value for key, (value, _) in xcoms.items()}
    final = _status(values.get(RETURN_KEY))
    next_kwargs = ti.next_kwargs if isinstance(ti.next_kwargs, Mapping) else {}
    raw_event = next_kwargs.get("event")
    event: Mapping[str, Any] = raw_event if isinstance(raw_event, Mapping) else {}
    event_status = _status(event.get("job_status"))
    trigger = trigger or {}

    service = next(
        (
            s
            for s in (
                trigger.get("service"),
                *(cat.link_keys[k] for k in values if k in cat.link_keys),
                cat.task_types.get(ti.operator or ""),
                final.service if final else None,
                event_status.service if event_status else None,
            )
            if s in REGISTRY
        ),
        None,
    )
    if service is None:
        return None
    spec = REGISTRY[service]
    conn_arg = cat.conn_args.get(spec.cloud, "")

    def rendered_values(source: Mapping[str, Any]) -> dict[str, Any]:
        return {
            k: definitions.render(ti, v) for k, v in source.items() if k in cat.ref_fields or k == conn_arg
        }

    # Where a run wrote the job down, oldest to newest (a later source wins field by field).
    run_sources = [
        rendered,
        values,
        _unwrap(next_kwargs.get("job_ref")),
        rendered_values(trigger),
        _unwrap(trigger.get("job_ref")),
    ]
    ref = _ref(spec, run_sources)
    definition: dict[str, Any] = {}
    if ref is None:  # never written by a run (started in the triggerer, trigger gone): the DAG's own
        definition = rendered_values(definitions.task_values(ti))
        ref = _ref(spec, [definition, *run_sources])
    conn_id = trigger.get("conn_id") or next(
        (
            src.get(conn_arg)
            for src in (rendered_values(trigger), rendered, definition)
            if isinstance(src.get(conn_arg), str) and src.get(conn_arg)
        ),
        None,
    )
    link = next((values[k] for k in cat.link_keys if isinstance(values.get(k), str) and values[k]), None)
    if link is None and ref is not None:  # no worker pushed the link: built like the worker builds it
        link = spec.console_url(ref, console_scope(service, conn_id)) or None
    partial = {k: values[k] for k in JOB_STATUS_FIELDS if k in values and values[k] is not None}
    state_name = values.get(STATE_XCOM_KEY)
    if isinstance(state_name, str) and state_name in JobState.__members__:
        partial.setdefault("state", state_name)
    state = ti.state.value if hasattr(ti.state, "value") else ti.state
    poll = trigger.get("poll_interval")
    known = final or event_status
    job_id = ref.display_id if ref else (known.job_id if known else None)
    return TaskJob(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        map_index=ti.map_index,
        try_number=ti.try_number,
        task_state=state,
        active=state in ACTIVE_STATES or (state in RESUMING_STATES and ti.next_method is not None),
        start_date=ti.start_date,
        end_date=ti.end_date,
        service=service,
        ref=ref,
        job_id=job_id,
        poll_interval=float(poll) if isinstance(poll, int | float) and poll > 0 else None,
        final=final,
        final_at=xcoms[RETURN_KEY][1] if final is not None else None,
        event_status=event_status,
        partial=partial,
        link=link if isinstance(link, str) and link.startswith(("https://", "http://")) else None,
        conn_id=str(conn_id) if isinstance(conn_id, str) and conn_id else None,
        impersonation_chain=trigger.get("impersonation_chain"),
    )


# -- the row a viewer sees -------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def task_url(ui_base: str, job: TaskJob) -> str:
    """The task instance's page in the Airflow UI."""
    parts = [ui_base.rstrip("/"), "dags", job.dag_id, "runs", job.run_id, "tasks", job.task_id]
    url = "/".join(quote(p, safe="") if i else p for i, p in enumerate(parts))
    return url + (f"/mapped/{job.map_index}" if job.map_index >= 0 else "")


def _sub_jobs(sub_jobs: Sequence[Mapping[str, Any]], service: str, job_id: str) -> dict[str, Any] | None:
    if not sub_jobs:
        return None
    status = JobStatus(service, job_id, JobState.UNKNOWN, "", sub_jobs=[dict(s) for s in sub_jobs])
    done, total = status.task_counts()
    running = status.running_sub_job()
    return {
        "count": len(sub_jobs),
        "tasks_completed": done,
        "tasks_total": total,
        "current": sub_job_text(running) if running is not None else None,
    }


def make_row(job: TaskJob, reading: Reading | None, ui_base: str = "") -> dict[str, Any]:
    """One board row (JSON): nothing but the job, its JobStatus fields and its task instance."""
    status: JobStatus | None = None
    source = None
    polled: datetime | None = None
    if job.final is not None:
        status, source, polled = job.final, "task", job.final_at
    elif reading is not None and reading.status is not None:
        status, source, polled = reading.status, "live", reading.read_at
    elif job.event_status is not None:
        status, source = job.event_status, "trigger"

    if status is not None:
        state: JobState | None = status.state
        data: dict[str, Any] = status.to_dict()
    else:
        name = job.partial.get("state")
        state = JobState(name) if isinstance(name, str) and name in JobState.__members__ else None
        data = dict(job.partial)
        source = "task" if data else None
    raw_counters, raw_sub_jobs = data.get("counters"), data.get("sub_jobs")
    counters: Mapping[str, Any] = raw_counters if isinstance(raw_counters, Mapping) else {}
    sub_jobs: list[Any] = raw_sub_jobs if isinstance(raw_sub_jobs, list) else []
    if not sub_jobs and isinstance(job.partial.get("sub_jobs"), list):  # the last ones the task saw
        sub_jobs = job.partial["sub_jobs"]
    progress = data.get("progress")
    job_id = job.job_id or str(data.get("job_id") or "")
    spec = job.spec
    return {
        "id": job.row_id,
        "service": job.service,
        "service_title": spec.title,
        "job_id": job_id or None,
        "job_type": getattr(job.ref, "job_type", None),
        "console_url": job.link,
        "dag_id": job.dag_id,
        "run_id": job.run_id,
        "task_id": job.task_id,
        "map_index": job.map_index,
        "try_number": job.try_number,
        "task_state": job.task_state,
        "task_url": task_url(ui_base, job),
        "active": job.active,
        "state": state.value if state is not None else None,
        "state_kind": state_kind(state),
        "native_state": data.get("native_state") or None,
        "substate": data.get("substate") or None,
        "message": str(data["message"]) if data.get("message") else None,
        "progress": float(progress) if isinstance(progress, int | float) else None,
        "counters": [{"name": str(k), "value": v} for k, v in counters.items() if isinstance(v, int | float)],
        "sub_jobs": _sub_jobs([s for s in sub_jobs if isinstance(s, Mapping)], job.service, job_id or ""),
        "source": source,
        "live_error": reading.error if reading is not None and reading.error and job.final is None else None,
        "started": _iso(job.start_date),
        "last_polled": _iso(polled),
        "ended": _iso(job.end_date) if not job.active else None,
    }


def sort_key(row: Mapping[str, Any]) -> tuple[bool, str]:
    """Most recent first: the jobs waited on now (latest started first), then the latest ended."""
    when = row["started"] if row["active"] else (row["ended"] or row["started"])
    return (bool(row["active"]), when or "")
