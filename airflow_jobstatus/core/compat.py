"""Every difference between Airflow 3.1, 3.2 and 3.3 the package meets, in one place.

Imports that moved, and the 3.3-only features (README "Supported Airflow versions"), each detected
by what this Airflow has (never by its version string): ``trigger_on_kill()``,
``trigger_renders_templates()``, ``has_task_state_store()``, ``axcom_set()``. A feature missing here
is logged once per process with the reason (``note_missing``); the task's verdict never depends on it.
The package is tested on 3.1.8, 3.2.2 and 3.3.2 (``make test-matrix``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

try:  # Airflow >= 3.2: the task SDK has its own configuration and exceptions
    from airflow.sdk.configuration import conf
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowNotFoundException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        AirflowTaskTimeout,
        TaskDeferralError,
        TaskDeferralTimeout,
        TaskDeferred,
    )
except ImportError:  # pragma: no cover - Airflow 3.1
    from airflow.configuration import conf  # type: ignore[no-redef]
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined]
        AirflowException,
        AirflowNotFoundException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        AirflowTaskTimeout,
        TaskDeferralError,
        TaskDeferralTimeout,
        TaskDeferred,
    )

try:
    from airflow.sdk.log import mask_secret as _airflow_mask_secret
except ImportError:  # pragma: no cover - older task SDKs
    from airflow.sdk.execution_time.secrets_masker import (  # type: ignore[no-redef]
        mask_secret as _airflow_mask_secret,
    )


T = TypeVar("T")


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, as every Airflow provider reads it."""
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


def _loop_only_comms() -> Any | None:
    """Airflow 3.1's trigger runner channel to its supervisor when this process is one, else None.

    3.1's ``TriggerCommsDecoder`` reads answers in order on one stream under an ``asyncio.Lock`` of
    the runner's loop; its sync ``send`` from another thread runs the request on a private loop
    (``async_to_sync``), outside that lock, so two requests at once (a worker thread's and the
    loop's) read each other's answers: "Response read out of order!" kills the trigger runner. 3.2+
    bridge such calls to the runner's loop themselves (``start_reader``, answers matched by id).
    """
    comms = _trigger_comms()
    return None if comms is None or hasattr(comms, "start_reader") else comms


def _trigger_comms() -> Any | None:
    """The trigger runner's ``TriggerCommsDecoder`` when this process is a triggerer's runner, else None."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:  # pragma: no cover
        return None
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    return comms if hasattr(comms, "_async_reader") else None


def _trigger_loop_for_thread() -> asyncio.AbstractEventLoop | None:
    """The 3.1 trigger runner's loop when the calling thread is not running it, else None."""
    comms = _loop_only_comms()
    reader = getattr(comms, "_async_reader", None)
    loop: asyncio.AbstractEventLoop | None = getattr(reader, "_loop", None)  # a StreamReader's loop
    if loop is None or not loop.is_running():
        return None
    try:
        if asyncio.get_running_loop() is loop:
            return None
    except RuntimeError:  # no loop in this thread: a worker thread
        pass
    return loop


