"""What a Huawei Cloud answer means, on both HTTP paths: the JSON object, or the provider's error for it.

``handle_response`` turns a status, headers and body into the answer's JSON object or a
``ServiceError`` kind (the status table is ``http_error``); ``requests_failure`` and
``aiohttp_failure`` classify transport errors. Every message goes through the caller's ``scrub``.
"""

from __future__ import annotations

import email.utils
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_jobstatus.core.exceptions import (
    AuthenticationError,
    BadRequestError,
    BadResponseError,
    JobNotFoundError,
    ServiceError,
    TransientServiceError,
)
from airflow_jobstatus.services.huawei import Operation, parse_error_body

#: Statuses worth retrying: throttling, the gateway's and the service's "unavailable", and 409, which
#: CDM and DLI document as "the resource is busy, try again".
TRANSIENT_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
_MAX_DETAIL = 500


def _keep(text: str) -> str:
    return text


def _header(headers: Mapping[str, str], name: str) -> str | None:
    name = name.lower()
    return next((str(v) for k, v in headers.items() if k.lower() == name), None)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delay-seconds or an HTTP date); None when absent/invalid."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _json_object(body: bytes, array_key: str | None = None) -> tuple[dict[str, Any], str | None]:
    """The body as a JSON object (an array as ``{array_key: array}`` when given), or ({}, why not)."""
    if not body.strip():
        return {}, "empty body"
    try:
        data = json.loads(body)
    except ValueError:
        return {}, f"not JSON ({len(body)} bytes: truncated or garbled)"
    if array_key is not None and isinstance(data, list):
        return {array_key: data}, None
    if not isinstance(data, dict):
        return {}, f"expected a JSON object, got {type(data).__name__}"
    return data, None


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "…"


def http_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    op: Operation,
    *,
    service: str,
    where: str = "",
    scrub: Callable[[str], str] = _keep,
) -> ServiceError:
    """The provider error for a non-2xx answer, keeping the service's own error code and message."""
    code, message = parse_error_body(body)
    if code is None and message is None:
        message = body.decode("utf-8", "replace").strip() or None
    detail = _clip(scrub(message or "no message"))
    kw: dict[str, Any] = {"service": service, "job_id": op.job_id, "code": code or status}
    text = scrub(f"{op.action} for job {op.job_id!r} failed with HTTP {status}: {detail}")
    unknown_job = status == 400 and code is not None and code in op.not_found_codes  # e.g. DLI's DLI.0002
    if status in (401, 403):
        return AuthenticationError(f"{text} (check the connection's AK/SK and project_id)", **kw)
    if status == 404 or unknown_job:
        place = f" in {where}" if where else ""
        hint = f"; {op.not_found_hint}" if op.not_found_hint else ""
        return JobNotFoundError(
            scrub(f"job {op.job_id!r} not found{place} (HTTP {status}: {detail}){hint}"), **kw
        )
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientServiceError(
            text, retry_after=parse_retry_after(_header(headers, "Retry-After")), **kw
        )
    if 400 <= status < 500:
        return BadRequestError(text, **kw)
    return ServiceError(f"{text} (unexpected status: check the endpoint)", **kw)


def handle_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    op: Operation,
    *,
    service: str,
    where: str = "",
    scrub: Callable[[str], str] = _keep,
) -> dict[str, Any]:
    """The JSON object of a 2xx answer; a ServiceError for anything else (see ``http_error``).

    A 2xx whose body is not a JSON object is a BadResponseError when ``op.body_required``, else ``{}``.
    """
    if not 200 <= status < 300:
        raise http_error(status, headers, body, op, service=service, where=where, scrub=scrub)
    data, problem = _json_object(body, op.array_key)
    if problem is None:
        return data
    if not op.body_required:
        return {}
    raise BadResponseError(
        scrub(f"{op.action} for job {op.job_id!r}: unparseable answer (HTTP {status}): {problem}"),
        service=service,
        job_id=op.job_id,
    )


def _transport_error(
    op: Operation, service: str, kind: str, reason: str, scrub: Callable[[str], str]
) -> TransientServiceError:
    what = "timed out" if kind == "timeout" else "connection error"
    return TransientServiceError(
        _clip(scrub(f"{op.action} for job {op.job_id!r} failed: {what}: {reason}")),
        service=service,
        job_id=op.job_id,
        code=kind,
    )


def requests_failure(
    exc: Exception, op: Operation, *, service: str, timeout: float, scrub: Callable[[str], str] = _keep
) -> TransientServiceError:
    """A ``requests`` exception (timeout, refused, reset, proxy, TLS) as a transient error."""
    import requests

    if isinstance(exc, requests.Timeout):
        return _transport_error(op, service, "timeout", f"no answer within {timeout:g} s ({exc})", scrub)
    return _transport_error(op, service, "connection", f"{type(exc).__name__}: {exc}", scrub)


def aiohttp_failure(
    exc: BaseException, op: Operation, *, service: str, timeout: float, scrub: Callable[[str], str] = _keep
) -> TransientServiceError:
    """An ``aiohttp`` exception or a timeout as a transient error."""
    if isinstance(exc, TimeoutError):
        return _transport_error(op, service, "timeout", f"no answer within {timeout:g} s", scrub)
    return _transport_error(op, service, "connection", f"{type(exc).__name__}: {exc}", scrub)


@dataclass(frozen=True)
class Reply:
    """An HTTP answer as either path received it, for ``handle_response``."""

    status: int
    headers: Mapping[str, str]
    body: bytes
