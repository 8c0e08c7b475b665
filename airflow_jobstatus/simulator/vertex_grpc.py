"""Vertex AI's JobService over gRPC: custom, batch prediction and hyperparameter tuning jobs.

Served only when google-cloud-aiplatform is installed; its heavy types are imported off the event
loop on the first call.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

import grpc

from airflow_jobstatus.simulator.core import SimJob, SimulatorCore
from airflow_jobstatus.simulator.grpc_common import GrpcCalls, Handler, RpcError, import_types, list_page, ts

VERTEX_SERVICE = "google.cloud.aiplatform.v1.JobService"
#: Vertex AI collections: resource-name segment → (job_type, message module, message class).
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
_VERTEX_PARENT = re.compile(r"^projects/([^/]+)/locations/([^/]+)$")
#: One comparison of a list filter: ``[NOT ]state(=|!=)"JOB_STATE_X"`` (the only field served here).
_STATE_TERM = re.compile(r'^(NOT\s+)?state\s*(!=|=)\s*"?([A-Z_]+)"?$')


def state_filter(text: str) -> Callable[[str], bool]:
    """A list ``filter`` on ``state`` as a predicate (AIP-160: OR binds tighter than AND).

    ValueError for anything else (another field, parentheses): the simulator serves ``state`` only.
    """
    if not text.strip():
        return lambda state: True
    clauses = []
    for conjunct in re.split(r"\s+AND\s+", text.strip()):
        terms = []
        for term in re.split(r"\s+OR\s+", conjunct.strip()):
            match = _STATE_TERM.match(term.strip())
            if match is None:
                raise ValueError(f"unsupported filter term {term!r} (the simulator filters on state only)")
            negate, op, value = bool(match.group(1)), match.group(2), match.group(3)
            terms.append((negate != (op == "!="), value))
        clauses.append(terms)
    return lambda state: all(any((state == v) != neg for neg, v in terms) for terms in clauses)


def resource_fields(
    job: SimJob, snap: dict[str, Any], name: str, status_pb2: Any, prefix: str, failed_code: int
) -> dict[str, Any]:
    """The fields a Vertex AI job resource and a PipelineJob share: name, state (``prefix`` + name),
    times as the service sets them (no start while QUEUED/PENDING), and ``error`` with its code
    (1 CANCELLED, else ``failed_code``; a phase's ``error_code`` wins), from one ``job.snapshot()``."""
    state = snap["state"]
    fields: dict[str, Any] = {
        "name": name,
        "display_name": snap.get("display_name", f"sim-{job.job_id}"),
        "state": state,
        "create_time": ts(job.created_wall),
        "update_time": ts(snap["state_start_wall"]),
    }
    if state not in (f"{prefix}QUEUED", f"{prefix}PENDING"):
        fields["start_time"] = ts(job.created_wall)
    if job.is_terminal():
        fields["end_time"] = ts(snap["state_start_wall"])
    if snap.get("error"):
        code = snap.get("error_code", 1 if state == f"{prefix}CANCELLED" else failed_code)
        fields["error"] = status_pb2.Status(code=code, message=str(snap["error"]))
    return fields


def listed_under(
    core: SimulatorCore, service: str, parent_re: re.Pattern[str], request: Any, scope_key: str, **where: Any
) -> list[SimJob]:
    """The jobs a List request names: its ``parent`` (project and region/location) and its ``filter``
    on ``state``; INVALID_ARGUMENT for a parent or filter the service would refuse."""
    match = parent_re.match(request.parent)
    if match is None:
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid parent: {request.parent!r}.")
    try:
        keep = state_filter(request.filter)
    except ValueError as err:
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from None
    project_id, scope = match.groups()
    jobs = core.listed_jobs(service, project_id=project_id, **{scope_key: scope}, **where)
    return [j for j in jobs if keep(str(j.state_at()))]


def vertex_available() -> bool:
    """True when google-cloud-aiplatform is installed (checked without importing it)."""
    try:
        return importlib.util.find_spec("google.cloud.aiplatform_v1") is not None
    except (ImportError, ValueError):
        return False


class VertexJobs:
    """Get and Cancel for the three job kinds, served through ``calls``."""

    def __init__(self, calls: GrpcCalls):
        self.calls = calls
        self.core = calls.core
        self._vertex: dict[str, ModuleType] | None = None

    def handlers(self) -> dict[str, Handler]:
        out: dict[str, Handler] = {}
        for kind in ("CustomJob", "BatchPredictionJob", "HyperparameterTuningJob"):
            out[f"Get{kind}"] = self._vertex_handler(kind, cancel=False)
            out[f"Cancel{kind}"] = self._vertex_handler(kind, cancel=True)
            out[f"List{kind}s"] = self._list_handler(kind)
        return out

    def _list_handler(self, kind: str) -> Handler:
        """List<Kind>s: the location's jobs of that kind by id, filtered on ``state``, paged."""
        collection, entry = next((c, e) for c, e in VERTEX_COLLECTIONS.items() if e[2] == kind)
        field = re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower() + "s"  # custom_jobs, …

        async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
            if self._vertex is None:
                await asyncio.to_thread(self._vertex_modules)
            service = self._vertex_modules()["job_service"]
            req = getattr(service, f"List{kind}sRequest").deserialize(raw)

            def respond() -> bytes:
                jobs = listed_under(
                    self.core, "vertex_ai", _VERTEX_PARENT, req, "location", job_type=entry[0]
                )
                page, token = list_page(jobs, req.page_size, req.page_token)
                items = [
                    self._vertex_message(j, f"{req.parent}/{collection}/{j.job_id}", entry) for j in page
                ]
                response = getattr(service, f"List{kind}sResponse")
                data: bytes = response.serialize(response(**{field: items, "next_page_token": token}))
                return data

            return await self.calls.serve(context, "vertex_ai", f"List{kind}s", None, req, respond)

        return handle

    def _vertex_modules(self) -> dict[str, ModuleType]:
        if self._vertex is None:
            prefix = "google.cloud.aiplatform_v1.types."
            names = ("job_service", "custom_job", "batch_prediction_job", "hyperparameter_tuning_job")
            self._vertex = import_types(prefix, names)
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
            return await self.calls.serve(
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
        message = self._vertex_message(job, name, entry)
        data: bytes = type(message).serialize(message)
        return data

    def _vertex_message(self, job: SimJob, name: str, entry: tuple[str, str, str]) -> Any:
        modules = self._vertex_modules()
        cls = getattr(modules[entry[1]], entry[2])
        snap = job.snapshot()
        fields = resource_fields(job, snap, name, modules["status_pb2"], prefix="JOB_STATE_", failed_code=13)
        return cls(**fields)
