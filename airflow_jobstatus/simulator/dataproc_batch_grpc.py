"""Dataproc Serverless over gRPC: BatchController (GetBatch, ListBatches) and the Operations API's
CancelOperation of a batch's operation, with the SDK's own messages.

Phase payload keys: ``state_message``, ``approximate_usage`` (a dict of ``UsageMetrics`` fields:
``milli_dcu_seconds``, ``shuffle_storage_gb_seconds``, …), ``output_uri``. Calls, faults and errors
go through ``GrpcCalls.serve`` like every other simulated service.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import grpc

from airflow_jobstatus.simulator.core import SimJob
from airflow_jobstatus.simulator.grpc_common import GrpcCalls, Handler, RpcError, paged, ts
from airflow_jobstatus.simulator.vertex_grpc import listed_under, order_key

SERVICE = "dataproc_batch"
BATCH_SERVICE = "google.cloud.dataproc.v1.BatchController"
OPERATIONS_SERVICE = "google.longrunning.Operations"
_BATCH_NAME = re.compile(r"^projects/([^/]+)/locations/([^/]+)/batches/([^/]+)$")
_PARENT = re.compile(r"^projects/([^/]+)/locations/([^/]+)$")
_OPERATION_NAME = re.compile(r"^projects/([^/]+)/regions/([^/]+)/operations/([^/]+)$")
DEFAULT_FAILURE = "Job failed with message [Driver exited with a non-zero status]."


def operation_id(job: SimJob) -> str:
    """The batch's operation id (stable per batch, as the service's is)."""
    where = job.where
    return str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"dataproc-batch/{where['project_id']}/{where['region']}/{job.job_id}")
    )


_BATCH_TYPES = {
    "pyspark_batch": "PySparkBatch",
    "spark_batch": "SparkBatch",
    "spark_r_batch": "SparkRBatch",
    "spark_sql_batch": "SparkSqlBatch",
}


def batch_name(job: SimJob) -> str:
    where = job.where
    return f"projects/{where['project_id']}/locations/{where['region']}/batches/{job.job_id}"


class DataprocBatches:
    """BatchController and Operations handlers over ``calls`` (the shared record/fault/answer path)."""

    def __init__(self, calls: GrpcCalls):
        from google.cloud.dataproc_v1.types import batches, shared

        self.calls = calls
        self.core = calls.core
        self._b = batches
        self._shared = shared

    def handlers(self) -> dict[str, dict[str, Handler]]:
        return {
            BATCH_SERVICE: {"GetBatch": self._get, "ListBatches": self._list},
            OPERATIONS_SERVICE: {"CancelOperation": self._cancel_operation},
        }

    # ---- messages -------------------------------------------------------------------------------

    def message(self, job: SimJob) -> Any:
        b = self._b
        snap = job.snapshot()
        state = snap["state"]
        where = job.where
        name = batch_name(job)
        message = snap.get("state_message")
        if message is None and state == "FAILED":
            message = DEFAULT_FAILURE
        usage = {k: v for k, v in (snap.get("approximate_usage") or {}).items()}
        runtime = self._shared.RuntimeInfo(
            output_uri=str(snap.get("output_uri") or ""),
            approximate_usage=self._shared.UsageMetrics(**usage) if usage else None,
        )
        kind = str(job.meta.get("type") or "pyspark_batch")
        return b.Batch(
            {kind: getattr(b, _BATCH_TYPES[kind])()},
            labels=dict(job.meta.get("labels") or {}),
            name=name,
            uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            create_time=ts(job.created_wall),
            state=state,
            state_message=message or "",
            state_time=ts(snap["state_start_wall"]),
            runtime_info=runtime,
            operation=f"projects/{where['project_id']}/regions/{where['region']}/operations/{operation_id(job)}",
            state_history=[
                b.Batch.StateHistory(state=s, state_start_time=ts(t))
                for s, t in snap["history"]
                if isinstance(s, str)
            ],
        )

    def _lookup(self, name: str) -> SimJob:
        match = _BATCH_NAME.match(name)
        if match is None:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid batch name: {name!r}.")
        project_id, region, batch_id = match.groups()
        job = self.core.get_job(SERVICE, batch_id, project_id=project_id, region=region)
        if job is None:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"Not found: Batch {name}")
        return job

    # ---- handlers -------------------------------------------------------------------------------

    async def _get(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        req = self._b.GetBatchRequest.deserialize(raw)
        match = _BATCH_NAME.match(req.name)

        def respond() -> bytes:
            data: bytes = self._b.Batch.serialize(self.message(self._lookup(req.name)))
            return data

        batch_id = match.group(3) if match else None
        return await self.calls.serve(context, SERVICE, "GetBatch", batch_id, req, respond)

    async def _list(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """ListBatches: the region's batches by ``filter`` (batch_id, batch_uuid, state, create_time,
        labels; AND/OR), ``order_by`` "" (by id) or ``create_time desc``; pages of 20 by default, at
        most 1000."""
        b = self._b
        req = b.ListBatchesRequest.deserialize(raw)

        def respond() -> bytes:
            order = " ".join(req.order_by.split())
            if order not in ("", "create_time desc"):
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Unsupported order_by {req.order_by!r}: only unspecified or 'create_time desc'.",
                )
            jobs = listed_under(self.core, SERVICE, _PARENT, req, "region", extra=self._filter_fields)
            key = order_key([("create_time", True)]) if order else None
            page, token = paged(jobs, req.page_size, req.page_token, key, default=20, maximum=1000)
            answer = b.ListBatchesResponse(batches=[self.message(j) for j in page], next_page_token=token)
            data: bytes = b.ListBatchesResponse.serialize(answer)
            return data

        return await self.calls.serve(context, SERVICE, "ListBatches", None, req, respond, scope=req.parent)

    @staticmethod
    def _filter_fields(job: SimJob) -> dict[str, Any]:
        return {"batch_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, batch_name(job)))}

    async def _cancel_operation(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        from google.longrunning import operations_pb2

        req = operations_pb2.CancelOperationRequest.FromString(raw)
        match = _OPERATION_NAME.match(req.name)
        job = None
        if match is not None:
            project_id, region, op = match.groups()
            listed = self.core.listed_jobs(SERVICE, project_id=project_id, region=region)
            job = next((j for j in listed if operation_id(j) == op), None)

        def respond() -> bytes:
            if match is None:
                raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid operation name: {req.name!r}.")
            if job is None:
                raise RpcError(grpc.StatusCode.NOT_FOUND, f"Operation not found: {req.name}")
            if job.is_terminal():
                raise RpcError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Cannot cancel batch {job.job_id}: it is in state {job.state_at()}.",
                )
            self.core.cancel_job(SERVICE, job.job_id, "cancel", **job.where)
            return b""  # google.protobuf.Empty

        request = _Named(req.name)
        return await self.calls.serve(
            context, SERVICE, "CancelOperation", job.job_id if job else None, request, respond
        )


class _Named:
    """A raw protobuf request (no proto-plus ``to_dict``) recorded by its name."""

    def __init__(self, name: str):
        self.name = name

    @staticmethod
    def to_dict(message: Any, use_integers_for_enums: bool = False) -> dict[str, Any]:
        return {"name": message.name}
