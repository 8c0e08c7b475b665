"""Errors shared by every layer: a failed job, and the kinds of service error the poll loop tells apart."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow_jobstatus.core.compat import AirflowException

if TYPE_CHECKING:
    from airflow_jobstatus.core.states import JobStatus


class JobStatusError(AirflowException):
    """Base of every error this provider raises."""


class JobFailedError(JobStatusError):
    """The job reached a failure state; carries the final JobStatus."""

    def __init__(self, status: JobStatus):
        self.status = status
        text = (
            f"{status.service} job {status.job_id} ended in {status.state.value} "
            f"(native state {status.native_state}"
            + (f", substate {status.substate}" if status.substate else "")
            + ")"
            + (f": {status.message}" if status.message else "")
            + (f" (job logs: {status.logs_url})" if status.logs_url else "")
        )
        super().__init__(text)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status,))


class ServiceError(JobStatusError):
    """A call to a service failed. ``kind`` tells the poll loop what to do with it."""

    kind: ClassVar[str] = "error"
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        service: str | None = None,
        job_id: str | None = None,
        code: str | int | None = None,
        retry_after: float | None = None,
    ):
        self.message = message
        #: Seconds the service asked us to wait before retrying (HTTP Retry-After), if it said.
        self.retry_after = retry_after
        self.service = service
        self.job_id = job_id
        self.code = code
        prefix = f"{service}: " if service else ""
        suffix = f" [code {code}]" if code not in (None, "") else ""
        super().__init__(f"{prefix}{message}{suffix}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (ServiceError.from_dict, (self.to_dict(),))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form, so a trigger can hand the error to the worker in its event."""
        return {
            "kind": self.kind,
            "message": self.message,
            "service": self.service,
            "job_id": self.job_id,
            "code": self.code,
            "retry_after": self.retry_after,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ServiceError:
        cls = _KINDS.get(data.get("kind", ""), ServiceError)
        return cls(
            data["message"],
            service=data.get("service"),
            job_id=data.get("job_id"),
            code=data.get("code"),
            retry_after=data.get("retry_after"),
        )


class TransientServiceError(ServiceError):
    """Throttling, 5xx, UNAVAILABLE, a reset connection, a timeout: worth retrying."""

    kind = "transient"
    retryable = True


class AuthenticationError(ServiceError):
    """401/403 or bad credentials: retrying will not help."""

    kind = "authentication"


class JobNotFoundError(ServiceError):
    """404: no such job where it was looked for."""

    kind = "not_found"


class BadRequestError(ServiceError):
    """The service rejected the request as invalid (other 4xx)."""

    kind = "bad_request"


class BadResponseError(ServiceError):
    """The service answered with something that cannot be parsed (empty, truncated, undecodable).

    Retried within the error budget: one garbled answer from a proxy must not end a wait on a job
    that keeps running.
    """

    kind = "bad_response"
    retryable = True


class ConfigurationError(JobStatusError, ValueError):
    """A connection or argument is missing or invalid; the message says what is allowed."""


_KINDS: dict[str, type[ServiceError]] = {
    c.kind: c
    for c in (
        ServiceError,
        TransientServiceError,
        AuthenticationError,
        JobNotFoundError,
        BadRequestError,
        BadResponseError,
    )
}


__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BadResponseError",
    "ConfigurationError",
    "JobFailedError",
    "JobNotFoundError",
    "JobStatusError",
    "ServiceError",
    "TransientServiceError",
]
