"""The job's progress in the task state store, where the REST API and the UI show it while the task runs.

Airflow 3.3 has no dedicated progress API: the UI's task-instance "Task State Store" tab and the REST
API (``GET /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/state-store/{key}``) list
the task's keys as stored. So the progress is one key, ``PROGRESS_KEY``, holding plain JSON::

    {"service": "cdm", "job_id": "sim-cluster/job-a", "state": "RUNNING", "native_state": "RUNNING",
     "substate": null, "progress": 0.5, "counters": {"rows_read": 500}, "tasks": [0, 0],
     "message": null, "updated_at": "2026-12-07T00:41:02Z"}

Written by the worker, once per poll at most and only when something but ``updated_at`` changed
(read back once per process first, so a rescheduled sensor's pokes do not rewrite the same value).
The triggerer cannot write it (Airflow 3.3's triggerer answers no task-state-store request), so a
deferred wait writes it before deferring and when the task resumes on a worker; a task the trigger
ends (``end_from_trigger``) keeps the value from before its deferral. Without a task state store
(Airflow < 3.3) nothing is written, silently; a failed write is logged once and the wait goes on.
"""

from __future__ import annotations

import time
from typing import Any

from airflow_jobstatus.core.states import JobStatus

#: The task state store key (namespaced like ``operators.base.RECORD_KEY``).
PROGRESS_KEY = "airflow_jobstatus.progress"
#: The longest message kept (a service's error text can be long; the store has a size limit).
MESSAGE_LIMIT = 500


def progress_value(status: JobStatus) -> dict[str, Any]:
    """The key's value for ``status``, without ``updated_at``."""
    message = status.message
    if message is not None and len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 1] + "…"
    return {
        "service": status.service,
        "job_id": status.job_id,
        "state": status.state.value,
        "native_state": status.native_state,
        "substate": status.substate,
        "progress": status.progress,
        "counters": dict(status.counters),
        "tasks": list(status.task_counts()),
        "message": message,
    }


class ProgressReporter:
    """Writes ``PROGRESS_KEY`` when the status changed; never raises."""

    __slots__ = ("_last", "_read", "_warned", "log", "store", "writes")

    def __init__(self, store: Any, log: Any) -> None:
        self.store = store  # None: no task state store here (older Airflow, no task context)
        self.log = log
        self.writes = 0
        self._last: dict[str, Any] | None = None
        self._read = False
        self._warned = False

    def report(self, status: JobStatus) -> bool:
        """Write the status's progress if it changed; True when written."""
        if self.store is None:
            return False
        value = progress_value(status)
        if not self._read:
            self._read = True
            self._last = self._stored()
        if value == self._last:
            return False
        try:
            self.store.set(PROGRESS_KEY, {**value, "updated_at": _utc_now()})
        except Exception as err:  # progress is a view: it must never fail the wait
            if not self._warned:
                self._warned = True
                self.log.warning(
                    "Could not write the job's progress to the task state store (%s: %s); the wait goes "
                    "on, and further failures are not logged.",
                    type(err).__name__,
                    err,
                )
            return False
        self._last = value
        self.writes += 1
        return True

    def _stored(self) -> dict[str, Any] | None:
        """What an earlier process of this task wrote (a rescheduled sensor), without ``updated_at``."""
        try:
            stored = self.store.get(PROGRESS_KEY)
        except Exception:  # unknown: the first report writes
            return None
        if not isinstance(stored, dict):
            return None
        return {k: v for k, v in stored.items() if k != "updated_at"}


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def reporter_for_current_task(log: Any) -> ProgressReporter:
    """The reporter of the task running in this process: its task state store, if it has one."""
    from airflow_jobstatus.core.compat import progress_store

    try:
        from airflow.sdk import get_current_context

        store = progress_store(get_current_context())
    except Exception:  # no running task (a direct call), or no task state store in this Airflow
        store = None
    return ProgressReporter(store, log)


__all__ = ["MESSAGE_LIMIT", "PROGRESS_KEY", "ProgressReporter", "progress_value", "reporter_for_current_task"]
