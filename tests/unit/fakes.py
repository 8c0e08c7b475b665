"""In-memory stand-ins for the unit tests: a scripted hook, a clock, a log, a task instance.

Nothing here talks to a network or an SDK: ``FakeHook`` serves a scripted sequence of readings
(``JobStatus``, ``JobState`` or an exception to raise) and records every call with its job reference.
"""

from __future__ import annotations

import asyncio
import importlib
import types
from collections.abc import Callable, Iterable
from typing import Any

from airflow_jobstatus.core.exceptions import (
    AuthenticationError,
    BadRequestError,
    BadResponseError,
    JobNotFoundError,
    ServiceError,
    TransientServiceError,
)
from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.hooks.base import JobStatusHook

Reading = JobStatus | JobState | BaseException


@types.coroutine
def _yield_to_loop() -> Any:
    """One pass through the event loop, like a network await (not asyncio.sleep: tests record those)."""
    yield


def status(
    state: JobState | str,
    *,
    service: str = "dataproc",
    job_id: str = "job-1",
    native: str | None = None,
    **kw: Any,
) -> JobStatus:
    """A reading; ``native`` defaults to the normalized name."""
    state = JobState(state)
    return JobStatus(service, job_id, state, native or state.value, **kw)


#: A fresh error of each kind, by the name the tests use.
ERRORS: dict[str, Callable[[], ServiceError]] = {
    "transient": lambda: TransientServiceError("503 Service Unavailable", service="dataproc", code=503),
    "bad_response": lambda: BadResponseError("unparseable job status", service="dataproc"),
    "authentication": lambda: AuthenticationError("401 Unauthorized", service="dataproc", code=401),
    "not_found": lambda: JobNotFoundError("no such job", service="dataproc", code=404),
    "bad_request": lambda: BadRequestError("400 invalid argument", service="dataproc", code=400),
}