def supervisor_call(call: Callable[..., T], acall: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``call(*args)``, a sync request to the task's supervisor (a connection read, a secret to mask).

    In a worker thread of Airflow 3.1's trigger runner, ``acall(*args)`` runs on the runner's loop
    instead and this thread waits for it, as 3.2+ do by themselves: 3.1 cannot take a request from
    another thread (``_loop_only_comms``). Everywhere else it is just ``call(*args)``.
    """
    loop = _trigger_loop_for_thread()
    if loop is None:
        return call(*args)
    return asyncio.run_coroutine_threadsafe(_awaited(acall(*args)), loop).result()


def bridge_trigger_comms() -> None:
    """On Airflow 3.1's trigger runner, route a sync ``send`` from a worker thread to the runner's
    loop (``asend`` there, the thread waiting), as 3.2+ do themselves; once per process, else nothing.

    Not only this package's requests: Airflow's own sync calls reach the supervisor from any thread a
    trigger uses (``Connection.extra_dejson`` masks the extras with ``mask_secret``, a sync ``send``).
    On 3.1 such a call runs ``asend`` on a private loop (``async_to_sync``), outside the runner's
    lock, and a reply is read by the wrong request: "Response read out of order!" kills every trigger
    of the runner. A call on the loop's own thread keeps 3.1's behaviour (``async_to_sync`` refuses).
    """
    comms = _loop_only_comms()
    if comms is None:
        return
    cls: Any = type(comms)
    if getattr(cls, "_jobstatus_bridged", False):
        return
    original = cls.send

    def send(self: Any, msg: Any) -> Any:
        loop = _trigger_loop_for_thread()
        if loop is None:
            return original(self, msg)
        return asyncio.run_coroutine_threadsafe(_awaited(shielded(self.asend(msg))), loop).result()

    cls.send = send
    cls._jobstatus_bridged = True


async def _awaited(aw: Awaitable[T]) -> T:
    return await aw


def mask_secret(secret: Any, name: str | None = None) -> None:
    """Airflow's ``mask_secret`` (this process's masker and the supervisor's); from any thread."""
    supervisor_call(_airflow_mask_secret, amask_secret, secret, name)


async def amask_secret(secret: Any, name: str | None = None) -> None:
    """Register a secret with the masker from async code (the async call where the SDK has one).

    Airflow 3.1 and 3.2 have none. Their ``mask_secret`` tells the supervisor with a sync ``send``,
    which on a trigger runner's loop is dropped (3.1: ``async_to_sync`` refuses the running loop; 3.2:
    it needs a greenback portal, which a task the trigger spawns lacks), errors suppressed. So this
    process's masker is fed here and the supervisor's copy is sent on the loop, like any other request.
    """
    from airflow.sdk import log as sdk_log

    amask = getattr(sdk_log, "amask_secret", None)
    if amask is not None:
        await amask(secret, name)
        return
    comms = _trigger_comms()
    if comms is None:
        _airflow_mask_secret(secret, name)
        return
    from airflow.sdk._shared.secrets_masker import _secrets_masker
    from airflow.sdk.execution_time.comms import MaskSecret

    _secrets_masker().add_mask(secret, name)
    await shielded(comms.asend(MaskSecret(value=secret, name=name)))


def task_state_store(context: Any) -> Any | None:
    """The task's state store (Airflow >= 3.3, ``context["task_state_store"]``); None on an older Airflow."""
    get = getattr(context, "get", None)
    store = None if get is None else get("task_state_store")
    if store is None and not has_task_state_store():
        note_missing(
            "the task state store (a retry re-attaches by its record)",
            "Airflow < 3.3; a retry finds its job by the CDM job name or the DLI task tag instead",
        )
    return store


_STATS: Any = None
#: (a function returning this process's stats backend, the no-op logger class); False: not known.
_STATS_PROBE: Any = None


def _load_stats() -> None:
    global _STATS, _STATS_PROBE
    try:
        from airflow.sdk._shared.observability.metrics import stats as shared
        from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
    except ImportError:  # pragma: no cover - Airflow 3.1
        from airflow.metrics.base_stats_logger import NoStatsLogger as LegacyNoStats
        from airflow.stats import Stats

        _STATS, _STATS_PROBE = Stats, (functools.partial(_class_backend, Stats), LegacyNoStats)
        return
    if hasattr(shared, "_get_backend"):  # Airflow >= 3.3: module functions over one backend
        from airflow.sdk.observability import stats

        def backend() -> Any:
            current = shared._backend
            return shared._get_backend() if current is None else current

        _STATS, _STATS_PROBE = stats, (backend, NoStatsLogger)
    else:  # pragma: no cover - Airflow 3.2: the Stats class and its per-process instance
        _STATS, _STATS_PROBE = shared.Stats, (functools.partial(_class_backend, shared.Stats), NoStatsLogger)


def _class_backend(stats: Any) -> Any:
    """The backend of Airflow 3.1/3.2's ``Stats`` class (its first attribute read builds it per process)."""
    getattr(stats, "incr")  # noqa: B009 - through the metaclass's __getattr__
    return type.__getattribute__(stats, "instance")


def stats_if_active() -> Any | None:
    """Airflow's ``stats`` (``incr``, ``timing``, …) when it sends metrics somewhere; None when its
    backend is the no-op logger, so that a caller builds no metric (the wait loop is hot).

    Airflow >= 3.3: ``airflow.sdk.observability.stats``, whose current backend is looked at each
    time (a process initializes it after start-up, and again after a fork; private names, hence
    here). Airflow 3.2 and 3.1: the ``Stats`` class (task SDK's, core's) and its ``instance``.
    """
    if _STATS is None:
        _load_stats()
    probe = _STATS_PROBE
    if probe and type(probe[0]()) is probe[1]:
        return None
    return _STATS


def legacy_stat_names() -> bool:
    """``[metrics] legacy_names_on``: also send the untagged names that carry their tags in the name."""
    return bool(conf.getboolean("metrics", "legacy_names_on", fallback=True))


def progress_store(context: Any) -> Any | None:
    """The task state store the job's progress is written to (Airflow >= 3.3,
    ``context["task_state_store"]``); None, silently, on an older Airflow (progress is only a view)."""
    get = getattr(context, "get", None)
    return None if get is None else get("task_state_store")


_log = logging.getLogger("airflow_jobstatus.compat")
_NOTED: set[str] = set()


def note_missing(feature: str, reason: str, log: Any = None) -> None:
    """Log once per process that ``feature`` is not available on this Airflow, and why."""
    if feature in _NOTED:
        return
    _NOTED.add(feature)
    (log or _log).warning("%s: not available on this Airflow (%s).", feature, reason)


@functools.cache
def trigger_on_kill() -> bool:
    """Airflow >= 3.3 awaits a trigger's ``on_kill`` when a user kills the deferred task (mark
    failed/success, clear); older triggerers only cancel the trigger's ``run()``."""
    from airflow.triggers.base import BaseTrigger

    return "on_kill" in vars(BaseTrigger)


@functools.cache
def scheduler_starts_from_trigger() -> bool:
    """Airflow >= 3.3's scheduler hands a ``start_from_trigger`` task straight to the triggerer
    (``TaskInstance.start_trigger_args``); 3.1 and 3.2 left that path disabled ("TODO TaskSDK" in
    ``DagRun.schedule_tis``): every such task starts on a worker there."""
    try:
        from airflow.models.taskinstance import TaskInstance
    except ImportError:  # pragma: no cover - a task SDK without Airflow core
        return False
    return hasattr(TaskInstance, "start_trigger_args")


@functools.cache
def trigger_renders_templates() -> bool:
    """Airflow >= 3.3 renders a start-from-trigger task's templated trigger kwargs in the triggerer
    (``BaseTrigger.render_template_fields``); older triggerers pass them unrendered."""
    from airflow.triggers.base import BaseTrigger

    return hasattr(BaseTrigger, "render_template_fields")


@functools.cache
def has_task_state_store() -> bool:
    """Airflow >= 3.3 gives a task a state store (``context["task_state_store"]``) that outlives its tries."""
    try:
        from airflow.sdk.execution_time.comms import GetTaskStateStore  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def has_event_streams() -> bool:
    """Airflow >= 3.3 shares an event trigger's poll (``BaseEventTrigger.shared_stream_key``, ack-mode
    producers whose advance follows the event's persistence) and gives it an asset state store:
    what ``JobEventTrigger`` needs for one list call per scope and exactly-once reports."""
    try:
        from airflow.sdk.execution_time.context import AssetStateStoreAccessors  # noqa: F401
        from airflow.triggers.base import BaseEventTrigger
        from airflow.triggers.shared_stream import SharedStreamProducer  # noqa: F401
    except ImportError:
        return False
    return hasattr(BaseEventTrigger, "create_shared_stream_producer")


async def shielded(aw: Any) -> Any:
    """Await a request to the triggerer's supervisor so that cancelling the caller cannot cancel it.

    Airflow 3.1's trigger runner reads the supervisor's answers in order from one stream: a request
    cancelled while its answer is on the way (a call timeout, a trigger being stopped) leaves that
    answer to the next request, which fails with "Response read out of order!" and kills the trigger
    runner with every trigger in it. 3.2 and 3.3 match answers to requests by id; shielding costs
    them nothing (the request just completes unobserved).
    """
    import asyncio

    return await asyncio.shield(aw)


async def axcom_set(key: str, value: Any, *, dag_id: str, task_id: str, run_id: str, map_index: int) -> None:
    """``XCom.aset`` from the triggerer (Airflow >= 3.3); older: what it does, by hand — the XCom
    backend's ``serialize_value``, then ``SetXCom`` to the triggerer's supervisor (3.1 and 3.2 answer it)."""
    from airflow.sdk.execution_time.xcom import XCom

    where: dict[str, Any] = {"dag_id": dag_id, "task_id": task_id, "run_id": run_id, "map_index": map_index}
    aset = getattr(XCom, "aset", None)
    if aset is not None:
        await aset(key, value, **where)
        return
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import SetXCom

    serialized = XCom.serialize_value(value=value, key=key, **where)
    await shielded(task_runner.SUPERVISOR_COMMS.asend(SetXCom(key=key, value=serialized, **where)))


__all__ = [
    "AirflowException",
    "AirflowNotFoundException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "TaskDeferralError",
    "TaskDeferralTimeout",
    "TaskDeferred",
    "amask_secret",
    "axcom_set",
    "bridge_trigger_comms",
    "conf",
    "default_deferrable",
    "has_event_streams",
    "has_task_state_store",
    "legacy_stat_names",
    "mask_secret",
    "note_missing",
    "progress_store",
    "scheduler_starts_from_trigger",
    "shielded",
    "stats_if_active",
    "supervisor_call",
    "task_state_store",
    "trigger_on_kill",
    "trigger_renders_templates",
]
