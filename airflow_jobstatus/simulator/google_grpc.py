"""Plaintext gRPC front for Dataproc, Dataflow and Vertex AI, speaking the SDKs' own message types.

Handlers take and return raw bytes: requests are decoded inside the handler (so the heavy Vertex AI
types are imported off the event loop, on first use) and a ``malformed_body`` fault can send bytes
the client cannot decode.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from types import ModuleType
from typing import Any

import grpc

from airflow_jobstatus.simulator.core import Fault, SimJob, SimulatorCore

DATAPROC_SERVICE = "google.cloud.dataproc.v1.JobController"
DATAFLOW_SERVICE = "google.dataflow.v1beta3.JobsV1Beta3"
VERTEX_SERVICE = "google.cloud.aiplatform.v1.JobService"
MALFORMED_BODY = b"\xff\xff"  # an unterminated varint tag: no protobuf message decodes from it
DATAFLOW_DEFAULT_LOCATION = "us-central1"  # what the real API assumes when a request names none

#: Vertex AI collections: resource-name segment → (job_type, message module, message class, kind).
VERTEX_COLLECTIONS = {
    "customJobs": ("custom_job", "custom_job", "CustomJob"),
    "batchPredictionJobs": ("batch_prediction_job", "batch_prediction_job", "BatchPredictionJob"),
    "hyperparameterTuningJobs": (
        "hyperparameter_tuning_job",
        "hyperparameter_tuning_job",
        "HyperparameterTuningJob",
    ),
}
_VERTEX_NAME = re.compile(r"^projects/([^/]+)/locations/([^/]+)/([A-Za-z]+)/([^/]+)$")

_FAULT_STATUS = {
    "grpc_unavailable": (grpc.StatusCode.UNAVAILABLE, "The service is currently unavailable."),
    "grpc_resource_exhausted": (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute'.",
    ),
    "grpc_deadline_exceeded": (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
    "drop_connection": (grpc.StatusCode.UNAVAILABLE, "Connection reset by peer"),
}


class RpcError(Exception):
    """Ends the current call with a gRPC status (NOT_FOUND, FAILED_PRECONDITION, …)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _ts(wall: float) -> datetime:
    return datetime.fromtimestamp(wall, tz=timezone.utc)


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        out[key] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return out


def _to_dict(message: Any) -> dict[str, Any]:
    return type(message).to_dict(message, use_integers_for_enums=False)


def vertex_available() -> bool:
    """True when google-cloud-aiplatform is installed (checked without importing it)."""
    try:
        return importlib.util.find_spec("google.cloud.aiplatform_v1") is not None
    except (ImportError, ValueError):
        return False


Handler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