class FakeClock:
    """A monotonic clock the test moves by hand (``JobWatch(clock=...)``)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeHook(JobStatusHook[Any]):
    """A hook that serves scripted readings and records every call.

    ``readings``: served in order, one per ``get_status``/``aget_status``; the last one repeats
    forever (like the simulator's timelines). A ``JobState`` is turned into a ``JobStatus`` of
    ``service``/``job_id``; an exception is raised. ``cancels``: the same for ``cancel``/``acancel``
    (``None`` = accepted; default: always accepted). ``on_call(name, ref)`` runs before each call is
    served (to move a fake clock, or to kill the task mid-wait).
    """

    service = "fake"
    conn_name_attr = "fake_conn_id"
    default_conn_name = "fake_default"

    def __init__(
        self,
        *readings: Reading,
        service: str = "dataproc",
        job_id: str = "job-1",
        scope: str | None = None,
        cancels: Iterable[BaseException | None] = (None,),
        on_call: Callable[[str, Any], None] | None = None,
        conn_id: str = "fake_default",
    ) -> None:
        # The base hook only: the service hooks' own set-up (connections, clients) is never needed.
        JobStatusHook.__init__(self, conn_id)
        self.readings = list(readings)
        self.cancels = list(cancels)
        self.fake_service, self.job_id, self.scope = service, job_id, scope
        self.on_call = on_call
        #: (method name, job reference) of every call, in order.
        self.calls: list[tuple[str, Any]] = []
        #: The ``tags`` of each ``submit_sql``; ``find_started`` answers ``found``.
        self.submitted_tags: list[Any] = []
        self.found: Any = None

    # -- the contract ------------------------------------------------------------------------------
    def get_status(self, ref: Any) -> JobStatus:
        return self._serve("get_status", ref)

    async def aget_status(self, ref: Any) -> JobStatus:
        await _yield_to_loop()
        return self._serve("aget_status", ref)

    def cancel(self, ref: Any) -> None:
        self._cancel("cancel", ref)

    async def acancel(self, ref: Any) -> None:
        await _yield_to_loop()
        self._cancel("acancel", ref)

    def console_scope(self) -> str | None:
        self.calls.append(("console_scope", None))
        return self.scope

    # -- what the operators call on the CDM / DLI hooks ------------------------------------------------
    def start_job(self, ref: Any, variables: Any = None) -> str:
        self.calls.append(("start_job", (ref, variables)))
        return "1001"

    def submit_sql(
        self, sql: str, queue_name: str, database_name: str | None = None, conf: Any = None, tags: Any = None
    ) -> str:
        self.calls.append(("submit_sql", (sql, queue_name, database_name, conf)))
        self.submitted_tags.append(tags)
        return "dli-job-7"

    def find_started(self, identity: Any) -> Any:
        """``found``: what the service lists for the task (a job record, an exception to raise, None)."""
        self.calls.append(("find_started", dict(identity)))
        if isinstance(self.found, BaseException):
            raise self.found
        return self.found

    # -- bookkeeping -------------------------------------------------------------------------------
    def names(self, *which: str) -> list[str]:
        """The names of the calls made, optionally only those in ``which``."""
        return [name for name, _ in self.calls if not which or name in which]

    def refs(self, *which: str) -> list[Any]:
        return [ref for name, ref in self.calls if not which or name in which]

    def _serve(self, name: str, ref: Any) -> JobStatus:
        self.calls.append((name, ref))
        if self.on_call is not None:
            self.on_call(name, ref)
        if not self.readings:
            raise AssertionError("FakeHook: no reading scripted")
        item = self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, JobState):
            return status(item, service=self.fake_service, job_id=self.job_id)
        return item

    def _cancel(self, name: str, ref: Any) -> None:
        self.calls.append((name, ref))
        if self.on_call is not None:
            self.on_call(name, ref)
        item = self.cancels.pop(0) if len(self.cancels) > 1 else self.cancels[0]
        if item is not None:
            raise item


def fake_hook_for(service_hook: type[JobStatusHook[Any]]) -> type[FakeHook]:
    """A FakeHook class that is also a ``service_hook`` (the operators check the hook's type)."""
    return type(f"Fake{service_hook.__name__}", (FakeHook, service_hook), {})


class RecordingLog:
    """A logger that keeps (level, message) pairs; %-style arguments are applied."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []

    def _record(self, level: str, msg: Any, *args: Any, **_: Any) -> None:
        text = str(msg) % args if args else str(msg)
        self.records.append((level, text))

    def debug(self, msg: Any, *args: Any, **kw: Any) -> None:
        self._record("debug", msg, *args, **kw)

    def info(self, msg: Any, *args: Any, **kw: Any) -> None:
        self._record("info", msg, *args, **kw)

    def warning(self, msg: Any, *args: Any, **kw: Any) -> None:
        self._record("warning", msg, *args, **kw)

    warn = warning

    def error(self, msg: Any, *args: Any, **kw: Any) -> None:
        self._record("error", msg, *args, **kw)

    def exception(self, msg: Any, *args: Any, **kw: Any) -> None:
        self._record("error", msg, *args, **kw)

    def messages(self, level: str | None = None) -> list[str]:
        return [text for lvl, text in self.records if level is None or lvl == level]


class FakeTI:
    """The task instance in a direct ``execute()`` call: records XComs; no reschedule history."""

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}
        self.pushes: list[tuple[str, Any]] = []

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushes.append((key, value))
        self.xcoms[key] = value

    def get_first_reschedule_date(self, context: Any) -> None:
        return None


def first_event(trigger: Any) -> dict[str, Any]:
    """Run a trigger until its first event; the event's payload."""

    async def collect() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(collect())


#: Each service's sensor and the fields that name one job.
SENSOR_ARGS: dict[str, dict[str, Any]] = {
    "dataproc": {"job_id": "job-1", "region": "europe-west1"},
    "dataflow": {"job_id": "job-1", "location": "europe-west1"},
    "vertex_ai": {"job_id": "job-1", "location": "europe-west1", "job_type": "batch_prediction_job"},
    "cdm": {"cluster_id": "c-1", "job_name": "job-1"},
    "dli": {"job_id": "job-1", "job_type": "sql"},
    "dli_flink": {"job_id": "1"},  # Flink job ids are integers
    "dataproc_batch": {"batch_id": "job-1", "region": "europe-west1"},
    "vertex_pipeline": {"pipeline_job_id": "job-1", "location": "europe-west1"},
}
#: The connection-id argument of each service's tasks.
CONN_ARG = {
    s: "gcp_conn_id" for s in ("dataproc", "dataflow", "vertex_ai", "dataproc_batch", "vertex_pipeline")
} | {
    "cdm": "huaweicloud_conn_id",
    "dli": "huaweicloud_conn_id",
    "dli_flink": "huaweicloud_conn_id",
}


def make_sensor(service: str, **kwargs: Any) -> Any:
    """The service's sensor on job ``job-1``; fast retries unless the test says otherwise."""
    from airflow_jobstatus.services import get_service

    module_name, _, class_name = get_service(service).sensor.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    args = {"task_id": "wait", **SENSOR_ARGS[service], "max_backoff": 0.001, "poke_interval": 5, **kwargs}
    return cls(**args)


# -- lifecycle: the task state store, a task instance with tries, a DAG run ---------------------------


class FakeTaskStateStore:
    """``context["task_state_store"]`` in memory: get/set like Airflow's accessor, every write recorded."""

    def __init__(self, values: dict[str, Any] | None = None, *, fail_on_set: BaseException | None = None):
        self.values: dict[str, Any] = dict(values or {})
        self.sets: list[tuple[str, Any]] = []
        self.fail_on_set = fail_on_set

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        if self.fail_on_set is not None:
            raise self.fail_on_set
        if value is None:
            raise ValueError("Cannot set value as None")
        self.sets.append((key, value))
        self.values[key] = value


class TryTI(FakeTI):
    """A task instance with a try number, ``max_tries`` and ``xcom_pull`` of its own XComs."""

    def __init__(self, try_number: int = 1, max_tries: int = 0) -> None:
        super().__init__()
        self.try_number, self.max_tries = try_number, max_tries

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        return self.xcoms.get(key)


def lifecycle_context(
    store: FakeTaskStateStore | None = None,
    *,
    try_number: int = 1,
    max_tries: int = 0,
    clear_number: int = 0,
) -> dict[str, Any]:
    """A task context with a task state store: ``ti`` (TryTI), ``dag_run`` and ``task_state_store``."""
    return {
        "ti": TryTI(try_number, max_tries),
        "dag_run": types.SimpleNamespace(clear_number=clear_number),
        "task_state_store": FakeTaskStateStore() if store is None else store,
    }
