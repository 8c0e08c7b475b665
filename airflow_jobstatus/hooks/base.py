"""The contract every service hook follows, and the lazy service → hook registry the trigger uses."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from airflow.sdk import BaseHook

from airflow_jobstatus.exceptions import ConfigurationError
from airflow_jobstatus.states import SERVICES, JobStatus

#: Where each service's hook lives; imported only when that service is used.
HOOK_CLASS_PATHS: dict[str, str] = {
    "dataproc": "airflow_jobstatus.hooks.dataproc.DataprocJobHook",
    "dataflow": "airflow_jobstatus.hooks.dataflow.DataflowJobHook",
    "vertex_ai": "airflow_jobstatus.hooks.vertex_ai.VertexAIJobHook",
    "cdm": "airflow_jobstatus.hooks.cdm.CdmJobHook",
    "dli": "airflow_jobstatus.hooks.dli.DliJobHook",
}

DEFAULT_CALL_TIMEOUT = 30.0


class JobStatusHook(BaseHook):
    """Reads one job's state as a JobStatus, synchronously or without blocking the event loop.

    Subclasses set ``service``, ``conn_name_attr`` and ``default_conn_name`` and implement
    ``get_status``/``aget_status`` taking the service's job reference as keyword arguments.
    """

    service: ClassVar[str]
    conn_name_attr: ClassVar[str]
    default_conn_name: ClassVar[str]

    def __init__(self, conn_id: str | None = None, timeout: float = DEFAULT_CALL_TIMEOUT, **kwargs: Any):
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.default_conn_name
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}.")
        self.timeout = float(timeout)

    def fetch_connection(self) -> Any:
        """The Airflow connection, or a ConfigurationError saying how to define it (sync; may block)."""
        from airflow.exceptions import AirflowNotFoundException

        try:
            return self.get_connection(self.conn_id)
        except AirflowNotFoundException:
            raise _undefined_connection(self.conn_id) from None

    async def afetch_connection(self) -> Any:
        """``fetch_connection`` through Airflow's async connection getter."""
        from airflow.exceptions import AirflowNotFoundException

        try:
            return await self.aget_connection(self.conn_id)
        except AirflowNotFoundException:
            raise _undefined_connection(self.conn_id) from None

    # Each service declares these with its own job-reference keywords (see docs/architecture.md).
    get_status: Callable[..., JobStatus]
    aget_status: Callable[..., Awaitable[JobStatus]]
    cancel: Callable[..., Any]
    acancel: Callable[..., Awaitable[Any]]

    def cancel_job(self, **job_ref: Any) -> None:
        """Ask the service to stop the job named by the same keywords as ``get_status``."""
        self.cancel(**job_ref)

    async def acancel_job(self, **job_ref: Any) -> None:
        """``cancel_job`` without blocking the event loop (used by the trigger's on_kill)."""
        await self.acancel(**job_ref)


def _undefined_connection(conn_id: str) -> ConfigurationError:
    return ConfigurationError(
        f"Connection {conn_id!r} is not defined: create it in Airflow or set AIRFLOW_CONN_{conn_id.upper()}."
    )


def hook_class(service: str) -> type[JobStatusHook]:
    """The hook class for ``service``, imported on first use."""
    try:
        path = HOOK_CLASS_PATHS[service]
    except KeyError:
        raise ConfigurationError(
            f"Unknown service {service!r}. Valid services: {', '.join(SERVICES)}."
        ) from None
    module_name, _, class_name = path.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def make_hook(service: str, conn_id: str | None = None, **kwargs: Any) -> JobStatusHook:
    """Build the hook for ``service`` on connection ``conn_id`` (the service's default when None)."""
    return hook_class(service)(conn_id, **kwargs)


def require_job_id(value: Any, name: str = "job_id") -> str:
    """Reject an empty or blank job identifier with a clear message."""
    if value is None or not str(value).strip():
        raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}.")
    return str(value).strip()


def check_identifier(value: Any, name: str = "job_id") -> Any:
    """At construction: reject an empty string, keep anything resolved later (an XComArg) as is."""
    if value is None or isinstance(value, str):
        return require_job_id(value, name)
    return value