class GoogleGrpcServicer:
    """The three Google job services over one core; ``generic_handlers()`` plugs into a grpc.aio server."""

    def __init__(self, core: SimulatorCore):
        self.core = core
        from google.cloud.dataflow_v1beta3.types import jobs as dataflow_jobs
        from google.cloud.dataproc_v1.types import jobs as dataproc_jobs

        self._dp = dataproc_jobs
        self._df = dataflow_jobs
        self._vertex: dict[str, ModuleType] | None = None

    # ---- plumbing ---------------------------------------------------------------------------------

    def generic_handlers(self, with_vertex: bool | None = None) -> list[grpc.GenericRpcHandler]:
        """One generic handler per service; Vertex AI only when its SDK is installed."""
        services: dict[str, dict[str, Handler]] = {
            DATAPROC_SERVICE: {
                "GetJob": self._dataproc_get,
                "CancelJob": self._dataproc_cancel,
                "SubmitJob": self._dataproc_submit,
            },
            DATAFLOW_SERVICE: {"GetJob": self._dataflow_get, "UpdateJob": self._dataflow_update},
        }
        if vertex_available() if with_vertex is None else with_vertex:
            vertex: dict[str, Handler] = {}
            for kind in ("CustomJob", "BatchPredictionJob", "HyperparameterTuningJob"):
                vertex[f"Get{kind}"] = self._vertex_handler(kind, cancel=False)
                vertex[f"Cancel{kind}"] = self._vertex_handler(kind, cancel=True)
            services[VERTEX_SERVICE] = vertex
        return [
            grpc.method_handlers_generic_handler(
                name, {m: grpc.unary_unary_rpc_method_handler(fn) for m, fn in methods.items()}
            )
            for name, methods in services.items()
        ]

    async def _serve(
        self,
        context: grpc.aio.ServicerContext,
        service: str,
        method: str,
        job_id: str | None,
        request: Any,
        respond: Callable[[], bytes],
    ) -> bytes:
        """Record the call, apply a pending fault, then answer (or abort with the RpcError raised)."""
        self.core.record_call(service, job_id, method, detail=_to_dict(request), headers=_metadata(context))
        fault = self.core.take_fault(service, job_id, "grpc")
        if fault is not None:
            early = await self._apply_fault(fault, context)
            if early is not None:
                return early
        try:
            return respond()
        except RpcError as err:
            await context.abort(err.code, err.message)
            raise  # not reached: abort raises

    @staticmethod
    async def _apply_fault(fault: Fault, context: grpc.aio.ServicerContext) -> bytes | None:
        if fault.kind == "latency":
            await asyncio.sleep(fault.seconds or 0.0)
            return None
        if fault.kind == "malformed_body":
            return MALFORMED_BODY
        status = _FAULT_STATUS.get(fault.kind)
        if status is None:  # an http_* fault never reaches here (take_fault filters by protocol)
            return None
        await context.abort(*status)
        return None

    # ---- Dataproc ---------------------------------------------------------------------------------

    def _dataproc_job(self, job: SimJob) -> bytes:
        dp = self._dp
        snap = job.snapshot()
        state = snap["state"]
        details = snap.get("details")
        if details is None and state == "ERROR":
            details = "Google Cloud Dataproc Agent reports job failure."
        if details is None and state == "ATTEMPT_FAILURE":
            details = "Job attempt failed; the job will be restarted."
        status = dp.JobStatus(
            state=state,
            substate=snap.get("substate") or "UNSPECIFIED",
            details=details or "",
            state_start_time=_ts(snap["state_start_wall"]),
        )
        history = [dp.JobStatus(state=s, state_start_time=_ts(t)) for s, t in snap["history"]]
        message = dp.Job(
            reference=dp.JobReference(project_id=job.where["project_id"], job_id=job.job_id),
            placement=dp.JobPlacement(cluster_name=snap.get("cluster_name", "sim-cluster")),
            status=status,
            status_history=history,
            job_uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataproc/{job.job_id}")),
            done=job.is_terminal(),
        )
        return dp.Job.serialize(message)

    def _dataproc_lookup(self, project_id: str, region: str, job_id: str) -> SimJob:
        job = self.core.get_job("dataproc", job_id, project_id=project_id, region=region)
        if job is None:
            raise RpcError(
                grpc.StatusCode.NOT_FOUND,
                f"Not found: Job projects/{project_id}/regions/{region}/jobs/{job_id}",
            )
        return job

    async def _dataproc_get(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        req = self._dp.GetJobRequest.deserialize(raw)
        return await self._serve(
            context,
            "dataproc",
            "GetJob",
            req.job_id,
            req,
            lambda: self._dataproc_job(self._dataproc_lookup(req.project_id, req.region, req.job_id)),
        )

    async def _dataproc_cancel(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        req = self._dp.CancelJobRequest.deserialize(raw)

        def respond() -> bytes:
            job = self._dataproc_lookup(req.project_id, req.region, req.job_id)
            if job.is_terminal():
                raise RpcError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Job {req.job_id} cannot be cancelled: it is in state {job.state_at()}.",
                )
            self.core.cancel_job(
                "dataproc", req.job_id, "cancel", project_id=req.project_id, region=req.region
            )
            return self._dataproc_job(job)

        return await self._serve(context, "dataproc", "CancelJob", req.job_id, req, respond)

    async def _dataproc_submit(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        req = self._dp.SubmitJobRequest.deserialize(raw)
        job_id = req.job.reference.job_id or None

        def respond() -> bytes:
            where = {"project_id": req.project_id, "region": req.region}
            if job_id and self.core.get_job("dataproc", job_id, **where) is not None:
                raise RpcError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"Already exists: Failed to submit job: Job projects/{req.project_id}/regions/"
                    f"{req.region}/jobs/{job_id}",
                )
            return self._dataproc_job(self.core.create_job("dataproc", job_id, **where))

        return await self._serve(context, "dataproc", "SubmitJob", job_id, req, respond)

    # ---- Dataflow ---------------------------------------------------------------------------------

    def _dataflow_job(self, job: SimJob) -> bytes:
        df = self._df
        snap = job.snapshot()
        requested = {"cancel": "JOB_STATE_CANCELLED", "drain": "JOB_STATE_DRAINED"}
        message = df.Job(
            id=job.job_id,
            project_id=job.where["project_id"],
            location=job.where["location"],
            name=snap.get("name", job.job_id),
            type_=snap.get("type", "JOB_TYPE_BATCH"),
            current_state=snap["state"],
            current_state_time=_ts(snap["state_start_wall"]),
            create_time=_ts(job.created_wall),
            requested_state=requested.get(job.actions[-1], 0) if job.actions else 0,
        )
        return df.Job.serialize(message)

    def _dataflow_lookup(self, project_id: str, location: str, job_id: str) -> SimJob:
        job = self.core.get_job("dataflow", job_id, project_id=project_id, location=location)
        if job is None:
            raise RpcError(
                grpc.StatusCode.NOT_FOUND,
                f"(job) Information about job {job_id} could not be found in our system. Please double "
                f"check that the id ({job_id}), project ({project_id}) and location ({location}) are correct.",
            )
        return job

    async def _dataflow_get(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        req = self._df.GetJobRequest.deserialize(raw)
        location = req.location or DATAFLOW_DEFAULT_LOCATION
        return await self._serve(
            context,
            "dataflow",
            "GetJob",
            req.job_id,
            req,
            lambda: self._dataflow_job(self._dataflow_lookup(req.project_id, location, req.job_id)),
        )

    async def _dataflow_update(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        req = self._df.UpdateJobRequest.deserialize(raw)
        location = req.location or DATAFLOW_DEFAULT_LOCATION
        raw_state = req.job.requested_state
        requested = str(getattr(raw_state, "name", raw_state))

        def respond() -> bytes:
            job = self._dataflow_lookup(req.project_id, location, req.job_id)
            action = {"JOB_STATE_CANCELLED": "cancel", "JOB_STATE_DRAINED": "drain"}.get(requested)
            if action is None:
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Unsupported requested_state {requested or 'unset'}: the simulator supports "
                    "JOB_STATE_CANCELLED and JOB_STATE_DRAINED.",
                )
            if job.is_terminal():
                raise RpcError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Workflow modification failed. Causes: (job) Could not modify workflow; job "
                    f"{req.job_id} is in state {job.state_at()}.",
                )
            self.core.cancel_job("dataflow", req.job_id, action, project_id=req.project_id, location=location)
            return self._dataflow_job(job)

        return await self._serve(context, "dataflow", "UpdateJob", req.job_id, req, respond)

    # ---- Vertex AI --------------------------------------------------------------------------------

    def _vertex_modules(self) -> dict[str, ModuleType]:
        if self._vertex is None:
            prefix = "google.cloud.aiplatform_v1.types."
            names = ("job_service", "custom_job", "batch_prediction_job", "hyperparameter_tuning_job")
            modules = {n: importlib.import_module(prefix + n) for n in names}
            modules["status_pb2"] = importlib.import_module("google.rpc.status_pb2")
            self._vertex = modules
        return self._vertex

    def _vertex_handler(self, kind: str, cancel: bool) -> Handler:
        method = f"{'Cancel' if cancel else 'Get'}{kind}"

        async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
            if self._vertex is None:  # first call: import the heavy types off the event loop
                await asyncio.to_thread(self._vertex_modules)
            modules = self._vertex_modules()
            req = getattr(modules["job_service"], f"{method}Request").deserialize(raw)
            match = _VERTEX_NAME.match(req.name)
            job_id = match.group(4) if match else None
            return await self._serve(
                context,
                "vertex_ai",
                method,
                job_id,
                req,
                lambda: self._vertex_respond(kind, req.name, cancel),
            )

        return handle

    def _vertex_respond(self, kind: str, name: str, cancel: bool) -> bytes:
        match = _VERTEX_NAME.match(name)
        entry = VERTEX_COLLECTIONS.get(match.group(3)) if match else None
        if match is None or entry is None or entry[2] != kind:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid {kind} resource name: {name!r}.")
        project_id, location, _, job_id = match.groups()
        where = {"project_id": project_id, "location": location, "job_type": entry[0]}
        job = self.core.get_job("vertex_ai", job_id, **where)
        if job is None:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"The {kind} does not exist: {name}")
        if not cancel:
            return self._vertex_job(job, name, entry)
        if job.is_terminal():
            raise RpcError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{kind} {name} is in state {job.state_at()} and cannot be cancelled.",
            )
        self.core.cancel_job("vertex_ai", job_id, "cancel", **where)
        return b""  # google.protobuf.Empty

    def _vertex_job(self, job: SimJob, name: str, entry: tuple[str, str, str]) -> bytes:
        modules = self._vertex_modules()
        cls = getattr(modules[entry[1]], entry[2])
        snap = job.snapshot()
        state = snap["state"]
        fields: dict[str, Any] = {
            "name": name,
            "display_name": snap.get("display_name", f"sim-{job.job_id}"),
            "state": state,
            "create_time": _ts(job.created_wall),
            "update_time": _ts(snap["state_start_wall"]),
        }
        if state not in ("JOB_STATE_QUEUED", "JOB_STATE_PENDING"):
            fields["start_time"] = _ts(job.created_wall)
        if job.is_terminal():
            fields["end_time"] = _ts(snap["state_start_wall"])
        if snap.get("error"):
            code = snap.get("error_code", 1 if state == "JOB_STATE_CANCELLED" else 13)
            fields["error"] = modules["status_pb2"].Status(code=code, message=str(snap["error"]))
        return cls.serialize(cls(**fields))


async def start_grpc_server(core: SimulatorCore, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    """Start a plaintext grpc.aio server for the three Google services; returns it and its bound port."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(tuple(GoogleGrpcServicer(core).generic_handlers()))
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"Could not bind the gRPC simulator to {host}:{port}.")
    await server.start()
    return server, bound
