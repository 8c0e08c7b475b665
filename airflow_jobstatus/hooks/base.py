"""The contract every service hook follows: read, and cancel, one job named by its typed reference."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

from airflow.sdk import BaseHook

from airflow_jobstatus.core import dotted
from airflow_jobstatus.core.exceptions import ConfigurationError
from airflow_jobstatus.core.states import JobStatus
from airflow_jobstatus.services import get_service
from airflow_jobstatus.services.base import JobRef, Watched

R = TypeVar("R", bound=JobRef)
H = TypeVar("H", bound="JobStatusHook[Any]")

DEFAULT_CALL_TIMEOUT = 30.0


class JobStatusHook(BaseHook, Generic[R]):
    """Reads one job's state as a JobStatus, synchronously or without blocking the event loop.

    Subclasses set ``service``, ``conn_name_attr`` and ``default_conn_name`` and implement the four
    calls below for their service's ``JobRef`` type; everything else about the service is in
    ``airflow_jobstatus.services.<service>``.
    """

    service: ClassVar[str]
    conn_name_attr: ClassVar[str]
    default_conn_name: ClassVar[str]

    def __init__(self, conn_id: str | None = None, timeout: float = DEFAULT_CALL_TIMEOUT, **kwargs: Any):
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.default_conn_name
        if not timeout > 0:  # also rejects NaN
            raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}.")
        self.timeout = float(timeout)

    def fetch_connection(self) -> Any:
        """The Airflow connection, or a ConfigurationError saying how to define it (sync; may block;
        from any thread: ``compat.supervisor_call``)."""
        from airflow_jobstatus.core.compat import AirflowNotFoundException, shielded, supervisor_call

        try:
            return supervisor_call(
                self.get_connection, lambda c: shielded(self.aget_connection(c)), self.conn_id
            )
        except AirflowNotFoundException:
            raise _undefined_connection(self.conn_id) from None

    async def afetch_connection(self) -> Any:
        """``fetch_connection`` through Airflow's async connection getter."""
        from airflow_jobstatus.core.compat import AirflowNotFoundException, shielded

        try:
            return await shielded(self.aget_connection(self.conn_id))
        except AirflowNotFoundException:
            raise _undefined_connection(self.conn_id) from None

    def get_status(self, ref: R) -> JobStatus:
        """One reading of the job's state."""
        raise NotImplementedError

    async def aget_status(self, ref: R) -> JobStatus:
        """``get_status`` without blocking the event loop."""
        raise NotImplementedError

    def cancel(self, ref: R) -> None:
        """Ask the service to stop the job (see the service's ``cancel_note``)."""
        raise NotImplementedError

    async def acancel(self, ref: R) -> None:
        """``cancel`` without blocking the event loop (a trigger's on_kill)."""
        raise NotImplementedError

    async def alist_active(self, ref: R) -> list[Any]:
        """Every entry of the service's list of active jobs in ``ref``'s scope (``coalescing``)."""
        raise ConfigurationError(f"{self.service} has no list of active jobs.")

    async def alist_jobs(
        self, scope: Mapping[str, Any], pushed: Mapping[str, Any] | None = None
    ) -> list[Watched]:
        """Every page of the service's job list in ``scope`` (its ``Watching``), each job a ``Watched``;
        ``pushed``: filters to push down where the API can (event watchers)."""
        raise ConfigurationError(f"{self.service} jobs cannot be watched: it has no job list.")

    def find_started(self, identity: Mapping[str, Any]) -> dict[str, Any] | None:
        """The newest job an operator started for this task instance (``identity``: ``dag_id``,
        ``run_id``, ``task_id``, ``map_index``), found at the service by the tag every submit carries,
        as a job record (``job_ref``, ``ids``, ``submitted_at``, ``try_number``, ``first_try``,
        ``clear_number``); None when there is none, or (here) when the service cannot tell."""
        return None

    def console_scope(self) -> str | None:
        """What a console link needs from the connection: the Google project or the Huawei region."""
        return None

    def close(self) -> None:
        """Release what this hook holds for its sync calls (clients, sessions); the shared async ones stay."""

    def __enter__(self: H) -> H:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _undefined_connection(conn_id: str) -> ConfigurationError:
    return ConfigurationError(
        f"Connection {conn_id!r} is not defined: create it in Airflow or set AIRFLOW_CONN_{conn_id.upper()}."
    )


def hook_class(service: str) -> type[JobStatusHook[Any]]:
    """The hook class for ``service``, imported on first use."""
    cls: type[JobStatusHook[Any]] = dotted.load(get_service(service).hook)
    return cls


def parse_listed(hook: JobStatusHook[Any], entries: list[Any], scope: Mapping[str, Any]) -> list[Watched]:
    """Each listed entry through the service's ``Watching.parse_entry``; an entry it cannot read is
    left out (logged), not the whole list's failure."""
    watching = get_service(hook.service).watching
    if watching is None:
        raise ConfigurationError(f"{hook.service} jobs cannot be watched: it has no job list.")
    out: list[Watched] = []
    for entry in entries:
        try:
            out.append(watching.parse_entry(entry, scope))
        except Exception as err:  # one odd entry (a newer API's field) must not blind the watcher
            hook.log.warning(
                "%s: a listed job could not be read, skipped: %s: %s", hook.service, type(err).__name__, err
            )
    return out


def make_hook(service: str, conn_id: str | None = None, **kwargs: Any) -> JobStatusHook[Any]:
    """Build the hook for ``service`` on connection ``conn_id`` (the service's default when None)."""
    return hook_class(service)(conn_id, **kwargs)
