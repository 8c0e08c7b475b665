"""What the gRPC services share: recording a call, applying a fault, ending a call with a status.

Handlers take and return raw bytes (requests are decoded inside the handler), so the
``grpc_undecodable`` and ``malformed_body`` faults can answer with bytes the client cannot decode.
Status faults: ``grpc_unavailable``, ``grpc_resource_exhausted``, ``grpc_deadline_exceeded``,
``grpc_aborted``, and ``drop_connection`` (UNAVAILABLE, as a reset stream surfaces); ``latency``
delays the answer.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import threading
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timezone
from types import ModuleType
from typing import Any

import grpc

from airflow_jobstatus.simulator.core import Fault, SimJob, SimulatorCore

#: An unterminated varint tag: no protobuf message decodes from it.
UNDECODABLE_BODY = b"\xff\xff\xff"

FAULT_STATUS = {
    "grpc_unavailable": (grpc.StatusCode.UNAVAILABLE, "The service is currently unavailable."),
    "grpc_resource_exhausted": (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute'.",
    ),
    "grpc_deadline_exceeded": (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
    "grpc_aborted": (
        grpc.StatusCode.ABORTED,
        "The operation was aborted because of a concurrent change to the job; retry the request.",
    ),
    "drop_connection": (grpc.StatusCode.UNAVAILABLE, "Connection reset by peer"),
}


Handler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]

#: List calls: the page size when the request gives none, and the most one page holds.
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


#: One thread at a time imports SDK message modules: two servicers importing google-cloud-aiplatform's
#: types in two threads at once deadlocked on Python's module locks (the first Vertex AI and pipeline
#: reads then failed with UNKNOWN "Unexpected <class '_DeadlockError'>", about one run in eight).
_IMPORT_LOCK = threading.Lock()


def import_types(prefix: str, names: Iterable[str]) -> dict[str, ModuleType]:
    """``prefix + name`` for each name, and ``status_pb2`` (google.rpc), imported under one lock."""
    with _IMPORT_LOCK:
        modules = {n: importlib.import_module(prefix + n) for n in names}
        modules["status_pb2"] = importlib.import_module("google.rpc.status_pb2")
    return modules


def desc_text(text: str) -> list[int]:
    """A sort key ordering strings descending (``paged`` keys are ascending lists)."""
    return [*(-ord(c) for c in text), 1]


def paged(
    jobs: list[SimJob],
    page_size: int,
    page_token: str,
    key: Callable[[SimJob], list[Any]] | None = None,
    default: int = DEFAULT_PAGE_SIZE,
    maximum: int = MAX_PAGE_SIZE,
) -> tuple[list[SimJob], str]:
    """One page of ``jobs`` in ``key`` order (default: by id) after ``page_token``, and the next token.

    The token is the sort key of the last job served (opaque base64 JSON), so jobs that change between
    pages do not shift the next one. ``page_size`` 0 means ``default``; above ``maximum`` it is
    capped (AIP-158); negative, or a token this simulator did not issue, is INVALID_ARGUMENT.
    """
    if page_size < 0:
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"page_size must not be negative, got {page_size}.")
    size = min(maximum, page_size) if page_size > 0 else default
    order = key or (lambda job: [job.job_id])
    keyed = sorted((([*order(j), j.job_id], j) for j in jobs), key=lambda kj: kj[0])
    if page_token:
        try:
            last = json.loads(base64.urlsafe_b64decode(page_token.encode()))
            if not isinstance(last, list):
                raise ValueError(page_token)
            keyed = [kj for kj in keyed if kj[0] > last]
        except (ValueError, TypeError):
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid page token {page_token!r}.") from None
    page = keyed[:size]
    token = ""
    if len(keyed) > size:
        token = base64.urlsafe_b64encode(json.dumps(page[-1][0]).encode()).decode()
    return [j for _, j in page], token


class RpcError(Exception):
    """Ends the current call with a gRPC status (NOT_FOUND, FAILED_PRECONDITION, …)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def ts(wall: float) -> datetime:
    return datetime.fromtimestamp(wall, tz=timezone.utc)


def metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        out[key] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return out


def to_dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = type(message).to_dict(message, use_integers_for_enums=False)
    return out


class GrpcCalls:
    """Serves calls over one core: ``serve`` records, applies a fault, then answers."""

    def __init__(self, core: SimulatorCore):
        self.core = core

    async def serve(
        self,
        context: grpc.aio.ServicerContext,
        service: str,
        method: str,
        job_id: str | None,
        request: Any,
        respond: Callable[[], bytes],
        scope: str | None = None,
    ) -> bytes:
        """Record the call, apply a pending fault, then answer (or abort with the RpcError raised).

        ``scope``: a list call's parent (``projects/P/regions/R``), kept in the core's list-call log
        with the request's ``page_token``.
        """
        detail = to_dict(request)
        page = str(detail.get("page_token") or "") if scope is not None else None
        self.core.record_call(
            service, job_id, method, detail=detail, headers=metadata(context), scope=scope, page=page
        )
        fault = self.core.take_fault(service, job_id, "grpc", method)
        if fault is not None:
            early = await self.apply_fault(fault, context)
            if early is not None:
                return early
        try:
            return respond()
        except RpcError as err:
            await context.abort(err.code, err.message)
            raise  # not reached: abort raises

    @staticmethod
    async def apply_fault(fault: Fault, context: grpc.aio.ServicerContext) -> bytes | None:
        if fault.kind == "latency":
            await asyncio.sleep(fault.seconds or 0.0)
            return None
        if fault.kind in ("grpc_undecodable", "malformed_body"):
            return UNDECODABLE_BODY
        status = FAULT_STATUS.get(fault.kind)
        if status is None:  # an HTTP-only fault never reaches here (take_fault filters by protocol)
            raise RuntimeError(f"fault {fault.kind} does not apply to gRPC")
        await context.abort(*status)
        return None
