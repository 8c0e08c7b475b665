"""The board's rows, from Airflow's metadata: the provider's task instances, their XComs, trigger kwargs.

Synchronous (SQLAlchemy); the API server runs it in a worker thread. Everything about services comes
from the registry (``airflow_jobstatus.services``) and the provider's own classes, so a new service
appears here without a change. What leaves this module for a response (``make_row``) is a whitelist:
job reference, JobStatus fields, the task instance's identity and times, the console link, and why a
row names no job. Connection ids and impersonation chains stay on ``TaskJob`` for the server's live
reads and are never serialized.

A row shows only the job its task instance's current try started or waited on, read from what that
try recorded (``name_job``): its XComs, rendered fields, trigger and resume kwargs, an operator's
task-state record. A try that has not run, or an operator that has not submitted, names no job: not
the one its (default or rendered) arguments name, which may be another DAG's (a CDM job's status is
its latest submission, whoever started it). What cannot be read is logged once per process.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_jobstatus.core.dotted import load
from airflow_jobstatus.core.states import (
    DEFAULT_SUCCESS_STATES,
    STUCK_STATES,
    JobState,
    JobStatus,
    sub_job_text,
)
from airflow_jobstatus.core.templating import is_template
from airflow_jobstatus.services import REGISTRY, ServiceSpec
from airflow_jobstatus.services.base import JobRef

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

log = logging.getLogger(__name__)


# -- what the provider's classes say --------------------------------------------------------------------
@dataclass(frozen=True)
class Catalog:
    """How to recognise the provider's tasks and their service, read from the registry and the classes."""

    task_types: Mapping[str, str]  # operator class name -> service
    link_keys: Mapping[str, str]  # console-link XCom key -> service
    trigger_classpaths: frozenset[str]
    conn_args: Mapping[str, str]  # cloud -> the tasks' connection-id argument
    ref_fields: frozenset[str]  # every field name of every service's JobRef
    starters: Mapping[str, str] = field(default_factory=dict)  # class that starts its job -> its id XCom

    @property
    def xcom_keys(self) -> frozenset[str]:
        """The XComs the board reads (no other XCom is ever loaded)."""
        return frozenset(
            {
                RETURN_KEY,
                STATE_XCOM_KEY,
                *self.link_keys,
                *JOB_STATUS_FIELDS,
                *self.ref_fields,
                *self.starters.values(),
            }
        )


