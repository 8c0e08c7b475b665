"""The trigger's event: one typed payload, built here and read back here (worker and triggerer alike).

``status`` is the verdict (``success``/``failure``) or ``error``; ``job_status`` the final
``JobStatus`` dict; ``error`` a ``ServiceError`` dict; ``last_sub_jobs``/``progress_history`` what
the wait saw (``JobWatch.snapshot``); ``restart_in_worker`` asks the sensor to start on a worker.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from airflow_jobstatus.core.exceptions import BadResponseError, ServiceError
from airflow_jobstatus.core.states import JobStatus

EventStatus = Literal["success", "failure", "error"]
#: The task states a trigger can end a task in (``end_from_trigger``); a class may allow fewer.
END_FROM_TRIGGER_STATES = ("failed", "skipped", "success")


class WaitEvent(TypedDict, total=False):
    """The payload of every event a ``JobStatusTrigger`` yields."""

    status: EventStatus
    message: str
    job_status: dict[str, Any]
    error: dict[str, Any]
    last_sub_jobs: list[dict[str, Any]]
    progress_history: list[dict[str, Any]]
    restart_in_worker: bool


def _seen(snapshot: dict[str, Any] | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    snapshot = snapshot or {}
    return list(snapshot.get("last_sub_jobs") or []), list(snapshot.get("progress_history") or [])


def decided_event(
    verdict: Literal["success", "failure"], status: JobStatus, snapshot: dict[str, Any]
) -> WaitEvent:
    """A wait that reached a decisive state."""
    sub_jobs, history = _seen(snapshot)
    return WaitEvent(
        status=verdict,
        job_status=status.to_dict(),
        message=status.summary(),
        last_sub_jobs=sub_jobs,
        progress_history=history,
    )


def error_event(
    err: ServiceError, snapshot: dict[str, Any] | None = None, *, restart_in_worker: bool = False
) -> WaitEvent:
    """A wait that ended in an error (or could not start here: ``restart_in_worker``)."""
    sub_jobs, history = _seen(snapshot)
    event = WaitEvent(
        status="error",
        error=err.to_dict(),
        message=str(err),
        last_sub_jobs=sub_jobs,
        progress_history=history,
    )
    if restart_in_worker:
        event["restart_in_worker"] = True
    return event


def read_event(event: Any, service: str) -> tuple[Literal["success", "failure"], JobStatus]:
    """The verdict and status of a decided event; an error event re-raises its error as itself."""
    if not isinstance(event, dict) or event.get("status") not in ("success", "failure", "error"):
        raise BadResponseError(f"Unexpected event from the trigger: {event!r}", service=service)
    if event["status"] == "error":
        raise ServiceError.from_dict(event["error"])
    return event["status"], JobStatus.from_dict(event["job_status"])


def seen_of(event: Any) -> dict[str, Any]:
    """What the wait saw (last subjobs, progress history), from an event that may lack it."""
    sub_jobs, history = _seen(event if isinstance(event, dict) else None)
    return {"last_sub_jobs": sub_jobs, "progress_history": history}