def _classes(module_names: Iterable[str]) -> Iterator[type]:
    for module_name in sorted(module_names):
        module = importlib.import_module(module_name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            yield cls


def _task_classes() -> tuple[dict[str, str], dict[str, str]]:
    """The provider's sensor and operator classes by name: their service, and the operators' id XCom."""
    from airflow_jobstatus.get_provider_info import get_provider_info
    from airflow_jobstatus.operators.base import StartJobOperator
    from airflow_jobstatus.tasks.job_wait import JobWaitMixin

    modules = {spec.sensor.rpartition(".")[0] for spec in REGISTRY.values()}
    for group in get_provider_info().get("operators", []):
        modules.update(group.get("python-modules", []))
    task_types: dict[str, str] = {}
    starters: dict[str, str] = {}
    for cls in _classes(modules):
        service = getattr(cls, "service", None)
        if issubclass(cls, JobWaitMixin) and service in REGISTRY:
            task_types[cls.__name__] = service
            if issubclass(cls, StartJobOperator):
                starters[cls.__name__] = cls.started_id_key
    return task_types, starters


def _trigger_classpaths() -> frozenset[str]:
    from airflow.triggers.base import BaseTrigger

    from airflow_jobstatus.get_provider_info import get_provider_info

    modules = {
        m for group in get_provider_info().get("triggers", []) for m in group.get("python-modules", [])
    }
    return frozenset(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _classes(modules)
        if issubclass(cls, BaseTrigger) and cls.__module__ in modules
    )


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    """Built once per process, on the first request (imports the sensor, operator and link classes)."""
    from airflow_jobstatus.services.base import CONN_ID_ARGS

    task_types, starters = _task_classes()
    return Catalog(
        task_types=task_types,
        link_keys={load(spec.link)().xcom_key: name for name, spec in REGISTRY.items()},
        trigger_classpaths=_trigger_classpaths(),
        conn_args=dict(CONN_ID_ARGS),
        ref_fields=frozenset(f.name for spec in REGISTRY.values() for f in dataclasses.fields(spec.ref_type)),
        starters=starters,
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


# -- a trace in the log, once ----------------------------------------------------------------------------
_logged: OrderedDict[tuple[Any, ...], None] = OrderedDict()
_logged_lock = threading.Lock()
_LOGGED_MAX = 4096


def log_once(key: tuple[Any, ...], message: str, *args: Any, level: int = logging.WARNING) -> None:
    """Log ``message`` the first time ``key`` is seen in this process (the page refreshes every 5 s)."""
    with _logged_lock:
        if key in _logged:
            return
        _logged[key] = None
        while len(_logged) > _LOGGED_MAX:
            _logged.popitem(last=False)
    log.log(level, "Cloud jobs board: " + message, *args)


def reason(err: BaseException) -> str:
    """What the log may say of an error: the provider's and Jinja's own messages; any other, its type only."""
    from jinja2 import TemplateError

    from airflow_jobstatus.core.exceptions import JobStatusError

    if isinstance(err, JobStatusError | TemplateError):
        return f"{type(err).__name__}: {err}"[:300]
    return type(err).__name__


def _label(obj: Any) -> str:
    """A task instance (or one of its records) in the log: dag / run / task [map index]."""
    index = f"[{obj.map_index}]" if getattr(obj, "map_index", -1) >= 0 else ""
    return f"{obj.dag_id}/{obj.run_id}/{obj.task_id}{index}"


# -- one task instance's job -----------------------------------------------------------------------------
class NoJob:
    """Why a row names no job: the task's current try has not started one, or not recorded which."""

    NOT_STARTED = "not started"
    RETRY_NOT_STARTED = "retry not started yet"
    UPSTREAM_FAILED = "upstream failed"
    SKIPPED = "skipped before starting"
    REMOVED = "removed from the DAG"
    NOT_SUBMITTED = "not submitted yet"
    FAILED_BEFORE_SUBMITTING = "failed before submitting"
    NOT_RENDERED = "template not rendered yet"
    FAILED_BEFORE_RENDERING = "failed before rendering its job reference"
    TRIGGER_UNREADABLE = "trigger arguments unreadable"
    NOT_RECORDED = "job not recorded"


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
    #: Why there is no job (``NoJob``); None when the row names one.
    no_job: str | None = None
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
#: Ended states of a try that ran (``skipped``: a ``soft_fail`` skip, when the try number says it ran).
ENDED_AFTER_RUNNING = ("success", "failed", "up_for_retry", "skipped")
#: The operators' XComs of a wait's outcome (pushed only for a job the try started or re-attached to).
OUTCOME_KEYS = (STATE_XCOM_KEY, "progress", "counters", "sub_jobs")


def task_state(ti: Any) -> str | None:
    state = ti.state.value if hasattr(ti.state, "value") else ti.state
    return None if state is None else str(state)


def is_active(ti: Any) -> bool:
    """Waiting now: running, deferred, up for reschedule, or resuming after its trigger fired."""
    state = task_state(ti)
    return state in ACTIVE_STATES or (state in RESUMING_STATES and ti.next_method is not None)


def ran_this_try(ti: Any) -> bool:
    """The task instance's current try started, on a worker or in the triggerer.

    Only then do its records (XComs, rendered fields, resume kwargs) belong to this try: a task never
    scheduled has try 0 (upstream failed, skipped by a branch), and one waiting for its retry
    (scheduled, queued) still holds what the previous try left.
    """
    if (ti.try_number or 0) < 1:
        return False
    return is_active(ti) or task_state(ti) in ENDED_AFTER_RUNNING


@dataclass
class Recorded:
    """What the metadata holds of one task instance: the only places its job may be read from."""

    xcoms: dict[str, tuple[Any, datetime]] = field(default_factory=dict)
    rendered: dict[str, Any] | None = None  # None: no rendered-fields row
    trigger: dict[str, Any] | None = None  # the provider trigger's kwargs while deferred on it
    trigger_unreadable: bool = False
    record: dict[str, Any] | None = None  # the operator's task-state record, written by this try


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
    except Exception as err:
        log_once(
            ("xcom", _key(xcom), xcom.key),
            "XCom %r of %s unreadable (%s)",
            xcom.key,
            _label(xcom),
            reason(err),
        )
        return None


def _status(data: Any, where: str) -> JobStatus | None:
    if not isinstance(data, Mapping) or data.get("service") not in REGISTRY:
        return None
    try:
        return JobStatus.from_dict(data)
    except (KeyError, TypeError, ValueError) as err:
        log_once(("status", where), "%s: a job status that cannot be read (%s)", where, reason(err))
        return None


def _ref(spec: ServiceSpec, sources: Iterable[Mapping[str, Any]], where: str) -> JobRef | None:
    """The job reference from the first-to-last sources (later ones win), its fields only.

    None when an identifying field is missing (the job is not named: the row says why) or invalid
    (logged once).
    """
    names = {f.name for f in dataclasses.fields(spec.ref_type)}
    fields: dict[str, Any] = {}
    for source in sources:
        for name in names:
            value = source.get(name)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
                fields[name] = value
    if not set(spec.ref_type.id_fields) <= set(fields):
        return None
    try:
        return spec.ref(fields)
    except Exception as err:
        log_once(("ref", where), "%s: no valid %s job reference (%s)", where, spec.name, reason(err))
        return None


def _key(obj: Any) -> tuple[str, str, str, int]:
    return (obj.dag_id, obj.run_id, obj.task_id, obj.map_index)


# -- reading the metadata ----------------------------------------------------------------------------------
def collect(
    session: Session,
    dag_ids: Iterable[str],
    since: datetime,
    *,
    dag_id: str | None = None,
    limit: int = MAX_ROWS,
) -> list[TaskJob]:
    """The provider's task instances in ``dag_ids`` that wait now or ended after ``since``."""
    permitted = set(dag_ids) if dag_id is None else set(dag_ids) & {dag_id}
    if not permitted:
        return []
    cat = catalog()
    tis = provider_tis(session, cat, permitted, since, limit)
    if not tis:
        return []
    recorded = read_records(session, cat, tis)
    definitions = Definitions(session)
    jobs = (build_task_job(ti, cat, recorded[_key(ti)], definitions) for ti in tis)
    return [job for job in jobs if job is not None]


def provider_tis(session: Session, cat: Catalog, dag_ids: set[str], since: datetime, limit: int) -> list[Any]:
    """The provider's task instances (by operator class, trigger or console-link XCom), most recent first."""
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from sqlalchemy import and_, exists, func, or_, select

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
        .where(TI.dag_id.in_(dag_ids), recent, ours)
        .order_by(func.coalesce(TI.end_date, TI.start_date).desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def read_records(
    session: Session, cat: Catalog, tis: Sequence[Any]
) -> dict[tuple[str, str, str, int], Recorded]:
    """Each task instance's XComs, rendered fields, trigger kwargs and task-state record (four queries)."""
    found = {_key(ti): Recorded() for ti in tis}
    scope = ({ti.dag_id for ti in tis}, {ti.run_id for ti in tis}, {ti.task_id for ti in tis})
    _read_triggers(session, cat, tis, found)
    _read_xcoms(session, cat, scope, found)
    _read_rendered(session, scope, found)
    _read_task_state_records(session, scope, {_key(ti): ti.try_number for ti in tis}, found)
    return found


Scope = tuple[set[str], set[str], set[str]]  # dag ids, run ids, task ids of the rows


def _read_triggers(
    session: Session, cat: Catalog, tis: Sequence[Any], found: dict[tuple[str, str, str, int], Recorded]
) -> None:
    from airflow.models.trigger import Trigger
    from sqlalchemy import select

    by_trigger: dict[int, list[Any]] = {}
    for ti in tis:
        if ti.trigger_id is not None:
            by_trigger.setdefault(ti.trigger_id, []).append(ti)
    if not by_trigger:
        return
    stmt = select(Trigger).where(
        Trigger.id.in_(list(by_trigger)), Trigger.classpath.in_(list(cat.trigger_classpaths))
    )
    for trigger in session.scalars(stmt):
        try:
            kwargs: dict[str, Any] | None = dict(trigger.kwargs)
        except Exception as err:  # kwargs this process cannot decrypt or read
            log_once(
                ("trigger", trigger.id), "trigger %s: arguments unreadable (%s)", trigger.id, reason(err)
            )
            kwargs = None
        for ti in by_trigger[trigger.id]:
            found[_key(ti)].trigger = kwargs
            found[_key(ti)].trigger_unreadable = kwargs is None


def _read_xcoms(
    session: Session, cat: Catalog, scope: Scope, found: dict[tuple[str, str, str, int], Recorded]
) -> None:
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    dags, runs, tasks = scope
    stmt = select(XComModel).where(
        XComModel.dag_id.in_(dags),
        XComModel.run_id.in_(runs),
        XComModel.task_id.in_(tasks),
        XComModel.key.in_(list(cat.xcom_keys)),
    )
    for xcom in session.scalars(stmt):
        if _key(xcom) in found:
            found[_key(xcom)].xcoms[xcom.key] = (_xcom_value(xcom), xcom.timestamp)


def _read_rendered(session: Session, scope: Scope, found: dict[tuple[str, str, str, int], Recorded]) -> None:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from sqlalchemy import select

    dags, runs, tasks = scope
    stmt = select(RTIF).where(RTIF.dag_id.in_(dags), RTIF.run_id.in_(runs), RTIF.task_id.in_(tasks))
    for rtif in session.scalars(stmt):
        if _key(rtif) in found and isinstance(rtif.rendered_fields, Mapping):
            found[_key(rtif)].rendered = {k: _plain(v) for k, v in rtif.rendered_fields.items()}


def _read_task_state_records(
    session: Session,
    scope: Scope,
    tries: Mapping[tuple[str, str, str, int], int],
    found: dict[tuple[str, str, str, int], Recorded],
) -> None:
    """The operators' records of the job they started (``operators.base.RECORD_KEY``), of the current try only.

    A record is shared by the tries of a run's task: one written by an earlier try names that try's job.
    With a task state backend other than the metadata database, no record is found here.
    """
    from sqlalchemy import select

    try:
        from airflow.models.task_state_store import TaskStateStoreModel as Store
    except ImportError:  # an Airflow without a task state store
        return
    from airflow_jobstatus.operators.base import RECORD_KEY

    dags, runs, tasks = scope
    stmt = select(Store).where(
        Store.dag_id.in_(dags), Store.run_id.in_(runs), Store.task_id.in_(tasks), Store.key == RECORD_KEY
    )
    for row in session.scalars(stmt):
        if _key(row) in found:
            found[_key(row)].record = record_of_try(row.value, tries[_key(row)])


def record_of_try(value: Any, try_number: int) -> dict[str, Any] | None:
    """A stored record (JSON) when the try ``try_number`` wrote it; None for an earlier try's or another form."""
    record = _plain(value) if isinstance(value, str) else None
    return record if isinstance(record, dict) and record.get("try_number") == try_number else None


# -- the serialized DAG, for sensors started in the triggerer ------------------------------------------
def _unwrap(value: Any) -> dict[str, Any]:
    """A serialized dict (``{"__type": "dict", "__var": {...}}``) or a plain one, as a plain dict."""
    if (
        isinstance(value, Mapping)
        and value.get("__type") == "dict"
        and isinstance(value.get("__var"), Mapping)
    ):
        value = value["__var"]
    return dict(value) if isinstance(value, Mapping) else {}


@lru_cache(maxsize=1)
def _template_env() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class Definitions:
    """What the DAG itself says of a task: its serialized arguments, and the run's params.

    The job reference of a sensor that started in the triggerer and never ran on a worker is in no run
    record once its trigger is gone: it is read from the serialized task's start-trigger arguments, and
    its templates are rendered here with the run's ``params`` only, in a sandbox (anything else leaves
    it unknown).
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

    def start_values(self, ti: Any) -> dict[str, Any]:
        """A task that starts in the triggerer: its template-field values, then its start-trigger kwargs.

        Empty for a task that always starts on a worker (its rendered fields say what it waited on).
        """
        try:
            task = self._dag(ti.dag_version_id).get_task(ti.task_id)
        except Exception as err:
            log_once(
                ("definition", ti.dag_version_id, ti.task_id),
                "%s: no serialized task (%s)",
                _label(ti),
                reason(err),
            )
            return {}
        start = getattr(task, "start_trigger_args", None)
        if start is None:
            return {}
        values = {name: getattr(task, name, None) for name in getattr(task, "template_fields", ())}
        return values | _unwrap(getattr(start, "trigger_kwargs", None))

    def params(self, ti: Any) -> dict[str, Any]:
        key = (ti.dag_version_id, ti.run_id)
        if key not in self._params:
            self._params[key] = self._read_params(ti)
        return self._params[key]

    def _read_params(self, ti: Any) -> dict[str, Any]:
        from airflow.models.dagrun import DagRun
        from sqlalchemy import select

        try:
            params = dict(self._dag(ti.dag_version_id).params.dump())
            conf = self.session.scalar(
                select(DagRun.conf).where(DagRun.dag_id == ti.dag_id, DagRun.run_id == ti.run_id)
            )
        except Exception as err:
            log_once(
                ("params", ti.dag_id, ti.run_id), "%s: run params unreadable (%s)", _label(ti), reason(err)
            )
            return {}
        return params | (dict(conf) if isinstance(conf, Mapping) else {})

    def render(self, ti: Any, value: Any) -> Any:
        """``value`` with its template rendered from the run's params; None when that is not enough."""
        if not is_template(value):
            return value
        try:
            return _template_env().from_string(value).render(params=self.params(ti))
        except Exception as err:
            log_once(
                ("render", _key(ti), value),
                "%s: %r not rendered from the run's params (%s)",
                _label(ti),
                value,
                reason(err),
                level=logging.INFO,
            )
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
    except Exception as err:
        log_once(("scope", service, conn_id), "no console scope for %s (%s)", service, reason(err))
        scope = None
    with _scopes_lock:
        _scopes[key] = (now, scope)
    return scope


# -- one row's job: only what the task instance's current try recorded -----------------------------------
@dataclass
class Seen:
    """What the current try of a task instance recorded (nothing when the try has not run)."""

    ti: Any
    recorded: Recorded
    values: dict[str, Any]  # its XComs by key
    final: JobStatus | None  # its return value, when that is a job status
    event_status: JobStatus | None  # the trigger's event it resumes with
    next_kwargs: Mapping[str, Any]
    trigger: Mapping[str, Any]

    @property
    def where(self) -> str:
        return _label(self.ti)


def seen_by_try(ti: Any, recorded: Recorded) -> Seen:
    ran = ran_this_try(ti)
    values = {key: value for key, (value, _) in recorded.xcoms.items()} if ran else {}
    next_kwargs = ti.next_kwargs if ran and isinstance(ti.next_kwargs, Mapping) else {}
    event = next_kwargs.get("event")
    where = _label(ti)
    return Seen(
        ti=ti,
        recorded=recorded,
        values=values,
        final=_status(values.get(RETURN_KEY), where),
        event_status=_status(event.get("job_status"), where) if isinstance(event, Mapping) else None,
        next_kwargs=next_kwargs,
        trigger=recorded.trigger or {},
    )


def service_of(ti: Any, cat: Catalog, seen: Seen) -> str | None:
    """The task's service: its trigger, console-link XCom, class, or the job status it holds."""
    candidates = (
        seen.trigger.get("service"),
        *(cat.link_keys[k] for k in seen.recorded.xcoms if k in cat.link_keys),
        cat.task_types.get(ti.operator or ""),
        seen.final.service if seen.final else None,
        seen.event_status.service if seen.event_status else None,
    )
    return next((s for s in candidates if s in REGISTRY), None)


def started_a_job(seen: Seen, id_key: str) -> bool:
    """An operator's try started (or re-attached to) a job: its own records say so.

    Its rendered fields do not: they name a CDM job before it starts, and a CDM job's status is its
    latest submission, whoever started it.
    """
    values = seen.values
    return bool(
        seen.trigger
        or seen.next_kwargs.get("job_ref")
        or seen.final
        or seen.event_status
        or seen.recorded.record
        or values.get(id_key) not in (None, "")
        or any(values.get(k) is not None for k in OUTCOME_KEYS)
    )


def run_sources(seen: Seen, rendered_trigger: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Where the try wrote its job down, oldest to newest (a later source wins field by field)."""
    record = seen.recorded.record or {}
    return [
        seen.recorded.rendered or {},
        seen.values,
        _unwrap(record.get("job_ref")),
        _unwrap(seen.next_kwargs.get("job_ref")),
        rendered_trigger,
        _unwrap(seen.trigger.get("job_ref")),
    ]


@dataclass
class Naming:
    """How a row names its job: the reference, the DAG's own values it used, or why there is none."""

    ref: JobRef | None
    definition: dict[str, Any]
    no_job: str | None


def name_job(
    ti: Any,
    cat: Catalog,
    spec: ServiceSpec,
    seen: Seen,
    render: Callable[[Mapping[str, Any]], dict[str, Any]],
    definitions: Definitions,
) -> Naming:
    """The job this try started or waited on, from its own records only."""
    ran = ran_this_try(ti)
    id_key = cat.starters.get(ti.operator or "")
    if not ran or (id_key is not None and not started_a_job(seen, id_key)):
        return Naming(None, {}, no_job_reason(ti, seen, starts_jobs=id_key is not None))
    ref = _ref(spec, run_sources(seen, render(seen.trigger)), seen.where)
    definition: dict[str, Any] = {}
    if ref is None and seen.recorded.rendered is None and seen.recorded.trigger is None:
        # A sensor started in the triggerer, its trigger gone: the arguments it was started with.
        definition = render(definitions.start_values(ti))
        ref = _ref(spec, [definition], seen.where)
    known = ref is not None or seen.final is not None or seen.event_status is not None
    return Naming(ref, definition, None if known else no_job_reason(ti, seen, starts_jobs=id_key is not None))


def no_job_reason(ti: Any, seen: Seen, *, starts_jobs: bool) -> str:
    """Why the row names no job (``NoJob``)."""
    state = task_state(ti)
    if not ran_this_try(ti):
        return _why_not_started(ti, state)
    if seen.recorded.trigger_unreadable:
        return NoJob.TRIGGER_UNREADABLE
    failed = state in ("failed", "up_for_retry")
    if starts_jobs:
        if is_active(ti):
            return NoJob.NOT_SUBMITTED
        return NoJob.FAILED_BEFORE_SUBMITTING if failed else NoJob.NOT_RECORDED
    if is_active(ti):
        return NoJob.NOT_RENDERED
    if failed and seen.recorded.rendered is None:
        return NoJob.FAILED_BEFORE_RENDERING
    return NoJob.NOT_RECORDED


def _why_not_started(ti: Any, state: str | None) -> str:
    if state == "upstream_failed":
        return NoJob.UPSTREAM_FAILED
    if state == "skipped":
        return NoJob.SKIPPED
    if state == "removed":
        return NoJob.REMOVED
    if state in RESUMING_STATES and (ti.try_number or 0) > 1:
        return NoJob.RETRY_NOT_STARTED
    return NoJob.NOT_STARTED


def conn_id_of(
    conn_arg: str, seen: Seen, rendered_trigger: Mapping[str, Any], definition: Mapping[str, Any]
) -> str | None:
    """The connection the task used: its trigger's, else its rendered connection-id argument."""
    conn_id = seen.trigger.get("conn_id")
    if isinstance(conn_id, str) and conn_id:
        return conn_id
    for source in (rendered_trigger, seen.recorded.rendered or {}, definition):
        value = source.get(conn_arg)
        if isinstance(value, str) and value:
            return value
    return None


def console_link(
    cat: Catalog, spec: ServiceSpec, seen: Seen, ref: JobRef | None, conn_id: str | None
) -> str | None:
    """The link a worker pushed for the job, else the same URL built from the reference."""
    link = next((v for k in cat.link_keys if isinstance(v := seen.values.get(k), str) and v), None)
    if link is None and ref is not None:
        link = spec.console_url(ref, console_scope(spec.name, conn_id)) or None
    return link if isinstance(link, str) and link.startswith(("https://", "http://")) else None


def partial_status(values: Mapping[str, Any]) -> dict[str, Any]:
    """What the task pushed of its job on the way (``status``, ``progress``, ``counters``, ``sub_jobs``)."""
    partial = {k: values[k] for k in JOB_STATUS_FIELDS if values.get(k) is not None}
    state_name = values.get(STATE_XCOM_KEY)
    if isinstance(state_name, str) and state_name in JobState.__members__:
        partial.setdefault("state", state_name)
    return partial


def build_task_job(ti: Any, cat: Catalog, recorded: Recorded, definitions: Definitions) -> TaskJob | None:
    """The row's job, or None (not the provider's task; a row that cannot be built is logged once)."""
    try:
        return _task_job(ti, cat, recorded, definitions)
    except Exception as err:
        log_once(("row", _key(ti), ti.try_number), "%s: no row (%s)", _label(ti), reason(err))
        log.debug("Cloud jobs board: %s: no row", _label(ti), exc_info=True)
        return None


def _task_job(ti: Any, cat: Catalog, recorded: Recorded, definitions: Definitions) -> TaskJob | None:
    seen = seen_by_try(ti, recorded)
    service = service_of(ti, cat, seen)
    if service is None:
        return None
    spec = REGISTRY[service]
    conn_arg = cat.conn_args.get(spec.cloud, "")

    def render(source: Mapping[str, Any]) -> dict[str, Any]:
        wanted = cat.ref_fields | {conn_arg}
        return {k: definitions.render(ti, v) for k, v in source.items() if k in wanted}

    naming = name_job(ti, cat, spec, seen, render, definitions)
    ref, known = naming.ref, seen.final or seen.event_status
    conn_id = conn_id_of(conn_arg, seen, render(seen.trigger), naming.definition) if ref else None
    poll = seen.trigger.get("poll_interval")
    has_job = naming.no_job is None
    return TaskJob(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        map_index=ti.map_index,
        try_number=ti.try_number,
        task_state=task_state(ti),
        active=is_active(ti),
        start_date=ti.start_date,
        end_date=ti.end_date,
        service=service,
        ref=ref,
        job_id=ref.display_id if ref else (known.job_id if known else None),
        poll_interval=float(poll) if isinstance(poll, int | float) and poll > 0 else None,
        final=seen.final,
        final_at=recorded.xcoms[RETURN_KEY][1] if seen.final is not None else None,
        event_status=seen.event_status,
        partial=partial_status(seen.values) if has_job else {},
        link=console_link(cat, spec, seen, ref, conn_id) if has_job else None,
        no_job=naming.no_job,
        conn_id=conn_id,
        impersonation_chain=seen.trigger.get("impersonation_chain"),
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


@dataclass
class Shown:
    """The status a row shows and where it comes from (``task``, ``live``, ``trigger``; None: nothing)."""

    state: JobState | None
    data: dict[str, Any]
    source: str | None
    polled: datetime | None = None


def shown_status(job: TaskJob, reading: Reading | None) -> Shown:
    """The task's final status, else a live reading, else its trigger's event, else what it pushed."""
    if job.final is not None:
        return Shown(job.final.state, job.final.to_dict(), "task", job.final_at)
    if reading is not None and reading.status is not None:
        return Shown(reading.status.state, reading.status.to_dict(), "live", reading.read_at)
    if job.event_status is not None:
        return Shown(job.event_status.state, job.event_status.to_dict(), "trigger")
    name = job.partial.get("state")
    state = JobState(name) if isinstance(name, str) and name in JobState.__members__ else None
    return Shown(state, dict(job.partial), "task" if job.partial else None)


def _details(job: TaskJob, data: Mapping[str, Any], job_id: str) -> dict[str, Any]:
    """Progress, counters and subjobs (the last ones the task saw, once the job has ended)."""
    raw_counters, raw_sub_jobs = data.get("counters"), data.get("sub_jobs")
    counters: Mapping[str, Any] = raw_counters if isinstance(raw_counters, Mapping) else {}
    sub_jobs: list[Any] = raw_sub_jobs if isinstance(raw_sub_jobs, list) else []
    if not sub_jobs and isinstance(job.partial.get("sub_jobs"), list):
        sub_jobs = job.partial["sub_jobs"]
    progress = data.get("progress")
    return {
        "progress": float(progress) if isinstance(progress, int | float) else None,
        "counters": [{"name": str(k), "value": v} for k, v in counters.items() if isinstance(v, int | float)],
        "sub_jobs": _sub_jobs([s for s in sub_jobs if isinstance(s, Mapping)], job.service, job_id),
    }


def make_row(job: TaskJob, reading: Reading | None, ui_base: str = "") -> dict[str, Any]:
    """One board row (JSON): nothing but the job, its JobStatus fields and its task instance."""
    shown = shown_status(job, reading)
    data = shown.data
    job_id = job.job_id or str(data.get("job_id") or "")
    return {
        "id": job.row_id,
        "service": job.service,
        "service_title": job.spec.title,
        "job_id": job_id or None,
        "no_job_reason": None if job_id else (job.no_job or NoJob.NOT_RECORDED),
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
        "state": shown.state.value if shown.state is not None else None,
        "state_kind": state_kind(shown.state),
        "native_state": data.get("native_state") or None,
        "substate": data.get("substate") or None,
        "message": str(data["message"]) if data.get("message") else None,
        **_details(job, data, job_id),
        "source": shown.source,
        "live_error": reading.error if reading is not None and reading.error and job.final is None else None,
        "started": _iso(job.start_date),
        "last_polled": _iso(shown.polled),
        "ended": _iso(job.end_date) if not job.active else None,
    }


def sort_key(row: Mapping[str, Any]) -> tuple[bool, str]:
    """Most recent first: the jobs waited on now (latest started first), then the latest ended."""
    when = row["started"] if row["active"] else (row["ended"] or row["started"])
    return (bool(row["active"]), when or "")
